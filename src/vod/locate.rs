//! From a played name to a file name, as nginx-rtmp's play module maps
//! them: `mp4:NAME` and `NAME.mp4` are MP4 files, anything else FLV; the
//! format's suffix is added when the name does not end with it; `/`
//! reaches into subdirectories.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Flv,
    Mp4,
}

/// A played name resolved to a file name relative to a `play` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub format: Format,
    pub file: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    /// nginx-rtmp refuses `/../`; Sluice refuses every `..` component
    /// (a leading `../` too, which nginx-rtmp lets through).
    #[error("name leaves the play directory")]
    Escape,
    #[error("name has a control character")]
    Control,
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

pub fn resolve(name: &str) -> Result<Wanted, NameError> {
    let (format, rest) = if name.len() >= 4 && name.as_bytes()[..4].eq_ignore_ascii_case(b"mp4:") {
        (Format::Mp4, &name[4..])
    } else if ends_with_ci(name, ".mp4") {
        (Format::Mp4, name)
    } else {
        (Format::Flv, name)
    };
    if rest.is_empty() {
        return Err(NameError::Empty);
    }
    if rest.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if rest.split(['/', '\\']).any(|c| c == "..") {
        return Err(NameError::Escape);
    }
    let suffix = match format {
        Format::Flv => ".flv",
        Format::Mp4 => ".mp4",
    };
    let file = if ends_with_ci(rest, suffix) {
        rest.to_owned()
    } else {
        format!("{rest}{suffix}")
    };
    Ok(Wanted { format, file })
}

/// `DIR/FILE`, joined as text as nginx-rtmp does: a leading `/` in the
/// name stays inside `DIR`.
pub fn under(dir: &Path, file: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push("/");
    s.push(file.trim_start_matches('/'));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_as_nginx_rtmp() {
        let w = |n: &str| resolve(n).unwrap();
        assert_eq!(w("movie").file, "movie.flv");
        assert_eq!(w("movie.flv").file, "movie.flv");
        assert_eq!(w("mp4:movie").file, "movie.mp4");
        assert_eq!(w("MP4:movie.mp4").file, "movie.mp4");
        assert_eq!(w("movie.mp4").format, Format::Mp4);
        assert_eq!(w("a/b/c").file, "a/b/c.flv");
        assert_eq!(resolve("../etc/passwd"), Err(NameError::Escape));
        assert_eq!(resolve("a/../../x"), Err(NameError::Escape));
        assert_eq!(resolve("mp4:"), Err(NameError::Empty));
        assert_eq!(resolve("a\nb"), Err(NameError::Control));
        assert_eq!(
            under(Path::new("/v"), "/etc/passwd.flv"),
            PathBuf::from("/v/etc/passwd.flv")
        );
    }
}
