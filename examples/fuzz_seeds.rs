//! Turns captured client-to-server RTMP byte streams into seed corpora for
//! the fuzz targets (see docs/fuzzing.md and fuzz/tools/seeds.sh).
//!
//! usage: fuzz_seeds CORPUS_DIR CAPTURE...

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use sluice::rtmp::chunk::DecoderLimits;
use sluice::rtmp::{Message, Session};

/// C0 + C1 + C2.
const HANDSHAKE: usize = 1 + 1536 + 1536;
/// Chunk seeds stay small so that the fuzzer mutates headers, not payload.
const CHUNK_SEED: usize = 16 << 10;

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(format!("seed-{name}")), data)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage"))?);
    write(
        &dir,
        "config",
        "embedded.conf",
        sluice::config::EMBEDDED_DEFAULT.as_bytes(),
    )?;
    for path in args {
        let bytes = std::fs::read(&path)?;
        let stem = Path::new(&path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if bytes.len() <= HANDSHAKE {
            continue;
        }
        // Handshake: the reads were 64-byte steps (first byte picks them).
        let mut hs = vec![0u8];
        hs.extend_from_slice(&bytes[..HANDSHAKE + 64]);
        write(&dir, "handshake", &stem, &hs)?;

        let stream = &bytes[HANDSHAKE..];
        let mut chunk = vec![255u8];
        chunk.extend_from_slice(&stream[..stream.len().min(CHUNK_SEED)]);
        write(&dir, "chunk", &stem, &chunk)?;

        // Every command and data message body, for the AMF0 and command
        // targets.
        let mut session = Session::new(DecoderLimits::default());
        let mut input = BytesMut::from(stream);
        let mut n = 0;
        while let Ok(Some(msg)) = session.next_message(&mut input) {
            let (kind, body) = match msg {
                Message::Command { command, .. } => (0u8, command.encode()),
                Message::Data { payload, .. } => (2u8, payload),
                _ => continue,
            };
            write(&dir, "amf0", &format!("{stem}-{n}"), &body)?;
            let mut cmd = vec![kind];
            cmd.extend_from_slice(&body);
            write(&dir, "command", &format!("{stem}-{n}"), &cmd)?;
            n += 1;
        }
        println!("{path}: {n} command/data messages");
    }
    Ok(())
}
