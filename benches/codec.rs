//! Microbenchmarks of the protocol core, so a regression in the codec
//! shows as a number: `cargo bench --bench codec`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice::client::skim::Skimmer;
use sluice::rtmp::amf::{self, Amf};
use sluice::rtmp::chunk::{encode_message, ChunkDecoder, DecoderLimits};

/// A 4 Mbps / 30 fps video frame's worth of payload.
const FRAME: usize = 16 * 1024;

fn wire(messages: usize, chunk: usize) -> BytesMut {
    let payload = vec![0x27u8; FRAME];
    let mut out = BytesMut::new();
    for i in 0..messages {
        encode_message(7, i as u32 * 33, 9, 1, &payload, chunk, &mut out);
    }
    out
}

fn chunk(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(FRAME as u64));
    let payload = vec![0x27u8; FRAME];
    let mut out = BytesMut::with_capacity(2 * FRAME);
    g.bench_function("encode 16 KiB at chunk 4096", |b| {
        b.iter(|| {
            out.clear();
            encode_message(7, 1234, 9, 1, black_box(&payload), 4096, &mut out);
            black_box(out.len())
        })
    });
    g.throughput(Throughput::Bytes((64 * FRAME) as u64));
    for size in [128usize, 4096, 65536] {
        let input = wire(64, size);
        g.bench_function(format!("decode 64 x 16 KiB at chunk {size}"), |b| {
            b.iter_batched(
                || (input.clone(), ChunkDecoder::new(DecoderLimits::default())),
                |(mut input, mut dec)| {
                    if size != 128 {
                        dec.set_chunk_size(size as u32).unwrap();
                    }
                    let mut n = 0;
                    while let Some(m) = dec.decode(&mut input).unwrap() {
                        n += m.payload.len();
                    }
                    n
                },
                BatchSize::SmallInput,
            )
        });
    }
    let input = wire(64, 4096);
    g.bench_function("skim 64 x 16 KiB at chunk 4096 (bench player)", |b| {
        b.iter(|| {
            let mut sk = Skimmer::new(4096);
            let mut n = 0;
            sk.feed(black_box(&input), |_| n += 1).unwrap();
            n
        })
    });
    g.finish();
}

fn connect_object() -> Vec<Amf> {
    vec![
        Amf::str("connect"),
        Amf::Number(1.0),
        Amf::Object(vec![
            ("app".into(), Amf::str("live")),
            ("type".into(), Amf::str("nonprivate")),
            (
                "flashVer".into(),
                Amf::str("FMLE/3.0 (compatible; FMSc/1.0)"),
            ),
            ("swfUrl".into(), Amf::str("rtmp://127.0.0.1/live")),
            ("tcUrl".into(), Amf::str("rtmp://127.0.0.1/live")),
            ("fpad".into(), Amf::Boolean(false)),
            ("capabilities".into(), Amf::Number(239.0)),
            ("audioCodecs".into(), Amf::Number(3575.0)),
            ("videoCodecs".into(), Amf::Number(252.0)),
            ("videoFunction".into(), Amf::Number(1.0)),
            ("supportsGoAway".into(), Amf::Boolean(true)),
            ("capsEx".into(), Amf::Number(1.0)),
        ]),
    ]
}

fn amf0(c: &mut Criterion) {
    let mut g = c.benchmark_group("amf0");
    let values = connect_object();
    let encoded = amf::encode_all(&values);
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.bench_function("encode connect command", |b| {
        b.iter(|| amf::encode_all(black_box(&values)))
    });
    g.bench_function("decode connect command", |b| {
        b.iter(|| amf::decode_all(black_box(&encoded)).unwrap())
    });
    g.finish();
}

/// Per-frame classification on the publish path: what every media message
/// pays to learn its keyframe flag and track, legacy and Enhanced RTMP
/// (ffmpeg 9's OneTrack layout and a two-track ManyTracks message).
fn classify(c: &mut Criterion) {
    let mut g = c.benchmark_group("flv");
    let legacy = [0x27u8, 1, 0, 0, 40, 0x41, 0x9a];
    let hevc = [0x91u8, b'h', b'v', b'c', b'1', 0, 0, 40, 0x02, 0x01];
    let one_track = [0xa6u8, 0x01, b'a', b'v', b'c', b'1', 1, 0, 0, 40, 0x41];
    let many = [
        0x96u8, 0x11, b'a', b'v', b'0', b'1', 0, 0, 0, 2, 7, 8, 1, 0, 0, 1, 9,
    ];
    for (name, p) in [
        ("video_info legacy AVC", &legacy[..]),
        ("video_info enhanced hvc1", &hevc[..]),
        (
            "video_info OneTrack avc1 (ffmpeg 9 track 1)",
            &one_track[..],
        ),
        ("video_info ManyTracks, 2 tracks", &many[..]),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| sluice::flv::video_info(black_box(p)).unwrap())
        });
    }
    g.bench_function("composition_offset legacy AVC", |b| {
        b.iter(|| sluice::flv::composition_offset(black_box(&legacy)))
    });
    g.finish();
}

criterion_group!(benches, chunk, amf0, classify);
criterion_main!(benches);
