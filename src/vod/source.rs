//! Positioned reads: the demuxers read headers and tables at offsets, and
//! players read samples, through this trait, so the same code runs on a
//! file and, in tests and fuzzing, on bytes in memory.

use std::io;

pub trait ReadAt {
    /// The size of the whole source.
    fn size(&self) -> u64;
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// As [`Self::read_at`], but only from memory: `WouldBlock` when the
    /// bytes would have to come from the disk. Sources in memory read.
    fn read_at_cached(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.read_at(buf, offset)
    }

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        fill(buf, offset, |b, o| self.read_at(b, o))
    }

    /// [`Self::read_exact_at`] from memory only (see [`Self::read_at_cached`]).
    fn read_exact_at_cached(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        fill(buf, offset, |b, o| self.read_at_cached(b, o))
    }
}

fn fill(
    mut buf: &mut [u8],
    mut offset: u64,
    read: impl Fn(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    {
        while !buf.is_empty() {
            match read(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Some(rest) = usize::try_from(offset).ok().and_then(|o| self.get(o..)) else {
            return Ok(0);
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

/// An open file and the size it had when opened: a file that grows while
/// it is played is read up to that size.
pub struct FileSource {
    pub file: std::fs::File,
    pub len: u64,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> io::Result<FileSource> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not a file"));
        }
        Ok(FileSource {
            len: meta.len(),
            file,
        })
    }
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        self.file.read_at(&mut buf[..n], offset)
    }

    /// `preadv2(RWF_NOWAIT)`: the page cache or `WouldBlock`; `Unsupported`
    /// from a kernel or filesystem without it.
    fn read_at_cached(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use rustix::io::{preadv2, ReadWriteFlags};
        if offset >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - offset) as usize);
        let mut iov = [io::IoSliceMut::new(&mut buf[..n])];
        match preadv2(&self.file, &mut iov, offset, ReadWriteFlags::NOWAIT) {
            // A short read: the rest is not cached.
            Ok(got) if got < n && got > 0 => Ok(got),
            Ok(0) if n > 0 => Err(io::ErrorKind::WouldBlock.into()),
            Ok(got) => Ok(got),
            Err(rustix::io::Errno::INTR) => Err(io::ErrorKind::Interrupted.into()),
            Err(
                rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL,
            ) => Err(io::ErrorKind::Unsupported.into()),
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_reads_come_from_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = FileSource::open(&p).unwrap();
        let mut b = [0u8; 4];
        // Just written: in the page cache (or the kernel cannot say).
        match f.read_exact_at_cached(&mut b, 3) {
            Ok(()) => assert_eq!(&b, b"3456"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::Unsupported),
        }
        f.read_exact_at(&mut b, 6).unwrap();
        assert_eq!(&b, b"6789");
        assert!(f.read_exact_at(&mut b, 8).is_err());
        assert_eq!(f.read_at_cached(&mut b, 10).unwrap(), 0);
    }
}
