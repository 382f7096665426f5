//! DASH as nginx-rtmp's `dash` module writes it, with real clients: ffmpeg
//! publishes H.264 + AAC (and ffmpeg 9 HEVC); ffprobe reads the MPD over
//! HTTP with the right codecs; dash.js plays it in Chromium; the init
//! segment and every fragment decode with no error, frame for frame.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs tests/browser/play.mjs on `page`; returns its JSON line.
fn play(page: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new("node")
        .arg(dir.join("play.mjs"))
        .arg(page)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files of a track in timeline order, init first, concatenated.
fn track(dir: &Path, name: &str, ext: &str) -> Vec<u8> {
    let mut times: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().ok()?;
            let t = n
                .strip_prefix(&format!("{name}-"))?
                .strip_suffix(&format!(".{ext}"))?;
            t.parse().ok()
        })
        .collect();
    times.sort();
    let mut all = std::fs::read(dir.join(format!("{name}-init.{ext}"))).unwrap();
    for t in times {
        all.extend(std::fs::read(dir.join(format!("{name}-{t}.{ext}"))).unwrap());
    }
    all
}

/// ffprobe's view of the streams; `count`: read every packet (not for a
/// live manifest, which never ends).
fn probe(path_or_url: &str, count: bool) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(if count {
            &["-count_packets"][..]
        } else {
            &[][..]
        })
        .arg("-show_entries")
        .args([
            "stream=codec_name,width,height,sample_rate,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path_or_url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dash_from_ffmpeg_plays_in_ffprobe_dash_js_and_decodes_whole() {
    let files = tempfile::tempdir().unwrap();
    let page = files.path().join("page");
    std::fs::create_dir_all(&page).unwrap();
    let bdir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    for (from, to) in [
        ("index.html", "index.html"),
        (
            "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
            "dash.all.min.js",
        ),
    ] {
        std::fs::copy(bdir.join(from), page.join(to))
            .unwrap_or_else(|e| panic!("{from}: {e} (./scripts/test.sh installs it)"));
    }
    let dash = files.path().join("dash");
    let (port, http) = (free_port(), free_port());
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; dash on; \
         dash_path {d}; dash_fragment 2s; dash_playlist_length 60s; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{http}; location /dash {{ root {root}; }} \
         location /page {{ alias {p}; }} }} }}\n",
        d = dash.display(),
        root = files.path().display(),
        p = page.display()
    );
    let s = Server::with_config(&conf, port);
    let src = make_source(s.dir.path(), 14);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    let hevc_src = common::ffmpeg9::make(
        s.dir.path(),
        "hevc.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "8",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=none",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "flv",
        ],
    );
    let hevc = common::ffmpeg9::publish(&hevc_src, &s.url("hevc"));
    std::thread::sleep(Duration::from_secs(5));

    let mpd = format!("http://127.0.0.1:{http}/dash/cam.mpd");
    let p = probe(&mpd, false);
    assert!(
        p.contains("h264,320,240") && p.contains("aac,44100"),
        "ffprobe of the MPD: {p}"
    );
    let text = std::fs::read_to_string(dash.join("cam.mpd")).unwrap();
    assert!(
        text.contains("type=\"dynamic\"") && text.contains("codecs=\"avc1.64"),
        "{text}"
    );
    assert!(
        text.contains("media=\"cam-$Time$.m4v\"") && text.contains("<S t="),
        "{text}"
    );
    // ffmpeg plays the live MPD over HTTP, without an error.
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &mpd,
            "-t",
            "3",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "decode errors");
    let played = play(&format!(
        "http://127.0.0.1:{http}/page/index.html?kind=dash&src={mpd}"
    ));
    assert!(played.contains("\"ok\":true"), "dash.js: {played}");
    eprintln!("dash.js: {played}");

    assert!(wait_for(publisher, Duration::from_secs(30))
        .status
        .success());
    assert!(wait_for(hevc, Duration::from_secs(30)).status.success());
    std::thread::sleep(Duration::from_millis(500));
    // Every fragment, after its init segment, decodes cleanly; together
    // they hold every source frame.
    let (sv, sa) = counts(&src);
    for (ext, want) in [("m4v", sv), ("m4a", sa)] {
        let f = s.dir.path().join(format!("all.{ext}.mp4"));
        std::fs::write(&f, track(&dash, "cam", ext)).unwrap();
        let p = probe(f.to_str().unwrap(), true);
        let got: u64 = p.trim().rsplit(',').next().unwrap().parse().unwrap();
        assert_eq!(got, want, "{ext}: {p}");
        assert_eq!(decode_errors(&f), "", "{ext}");
    }
    // HEVC from Enhanced RTMP, which nginx-rtmp cannot package.
    let f = s.dir.path().join("hevc.mp4");
    std::fs::write(&f, track(&dash, "hevc", "m4v")).unwrap();
    let p = probe(f.to_str().unwrap(), true);
    assert!(p.starts_with("hevc,320,240"), "{p}");
    assert_eq!(decode_errors(&f), "");
    let text = std::fs::read_to_string(dash.join("hevc.mpd")).unwrap();
    assert!(text.contains("codecs=\"hvc1.1.6.L"), "{text}");
}
