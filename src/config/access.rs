//! `allow`/`deny` rules as nginx-rtmp's access module reads them: in order,
//! the first rule matching the client's address and the action decides;
//! no match allows.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Play,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// `None`: both publish and play.
    pub action: Option<Action>,
    /// `None`: `all`.
    pub net: Option<(IpAddr, u8)>,
}

/// Parses the arguments of `allow`/`deny`: `[publish|play] addr|cidr|all`.
pub fn parse_rule(allow: bool, args: &[String]) -> Result<Rule, String> {
    let (action, target) = match args {
        [t] => (None, t),
        [a, t] if a == "publish" => (Some(Action::Publish), t),
        [a, t] if a == "play" => (Some(Action::Play), t),
        [a, _] => {
            return Err(format!(
                "invalid action \"{a}\", expected \"publish\" or \"play\""
            ))
        }
        _ => return Err("invalid number of arguments".into()),
    };
    if target == "all" {
        return Ok(Rule {
            allow,
            action,
            net: None,
        });
    }
    let (addr, bits) = match target.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (target.as_str(), None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid address \"{target}\""))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or(format!("invalid mask in \"{target}\""))?,
        None => max,
    };
    Ok(Rule {
        allow,
        action,
        net: Some((ip, bits)),
    })
}

fn matches(net: (IpAddr, u8), ip: IpAddr) -> bool {
    // An IPv4 client may arrive as an IPv4-mapped IPv6 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - net.1 as u32).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - net.1 as u32).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Whether `ip` may perform `action` under `rules`.
/// The HTTP side's check: rules there name no action.
pub fn permits_any(rules: &[Rule], ip: IpAddr) -> bool {
    permits(rules, ip, Action::Play)
}

pub fn permits(rules: &[Rule], ip: IpAddr, action: Action) -> bool {
    rules
        .iter()
        .find(|r| r.action.is_none_or(|a| a == action) && r.net.is_none_or(|n| matches(n, ip)))
        .is_none_or(|r| r.allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, args: &[&str]) -> Rule {
        parse_rule(
            allow,
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn first_match_wins_in_order() {
        let rules = vec![
            rule(true, &["publish", "127.0.0.1"]),
            rule(false, &["publish", "all"]),
            rule(false, &["play", "10.0.0.0/8"]),
        ];
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.168.1.5".parse().unwrap();
        let ten: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(permits(&rules, lo, Action::Publish));
        assert!(!permits(&rules, other, Action::Publish));
        assert!(
            permits(&rules, other, Action::Play),
            "no rule matches: allowed"
        );
        assert!(!permits(&rules, ten, Action::Play));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(permits(&rules, mapped, Action::Publish));
        // order matters: deny all first shadows the allow
        let rules = vec![rule(false, &["all"]), rule(true, &["127.0.0.1"])];
        assert!(!permits(&rules, lo, Action::Play));
    }

    #[test]
    fn bad_rules() {
        assert!(parse_rule(true, &["watch".into(), "all".into()]).is_err());
        assert!(parse_rule(true, &["10.0.0.0/33".into()]).is_err());
        assert!(parse_rule(true, &["nonsense".into()]).is_err());
        assert!(parse_rule(true, &[]).is_err());
    }
}
