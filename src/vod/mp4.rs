//! Indexes an MP4 (ISO BMFF) file for playing over RTMP: finds the `moov`
//! (at the start or at the end), reads it whole, and expands each track's
//! sample tables into samples.
//!
//! Written here rather than taken from a crate: what players need is the
//! expanded sample list with the raw `avcC`/`hvcC`/`av1C`/AudioSpecificConfig
//! bytes, which box-level crates leave to the caller, and every length in
//! the file must be checked before it sizes anything. So:
//! * a box's size is checked against its parent before it is used; the
//!   `moov` against the file and [`MAX_MOOV`];
//! * a table's entry count is checked against the bytes of its box before
//!   anything is allocated for it;
//! * the samples of all tracks together are capped at [`MAX_SAMPLES`], and
//!   every sample must lie inside the file;
//! * descent follows the fixed path moov/trak/mdia/minf/stbl/stsd, so
//!   nesting cannot recurse.
//!
//! Tracks: H.264, HEVC and AV1 video; AAC and MP3 audio. Others are
//! skipped with a log line. Edit lists are not applied (as nginx-rtmp).

use bytes::Bytes;
use tracing::info;

use super::index::{header_body, Codec, Index, Kind, Sample, Track};
use super::source::ReadAt;
use super::{bad, VodError, MAX_SAMPLES};
use crate::rtmp::Amf;

/// The largest `moov` read: 16 hours of samples need about 40 MiB.
pub const MAX_MOOV: u64 = 64 << 20;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The boxes inside `data`, as (type, body).
fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data }
}

