//! Keeps secrets out of logs. Stream keys usually travel as `?args` on the
//! tcUrl, the app or the stream name (`live/stream?key=...`), and webhook
//! URLs carry the same args in their query. Logs go to files, terminals and
//! log shippers that see far more people than the server does, so values
//! after `?` are replaced by `***` unless `log_args on` is configured.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

static SHOW: AtomicBool = AtomicBool::new(false);

/// Process-wide switch, set once from the config (`log_args on`).
pub fn show_args(on: bool) {
    SHOW.store(on, Ordering::Relaxed);
}

/// `rtmp://h/live?key=abc&x=1` becomes `rtmp://h/live?key=***&x=***`.
/// Keys stay visible, so a log still says which args were sent.
pub fn args(s: &str) -> Cow<'_, str> {
    if SHOW.load(Ordering::Relaxed) {
        return Cow::Borrowed(s);
    }
    let Some((head, query)) = s.split_once('?') else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(head);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) => {
                out.push_str(k);
                out.push_str("=***");
            }
            None if pair.is_empty() => {}
            None => out.push_str("***"),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_hidden_keys_are_not() {
        assert_eq!(args("rtmp://h/live"), "rtmp://h/live");
        assert_eq!(
            args("rtmp://h/live?key=s3cret&x=1"),
            "rtmp://h/live?key=***&x=***"
        );
        assert_eq!(args("name?s3cret"), "name?***");
        assert_eq!(args("a?"), "a?");
    }
}
