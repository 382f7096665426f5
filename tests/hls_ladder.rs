//! HLS and DASH as nginx-rtmp users configure them, side by side with
//! Debian's nginx + libnginx-mod-rtmp on one nginx.conf: an `hls_variant`
//! ladder of three renditions, `hls_keys` with rotation, `hls_continuous`
//! across a republish, and `dash`. The same files are published to both;
//! the playlists must be the same text, the DASH files the same names and
//! the MPD the same text but for its wall-clock times. Then the players: the master parses with m3u8-rs and
//! ffprobe reads it, hls.js in Chromium plays it and switches levels when
//! told to, and ffmpeg decrypts and decodes the keyed playlist over HTTP.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

const LADDER: [(&str, &str, &str); 3] = [
    ("_low", "256x144", "200000"),
    ("_mid", "320x180", "400000"),
    ("_hi", "480x270", "800000"),
];

fn conf(port: u16, http: u16, dir: &Path, page: &Path) -> String {
    let d = dir.display();
    let variants: String = LADDER
        .iter()
        .map(|(s, r, b)| {
            format!(
                "hls_variant {s} BANDWIDTH={b} RESOLUTION={r} CODECS=\"avc1.64000c,mp4a.40.2\";\n"
            )
        })
        .collect();
    format!(
        "load_module {NGINX_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            hls on;
            hls_path {d}/hls;
            hls_fragment 1s;
            hls_playlist_length 4s;
            {variants}
        }}
        application enc {{
            live on;
            hls on;
            hls_path {d}/enc;
            hls_fragment 1s;
            hls_playlist_length 20s;
            hls_keys on;
            hls_key_path {d}/keys;
            hls_key_url http://127.0.0.1:{http}/keys/;
            hls_fragments_per_key 2;
        }}
        application dash {{
            live on;
            dash on;
            dash_path {d}/dash;
            dash_fragment 2s;
            dash_playlist_length 10s;
        }}
    }}
}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{http};
        location /hls {{ root {d}; }}
        location /enc {{ root {d}; }}
        location /keys {{ root {d}; }}
        location /page {{ alias {p}; }}
    }}
}}
",
        p = page.display()
    )
}

/// An H.264 + AAC rendition of `secs` seconds, one keyframe a second.
fn rendition(dir: &Path, name: &str, size: &str, secs: u32) -> PathBuf {
    let out = dir.join(format!("{name}.flv"));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &format!("testsrc=size={size}:rate=25")])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    out
}

