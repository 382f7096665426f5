//! Real browser players: headless Chromium plays Sluice's HLS with hls.js
//! and its HTTP-FLV with mpegts.js, and the video's time must advance;
//! hls.js parses Sluice's HEVC HLS (from an ffmpeg 9 publisher).
//! `scripts/test.sh` installs Debian's chromium and the npm packages in
//! tests/browser/.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs tests/browser/play.mjs on `page`; returns its JSON line.
fn play(page: &str) -> String {
    play_trusting(page, None)
}

/// The same, with Chromium accepting the certificate whose public key
/// hashes to `spki` (see `common::tls::spki_hash`).
fn play_trusting(page: &str, spki: Option<&str>) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "run ./scripts/test.sh: it installs chromium and the npm packages in tests/browser"
    );
    let mut cmd = Command::new("node");
    if let Some(h) = spki {
        cmd.env("TRUST_SPKI", h);
    }
    let out = cmd.arg(dir.join("play.mjs")).arg(page).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "play.mjs failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs tests/browser/dashboard.mjs on stream `name` of the dashboard at
/// `url` (trusting the certificate whose key hashes to `spki`); returns
/// its JSON result.
fn dashboard(url: &str, name: &str, shot: &str, spki: Option<&str>) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut cmd = Command::new("node");
    if let Some(h) = spki {
        cmd.env("TRUST_SPKI", h);
    }
    let out = cmd
        .arg(dir.join("dashboard.mjs"))
        .args([url, name, shot])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "dashboard.mjs: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Copies the test page and the players it loads into `web`.
fn page_files(web: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    std::fs::create_dir_all(web).unwrap();
    for (from, to) in [
        ("index.html", "index.html"),
        ("node_modules/hls.js/dist/hls.min.js", "hls.min.js"),
        ("node_modules/mpegts.js/dist/mpegts.js", "mpegts.js"),
    ] {
        std::fs::copy(dir.join(from), web.join(to)).unwrap_or_else(|e| {
            panic!("{from}: {e} (run ./scripts/test.sh to install the npm packages)")
        });
    }
}

#[test]
fn chromium_plays_hls_with_hls_js_and_http_flv_with_mpegts_js() {
    let files = tempfile::tempdir().unwrap();
    let web = files.path().join("page");
    page_files(&web);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let hls_dir = files.path().join("hls");
    let port = free_port();
    let hport = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; hls on; \
         hls_path {}; hls_fragment 1s; hls_playlist_length 8s; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport};\n\
           location /page {{ alias {}; }}\n\
           location /hls {{ root {}; }}\n\
           location /live {{ flv_live on; }} }} }}\n",
        hls_dir.display(),
        web.display(),
        files.path().display()
    );
    let s = Server::with_config(&conf, port);
    let src = make_source(s.dir.path(), 40);
    let publisher = ffmpeg_publish_file(&src, &s.url("cam"));
    // HEVC from ffmpeg 9, cut into HLS beside it.
    let hevc_src = common::ffmpeg9::make(
        s.dir.path(),
        "hevc.flv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "30",
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
    let hevc_publisher = common::ffmpeg9::publish(&hevc_src, &s.url("hevc"));
    std::thread::sleep(Duration::from_secs(4));
    let base = format!("http://127.0.0.1:{hport}");

    let hls = play(&format!(
        "{base}/page/index.html?kind=hls&src={base}/hls/cam.m3u8"
    ));
    assert!(hls.contains("\"ok\":true"), "hls.js: {hls}");

    let flv = play(&format!(
        "{base}/page/index.html?kind=flv&src={base}/live/cam.flv"
    ));
    assert!(flv.contains("\"ok\":true"), "mpegts.js: {flv}");
    eprintln!("hls.js: {hls}mpegts.js: {flv}");

    // hls.js parses Sluice's HEVC segments (it builds the codec string
    // from the parameter sets in them) and plays them where this
    // Chromium's Media Source Extensions take HEVC (Debian's build on a
    // machine without a hardware decoder does not).
    let out = Command::new("node")
        .arg(dir.join("codec.mjs"))
        .arg(format!(
            "{base}/page/index.html?kind=hls&src={base}/hls/hevc.m3u8"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let r: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("codec.mjs: {text}{}", String::from_utf8_lossy(&out.stderr)));
    let codec = r["codec"].as_str().unwrap_or_default();
    assert!(
        codec.starts_with("hvc1.") || codec.starts_with("hev1."),
        "hls.js parsed HEVC: {r}"
    );
    if r["supported"] == true {
        assert_eq!(r["advanced"], true, "HEVC plays where supported: {r}");
    }
    eprintln!("hls.js HEVC: {r}");
    for mut p in [publisher, hevc_publisher] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// The dashboard in Chromium: it lists the stream ffmpeg publishes, plays
/// it in its embedded player (HTTP-FLV through MSE), and its "Go Away"
/// button makes that ffmpeg receive message type 32.
/// `SLUICE_SCREENSHOT=path` saves the page (the README's picture).
#[test]
fn dashboard_lists_plays_and_its_go_away_button_reaches_the_publisher() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run ./scripts/test.sh: it installs chromium and the npm packages in tests/browser"
    );
    let port = free_port();
    let hport = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n\
         http {{ server {{ listen 127.0.0.1:{hport};\n\
           location /stat {{ rtmp_stat all; }}\n\
           location /control {{ rtmp_control all; }}\n\
           location /live {{ flv_live on; }}\n\
           location / {{ rtmp_dashboard on; }} }} }}\n"
    );
    let s = Server::with_config(&conf, port);
    let src = make_source(s.dir.path(), 20);
    let publisher = ffmpeg_publish_goaway(&src, &s.url("cam"));
    // And an Enhanced RTMP multitrack publish (two renditions) from ffmpeg 9.
    let mt_src = common::ffmpeg9::multitrack(s.dir.path(), "mt.flv", 20, true, false);
    let mt_publisher = common::ffmpeg9::publish(&mt_src, &s.url("mt"));
    std::thread::sleep(Duration::from_secs(3));
    let shot = std::env::var("SLUICE_SCREENSHOT").unwrap_or_default();
    let result = dashboard(&format!("http://127.0.0.1:{hport}/"), "cam", &shot, None);
    assert_eq!(result["listed"], true, "{result}");
    assert!(
        result["codec"].as_str().unwrap_or("").contains("320×240"),
        "{result}"
    );
    assert!(
        result["played"].as_f64().is_some(),
        "embedded player: {result}"
    );
    assert_eq!(result["toast"], "Go Away sent to: 1", "{result}");
    // The multitrack stream: its tracks with their sizes in the codec line,
    // and the embedded player shows the default track.
    let mt = dashboard(&format!("http://127.0.0.1:{hport}/"), "mt", "", None);
    assert!(
        mt["codec"]
            .as_str()
            .unwrap_or("")
            .contains("tracks: V0 H264 320×240, V1 H264 160×120, A0 AAC 44.1 kHz"),
        "{mt}"
    );
    assert!(
        mt["played"].as_f64().is_some(),
        "multitrack in the embedded player: {mt}"
    );
    let mut mt_publisher = mt_publisher;
    let _ = mt_publisher.kill();
    let _ = mt_publisher.wait();
    interrupt(&publisher);
    let ff = wait_for(publisher, Duration::from_secs(15));
    assert!(
        String::from_utf8_lossy(&ff.stderr).contains("Unknown packet type received 0x20"),
        "ffmpeg received message type 32"
    );
    assert!(s.log().contains("go away sent: Moved by the operator"));
}

