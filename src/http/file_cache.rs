//! Files served by `root`/`alias`, read once and shared by every client.
//!
//! HLS and DASH players all fetch the same few files: each new segment is
//! asked for by every player within a second of being listed. Reading it
//! per request costs a copy of the whole file per player and holds a
//! private buffer of it per player (500 players of a 4 Mbit/s stream with
//! 2 s segments: 500 reads of 1 MB every 2 s, and up to 500 MB held at
//! once). Here the first request reads the file; every other request,
//! including those that arrive while that read runs, gets the same
//! `Bytes`, which hyper writes straight from.
//!
//! A file is known by its length, modification time, inode and device: the
//! segmenters (Sluice's and nginx-rtmp's) write a new file or rename one
//! into place, both of which change one of these, so a listed playlist or
//! a rewritten segment is never served stale. The cache is bounded
//! ([`CAPACITY`] bytes, least recently used first out), and files larger
//! than [`MAX_FILE`] are read per request, as before. Segmenters also
//! delete old segments: at most once a [`SWEEP`], a miss looks at every
//! cached file again and lets go of those deleted or changed, so the cache
//! holds about what the playlists list, not [`CAPACITY`] of dead files.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::OnceCell;

/// Bytes of file contents kept at most.
pub const CAPACITY: u64 = 64 << 20;
/// Larger files are not cached.
pub const MAX_FILE: u64 = 16 << 20;
/// How often cached files are checked for deletion, at most.
pub const SWEEP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    len: u64,
    modified: Option<SystemTime>,
    ino: u64,
    dev: u64,
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
        Identity {
            len: m.len(),
            modified: m.modified().ok(),
            ino: m.ino(),
            dev: m.dev(),
        }
    }
}

struct Entry {
    id: Identity,
    data: Arc<OnceCell<Bytes>>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<PathBuf, Entry>,
    bytes: u64,
    clock: u64,
    swept: Option<Instant>,
}

#[derive(Default)]
pub struct FileCache {
    inner: Mutex<Inner>,
}

/// What [`FileCache::get`] found.
#[derive(Debug)]
pub enum Found {
    /// The file's contents.
    Data(Bytes),
    /// No such regular file (or it could not be read).
    Missing,
}

impl FileCache {
    /// The contents of `file`, from the cache when the file is unchanged.
    pub async fn get(&self, file: &Path) -> Found {
        // One `stat` per request. It runs here, not on a blocking thread:
        // for the local directories segmenters write to it answers from
        // the inode cache in about a microsecond, less than the hop.
        let meta = match std::fs::metadata(file) {
            Ok(m) if m.is_file() => m,
            _ => return Found::Missing,
        };
        let id = Identity::of(&meta);
        if id.len > MAX_FILE {
            return read(file).await.map_or(Found::Missing, Found::Data);
        }
        let cell = self.cell(file, id);
        match cell
            .get_or_try_init(|| async {
                let data = read(file).await.ok_or(())?;
                // Changed while read (written in place): serve what was
                // read, the next request reads again.
                let after = std::fs::metadata(file).map(|m| Identity::of(&m));
                if data.len() as u64 != id.len || after.ok() != Some(id) {
                    self.forget(file, id);
                }
                Ok::<_, ()>(data)
            })
            .await
        {
            Ok(d) => Found::Data(d.clone()),
            Err(()) => {
                self.forget(file, id);
                Found::Missing
            }
        }
    }

    /// The cell for this version of the file, made (and room made for
    /// it) when the cache has none.
    fn cell(&self, file: &Path, id: Identity) -> Arc<OnceCell<Bytes>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.clock += 1;
        let now = g.clock;
        if let Some(e) = g.entries.get_mut(file) {
            if e.id == id {
                e.used = now;
                return e.data.clone();
            }
        }
        if g.swept.is_none_or(|t| t.elapsed() >= SWEEP) {
            g.swept = Some(Instant::now());
            let cached: Vec<_> = g.entries.iter().map(|(p, e)| (p.clone(), e.id)).collect();
            drop(g);
            self.sweep(cached);
            g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        }
        // After the sweep: while the lock was let go, another request may
        // have cached this path, and its bytes must not be counted twice.
        if let Some(old) = g.entries.remove(file) {
            g.bytes -= old.id.len;
        }
        while g.bytes + id.len > CAPACITY {
            let Some(oldest) = g
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            if let Some(e) = g.entries.remove(&oldest) {
                g.bytes -= e.id.len;
            }
        }
        let data = Arc::new(OnceCell::new());
        g.bytes += id.len;
        g.entries.insert(
            file.to_path_buf(),
            Entry {
                id,
                data: data.clone(),
                used: now,
            },
        );
        data
    }

    /// Lets go of the cached files that were deleted or changed since.
    /// Their `stat`s run outside the lock.
    fn sweep(&self, cached: Vec<(PathBuf, Identity)>) {
        for (path, id) in cached {
            let now = std::fs::metadata(&path).ok().map(|m| Identity::of(&m));
            if now != Some(id) {
                self.forget(&path, id);
            }
        }
    }

    /// Drops this version of the file, if it is still the one cached.
    fn forget(&self, file: &Path, id: Identity) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.entries.get(file).is_some_and(|e| e.id == id) {
            if let Some(e) = g.entries.remove(file) {
                g.bytes -= e.id.len;
            }
        }
    }

    /// Bytes accounted to cached files.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

