//! Video on demand (`play` locations) with real clients: ffmpeg and
//! rtmpdump play an FLV and two MP4s (moov at the end, and at the start
//! with faststart), locally and through an `http://` location; Sluice's
//! own client seeks and pauses; bad names and bad files get their answer
//! while a live stream beside them goes on. Where Debian's nginx-rtmp is
//! installed, the same files are played from it and compared.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// A 10 s H.264 (with B-frames, so composition offsets) + AAC clip as FLV,
/// then remuxed to MP4 with the moov at the end and with faststart.
fn media(dir: &Path) {
    let flv = dir.join("clip.flv");
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "10", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-g", "25", "-bf", "2", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-shortest"])
        .arg(&flv)
        .status()
        .unwrap();
    assert!(st.success());
    for (name, extra) in [
        ("clip.mp4", &[][..]),
        ("fast.mp4", &["-movflags", "+faststart"][..]),
    ] {
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(&flv)
            .args(["-c", "copy"])
            .args(extra)
            .arg(dir.join(name))
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Where the moov box starts in an MP4 file.
fn moov_at(path: &Path) -> usize {
    let b = std::fs::read(path).unwrap();
    b.windows(4).position(|w| w == b"moov").unwrap()
}

fn ffmpeg_vod(url: &str, out: &Path) -> Child {
    // A 100 ms client buffer: the server keeps 1.1 s ahead of real time.
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-rtmp_buffer",
            "100",
            "-i",
            url,
        ])
        .args(["-c", "copy", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// rtmpdump of `URL/NAME`, the name given with -y: in a URL, rtmpdump
/// takes `app/sub` for the application.
fn rtmpdump_vod(url: &str, out: &Path) -> Child {
    let (app, name) = url
        .rsplit_once("/vod/")
        .or_else(|| url.rsplit_once("/remote/"))
        .unwrap();
    let app = format!("{app}{}", &url[app.len()..url.len() - name.len() - 1]);
    Command::new("rtmpdump")
        .args(["-q", "-r", &app, "-y", name, "-o"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// ffprobe's packet list (stream, pts, dts, size, flags).
fn packets(path: &Path) -> Vec<String> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["packet=stream_index,pts,dts,size,flags", "-of", "csv"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Video DTS in order.
fn video_dts(path: &Path) -> Vec<i64> {
    packets(path)
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.get(1) == Some(&"0")).then(|| f[3].parse().unwrap_or(-1))
        })
        .collect()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(dir: &Path, files: &Path) -> Option<(Nginx, u16)> {
    if !Path::new(NGINX_MODULE).exists() {
        return None;
    }
    let port = free_port();
    let d = dir.display();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let conf = format!(
        "load_module {NGINX_MODULE};\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; application vod {{ play {}; }} }} }}\n",
        files.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ng = Nginx(child);
    assert!(until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    Some((ng, port))
}

#[test]
fn files_play_paced_whole_and_as_nginx_rtmp_sends_them() {
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    media(&files);
    std::fs::copy(files.join("clip.flv"), files.join("sub/deep.flv")).unwrap();
    assert!(moov_at(&files.join("clip.mp4")) > moov_at(&files.join("fast.mp4")));
    let source = counts(&files.join("clip.flv"));
    assert_eq!(source.0, 250);

    let hooks = HookServer::start(|_| (200, None, Duration::ZERO));
    let port = free_port();
    let d = work.path().display();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
           application vod {{
             play {f};
             on_play {hook};
             access_log {d}/access.log;
             exec_play sh -c \"echo play $name >> {d}/exec.txt\";
           }}
           application closed {{ play {f}; deny play all; }}
         }} }}",
        f = files.display(),
        hook = hooks.url("/on_play"),
    );
    let srv = Server::with_config(&conf, port);
    let url = |n: &str| format!("rtmp://127.0.0.1:{port}/vod/{n}");

    // ffmpeg, the three files at once, each paced in real time.
    let names = ["clip", "mp4:clip.mp4", "fast.mp4"];
    let t = Instant::now();
    let outs: Vec<PathBuf> = (0..3)
        .map(|i| work.path().join(format!("ff{i}.flv")))
        .collect();
    let kids: Vec<Child> = names
        .iter()
        .zip(&outs)
        .map(|(n, o)| ffmpeg_vod(&url(n), o))
        .collect();
    for k in kids {
        let o = wait_for(k, Duration::from_secs(40));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let took = t.elapsed();
    // 10 s of media, kept 1.1 s ahead: about 9 s.
    assert!(
        took >= Duration::from_millis(7500) && took <= Duration::from_secs(16),
        "a 10 s file took {took:?}"
    );
    for (n, o) in names.iter().zip(&outs) {
        assert_eq!(counts(o), source, "{n}: frame counts");
        assert_eq!(decode_errors(o), "", "{n}: decode errors");
    }

    // rtmpdump asks for a 10-hour buffer: it gets each file at once.
    let mut dumps = Vec::new();
    for (i, n) in ["clip", "mp4:clip", "mp4:fast", "sub/deep"]
        .iter()
        .enumerate()
    {
        let o = work.path().join(format!("rd{i}.flv"));
        let out = wait_for(rtmpdump_vod(&url(n), &o), Duration::from_secs(20));
        // rtmpdump exits 0, or 2 when its own estimate says a few ms short.
        assert!(matches!(out.status.code(), Some(0 | 2)), "{n}: {out:?}");
        assert_eq!(counts(&o), source, "rtmpdump {n}: frame counts");
        assert_eq!(decode_errors(&o), "", "rtmpdump {n}: decode errors");
        dumps.push(o);
    }
    // Composition offsets survive the MP4 demux: the video has the same
    // PTS and DTS as in the FLV it was remuxed from. (Audio may not:
    // ffmpeg's remux moves the first AAC frame to 0.)
    let video = |p: &Path| -> Vec<String> {
        packets(p)
            .into_iter()
            .filter(|l| l.starts_with("packet,0,"))
            .collect()
    };
    assert_eq!(
        video(&dumps[0]),
        video(&dumps[1]),
        "MP4 and FLV video timestamps"
    );

    // Metadata carries the duration.
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&dumps[2])
        .output()
        .unwrap();
    let dur: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!((dur - 10.0).abs() < 0.2, "duration {dur}");

    // on_play, access_log and exec_play apply to files as to live streams.
    let played: Vec<String> = hooks
        .requests()
        .iter()
        .filter(|r| r.path == "/on_play")
        .filter_map(|r| r.get("name").map(str::to_owned))
        .collect();
    assert!(played.contains(&"mp4:clip.mp4".to_owned()), "{played:?}");
    assert!(until(Duration::from_secs(5), || std::fs::read_to_string(
        work.path().join("exec.txt")
    )
    .is_ok_and(|s| s.contains("play sub/deep"))));
    assert!(until(Duration::from_secs(5), || std::fs::read_to_string(
        work.path().join("access.log")
    )
    .is_ok_and(|s| s.contains("vod") && s.contains("mp4:fast"))));
    // Access rules: refused before any file is opened.
    let o = wait_for(
        ffmpeg_vod(
            &format!("rtmp://127.0.0.1:{port}/closed/clip"),
            &work.path().join("x.flv"),
        ),
        Duration::from_secs(20),
    );
    assert!(!o.status.success());
    // Seven plays above opened a file; the refused one did not.
    assert_eq!(srv.log().matches("play vod").count(), 7, "{}", srv.log());

    // Side by side: Debian's nginx-rtmp sends the same FLV bytes, and the
    // same MP4 packets (it stops three AAC frames before the end).
    if let Some((_ng, nport)) = nginx(&work.path().join("nginx"), &files) {
        let nurl = |n: &str| format!("rtmp://127.0.0.1:{nport}/vod/{n}");
        let a = work.path().join("ng-flv.flv");
        wait_for(rtmpdump_vod(&nurl("clip"), &a), Duration::from_secs(20));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&dumps[0]).unwrap(),
            "FLV play differs from nginx-rtmp's"
        );
        let b = work.path().join("ng-mp4.flv");
        wait_for(rtmpdump_vod(&nurl("mp4:clip"), &b), Duration::from_secs(20));
        let (theirs, ours) = (packets(&b), packets(&dumps[1]));
        assert!(
            theirs.len() > 600,
            "nginx-rtmp sent {} packets",
            theirs.len()
        );
        assert_eq!(
            &ours[..theirs.len()],
            &theirs[..],
            "MP4 play differs from nginx-rtmp's"
        );
    }
}

