//! A current ffmpeg (9.x, from the PyPI package `imageio-ffmpeg`, which
//! `scripts/test.sh` installs) for Enhanced RTMP: Debian's ffmpeg 5.1
//! cannot send or read HEVC, AV1, VP9 or multitrack FLV. It ships no
//! ffprobe, so streams are read from `ffmpeg -i` itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The binary: `$FFMPEG9`, else the one imageio-ffmpeg ships.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("FFMPEG9") {
            return PathBuf::from(p);
        }
        let o = Command::new("python3")
            .args([
                "-c",
                "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
            ])
            .output()
            .expect("python3 runs");
        assert!(
            o.status.success(),
            "imageio-ffmpeg is not installed (scripts/test.sh installs it): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    })
}

/// Runs ffmpeg 9 to make `name` in `dir` (`args` between the banner
/// options and the output).
pub fn make(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let o = Command::new(bin())
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffmpeg 9 could not make {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// An Enhanced RTMP multitrack FLV made by ffmpeg 9, `secs` long, H.264
/// (1 s GOPs) and AAC: one 320x240 video track, or with `renditions` a
/// second one at 160x120 (a ladder, as OBS Enhanced Broadcasting sends),
/// and a 44.1 kHz audio track, or with `second_audio` a 48 kHz one too.
pub fn multitrack(
    dir: &Path,
    name: &str,
    secs: u32,
    renditions: bool,
    second_audio: bool,
) -> PathBuf {
    let secs = secs.to_string();
    let mut args = vec!["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"];
    args.extend(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
    if second_audio {
        args.extend(["-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000"]);
    }
    if renditions {
        args.extend(["-filter_complex", "[0:v]split[a][b];[b]scale=160:120[c]"]);
        args.extend(["-map", "[a]", "-map", "[c]"]);
    } else {
        args.extend(["-map", "0:v"]);
    }
    args.extend(["-map", "1:a"]);
    if second_audio {
        args.extend(["-map", "2:a"]);
    }
    args.extend([
        "-t",
        &secs,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
    ]);
    args.extend(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv"]);
    make(dir, name, &args)
}

/// ffmpeg 9 publishing every stream of `src` at its pace.
pub fn publish(src: &Path, url: &str) -> Child {
    publish_with(src, url, &[])
}

/// The same with output options (`-rtmp_enhanced_codecs`...).
pub fn publish_with(src: &Path, url: &str, extra: &[&str]) -> Child {
    Command::new(bin())
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-i",
        ])
        .arg(src)
        .args(["-map", "0", "-c", "copy"])
        .args(extra)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// ffmpeg 9 playing every stream of `url` into the FLV `out`. RTMP players
/// do not stop when the publisher does: a read timeout of 3 s ends it.
pub fn play(url: &str, out: &Path) -> Child {
    let mut c = Command::new(bin());
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin"]);
    if url.starts_with("rtmp") {
        c.args(["-rw_timeout", "3000000"]);
    }
    c.args(["-i", url, "-map", "0", "-c", "copy", "-f", "flv", "-y"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One stream of a file, as ffmpeg 9 reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// "video" or "audio".
    pub kind: String,
    /// ffmpeg's codec name: h264, hevc, av1, vp9, aac...
    pub codec: String,
    pub width: u32,
    pub sample_rate: u32,
    pub packets: u64,
}

/// The streams of `path` (a file or URL) in order, with their packet
/// counts.
pub fn probe(path: &Path) -> Vec<StreamInfo> {
    let o = Command::new(bin())
        .args(["-hide_banner", "-nostdin", "-v", "verbose", "-i"])
        .arg(path)
        .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stderr);
    let mut streams = Vec::new();
    for line in text.lines() {
        if line.contains("Stream mapping") {
            break;
        }
        let Some(rest) = line.trim().strip_prefix("Stream #0:") else {
            continue;
        };
        let (kind, desc) = if let Some(d) = rest.split_once(": Video: ") {
            ("video", d.1)
        } else if let Some(d) = rest.split_once(": Audio: ") {
            ("audio", d.1)
        } else {
            continue;
        };
        let codec = desc.split([' ', ',']).next().unwrap_or_default().to_owned();
        let width = desc
            .split([' ', ','])
            .find_map(|w| {
                w.split_once('x')
                    .and_then(|(a, b)| b.parse::<u32>().ok().and(a.parse().ok()))
            })
            .unwrap_or(0);
        let sample_rate = desc
            .split(", ")
            .find_map(|w| w.strip_suffix(" Hz").and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        streams.push(StreamInfo {
            kind: kind.to_owned(),
            codec,
            width,
            sample_rate,
            packets: 0,
        });
    }
    for line in text.lines() {
        // "Input stream #0:1 (video): 150 packets read (42162 bytes);"
        let Some(rest) = line.split("Input stream #0:").nth(1) else {
            continue;
        };
        let idx: usize = rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        let n = rest
            .split("): ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok());
        if let (Some(s), Some(n)) = (streams.get_mut(idx), n) {
            s.packets = n;
        }
    }
    streams
}

/// What ffmpeg 9 reports while decoding every stream of `path`: empty
/// when it decodes cleanly.
pub fn decode_errors(path: &Path) -> String {
    let o = Command::new(bin())
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .unwrap();
    let mut e = String::from_utf8_lossy(&o.stderr).into_owned();
    if !o.status.success() {
        e.push_str(&format!(" (exit {})", o.status));
    }
    e
}
