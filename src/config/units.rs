//! nginx value units: times (`500ms`, `30s`, `1m30s`; a bare number is
//! milliseconds for the msec directives) and sizes (`4096`, `4k`, `1M`).

/// Parses an nginx time into milliseconds. Units: ms, s, m, h, d, w, M, y;
/// several may be combined (`1m30s`).
pub fn parse_msec(v: &str) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (mult, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.bytes().next() {
                None => (1, 0),
                Some(b's') => (1000, 1),
                Some(b'm') => (60_000, 1),
                Some(b'h') => (3_600_000, 1),
                Some(b'd') => (86_400_000, 1),
                Some(b'w') => (604_800_000, 1),
                Some(b'M') => (2_592_000_000, 1),
                Some(b'y') => (31_536_000_000, 1),
                _ => return None,
            }
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// Parses an nginx size: bytes, or with k/K, m/M, g/G.
pub fn parse_size(v: &str) -> Option<u64> {
    let (num, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_msec("500ms"), Some(500));
        assert_eq!(parse_msec("30s"), Some(30_000));
        assert_eq!(parse_msec("1m"), Some(60_000));
        assert_eq!(parse_msec("1m30s"), Some(90_000));
        assert_eq!(parse_msec("1000"), Some(1000));
        assert_eq!(parse_msec("1h"), Some(3_600_000));
        for bad in ["", "s", "10x", "-1s", "1.5s"] {
            assert_eq!(parse_msec(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        for bad in ["", "k", "1.5M", "-1", "10x"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