/// A file server counting requests; `/missing/*` is always 404.
struct Origin {
    port: u16,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    fn start(root: PathBuf) -> Origin {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h2 = hits.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let mut rd = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                let mut line = String::new();
                if rd.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if rd.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let target = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                h2.lock().unwrap().push(target.clone());
                let path = target.split('?').next().unwrap_or_default();
                let file = root.join(path.trim_start_matches('/'));
                match std::fs::read(&file) {
                    Ok(b) if !path.starts_with("/missing") => {
                        let _ = write!(
                            w,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        );
                        let _ = w.write_all(&b);
                    }
                    _ => {
                        let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            }
        });
        Origin { port, hits }
    }
}

#[test]
fn http_locations_fetch_once_with_play_local_path() {
    let work = tempfile::tempdir().unwrap();
    let remote = work.path().join("remote/vod");
    std::fs::create_dir_all(&remote).unwrap();
    media(&remote);
    let source = counts(&remote.join("clip.flv"));
    let cache = work.path().join("cache");
    let tmp = work.path().join("tmp");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let origin = Origin::start(work.path().join("remote"));
    let port = free_port();
    let o = origin.port;
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
           application vod {{
             play {c} http://127.0.0.1:{o}/missing http://127.0.0.1:{o}/vod;
             play_local_path {c};
             play_temp_path {t};
           }}
           application remote {{ play http://127.0.0.1:{o}/vod; play_temp_path {t}; }}
         }} }}",
        c = cache.display(),
        t = tmp.display(),
    );
    let srv = Server::with_config(&conf, port);
    let hits = || origin.hits.lock().unwrap().clone();

    // First play: the local directory has nothing, /missing answers 404,
    // /vod has it. The file lands in play_local_path.
    for name in ["mp4:clip", "clip"] {
        let out = work
            .path()
            .join(format!("first-{}.flv", name.replace(':', "_")));
        let o = wait_for(
            rtmpdump_vod(&format!("rtmp://127.0.0.1:{port}/vod/{name}"), &out),
            Duration::from_secs(20),
        );
        assert!(matches!(o.status.code(), Some(0 | 2)), "{name}: {o:?}");
        assert_eq!(counts(&out), source, "{name} over http");
        assert_eq!(decode_errors(&out), "");
    }
    let h = hits();
    assert_eq!(h.len(), 4, "{h:?}");
    assert!(
        h[0].starts_with("/missing/clip.mp4?addr=127.0.0.1"),
        "{h:?}"
    );
    assert!(h[1].starts_with("/vod/clip.mp4?addr=127.0.0.1"), "{h:?}");
    assert!(cache.join("clip.mp4").exists() && cache.join("clip.flv").exists());
    assert_eq!(
        std::fs::read(cache.join("clip.mp4")).unwrap(),
        std::fs::read(remote.join("clip.mp4")).unwrap()
    );

    // Second play: local, no request at all.
    let out = work.path().join("second.flv");
    let _ = wait_for(
        ffmpeg_play(
            &format!("rtmp://127.0.0.1:{port}/vod/mp4:clip"),
            &out,
            &["-rtmp_buffer", "60000"],
        ),
        Duration::from_secs(20),
    );
    assert_eq!(counts(&out), source);
    assert_eq!(
        hits().len(),
        4,
        "the second play asked the origin: {:?}",
        hits()
    );

    // Without play_local_path the temporary file goes when it is open.
    let out = work.path().join("remote.flv");
    let _ = wait_for(
        rtmpdump_vod(&format!("rtmp://127.0.0.1:{port}/remote/fast.mp4"), &out),
        Duration::from_secs(20),
    );
    assert_eq!(counts(&out), source);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary files left"
    );

    // Not on the origin: NotFound after every location.
    let o = wait_for(
        ffmpeg_play(
            &format!("rtmp://127.0.0.1:{port}/vod/nope"),
            &work.path().join("n.flv"),
            &[],
        ),
        Duration::from_secs(20),
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not found"),
        "{o:?}"
    );
    assert!(srv.wait_log("vod not found"));
}

