//! `play http://...`: the file is fetched whole into `play_temp_path`, then
//! played from there, as nginx-rtmp does. With `play_local_path` it is
//! moved there once complete, so a `play` location naming that directory
//! finds it locally next time; without, the temporary file is unlinked as
//! soon as it is open and disappears with the play.
//!
//! Bounded: at most [`MAX_FETCH`] bytes, and the origin must send
//! something at least every `idle` (the application's `netcall_timeout`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::{info, warn};

use super::source::FileSource;
use super::VodError;

/// The largest file fetched for a play.
pub const MAX_FETCH: u64 = 4 << 30;

fn client() -> &'static reqwest::Client {
    static C: OnceLock<reqwest::Client> = OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    })
}

/// The URL nginx-rtmp asks for: `BASE/FILE?addr=CLIENT[&ARGS]`.
pub fn url(base: &str, file: &str, addr: &str, args: &str) -> String {
    let sep = if base.ends_with('/') { "" } else { "/" };
    let mut u = format!(
        "{base}{sep}{}?addr={}",
        file.trim_start_matches('/'),
        crate::netcall::escape(addr)
    );
    if !args.is_empty() {
        u.push('&');
        u.push_str(args);
    }
    u
}

/// A fetched file, open for reading.
pub struct Fetched {
    pub source: FileSource,
    /// Where it is, for the index cache and logs.
    pub path: PathBuf,
}

/// Fetches `url` into `temp_dir`. `Ok(None)` when the origin has no such
/// file (any answer but 2xx, or an empty body): the next location is tried.
pub async fn fetch(
    url: &str,
    temp_dir: &Path,
    keep_as: Option<PathBuf>,
    idle: Duration,
) -> Result<Option<Fetched>, VodError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut resp = match tokio::time::timeout(idle, client().get(url).send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            warn!(url, error = %e, "play: remote fetch failed");
            return Ok(None);
        }
        Err(_) => {
            warn!(url, "play: remote fetch timed out");
            return Ok(None);
        }
    };
    if !resp.status().is_success() {
        info!(
            url,
            status = resp.status().as_u16(),
            "play: remote has no such file"
        );
        return Ok(None);
    }
    if resp.content_length().is_some_and(|l| l > MAX_FETCH) {
        return Err(VodError::Format(format!(
            "play: remote file larger than {MAX_FETCH} bytes"
        )));
    }
    let tmp = temp_dir.join(format!(
        "sluice-vod.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let mut got = 0u64;
    let result: Result<(), VodError> = async {
        loop {
            let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => return Err(VodError::Format(format!("play: remote fetch: {e}"))),
                Err(_) => return Err(VodError::Format("play: remote fetch stalled".into())),
            };
            got += chunk.len() as u64;
            if got > MAX_FETCH {
                return Err(VodError::Format(format!(
                    "play: remote file larger than {MAX_FETCH} bytes"
                )));
            }
            // Small writes to a local file: not worth a blocking thread each.
            file.write_all(&chunk)?;
        }
    }
    .await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if got == 0 {
        let _ = std::fs::remove_file(&tmp);
        return Ok(None);
    }
    let mut path = tmp.clone();
    match keep_as {
        Some(dest) => {
            if let Some(dir) = dest.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::rename(&tmp, &dest) {
                Ok(()) => path = dest,
                Err(e) => {
                    warn!(from = %tmp.display(), to = %dest.display(), error = %e, "play: error moving the fetched file to play_local_path");
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        None => {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    let len = file.metadata()?.len();
    Ok(Some(Fetched {
        source: FileSource { file, len },
        path,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_as_nginx_rtmp() {
        assert_eq!(
            super::url("http://o/vod", "a.flv", "127.0.0.1", ""),
            "http://o/vod/a.flv?addr=127.0.0.1"
        );
        assert_eq!(
            super::url("http://o/", "x/a.mp4", "::1", "t=1"),
            "http://o/x/a.mp4?addr=::1&t=1"
        );
    }
}
