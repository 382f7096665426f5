//! Fragmented MP4 (ISO BMFF) writing, without I/O: an initialization
//! segment (`ftyp` + `moov` with `mvex`) per track set, and media segments
//! (`styp` + `moof` + `mdat`) of samples with their decode times, durations,
//! composition offsets and sync flags. DASH uses it; CMAF HLS can.
//!
//! Written here rather than with a box crate: the decoder configurations
//! go in verbatim (`avcC`, `hvcC` and `av1C` are the bodies of the FLV
//! sequence headers; `esds` wraps the AAC AudioSpecificConfig), so nothing
//! a publisher sent is parsed and re-encoded on the way, and a segment is
//! one pass over its samples with a single patch of the data offset.

use bytes::Bytes;

/// A track's codec and its configuration record, as the publisher sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// AVCDecoderConfigurationRecord.
    Avc(Bytes),
    /// HEVCDecoderConfigurationRecord.
    Hevc(Bytes),
    /// AV1CodecConfigurationRecord.
    Av1(Bytes),
    /// AAC AudioSpecificConfig.
    Aac(Bytes),
}

impl Codec {
    pub fn is_video(&self) -> bool {
        !matches!(self, Codec::Aac(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    pub codec: Codec,
    /// Ticks per second of the track's times (1000: RTMP milliseconds).
    pub timescale: u32,
    pub width: u16,
    pub height: u16,
    pub sample_rate: u32,
    pub channels: u16,
}

/// One sample of a media segment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub data: Bytes,
    pub duration: u32,
    /// Composition offset (presentation minus decode time).
    pub cts: i32,
    /// A sync sample (a keyframe; every audio frame).
    pub key: bool,
}

/// Appends box `kind`, with what `body` writes into it.
fn bx(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: version and 24-bit flags first.
fn full(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    bx(out, kind, |o| {
        o.push(version);
        o.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(o);
    });
}

fn u16b(o: &mut Vec<u8>, v: u16) {
    o.extend_from_slice(&v.to_be_bytes());
}

fn u32b(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_be_bytes());
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// `ftyp` + `moov` for `tracks`.
pub fn init_segment(tracks: &[Track]) -> Vec<u8> {
    let mut o = Vec::with_capacity(1024);
    bx(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32b(o, 0);
        for b in [b"iso6", b"mp41", b"dash", b"cmfc"] {
            o.extend_from_slice(b);
        }
    });
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32b(o, 0); // creation
            u32b(o, 0); // modification
            u32b(o, 1000);
            u32b(o, 0); // duration: fragmented
            u32b(o, 0x0001_0000); // rate
            u16b(o, 0x0100); // volume
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| u32b(o, *m));
            o.extend_from_slice(&[0; 24]);
            u32b(o, tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        for t in tracks {
            trak(o, t);
        }
        bx(o, b"mvex", |o| {
            for t in tracks {
                full(o, b"trex", 0, 0, |o| {
                    u32b(o, t.id);
                    u32b(o, 1); // sample description
                    u32b(o, 0);
                    u32b(o, 0);
                    u32b(o, 0);
                });
            }
        });
    });
    o
}

fn trak(o: &mut Vec<u8>, t: &Track) {
    let video = t.codec.is_video();
    bx(o, b"trak", |o| {
        full(o, b"tkhd", 0, 3, |o| {
            u32b(o, 0);
            u32b(o, 0);
            u32b(o, t.id);
            u32b(o, 0);
            u32b(o, 0); // duration
            o.extend_from_slice(&[0; 8]);
            u16b(o, 0); // layer
            u16b(o, 0); // alternate group
            u16b(o, if video { 0 } else { 0x0100 });
            u16b(o, 0);
            MATRIX.iter().for_each(|m| u32b(o, *m));
            u32b(o, (t.width as u32) << 16);
            u32b(o, (t.height as u32) << 16);
        });
        bx(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                u32b(o, 0);
                u32b(o, 0);
                u32b(o, t.timescale);
                u32b(o, 0);
                u16b(o, 0x55c4); // "und"
                u16b(o, 0);
            });
            full(o, b"hdlr", 0, 0, |o| {
                u32b(o, 0);
                o.extend_from_slice(if video { b"vide" } else { b"soun" });
                o.extend_from_slice(&[0; 12]);
                o.extend_from_slice(if video {
                    b"VideoHandler\0".as_slice()
                } else {
                    b"SoundHandler\0".as_slice()
                });
            });
            bx(o, b"minf", |o| {
                if video {
                    full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                } else {
                    full(o, b"smhd", 0, 0, |o| o.extend_from_slice(&[0; 4]));
                }
                bx(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        u32b(o, 1);
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                bx(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        u32b(o, 1);
                        sample_entry(o, t);
                    });
                    full(o, b"stts", 0, 0, |o| u32b(o, 0));
                    full(o, b"stsc", 0, 0, |o| u32b(o, 0));
                    full(o, b"stsz", 0, 0, |o| {
                        u32b(o, 0);
                        u32b(o, 0);
                    });
                    full(o, b"stco", 0, 0, |o| u32b(o, 0));
                });
            });
        });
    });
}