/// Flips one MP4's stsz to claim 4 Gi samples of one byte.
fn sample_bomb(src: &Path, dst: &Path) {
    let mut b = std::fs::read(src).unwrap();
    let i = b.windows(4).position(|w| w == b"stsz").unwrap();
    b[i + 8..i + 12].copy_from_slice(&1u32.to_be_bytes());
    b[i + 12..i + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(dst, b).unwrap();
}

/// A moov claiming 4 GiB in a small file.
fn size_bomb(dst: &Path) {
    let mut b = vec![0, 0, 0, 16];
    b.extend_from_slice(b"ftypisom\0\0\0\0");
    b.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    b.extend_from_slice(b"moov");
    b.extend_from_slice(&[0u8; 64]);
    std::fs::write(dst, b).unwrap();
}

#[test]
fn seek_pause_and_bad_files_leave_a_live_stream_alone() {
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    media(&files);
    let source = counts(&files.join("clip.flv"));
    let whole = std::fs::read(files.join("clip.mp4")).unwrap();
    std::fs::write(files.join("trunc.mp4"), &whole[..whole.len() / 2]).unwrap();
    let fast = std::fs::read(files.join("fast.mp4")).unwrap();
    std::fs::write(files.join("cut.mp4"), &fast[..fast.len() / 2]).unwrap();
    std::fs::write(
        files.join("trunc.flv"),
        &std::fs::read(files.join("clip.flv")).unwrap()[..60_000],
    )
    .unwrap();
    sample_bomb(&files.join("fast.mp4"), &files.join("bomb.mp4"));
    size_bomb(&files.join("huge.mp4"));
    std::fs::write(files.join("junk.flv"), b"this is not a video file at all").unwrap();
    std::fs::write(work.path().join("secret.flv"), b"outside").unwrap();

    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port};
           application vod {{ play {f}; }}
           application live {{ live on; play {f}; }}
         }} }}",
        f = files.display()
    );
    let srv = Server::with_config(&conf, port);
    let vod = |n: &str| format!("rtmp://127.0.0.1:{port}/vod/{n}");

    // A live stream, published and played the whole time, in an
    // application that also has files: a name with no file is the live
    // stream.
    let live_src = make_source(work.path(), 12);
    let live_src_counts = counts(&live_src);
    let publisher = ffmpeg_publish_file(&live_src, &format!("rtmp://127.0.0.1:{port}/live/cam"));
    std::thread::sleep(Duration::from_millis(800));
    let live_out = work.path().join("live.flv");
    let live_player = rtmpdump(&format!("rtmp://127.0.0.1:{port}/live/cam"), &live_out, &[]);
    assert!(srv.wait_log("play: no such file, playing the live stream"));

    // Sluice's client with no buffer (the server keeps 1 s ahead): pause
    // 0.5 s in for 2 s, then at 3 s seek forward to the 7 s keyframe.
    let bin = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let sp = work.path().join("sp.flv");
    let spp = sp.to_str().unwrap();
    let t = Instant::now();
    let seeker = bin(&[
        "play",
        &vod("mp4:clip"),
        "-o",
        spp,
        "--buffer",
        "0",
        "--pause",
        "0.5:2",
        "--seek",
        "3:7000",
    ]);
    // ffmpeg beside it, unaffected.
    let ff = work.path().join("ff.flv");
    let beside = ffmpeg_vod(&vod("clip"), &ff);

    // Bad input, each answered on its own connection.
    let fails: HashMap<&str, &str> = [
        ("nosuch", "Video on demand stream not found"),
        ("mp4:trunc", "cannot be played"),
        ("mp4:bomb", "cannot be played"),
        ("mp4:huge", "cannot be played"),
        ("junk", "cannot be played"),
    ]
    .into_iter()
    .collect();
    for (name, says) in &fails {
        let o = wait_for(
            ffmpeg_play(&vod(name), &work.path().join("bad.flv"), &[]),
            Duration::from_secs(15),
        );
        assert!(!o.status.success(), "{name} played");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{name}: {err}");
    }
    // Clients normalise `..` in URLs: rtmpdump's -y sends the name as is.
    for name in ["../secret", "a/../../secret"] {
        let o = Command::new("rtmpdump")
            .args([
                "-r",
                &format!("rtmp://127.0.0.1:{port}/vod"),
                "-y",
                name,
                "-o",
            ])
            .arg(work.path().join("esc.flv"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{name} played");
        assert!(srv.wait_log(&format!("play: bad name '{name}'")), "{name}");
    }
    let log = srv.log();
    assert!(log.contains("mp4: no moov box"), "{log}");
    assert!(log.contains("limit 4194304"), "{log}");
    assert!(log.contains("beyond the end of the file"), "{log}");
    assert!(log.contains("not an FLV file"), "{log}");
    assert!(log.contains("name leaves the play directory"), "{log}");
    // A truncated FLV plays what it has.
    let o = wait_for(
        rtmpdump_vod(&vod("trunc"), &work.path().join("tr.flv")),
        Duration::from_secs(15),
    );
    assert!(o.status.code().is_some());
    let (v, _) = counts(&work.path().join("tr.flv"));
    assert!(v > 10 && v < 250, "truncated FLV: {v} frames");
    assert!(srv.wait_log("last tag truncated"));
    // So does an MP4 cut short after its moov.
    let o = wait_for(
        rtmpdump_vod(&vod("mp4:cut"), &work.path().join("cut.flv")),
        Duration::from_secs(15),
    );
    assert!(o.status.code().is_some());
    let (v, _) = counts(&work.path().join("cut.flv"));
    assert!(v > 50 && v < 250, "truncated MP4: {v} frames");
    assert_eq!(decode_errors(&work.path().join("cut.flv")), "");
    assert!(srv.wait_log("mp4: file truncated, played up to its end"));

    let o = wait_for(seeker, Duration::from_secs(30));
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    for code in [
        "NetStream.Play.Start",
        "NetStream.Pause.Notify",
        "NetStream.Unpause.Notify",
        "NetStream.Seek.Notify",
        "NetStream.Play.Complete",
    ] {
        assert!(err.contains(code), "{code} missing: {err}");
    }
    // The seek lands on the 7 s keyframe: the video jumps forward to it,
    // from where the pause held it (about 3.2 s; 4.1 s without the pause).
    let dts = video_dts(&sp);
    let jump = dts.windows(2).find(|w| w[1] - w[0] > 200).expect("no jump");
    assert_eq!(jump[1], 7000, "{dts:?}");
    assert!(jump[0] < 3900, "the pause did not hold the file: {jump:?}");
    assert_eq!(*dts.last().unwrap(), 9960);
    assert_eq!(decode_errors(&sp), "");
    // Then 3 s of media paced 1 s ahead: about 5 s in all.
    assert!(took > Duration::from_millis(4000), "{took:?}");

    let o = wait_for(beside, Duration::from_secs(30));
    assert!(o.status.success());
    assert_eq!(counts(&ff), source);

    let o = wait_for(publisher, Duration::from_secs(30));
    assert!(o.status.success());
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&live_player);
    let _ = wait_for(live_player, Duration::from_secs(10));
    let (v, a) = counts(&live_out);
    assert!(
        v + 30 >= live_src_counts.0 && a > 0,
        "live player got {v} of {}",
        live_src_counts.0
    );
    assert_eq!(decode_errors(&live_out), "");
}

