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

criterion_group!(benches, chunk, amf0);
criterion_main!(benches);