/// HTTPS (`listen ... ssl` in http{}): Chromium, trusting the test
/// certificate and only it, shows the dashboard and plays HLS and
/// HTTP-FLV over HTTPS, from a stream ffmpeg publishes over RTMPS; a plain
/// HTTP request to the HTTPS port gets no page.
#[test]
fn chromium_over_https_shows_the_dashboard_and_plays_hls() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let files = tempfile::tempdir().unwrap();
    let web = files.path().join("page");
    page_files(&web);
    common::tls::certificate(files.path());
    let spki = common::tls::spki_hash(&files.path().join("cert.pem"));
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    let hls_dir = files.path().join("hls");
    let (port, sport, hport) = (free_port(), free_port(), free_port());
    // The certificate at http{} level, as nginx configs often put it.
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{sport} ssl;\n\
           ssl_certificate {cert}; ssl_certificate_key {key};\n\
           application live {{ live on; hls on; hls_path {hls}; hls_fragment 1s; \
           hls_playlist_length 8s; }} }} }}\n\
         http {{ ssl_certificate {cert}; ssl_certificate_key {key};\n\
           ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;\n\
           server {{ listen 127.0.0.1:{hport} ssl;\n\
           location /page {{ alias {web}; }}\n\
           location /hls {{ root {root}; }}\n\
           location /stat {{ rtmp_stat all; }}\n\
           location /control {{ rtmp_control all; }}\n\
           location /live {{ flv_live on; }}\n\
           location / {{ rtmp_dashboard on; }} }} }}\n",
        cert = cert.display(),
        key = key.display(),
        hls = hls_dir.display(),
        web = web.display(),
        root = files.path().display(),
    );
    let s = Server::with_config(&conf, port);
    let src = make_source(s.dir.path(), 40);
    let publisher = ffmpeg_publish_file(&src, &format!("rtmps://127.0.0.1:{sport}/live/cam"));
    std::thread::sleep(Duration::from_secs(4));

    // In clear, the HTTPS port answers no HTTP.
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", hport)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /stat HTTP/1.0\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(
            !got.starts_with(b"HTTP/"),
            "plain HTTP answered on the HTTPS port"
        );
    }
    assert!(
        s.wait_log("http: closed: TLS handshake failed"),
        "{}",
        s.log()
    );

    let base = format!("https://localhost:{hport}");
    let hls = play_trusting(
        &format!("{base}/page/index.html?kind=hls&src={base}/hls/cam.m3u8"),
        Some(&spki),
    );
    assert!(hls.contains("\"ok\":true"), "hls.js over HTTPS: {hls}");
    let flv = play_trusting(
        &format!("{base}/page/index.html?kind=flv&src={base}/live/cam.flv"),
        Some(&spki),
    );
    assert!(flv.contains("\"ok\":true"), "mpegts.js over HTTPS: {flv}");

    let result = dashboard(&format!("{base}/"), "cam", "", Some(&spki));
    assert_eq!(result["listed"], true, "dashboard over HTTPS: {result}");
    assert!(
        result["played"].as_f64().is_some(),
        "embedded player over HTTPS: {result}"
    );

    // Without the trust, Chromium refuses the page.
    let refused = Command::new("node")
        .arg(dir.join("play.mjs"))
        .arg(format!(
            "{base}/page/index.html?kind=hls&src={base}/hls/cam.m3u8"
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("ERR_CERT_AUTHORITY_INVALID"),
        "an untrusted certificate was accepted: {err}"
    );
    let mut publisher = publisher;
    let _ = publisher.kill();
    let _ = publisher.wait();
}