/// HEVC and AV1 in MP4 go out as Enhanced RTMP (which nginx-rtmp cannot
/// send): ffmpeg 9 plays them back with every frame, decodable.
#[test]
fn hevc_and_av1_mp4_play_as_enhanced_rtmp() {
    let work = tempfile::tempdir().unwrap();
    let files = work.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let src = |codec: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]
            .iter()
            .chain(&["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .chain(&["-t", "3", "-g", "25", "-pix_fmt", "yuv420p"])
            .map(|s| s.to_string())
            .collect();
        a.extend(codec.iter().map(|s| s.to_string()));
        a.extend(["-c:a", "aac", "-shortest"].map(String::from));
        a
    };
    let hevc_args = src(&[
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error:bframes=2",
        "-tag:v",
        "hvc1",
    ]);
    let av1_args = src(&["-c:v", "libsvtav1", "-preset", "12"]);
    let hevc = ffmpeg9::make(
        &files,
        "hevc.mp4",
        &hevc_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let av1 = ffmpeg9::make(
        &files,
        "av1.mp4",
        &av1_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let port = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application vod {{ play {}; }} }} }}",
        files.display()
    );
    let _srv = Server::with_config(&conf, port);
    for (src, name, codec) in [(&hevc, "mp4:hevc", "hevc"), (&av1, "av1.mp4", "av1")] {
        let want = ffmpeg9::probe(src);
        let out = work.path().join(format!("{codec}.flv"));
        let o = wait_for(
            ffmpeg9::play(&format!("rtmp://127.0.0.1:{port}/vod/{name}"), &out),
            Duration::from_secs(30),
        );
        assert!(
            o.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = ffmpeg9::probe(&out);
        assert_eq!(got.len(), 2, "{codec}: {got:?}");
        let v = got.iter().find(|s| s.kind == "video").unwrap();
        assert_eq!(v.codec, codec);
        assert_eq!(v.width, 320);
        for kind in ["video", "audio"] {
            let n = |s: &[ffmpeg9::StreamInfo]| s.iter().find(|s| s.kind == kind).unwrap().packets;
            assert_eq!(n(&got), n(&want), "{codec} {kind} packets");
        }
        assert_eq!(ffmpeg9::decode_errors(&out), "", "{codec}");
    }
}
