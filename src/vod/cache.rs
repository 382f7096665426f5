//! One index per file, shared by every player of it: a thousand players of
//! one file hold one sample table, and each reads only the samples it is
//! about to send.
//!
//! Entries are weak: an index lives as long as some player uses it. A file
//! replaced or rewritten (other inode, size or mtime) is indexed afresh.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::index::Index;
use super::locate::Format;
use super::source::FileSource;
use super::VodError;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

type Map = HashMap<PathBuf, (Identity, Weak<Index>)>;

fn map() -> &'static Mutex<Map> {
    static MAP: OnceLock<Mutex<Map>> = OnceLock::new();
    MAP.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, Map> {
    map().lock().unwrap_or_else(|e| e.into_inner())
}

/// The index of the open file `src` (at `path`), from the cache or built.
/// Blocking: call from a blocking thread.
pub fn get(path: &Path, src: &FileSource, format: Format) -> Result<Arc<Index>, VodError> {
    let m = src.file.metadata()?;
    let id = Identity {
        dev: m.dev(),
        ino: m.ino(),
        len: src.len,
        mtime: (m.mtime(), m.mtime_nsec()),
    };
    if let Some((have, weak)) = lock().get(path) {
        if *have == id {
            if let Some(ix) = weak.upgrade() {
                return Ok(ix);
            }
        }
    }
    let ix = Arc::new(match format {
        Format::Flv => super::flv_file::index(src)?,
        Format::Mp4 => super::mp4::index(src)?,
    });
    let mut map = lock();
    map.retain(|_, (_, w)| w.strong_count() > 0);
    map.insert(path.to_owned(), (id, Arc::downgrade(&ix)));
    Ok(ix)
}
