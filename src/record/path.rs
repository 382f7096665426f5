//! Where a recording goes: `record_path/NAME[-UNIXTIME]SUFFIX`, as
//! nginx-rtmp builds it, with strftime patterns in the suffix expanded.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Local};

use crate::config::RecorderConf;

/// The file path for stream `name` opened at `at`.
pub fn make(conf: &RecorderConf, name: &str, at: DateTime<Local>) -> PathBuf {
    let mut file = escape(name);
    if conf.unique {
        let _ = write!(file, "-{}", at.timestamp());
    }
    file.push_str(&strftime(&conf.suffix, at));
    PathBuf::from(&conf.path).join(file)
}

/// Percent-escapes everything but unreserved URI characters, as nginx-rtmp
/// does with the stream name: a name can then never leave `record_path`
/// (`/` and `..` segments are impossible) nor make odd file names.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    if out.is_empty() || out.chars().all(|c| c == '.') {
        // "", "." and ".." are not file names.
        out = out.replace('.', "%2E");
        out.insert(0, '_');
    }
    out
}

/// Expands strftime patterns; a suffix chrono cannot format is used as is.
fn strftime(suffix: &str, at: DateTime<Local>) -> String {
    if !suffix.contains('%') {
        return suffix.to_owned();
    }
    let mut out = String::new();
    match write!(out, "{}", at.format(suffix)) {
        Ok(()) => out,
        Err(_) => suffix.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn conf(suffix: &str, unique: bool) -> RecorderConf {
        RecorderConf {
            audio: true,
            video: true,
            path: "/rec".into(),
            suffix: suffix.into(),
            unique,
            ..Default::default()
        }
    }

    #[test]
    fn nginx_shaped_paths() {
        let at = Local.with_ymd_and_hms(2026, 11, 21, 15, 4, 5).unwrap();
        assert_eq!(
            make(&conf(".flv", false), "cam", at),
            PathBuf::from("/rec/cam.flv")
        );
        assert_eq!(
            make(&conf(".flv", true), "cam", at),
            PathBuf::from(format!("/rec/cam-{}.flv", at.timestamp()))
        );
        assert_eq!(
            make(&conf("-%Y%m%d-%H%M%S.flv", false), "cam", at),
            PathBuf::from("/rec/cam-20261121-150405.flv")
        );
        assert_eq!(
            make(&conf(".flv", false), "../etc/x", at),
            PathBuf::from("/rec/..%2Fetc%2Fx.flv")
        );
        assert_eq!(
            make(&conf("", false), "..", at),
            PathBuf::from("/rec/_%2E%2E")
        );
        assert_eq!(
            make(&conf(".flv", false), "bad%q", at),
            PathBuf::from("/rec/bad%25q.flv")
        );
    }
}