fn sample_entry(o: &mut Vec<u8>, t: &Track) {
    let (kind, config, record): (&[u8; 4], &[u8; 4], &Bytes) = match &t.codec {
        Codec::Avc(r) => (b"avc1", b"avcC", r),
        Codec::Hevc(r) => (b"hvc1", b"hvcC", r),
        Codec::Av1(r) => (b"av01", b"av1C", r),
        Codec::Aac(asc) => {
            bx(o, b"mp4a", |o| {
                o.extend_from_slice(&[0; 6]);
                u16b(o, 1); // data reference
                o.extend_from_slice(&[0; 8]);
                u16b(o, t.channels.max(1));
                u16b(o, 16);
                u16b(o, 0);
                u16b(o, 0);
                u32b(o, t.sample_rate.min(0xffff) << 16);
                esds(o, asc);
            });
            return;
        }
    };
    bx(o, kind, |o| {
        o.extend_from_slice(&[0; 6]);
        u16b(o, 1);
        o.extend_from_slice(&[0; 16]);
        u16b(o, t.width);
        u16b(o, t.height);
        u32b(o, 0x0048_0000);
        u32b(o, 0x0048_0000);
        u32b(o, 0);
        u16b(o, 1); // frame count
        o.extend_from_slice(&[0; 32]); // compressor name
        u16b(o, 0x0018);
        u16b(o, 0xffff);
        bx(o, config, |o| o.extend_from_slice(record));
    });
}

/// An MPEG-4 descriptor: tag, length (four bytes when it does not fit
/// one), body.
fn descriptor(o: &mut Vec<u8>, tag: u8, body: &[u8]) {
    o.push(tag);
    let n = body.len() as u32;
    if n < 0x80 {
        o.push(n as u8);
    } else {
        o.extend_from_slice(&[
            0x80 | ((n >> 21) & 0x7f) as u8,
            0x80 | ((n >> 14) & 0x7f) as u8,
            0x80 | ((n >> 7) & 0x7f) as u8,
            (n & 0x7f) as u8,
        ]);
    }
    o.extend_from_slice(body);
}

fn esds(o: &mut Vec<u8>, asc: &[u8]) {
    full(o, b"esds", 0, 0, |o| {
        let mut dec_specific = Vec::new();
        descriptor(&mut dec_specific, 0x05, asc);
        let mut dec_config = vec![0x40, 0x15, 0, 0, 0];
        dec_config.extend_from_slice(&[0; 8]); // max and average bitrate
        dec_config.extend_from_slice(&dec_specific);
        let mut es = vec![0, 1, 0]; // ES_ID 1, no flags
        descriptor(&mut es, 0x04, &dec_config);
        descriptor(&mut es, 0x06, &[0x02]);
        descriptor(o, 0x03, &es);
    });
}

/// Sample flags: a sync sample depends on nothing; others depend on
/// earlier samples and are not sync samples.
fn sample_flags(key: bool) -> u32 {
    if key {
        0x0200_0000
    } else {
        0x0101_0000
    }
}