async fn read(file: &Path) -> Option<Bytes> {
    tokio::fs::read(file).await.ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_a_file_once_read_and_sees_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.ts");
        std::fs::write(&f, b"first").unwrap();
        let c = FileCache::default();
        let Found::Data(a) = c.get(&f).await else {
            panic!()
        };
        let Found::Data(b) = c.get(&f).await else {
            panic!()
        };
        assert_eq!(&a[..], b"first");
        // The same allocation: read once, shared.
        assert_eq!(a.as_ptr(), b.as_ptr());
        // Renamed into place, as segmenters do: a new inode.
        let tmp = dir.path().join("a.ts.tmp");
        std::fs::write(&tmp, b"second!").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        let Found::Data(b) = c.get(&f).await else {
            panic!()
        };
        assert_eq!(&b[..], b"second!");
        assert_eq!(c.bytes(), 7);
        // Rewritten in place with another length.
        std::fs::write(&f, b"third, longer").unwrap();
        let Found::Data(b) = c.get(&f).await else {
            panic!()
        };
        assert_eq!(&b[..], b"third, longer");
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(c.get(&f).await, Found::Missing));
        assert!(matches!(c.get(dir.path()).await, Found::Missing));
    }

    #[tokio::test]
    async fn stays_within_its_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCache::default();
        let size = (CAPACITY / 3 + 1) as usize;
        let mut last = None;
        for i in 0..5 {
            let f = dir.path().join(format!("{i}.ts"));
            std::fs::write(&f, vec![i as u8; size]).unwrap();
            let Found::Data(d) = c.get(&f).await else {
                panic!()
            };
            assert_eq!(d.len(), size);
            assert!(c.bytes() <= CAPACITY, "{}", c.bytes());
            last = Some(f);
        }
        // The newest is kept, and files over MAX_FILE are not cached.
        let Found::Data(d) = c.get(last.as_ref().unwrap()).await else {
            panic!()
        };
        assert_eq!(d[0], 4);
        let big = dir.path().join("big.ts");
        std::fs::write(&big, vec![0u8; MAX_FILE as usize + 1]).unwrap();
        let before = c.bytes();
        assert!(matches!(c.get(&big).await, Found::Data(_)));
        assert_eq!(c.bytes(), before);
    }

    #[tokio::test]
    async fn deleted_files_are_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let c = FileCache::default();
        let (a, b) = (dir.path().join("a.ts"), dir.path().join("b.ts"));
        std::fs::write(&a, [1u8; 100]).unwrap();
        std::fs::write(&b, [2u8; 10]).unwrap();
        assert!(matches!(c.get(&a).await, Found::Data(_)));
        assert_eq!(c.bytes(), 100);
        // A segmenter deletes the old segment and writes a new one; the
        // next miss after a sweep interval lets the deleted one go.
        std::fs::remove_file(&a).unwrap();
        c.inner.lock().unwrap().swept = Some(Instant::now() - SWEEP);
        assert!(matches!(c.get(&b).await, Found::Data(_)));
        assert_eq!(c.bytes(), 10);
        assert_eq!(c.inner.lock().unwrap().entries.len(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("seg.ts");
        std::fs::write(&f, vec![7u8; 100_000]).unwrap();
        let c = Arc::new(FileCache::default());
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (c, f) = (c.clone(), f.clone());
                tokio::spawn(async move {
                    match c.get(&f).await {
                        Found::Data(d) => d.as_ptr() as usize,
                        Found::Missing => 0,
                    }
                })
            })
            .collect();
        let mut ptrs = Vec::new();
        for t in tasks {
            ptrs.push(t.await.unwrap());
        }
        assert!(ptrs.iter().all(|&p| p != 0 && p == ptrs[0]), "{ptrs:?}");
    }
}
