//! Real browser players: headless Chromium plays Sluice's HLS with hls.js
//! and its HTTP-FLV with mpegts.js, and the video's time must advance.
//! `scripts/test.sh` installs Debian's chromium and the npm packages in
//! tests/browser/.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs tests/browser/play.mjs on `page`; returns its JSON line.
fn play(page: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "run ./scripts/test.sh: it installs chromium and the npm packages in tests/browser"
    );
    let out = Command::new("node")
        .arg(dir.join("play.mjs"))
        .arg(page)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "play.mjs failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn chromium_plays_hls_with_hls_js_and_http_flv_with_mpegts_js() {
    let files = tempfile::tempdir().unwrap();
    let web = files.path().join("page");
    std::fs::create_dir_all(&web).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    for (from, to) in [
        ("index.html", "index.html"),
        ("node_modules/hls.js/dist/hls.min.js", "hls.min.js"),
        ("node_modules/mpegts.js/dist/mpegts.js", "mpegts.js"),
    ] {
        std::fs::copy(dir.join(from), web.join(to)).unwrap_or_else(|e| {
            panic!("{from}: {e} (run ./scripts/test.sh to install the npm packages)")
        });
    }
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
    let mut p = publisher;
    let _ = p.kill();
    let _ = p.wait();
}