struct Boxes<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<([u8; 4], &'a [u8]), VodError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.data.len() < 8 {
            return None;
        }
        let d = self.data;
        let size32 = be32(d, 0)? as u64;
        let kind: [u8; 4] = d[4..8].try_into().ok()?;
        let (head, size) = match size32 {
            0 => (8, d.len() as u64),
            1 => match be64(d, 8) {
                Some(s) => (16, s),
                None => return Some(bad("mp4: box too short for its 64-bit size")),
            },
            s => (8, s),
        };
        if size < head || size > d.len() as u64 {
            self.data = &[];
            return Some(bad(format!(
                "mp4: {} box of {size} bytes in {} bytes",
                String::from_utf8_lossy(&kind),
                d.len()
            )));
        }
        let body = &d[head as usize..size as usize];
        self.data = &d[size as usize..];
        Some(Ok((kind, body)))
    }
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, VodError> {
    for b in boxes(data) {
        let (k, body) = b?;
        if &k == kind {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// Finds the `moov` among the top-level boxes, reading 16 bytes per box.
fn find_moov(src: &(impl ReadAt + ?Sized)) -> Result<Vec<u8>, VodError> {
    let len = src.size();
    let mut off = 0u64;
    let mut h = [0u8; 16];
    while off + 8 <= len {
        let n = ((len - off).min(16)) as usize;
        src.read_exact_at(&mut h[..n], off)?;
        let size32 = be32(&h, 0).unwrap_or(0) as u64;
        let kind = &h[4..8];
        let (head, size) = match size32 {
            0 => (8, len - off),
            1 if n == 16 => (16, be64(&h, 8).unwrap_or(0)),
            1 => return bad("mp4: truncated box header"),
            s => (8, s),
        };
        if size < head {
            return bad(format!("mp4: box of {size} bytes at {off}"));
        }
        if size > len - off {
            if kind == b"moov" {
                return bad(format!(
                    "mp4: moov of {size} bytes at {off} beyond the end of the file ({len})"
                ));
            }
            break;
        }
        match kind {
            b"moov" => {
                let body = size - head;
                if body > MAX_MOOV {
                    return bad(format!("mp4: moov of {body} bytes (limit {MAX_MOOV})"));
                }
                let mut b = vec![0u8; body as usize];
                src.read_exact_at(&mut b, off + head)?;
                return Ok(b);
            }
            b"moof" => return bad("mp4: fragmented MP4 is not supported"),
            _ => {}
        }
        off += size;
    }
    bad("mp4: no moov box (not an MP4 file, or truncated)")
}

pub fn index(src: &(impl ReadAt + ?Sized)) -> Result<Index, VodError> {
    let moov = find_moov(src)?;
    let file_len = src.size();
    let mut ix = Index {
        format: "mp4",
        ..Default::default()
    };
    let mut meta = Meta::default();
    for b in boxes(&moov) {
        let (k, body) = b?;
        if &k != b"trak" {
            continue;
        }
        let id = ix.tracks.len();
        if id >= 16 {
            break;
        }
        match trak(body, file_len, id as u8, &mut ix.samples, &mut meta)? {
            Some((track, header)) => {
                if let Some(h) = header {
                    ix.headers.push((track.kind, h));
                }
                ix.tracks.push(track);
            }
            None => {
                // A track we cannot play keeps no id.
            }
        }
    }
    if ix.samples.is_empty() {
        return bad("mp4: no playable track");
    }
    ix.finish();
    ix.duration_ms = ix.duration_ms.max(meta.duration_ms);
    let num = |v: f64| Amf::Number(v);
    ix.meta = vec![
        Amf::str("onMetaData"),
        Amf::Object(vec![
            ("width".into(), num(meta.width as f64)),
            ("height".into(), num(meta.height as f64)),
            ("displayWidth".into(), num(meta.width as f64)),
            ("displayHeight".into(), num(meta.height as f64)),
            ("duration".into(), num(ix.duration_ms as f64 / 1000.0)),
            ("videocodecid".into(), num(meta.video_codec)),
            ("audiocodecid".into(), num(meta.audio_codec)),
            ("audiosamplerate".into(), num(meta.sample_rate as f64)),
        ]),
    ];
    Ok(ix)
}

#[derive(Default)]
struct Meta {
    width: u16,
    height: u16,
    duration_ms: u64,
    video_codec: f64,
    audio_codec: f64,
    sample_rate: u32,
}

fn fourcc_number(f: &[u8; 4]) -> f64 {
    u32::from_be_bytes(*f) as f64
}

/// One `trak`: its codec and header, and its samples appended to `out`.
/// `None` for a track that is neither playable audio nor video.
fn trak(
    body: &[u8],
    file_len: u64,
    id: u8,
    out: &mut Vec<Sample>,
    meta: &mut Meta,
) -> Result<Option<(Track, Option<Bytes>)>, VodError> {
    let Some(mdia) = child(body, b"mdia")? else {
        return Ok(None);
    };
    let Some(hdlr) = child(mdia, b"hdlr")? else {
        return Ok(None);
    };
    let kind = match hdlr.get(8..12) {
        Some(b"vide") => Kind::Video,
        Some(b"soun") => Kind::Audio,
        _ => return Ok(None),
    };
    let mdhd = child(mdia, b"mdhd")?.ok_or_else(|| fmt("mp4: track without mdhd"))?;
    let (timescale, duration) = match mdhd.first() {
        Some(1) => (be32(mdhd, 20), be64(mdhd, 24)),
        _ => (be32(mdhd, 12), be32(mdhd, 16).map(u64::from)),
    };
    let timescale = timescale
        .filter(|&t| t > 0)
        .ok_or_else(|| fmt("mp4: mdhd without timescale"))?;
    let ms = |t: u64| (t as u128 * 1000 / timescale as u128).min(u32::MAX as u128) as u64;
    let stbl = child(mdia, b"minf")?
        .map(|m| child(m, b"stbl"))
        .transpose()?
        .flatten()
        .ok_or_else(|| fmt("mp4: track without stbl"))?;
    let stsd = child(stbl, b"stsd")?.ok_or_else(|| fmt("mp4: track without stsd"))?;
    let Some((codec, header)) = sample_entry(stsd.get(8..).unwrap_or_default(), kind, meta)? else {
        return Ok(None);
    };
    meta.duration_ms = meta.duration_ms.max(duration.map_or(0, ms));

    // Sizes.
    let (sizes, count) = if let Some(stsz) = child(stbl, b"stsz")? {
        let fixed = be32(stsz, 4).ok_or_else(|| fmt("mp4: short stsz"))?;
        let count = be32(stsz, 8).ok_or_else(|| fmt("mp4: short stsz"))? as usize;
        if fixed == 0 && stsz.len().saturating_sub(12) / 4 < count {
            return bad(format!(
                "mp4: stsz claims {count} sizes in {} bytes",
                stsz.len()
            ));
        }
        (
            Sizes::Stsz {
                fixed,
                table: stsz.get(12..).unwrap_or_default(),
            },
            count,
        )
    } else if let Some(stz2) = child(stbl, b"stz2")? {
        let field = *stz2.get(7).ok_or_else(|| fmt("mp4: short stz2"))?;
        let count = be32(stz2, 8).ok_or_else(|| fmt("mp4: short stz2"))? as usize;
        if !matches!(field, 4 | 8 | 16) || (stz2.len() - 12) * 8 / (field as usize) < count {
            return bad("mp4: bad stz2");
        }
        (
            Sizes::Stz2 {
                field,
                table: &stz2[12..],
            },
            count,
        )
    } else {
        return bad("mp4: track without stsz");
    };
    if out.len() + count > MAX_SAMPLES {
        return bad(format!(
            "mp4: {} samples (limit {MAX_SAMPLES})",
            out.len() + count
        ));
    }
    if count == 0 {
        return Ok(None);
    }

    // Chunk offsets.
    let (co, wide) = match (child(stbl, b"stco")?, child(stbl, b"co64")?) {
        (Some(b), _) => (b, false),
        (None, Some(b)) => (b, true),
        _ => return bad("mp4: track without stco/co64"),
    };
    let chunks = be32(co, 4).ok_or_else(|| fmt("mp4: short stco"))? as usize;
    let width = if wide { 8 } else { 4 };
    if (co.len() - 8) / width < chunks {
        return bad(format!(
            "mp4: stco claims {chunks} chunks in {} bytes",
            co.len()
        ));
    }
    let chunk_offset = |c: usize| {
        if wide {
            be64(co, 8 + c * 8).unwrap_or(0)
        } else {
            be32(co, 8 + c * 4).unwrap_or(0) as u64
        }
    };
    let stsc = child(stbl, b"stsc")?.ok_or_else(|| fmt("mp4: track without stsc"))?;
    let runs = table(stsc, 12, "stsc")?;

    // Times.
    let stts = child(stbl, b"stts")?.ok_or_else(|| fmt("mp4: track without stts"))?;
    let stts_n = table(stts, 8, "stts")?;
    let ctts = child(stbl, b"ctts")?;
    let ctts_n = ctts.map(|c| table(c, 8, "ctts")).transpose()?.unwrap_or(0);
    let stss = child(stbl, b"stss")?;
    let stss_n = stss.map(|s| table(s, 4, "stss")).transpose()?;

    let first = out.len();
    out.reserve(count);
    let mut run = 0usize;
    let mut dts: u64 = 0;
    let (mut stts_i, mut stts_left, mut delta) = (0usize, 0u64, 0u64);
    let (mut ctts_i, mut ctts_left, mut offset) = (0usize, 0u64, 0i64);
    let mut next_sync = 0usize;
    let mut n = 0usize;
    let mut truncated = false;
    'chunks: for c in 0..chunks {
        // The run of stsc covering chunk c (1-based in the file).
        while run + 1 < runs && be32(stsc, 8 + (run + 1) * 12).unwrap_or(u32::MAX) as usize <= c + 1
        {
            run += 1;
        }
        let per_chunk = be32(stsc, 8 + run * 12 + 4).unwrap_or(0) as u64;
        let mut pos = chunk_offset(c);
        for _ in 0..per_chunk {
            if n == count {
                break 'chunks;
            }
            let size = sizes.get(n);
            if pos
                .checked_add(size as u64)
                .is_none_or(|end| end > file_len)
            {
                // A file cut short (an interrupted copy): play what is there.
                truncated = true;
                break 'chunks;
            }
            while stts_left == 0 && stts_i < stts_n {
                stts_left = be32(stts, 8 + stts_i * 8).unwrap_or(0) as u64;
                delta = be32(stts, 12 + stts_i * 8).unwrap_or(0) as u64;
                stts_i += 1;
            }
            stts_left = stts_left.saturating_sub(1);
            if let Some(ct) = ctts {
                while ctts_left == 0 && ctts_i < ctts_n {
                    ctts_left = be32(ct, 8 + ctts_i * 8).unwrap_or(0) as u64;
                    offset = be32(ct, 12 + ctts_i * 8).unwrap_or(0) as i32 as i64;
                    ctts_i += 1;
                }
                ctts_left = ctts_left.saturating_sub(1);
            }
            let key = match (stss, stss_n) {
                (Some(ss), Some(sn)) => {
                    while next_sync < sn
                        && (be32(ss, 8 + next_sync * 4).unwrap_or(0) as usize) < n + 1
                    {
                        next_sync += 1;
                    }
                    next_sync < sn && be32(ss, 8 + next_sync * 4).unwrap_or(0) as usize == n + 1
                }
                _ => true,
            };
            let ts = ms(dts);
            let pts = (dts as i64).saturating_add(offset).max(0) as u64;
            out.push(Sample {
                offset: pos,
                size,
                ts: ts as u32,
                cts: (ms(pts) as i64 - ts as i64) as i32,
                track: id,
                key: key || kind == Kind::Audio,
            });
            pos += size as u64;
            dts = dts.saturating_add(delta);
            n += 1;
        }
    }
    if truncated {
        tracing::warn!(
            track = id,
            samples = n,
            of = count,
            "mp4: file truncated, played up to its end"
        );
    } else if n < count {
        return bad(format!(
            "mp4: track {id}: chunks hold {n} of {count} samples"
        ));
    }
    if n == 0 {
        return Ok(None);
    }
    meta.duration_ms = meta
        .duration_ms
        .max(out[first..].last().map_or(0, |s| s.ts as u64));
    Ok(Some((Track { kind, codec }, header)))
}

fn fmt(msg: &str) -> VodError {
    VodError::Format(msg.into())
}

/// A full box's entry count, checked against the bytes present.
fn table(b: &[u8], entry: usize, name: &str) -> Result<usize, VodError> {
    let n = be32(b, 4).ok_or_else(|| fmt("mp4: short table"))? as usize;
    if b.len().saturating_sub(8) / entry < n {
        return bad(format!(
            "mp4: {name} claims {n} entries in {} bytes",
            b.len()
        ));
    }
    Ok(n)
}

enum Sizes<'a> {
    Stsz { fixed: u32, table: &'a [u8] },
    Stz2 { field: u8, table: &'a [u8] },
}

impl Sizes<'_> {
    fn get(&self, n: usize) -> u32 {
        match *self {
            Sizes::Stsz { fixed: 0, table } => be32(table, n * 4).unwrap_or(0),
            Sizes::Stsz { fixed, .. } => fixed,
            Sizes::Stz2 { field: 16, table } => be16(table, n * 2).unwrap_or(0) as u32,
            Sizes::Stz2 { field: 8, table } => table.get(n).copied().unwrap_or(0) as u32,
            Sizes::Stz2 { table, .. } => {
                let b = table.get(n / 2).copied().unwrap_or(0);
                (if n.is_multiple_of(2) { b >> 4 } else { b & 0xF }) as u32
            }
        }
    }
}

/// The first sample description: codec and decoder header.
fn sample_entry(
    entries: &[u8],
    kind: Kind,
    meta: &mut Meta,
) -> Result<Option<(Codec, Option<Bytes>)>, VodError> {
    let Some(first) = boxes(entries).next() else {
        return bad("mp4: empty stsd");
    };
    let (fourcc, e) = first?;
    let name = String::from_utf8_lossy(&fourcc).into_owned();
    match kind {
        Kind::Video => {
            // VisualSampleEntry: 78 bytes, then boxes.
            let Some(children) = e.get(78..) else {
                return bad("mp4: short video sample entry");
            };
            let (codec, cfg) = match &fourcc {
                b"avc1" | b"avc3" => (Codec::Avc, b"avcC"),
                b"hvc1" | b"hev1" => (Codec::Hevc, b"hvcC"),
                b"av01" => (Codec::Av1, b"av1C"),
                _ => {
                    info!(
                        codec = name,
                        "mp4: video track skipped (codec not supported)"
                    );
                    return Ok(None);
                }
            };
            let config = child(children, cfg)?
                .ok_or_else(|| fmt("mp4: video sample entry without its configuration"))?;
            meta.width = be16(e, 24).unwrap_or(0);
            meta.height = be16(e, 26).unwrap_or(0);
            meta.video_codec = match codec {
                Codec::Avc => 7.0,
                Codec::Hevc => fourcc_number(b"hvc1"),
                _ => fourcc_number(b"av01"),
            };
            Ok(Some((codec, header_body(codec, config))))
        }
        _ => {
            // AudioSampleEntry: 28 bytes (version 0), 44 (1) or 64 (2).
            let version = be16(e, 8).unwrap_or(0);
            let skip = match version {
                0 => 28,
                1 => 44,
                2 => 64,
                _ => return bad("mp4: unknown audio sample entry version"),
            };
            let rate = be32(e, 24).unwrap_or(0) >> 16;
            let children = e.get(skip..).unwrap_or_default();
            match &fourcc {
                b"mp4a" => {
                    let esds =
                        child(children, b"esds")?.ok_or_else(|| fmt("mp4: mp4a without esds"))?;
                    let (object_type, asc) = es_descriptor(esds.get(4..).unwrap_or_default())?;
                    meta.sample_rate = rate;
                    match object_type {
                        0x40 | 0x66 | 0x67 | 0x68 => {
                            meta.audio_codec = 10.0;
                            let asc =
                                asc.ok_or_else(|| fmt("mp4: AAC without AudioSpecificConfig"))?;
                            Ok(Some((Codec::Aac, header_body(Codec::Aac, asc))))
                        }
                        0x69 | 0x6B => {
                            meta.audio_codec = 2.0;
                            Ok(Some((Codec::Mp3, None)))
                        }
                        other => {
                            info!(
                                object_type = other,
                                "mp4: audio track skipped (codec not supported)"
                            );
                            Ok(None)
                        }
                    }
                }
                b".mp3" => {
                    meta.audio_codec = 2.0;
                    meta.sample_rate = rate;
                    Ok(Some((Codec::Mp3, None)))
                }
                _ => {
                    info!(
                        codec = name,
                        "mp4: audio track skipped (codec not supported)"
                    );
                    Ok(None)
                }
            }
        }
    }
}

/// An MPEG-4 descriptor's tag and body.
fn descriptor(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let c = *b.get(i)?;
        len = len << 7 | (c & 0x7F) as usize;
        i += 1;
        if c & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let body = b.get(i..i.checked_add(len)?)?;
    Some((tag, body, &b[i + len..]))
}

/// The object type and DecoderSpecificInfo of an ES_Descriptor.
fn es_descriptor(b: &[u8]) -> Result<(u8, Option<&[u8]>), VodError> {
    let err = || fmt("mp4: bad esds");
    let (tag, es, _) = descriptor(b).ok_or_else(err)?;
    if tag != 3 || es.len() < 3 {
        return Err(err());
    }
    let flags = es[2];
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + *es.get(at).ok_or_else(err)? as usize;
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, dc, _) = descriptor(es.get(at..).ok_or_else(err)?).ok_or_else(err)?;
    if tag != 4 || dc.len() < 13 {
        return Err(err());
    }
    let asc = descriptor(&dc[13..]).and_then(|(t, d, _)| (t == 5).then_some(d));
    Ok((dc[0], asc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bombs_are_refused_before_allocating() {
        // A moov claiming 4 GiB in a 24-byte file.
        let mut f = Vec::new();
        f.extend_from_slice(&[0, 0, 0, 16]);
        f.extend_from_slice(b"ftypisom\0\0\0\0");
        f.extend_from_slice(&u32::MAX.to_be_bytes());
        f.extend_from_slice(b"moov");
        assert!(index(&f[..])
            .unwrap_err()
            .to_string()
            .contains("beyond the end"));
        // A 64-bit size smaller than its header.
        let mut g = Vec::new();
        g.extend_from_slice(&[0, 0, 0, 1]);
        g.extend_from_slice(b"moov");
        g.extend_from_slice(&4u64.to_be_bytes());
        assert!(index(&g[..]).is_err());
        assert!(index(&b""[..]).is_err());
    }

    #[test]
    fn descriptors() {
        // ES_Descriptor > DecoderConfigDescriptor (AAC) > DecSpecificInfo.
        let dsi = [5u8, 2, 0x12, 0x10];
        let mut dc = vec![4u8, 13 + dsi.len() as u8, 0x40, 0x15];
        dc.extend_from_slice(&[0; 11]);
        dc.extend_from_slice(&dsi);
        let mut es = vec![3u8, (3 + dc.len()) as u8, 0, 1, 0];
        es.extend_from_slice(&dc);
        let (ot, asc) = es_descriptor(&es).unwrap();
        assert_eq!(ot, 0x40);
        assert_eq!(asc, Some(&[0x12, 0x10][..]));
        assert!(es_descriptor(&es[..6]).is_err());
    }
}