/// `styp` + `moof` + `mdat` of `samples` of `track`, the first decoded at
/// `base` (in the track's timescale); `seq` numbers the fragment.
pub fn media_segment(seq: u32, track: &Track, base: u64, samples: &[Sample]) -> Vec<u8> {
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut o = Vec::with_capacity(payload + 128 + samples.len() * 16);
    bx(&mut o, b"styp", |o| {
        o.extend_from_slice(b"msdh");
        u32b(o, 0);
        o.extend_from_slice(b"msdh");
        o.extend_from_slice(b"msix");
    });
    let moof_start = o.len();
    let mut offset_at = 0;
    bx(&mut o, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32b(o, seq));
        bx(o, b"traf", |o| {
            // default-base-is-moof
            full(o, b"tfhd", 0, 0x02_0000, |o| u32b(o, track.id));
            full(o, b"tfdt", 1, 0, |o| {
                o.extend_from_slice(&base.to_be_bytes())
            });
            // data offset, and per sample: duration, size, flags, signed
            // composition offset (version 1)
            full(
                o,
                b"trun",
                1,
                0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800,
                |o| {
                    u32b(o, samples.len() as u32);
                    offset_at = o.len();
                    u32b(o, 0);
                    for s in samples {
                        u32b(o, s.duration);
                        u32b(o, s.data.len() as u32);
                        u32b(o, sample_flags(s.key));
                        o.extend_from_slice(&s.cts.to_be_bytes());
                    }
                },
            );
        });
    });
    // Sample data starts after the moof and the mdat header.
    let data_offset = (o.len() - moof_start + 8) as u32;
    o[offset_at..offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    bx(&mut o, b"mdat", |o| {
        for s in samples {
            o.extend_from_slice(&s.data);
        }
    });
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks boxes: (kind, body) pairs of `data` at one level.
    fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
        let mut out = Vec::new();
        let mut p = 0;
        while p + 8 <= data.len() {
            let size = u32::from_be_bytes(data[p..p + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = data[p + 4..p + 8].try_into().unwrap();
            assert!(
                size >= 8 && p + size <= data.len(),
                "box {kind:?} size {size}"
            );
            out.push((kind, &data[p + 8..p + size]));
            p += size;
        }
        assert_eq!(p, data.len(), "boxes fill the buffer exactly");
        out
    }

    fn avc() -> Track {
        Track {
            id: 1,
            codec: Codec::Avc(Bytes::from_static(&[
                1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 3,
            ])),
            timescale: 1000,
            width: 320,
            height: 240,
            sample_rate: 0,
            channels: 0,
        }
    }

    #[test]
    fn the_init_segment_nests_as_iso_bmff_says() {
        let aac = Track {
            id: 2,
            codec: Codec::Aac(Bytes::from_static(&[0x12, 0x10])),
            timescale: 44100,
            width: 0,
            height: 0,
            sample_rate: 44100,
            channels: 2,
        };
        let init = init_segment(&[avc(), aac]);
        let top = boxes(&init);
        let kinds: Vec<&[u8; 4]> = top.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"ftyp", b"moov"]);
        let moov = boxes(top[1].1);
        let kinds: Vec<&[u8; 4]> = moov.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"mvhd", b"trak", b"trak", b"mvex"]);
        // The avcC is the publisher's record, verbatim.
        let needle = [b"avcC".as_slice(), &[1, 0x64, 0, 0x1f]].concat();
        assert!(init.windows(needle.len()).any(|w| w == needle));
        // The esds carries the AudioSpecificConfig in a descriptor 5.
        assert!(init.windows(4).any(|w| w == [0x05, 0x02, 0x12, 0x10]));
    }

    #[test]
    fn a_media_segment_points_at_its_samples() {
        let samples = vec![
            Sample {
                data: Bytes::from_static(b"key!"),
                duration: 40,
                cts: 80,
                key: true,
            },
            Sample {
                data: Bytes::from_static(b"b"),
                duration: 40,
                cts: -40,
                key: false,
            },
        ];
        let seg = media_segment(7, &avc(), 123_456, &samples);
        let top = boxes(&seg);
        let kinds: Vec<&[u8; 4]> = top.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"styp", b"moof", b"mdat"]);
        assert_eq!(top[2].1, b"key!b");
        let moof = boxes(top[1].1);
        assert_eq!(&moof[0].1[4..], &7u32.to_be_bytes());
        let traf = boxes(moof[1].1);
        let kinds: Vec<&[u8; 4]> = traf.iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [b"tfhd", b"tfdt", b"trun"]);
        assert_eq!(&traf[1].1[4..], &123_456u64.to_be_bytes());
        let trun = traf[2].1;
        assert_eq!(trun[0], 1, "version 1: signed offsets");
        let offset = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        // The offset is from the moof's first byte to the first sample.
        let moof_at = top[0].1.len() + 8;
        assert_eq!(&seg[moof_at + offset..moof_at + offset + 4], b"key!");
        let second_cts = i32::from_be_bytes(trun[12 + 16 + 12..12 + 16 + 16].try_into().unwrap());
        assert_eq!(second_cts, -40);
    }
}