fn publish(src: &Path, url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(src)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs tests/browser/levels.mjs on `page`.
fn switch_levels(page: &str) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new("node")
        .arg(dir.join("levels.mjs"))
        .arg(page)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("levels.mjs: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn ladder_keys_and_continuity_match_nginx_rtmp_and_play() {
    assert!(
        Path::new(NGINX_MODULE).exists(),
        "Debian's libnginx-mod-rtmp is needed (scripts/test.sh installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let page = tmp.path().join("page");
    std::fs::create_dir_all(&page).unwrap();
    let bdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    for (from, to) in [
        ("index.html", "index.html"),
        ("node_modules/hls.js/dist/hls.min.js", "hls.min.js"),
        ("node_modules/mpegts.js/dist/mpegts.js", "mpegts.js"),
    ] {
        std::fs::copy(bdir.join(from), page.join(to)).unwrap();
    }
    let files: Vec<PathBuf> = LADDER
        .iter()
        .map(|(s, r, _)| rendition(&media, s, r, 16))
        .collect();
    let again = rendition(&media, "again", "256x144", 3);

    // Both servers, each on its own ports and directory, same text.
    let ndir = tmp.path().join("nginx");
    let sdir = tmp.path().join("sluice");
    let (nport, nhttp, sport, shttp) = (free_port(), free_port(), free_port(), free_port());
    for (d, p, h) in [(&ndir, nport, nhttp), (&sdir, sport, shttp)] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("nginx.conf"), conf(p, h, d, &page)).unwrap();
    }
    let _nginx = Nginx(
        Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(&ndir)
            .arg("-c")
            .arg(ndir.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sluice = Server::with_config(&read(&sdir.join("nginx.conf")), sport);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", nport)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut pubs = Vec::new();
    for port in [nport, sport] {
        for (f, (s, _, _)) in files.iter().zip(LADDER) {
            pubs.push(publish(f, &format!("rtmp://127.0.0.1:{port}/live/cam{s}")));
        }
        pubs.push(publish(
            &files[0],
            &format!("rtmp://127.0.0.1:{port}/enc/cam"),
        ));
        pubs.push(publish(
            &files[0],
            &format!("rtmp://127.0.0.1:{port}/dash/cam"),
        ));
    }

    // While it is live: the master playlist and the players.
    std::thread::sleep(Duration::from_secs(4));
    let master = std::fs::read(sdir.join("hls/cam.m3u8")).unwrap();
    let m = m3u8_rs::parse_master_playlist_res(&master).expect("a master playlist");
    assert_eq!(m.variants.len(), 3);
    for (v, (s, r, b)) in m.variants.iter().zip(LADDER) {
        assert_eq!(v.uri, format!("cam{s}.m3u8"));
        assert_eq!(v.bandwidth.to_string(), b);
        assert_eq!(
            v.resolution
                .map(|r| format!("{}x{}", r.width, r.height))
                .as_deref(),
            Some(r)
        );
        assert_eq!(v.codecs.as_deref(), Some("avc1.64000c,mp4a.40.2"));
    }
    let url = format!("http://127.0.0.1:{shttp}/hls/cam.m3u8");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width",
            "-of",
            "csv=p=0",
        ])
        .arg(&url)
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&probe.stdout).into_owned();
    for w in ["256", "320", "480"] {
        assert!(
            streams.contains(&format!("h264,{w}")),
            "ffprobe of the master: {streams}"
        );
    }
    let levels = switch_levels(&format!(
        "http://127.0.0.1:{shttp}/page/index.html?kind=hls&src={url}"
    ));
    assert_eq!(levels["ok"], true, "hls.js level switching: {levels}");
    assert_eq!(
        levels["levels"].as_array().map(Vec::len),
        Some(3),
        "{levels}"
    );
    eprintln!("hls.js: {levels}");

    for p in pubs {
        let out = wait_for(p, Duration::from_secs(40));
        assert!(
            out.status.success(),
            "{}\nnginx-rtmp (port {nport}): {}\nsluice (port {sport}): {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(ndir.join("nginx-error.log")).unwrap_or_default(),
            sluice.log()
        );
    }
    // hls_continuous: a second publish of one rendition, to both.
    for port in [nport, sport] {
        let out = wait_for(
            publish(&again, &format!("rtmp://127.0.0.1:{port}/live/cam_low")),
            Duration::from_secs(20),
        );
        assert!(out.status.success());
    }
    std::thread::sleep(Duration::from_millis(500));

    // The same text as nginx-rtmp's.
    for f in ["hls/cam.m3u8", "hls/cam_low.m3u8", "hls/cam_hi.m3u8"] {
        assert_eq!(
            read(&sdir.join(f)),
            read(&ndir.join(f)),
            "{f} differs from nginx-rtmp's"
        );
    }
    let low = read(&sdir.join("hls/cam_low.m3u8"));
    let pl = m3u8_rs::parse_media_playlist_res(low.as_bytes()).unwrap();
    assert!(pl.media_sequence > 0, "the numbering went on: {low}");
    assert!(pl.segments.iter().skip(1).any(|s| s.discontinuity), "{low}");
    let enc = read(&sdir.join("enc/cam.m3u8"));
    let nenc = read(&ndir.join("enc/cam.m3u8"));
    // The URLs name each server's own port.
    assert_eq!(
        enc.replace(&shttp.to_string(), "PORT"),
        nenc.replace(&nhttp.to_string(), "PORT"),
        "keyed playlist differs from nginx-rtmp's"
    );

    // DASH: the same files (nginx-rtmp's `-raw` work files aside) and the
    // same manifest, its two wall-clock times masked.
    let listing = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d.join("dash"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.contains("-raw.") && !n.ends_with(".tmp"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing(&sdir), listing(&ndir), "DASH files");
    let masked = |d: &Path| {
        read(&d.join("dash/cam.mpd"))
            .lines()
            .map(|l| match l.split_once("Time=\"") {
                Some((k, _)) => format!("{k}Time=\"T\""),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        masked(&sdir),
        masked(&ndir),
        "DASH manifest differs from nginx-rtmp's"
    );

    // Keys: every other segment has a new one, written as a file; the
    // segments are not plain MPEG-TS; ffmpeg fetches the keys and decodes.
    let pl = m3u8_rs::parse_media_playlist_res(enc.as_bytes()).unwrap();
    assert!(pl.segments.len() >= 10, "{enc}");
    let keys: Vec<_> = pl.segments.iter().filter_map(|s| s.key.as_ref()).collect();
    assert_eq!(keys.len(), pl.segments.len().div_ceil(2), "{enc}");
    for k in &keys {
        let uri = k.uri.as_deref().unwrap();
        let file = sdir.join("keys").join(uri.rsplit('/').next().unwrap());
        assert_eq!(
            std::fs::read(&file).unwrap().len(),
            16,
            "{}",
            file.display()
        );
    }
    for s in &pl.segments {
        let data = std::fs::read(sdir.join("enc").join(&s.uri)).unwrap();
        // (An encrypted one may start with 0x47 by chance; not every one
        // of its 188-byte packets does.)
        let plain = data.len().is_multiple_of(188) && data.chunks(188).all(|p| p[0] == 0x47);
        assert!(!plain, "{} is plain MPEG-TS", s.uri);
        assert_eq!(data.len() % 16, 0);
    }
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-live_start_index",
            "0",
            "-i",
        ])
        .arg(format!("http://127.0.0.1:{shttp}/enc/cam.m3u8"))
        .args(["-t", "8", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "decode errors");
    drop(sluice);
}
