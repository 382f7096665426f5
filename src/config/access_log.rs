//! nginx-rtmp's `access_log` and `log_format`: formats compiled when the
//! configuration loads, so a bad variable is a FILE:LINE error and a line
//! is rendered without parsing anything.

use std::path::PathBuf;

use super::syntax::{err, ConfigError, Directive};

/// A variable of nginx-rtmp's log module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVar {
    Connection,
    RemoteAddr,
    App,
    Flashver,
    Swfurl,
    Tcurl,
    Pageurl,
    Command,
    Name,
    Args,
    BytesSent,
    BytesReceived,
    TimeLocal,
    Msec,
    SessionTime,
    SessionReadableTime,
}

impl LogVar {
    fn by_name(n: &str) -> Option<LogVar> {
        use LogVar::*;
        Some(match n {
            "connection" => Connection,
            "remote_addr" => RemoteAddr,
            "app" => App,
            "flashver" => Flashver,
            "swfurl" => Swfurl,
            "tcurl" => Tcurl,
            "pageurl" => Pageurl,
            "command" => Command,
            "name" => Name,
            "args" => Args,
            "bytes_sent" => BytesSent,
            "bytes_received" => BytesReceived,
            "time_local" => TimeLocal,
            "msec" => Msec,
            "session_time" => SessionTime,
            "session_readable_time" => SessionReadableTime,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp {
    Text(String),
    Var(LogVar),
}

/// nginx-rtmp's predefined `combined` format.
pub const COMBINED: &str = "$remote_addr [$time_local] $command \"$app\" \"$name\" \"$args\" - \
     $bytes_received $bytes_sent \"$pageurl\" \"$flashver\" ($session_readable_time)";

/// Compiles a format as nginx-rtmp does: `$name` is a run of letters,
/// digits and `_`, `${name}` is bracketed, an unknown variable is an error.
pub fn compile(text: &str) -> Result<Vec<LogOp>, String> {
    let mut ops = Vec::new();
    let mut lit = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            lit.push(c);
            continue;
        }
        let bracket = chars.next_if(|(_, c)| *c == '{').is_some();
        let mut name = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if bracket && chars.next_if(|(_, c)| *c == '}').is_none() {
            return Err(format!("missing closing bracket in \"{name}\""));
        }
        if name.is_empty() {
            return Err(format!("invalid parameter \"{text}\""));
        }
        let v = LogVar::by_name(&name).ok_or_else(|| format!("unknown variable \"{name}\""))?;
        if !lit.is_empty() {
            ops.push(LogOp::Text(std::mem::take(&mut lit)));
        }
        ops.push(LogOp::Var(v));
    }
    if !lit.is_empty() {
        ops.push(LogOp::Text(lit));
    }
    Ok(ops)
}

/// One `access_log PATH [FORMAT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    pub path: PathBuf,
    pub format: Vec<LogOp>,
}

/// The named formats: `combined` and every `log_format`, from any scope
/// (nginx-rtmp keeps one list, and warns when one is not at rtmp level).
pub(super) fn formats(
    lists: &[&Directive],
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Vec<LogOp>)> {
    let mut out = vec![("combined".to_owned(), compile(COMBINED).unwrap_or_default())];
    for d in lists.iter().filter(|d| d.name == "log_format") {
        let name = &d.args[0];
        if out.iter().any(|(n, _)| n == name) {
            errors.push(err(
                &d.pos,
                format!("duplicate \"log_format\" name \"{name}\""),
            ));
            continue;
        }
        match compile(&d.args[1..].concat()) {
            Ok(ops) => out.push((name.clone(), ops)),
            Err(e) => errors.push(err(&d.pos, e)),
        }
    }
    out
}

/// The logs of a scope from its `access_log` lines (innermost scope that
/// has any): `None` when there are none, `Some(empty)` for `off`.
pub(super) fn logs(
    lines: &[&Directive],
    formats: &[(String, Vec<LogOp>)],
    errors: &mut Vec<ConfigError>,
) -> Vec<AccessLog> {
    if lines.iter().any(|d| d.args[0] == "off") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for d in lines {
        let want = d.args.get(1).map_or("combined", String::as_str);
        match formats.iter().find(|(n, _)| n.eq_ignore_ascii_case(want)) {
            Some((_, ops)) => out.push(AccessLog {
                path: PathBuf::from(&d.args[0]),
                format: ops.clone(),
            }),
            None => errors.push(err(&d.pos, format!("unknown log format \"{want}\""))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_compile_as_nginx_rtmp_reads_them() {
        let ops = compile("[$time_local] ${app}x $name_1").unwrap_err();
        assert_eq!(ops, "unknown variable \"name_1\"");
        let ops = compile("a ${app}x $connection.").unwrap();
        assert_eq!(
            ops,
            [
                LogOp::Text("a ".into()),
                LogOp::Var(LogVar::App),
                LogOp::Text("x ".into()),
                LogOp::Var(LogVar::Connection),
                LogOp::Text(".".into()),
            ]
        );
        assert!(compile("x $").is_err());
        assert!(compile("${app").is_err());
        assert!(compile(COMBINED).is_ok());
    }
}
