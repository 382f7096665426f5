//! Enhanced RTMP with a current ffmpeg (9.x, `common::ffmpeg9`) as
//! publisher and player: HEVC, AV1 and VP9 through RTMP, HTTP-FLV and
//! recording; multitrack streams (two audio tracks, two video renditions)
//! for players that join before the publish and 2 s into it;
//! `multitrack_split`; and HLS of the default tracks.

mod common;

use std::path::Path;
use std::time::Duration;

use common::ffmpeg9::{self, StreamInfo};
use common::*;

/// A server with recording (`on_record_done` to `hook`), HLS,
/// `multitrack_split` and HTTP-FLV, writing under `media`. Returns it and
/// its HTTP port.
fn server(media: &Path, hook: &HookServer) -> (Server, u16) {
    let (port, hport) = (free_port(), free_port());
    let m = media.display();
    let done = hook.url("/done");
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{
            live on;
            record all; record_path {m}/rec; on_record_done {done};
            hls on; hls_path {m}/hls; hls_fragment 1s;
            multitrack_split on;
         }} }} }}
         http {{ server {{ listen 127.0.0.1:{hport};
            location /live {{ flv_live on; }}
            location /stat {{ rtmp_stat all; }}
         }} }}\n"
    );
    std::fs::create_dir_all(media.join("rec")).unwrap();
    (Server::with_config(&conf, port), hport)
}

/// Waits until `name` is published (its publish log line).
fn wait_published(s: &Server, name: &str) {
    let t = std::time::Instant::now();
    let needle = format!("app=\"live\" stream=\"{name}\"");
    while !s
        .log()
        .lines()
        .any(|l| l.contains(" publish id=") && l.contains(&needle))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{name} not published:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn wait_ok(child: std::process::Child, what: &str) {
    let out = wait_for(child, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kinds, codecs, widths and sample rates, without packet counts.
fn layout(s: &[StreamInfo]) -> Vec<(String, String, u32, u32)> {
    s.iter()
        .map(|s| (s.kind.clone(), s.codec.clone(), s.width, s.sample_rate))
        .collect()
}

fn packets(s: &[StreamInfo]) -> Vec<u64> {
    s.iter().map(|s| s.packets).collect()
}

/// Every stream of `got` decodes, and it has the source's layout.
fn same_tracks(what: &str, got: &Path, src: &[StreamInfo]) -> Vec<StreamInfo> {
    let p = ffmpeg9::probe(got);
    assert_eq!(layout(&p), layout(src), "{what}: tracks");
    let errors = ffmpeg9::decode_errors(got);
    assert!(errors.is_empty(), "{what}: decode errors: {errors}");
    p
}

#[test]
fn hevc_av1_vp9_from_ffmpeg9_play_record_and_http_flv() {
    let media = tempfile::tempdir().unwrap();
    let hook = HookServer::start(|_| (200, None, Duration::ZERO));
    let (s, hport) = server(media.path(), &hook);
    let base = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"];
    let audio = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"];
    let codecs: [(&str, &[&str]); 3] = [
        (
            "hevc",
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=none",
            ],
        ),
        ("av1", &["-c:v", "libsvtav1", "-preset", "12"]),
        (
            "vp9",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
        ),
    ];
    let mut runs = Vec::new();
    for (name, enc) in codecs {
        let mut args: Vec<&str> = base.iter().chain(audio.iter()).copied().collect();
        args.extend(["-t", "3", "-g", "25", "-pix_fmt", "yuv420p"]);
        args.extend(enc);
        args.extend(["-c:a", "aac", "-f", "flv"]);
        let src = ffmpeg9::make(media.path(), &format!("{name}.flv"), &args);
        let want = ffmpeg9::probe(&src);
        assert_eq!(want[0].codec, name, "source");
        // Players joined before the publish: ffmpeg 9 and Sluice's own.
        let ff_out = media.path().join(format!("{name}-ffmpeg9.flv"));
        let ff = ffmpeg9::play(&s.url(name), &ff_out);
        let (own, own_out) = sluice_play(
            &s,
            name,
            &format!("{name}-sluice.flv"),
            &["--until-unpublish"],
        );
        std::thread::sleep(Duration::from_millis(500));
        // The HEVC publisher announces its codecs (`fourCcList`), as
        // `-rtmp_enhanced_codecs` makes ffmpeg 9 do; the others do not.
        let extra: &[&str] = match name {
            "hevc" => &["-rtmp_enhanced_codecs", "hvc1,av01,vp09"],
            _ => &[],
        };
        let publisher = ffmpeg9::publish_with(&src, &s.url(name), extra);
        runs.push((name, src, want, ff, ff_out, own, own_out, publisher));
    }
    // HTTP-FLV joins mid-stream and ends with it.
    let mut http = Vec::new();
    for (name, ..) in &runs {
        wait_published(&s, name);
        let out = media.path().join(format!("{name}-http.flv"));
        let url = format!("http://127.0.0.1:{hport}/live/{name}.flv");
        http.push((ffmpeg9::play(&url, &out), out));
    }
    for ((name, _src, want, ff, ff_out, own, own_out, publisher), (h, h_out)) in
        runs.into_iter().zip(http)
    {
        wait_ok(publisher, "ffmpeg 9 publish");
        wait_ok(own, "sluice play");
        wait_ok(ff, "ffmpeg 9 play");
        wait_ok(h, "ffmpeg 9 HTTP-FLV");
        for (what, out) in [("ffmpeg 9", &ff_out), ("sluice play", &own_out)] {
            let got = same_tracks(&format!("{name} {what}"), out, &want);
            assert_eq!(packets(&got), packets(&want), "{name} {what}: every frame");
        }
        let got = same_tracks(&format!("{name} HTTP-FLV"), &h_out, &want);
        assert!(got[0].packets > 0, "{name} HTTP-FLV: frames");
        // The recording holds every frame too.
        let rec = media.path().join(format!("rec/{name}.flv"));
        let got = same_tracks(&format!("{name} record"), &rec, &want);
        assert_eq!(packets(&got), packets(&want), "{name} record: every frame");
    }
    // The announcement is read, and answered without upsetting ffmpeg.
    assert!(
        s.log()
            .contains(r#"enhanced="fourCcList=[hvc1,av01,vp09]""#),
        "{}",
        s.log()
    );
    // HEVC is cut into HLS (AV1 and VP9 are not: MPEG-TS HLS has no
    // mapping for them); ffprobe reads the playlist.
    let hls = media.path().join("hls/hevc.m3u8");
    assert_eq!(hls_codecs(&hls), ["aac", "hevc"], "HEVC HLS");
    drop(s);
}

#[test]
fn multitrack_late_joiners_get_every_track_and_renditions_split_out() {
    let media = tempfile::tempdir().unwrap();
    let hook = HookServer::start(|_| (200, None, Duration::ZERO));
    let (s, hport) = server(media.path(), &hook);
    // Two audio tracks (44.1 and 48 kHz) with one video; two video
    // renditions (320x240 and 160x120) with one audio.
    let two_audio = ffmpeg9::multitrack(media.path(), "mt-audio.flv", 5, false, true);
    let two_video = ffmpeg9::multitrack(media.path(), "mt-video.flv", 5, true, false);

    let mut runs = Vec::new();
    for (name, src) in [("mt-audio", &two_audio), ("mt-video", &two_video)] {
        let want = ffmpeg9::probe(src);
        assert_eq!(want.len(), 3, "{name}: source tracks {want:?}");
        let early_ff = media.path().join(format!("{name}-early-ffmpeg9.flv"));
        let early = ffmpeg9::play(&s.url(name), &early_ff);
        let (own, own_out) = sluice_play(
            &s,
            name,
            &format!("{name}-early-sluice.flv"),
            &["--until-unpublish"],
        );
        runs.push((name, src.clone(), want, early, early_ff, own, own_out));
    }
    // A Debian ffmpeg 5.1 player of the second rendition's own name.
    let rendition = s.path("mt-video_1-debian.flv");
    let debian = ffmpeg_play(&s.url("mt-video_1"), &rendition, &["-t", "3"]);
    std::thread::sleep(Duration::from_millis(500));
    let publishers: Vec<_> = runs
        .iter()
        .map(|r| ffmpeg9::publish(&r.1, &s.url(r.0)))
        .collect();
    std::thread::sleep(Duration::from_millis(2000));
    let mut late = Vec::new();
    for (name, ..) in &runs {
        let ff_out = media.path().join(format!("{name}-late-ffmpeg9.flv"));
        let ff = ffmpeg9::play(&s.url(name), &ff_out);
        let (own, own_out) = sluice_play(
            &s,
            name,
            &format!("{name}-late-sluice.flv"),
            &["--until-unpublish"],
        );
        late.push((ff, ff_out, own, own_out));
    }
    // Debian's ffprobe reads each rendition live, each with its own size.
    let probes: Vec<_> = [("_0", "320,240"), ("_1", "160,120")]
        .into_iter()
        .map(|(suffix, size)| {
            let probe = std::process::Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v:0"])
                .args(["-show_entries", "stream=width,height", "-of", "csv=p=0"])
                .arg(s.url(&format!("mt-video{suffix}")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (suffix, size, probe)
        })
        .collect();
    // /stat lists every track while it is live.
    std::thread::sleep(Duration::from_millis(500));
    let (_, stat) = http_get(hport, "/stat?format=json");
    let stat = String::from_utf8_lossy(&stat).into_owned();
    assert!(
        stat.contains(r#""tracks":[{"type":"video","id":0"#),
        "{stat}"
    );
    assert!(
        stat.contains(
            r#"{"type":"video","id":1,"video":{"width":160,"height":120,"frame_rate":0,"codec":"H264""#
        ),
        "{stat}"
    );
    assert!(stat.contains(r#"{"type":"audio","id":1,"audio":{"codec":"AAC","profile":"LC","channels":1,"sample_rate":48000}"#), "{stat}");
    let (_, xml) = http_get(hport, "/stat");
    let xml = String::from_utf8_lossy(&xml).into_owned();
    assert!(
        xml.contains("<track><type>audio</type><id>1</id><codec>AAC</codec>"),
        "{xml}"
    );
    for (suffix, size, probe) in probes {
        let out = wait_for(probe, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), size, "ffprobe of mt-video{suffix}");
    }
    for p in publishers {
        wait_ok(p, "ffmpeg 9 publish");
    }
    for ((name, _, want, early, early_ff, own, own_out), (ff, ff_out, lown, lown_out)) in
        runs.into_iter().zip(late)
    {
        for c in [early, own, ff, lown] {
            wait_ok(c, "player");
        }
        for (what, out) in [("early ffmpeg 9", &early_ff), ("early sluice", &own_out)] {
            let got = same_tracks(&format!("{name} {what}"), out, &want);
            assert_eq!(packets(&got), packets(&want), "{name} {what}: every frame");
        }
        for (what, out) in [("late ffmpeg 9", &ff_out), ("late sluice", &lown_out)] {
            let got = same_tracks(&format!("{name} {what}"), out, &want);
            assert!(got.iter().all(|s| s.packets > 0), "{name} {what}: {got:?}");
        }
        // The recording keeps every track.
        let rec = media.path().join(format!("rec/{name}.flv"));
        let got = same_tracks(&format!("{name} record"), &rec, &want);
        assert_eq!(packets(&got), packets(&want), "{name} record: every frame");
        // HLS takes the default tracks: one video, one audio.
        let hls = media.path().join(format!("hls/{name}.m3u8"));
        assert_eq!(hls_codecs(&hls), ["aac", "h264"], "{name} HLS");
    }
    // Each rendition under its own name, with its own size: played live by
    // Debian's ffmpeg, recorded, and cut into HLS.
    wait_ok(debian, "Debian ffmpeg play of mt-video_1");
    let (flags, width) = first_video_packet(&rendition);
    assert!(flags.starts_with('K') && width == 160, "{flags} {width}");
    // A stream with one video track is not split.
    assert!(!media.path().join("rec/mt-audio_0.flv").exists());
    assert!(!stat.contains(r#""name":"mt-audio_0""#), "{stat}");
    for (suffix, width) in [("_0", 320), ("_1", 160)] {
        let rec = media.path().join(format!("rec/mt-video{suffix}.flv"));
        assert_eq!(
            first_video_packet(&rec).1,
            width,
            "record of mt-video{suffix}"
        );
        assert!(
            decode_errors(&rec).is_empty(),
            "mt-video{suffix}: {}",
            decode_errors(&rec)
        );
        let (v, a) = counts(&rec);
        assert_eq!(
            (v, a),
            (125, counts_audio(&two_video)),
            "mt-video{suffix}: every frame"
        );
        let hls = media.path().join(format!("hls/mt-video{suffix}.m3u8"));
        assert!(hls.exists(), "HLS of mt-video{suffix}");
        // on_record_done names the rendition and its file.
        let name = format!("mt-video{suffix}");
        let t = std::time::Instant::now();
        let done = loop {
            let found = hook
                .requests()
                .into_iter()
                .find(|r| r.get("name") == Some(name.as_str()));
            match found {
                Some(r) => break r,
                None if t.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                None => panic!("no on_record_done for {name}: {:?}", hook.requests()),
            }
        };
        assert_eq!(done.get("call"), Some("record_done"));
        assert_eq!(done.get("path"), rec.to_str());
    }
    drop(s);
}

/// The codecs ffprobe finds in an HLS playlist (it lists a variant's
/// streams once per program), each once.
fn hls_codecs(playlist: &Path) -> Vec<String> {
    let mut c: Vec<String> = probe_codecs(playlist.to_str().unwrap())
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    c.sort();
    c.dedup();
    c
}

fn counts_audio(src: &Path) -> u64 {
    ffmpeg9::probe(src)
        .iter()
        .find(|s| s.kind == "audio")
        .map_or(0, |s| s.packets)
}

/// A push relay carries every track: a multitrack publish on A, pushed to
/// B, reaches B's early and late players whole.
#[test]
fn a_push_relays_every_track() {
    let media = tempfile::tempdir().unwrap();
    let b = Server::start("");
    let a = Server::start(&format!("push rtmp://127.0.0.1:{}/live;", b.port));
    let src = ffmpeg9::multitrack(media.path(), "mt.flv", 4, true, true);
    let want = ffmpeg9::probe(&src);
    assert_eq!(want.len(), 4, "{want:?}");
    let early_out = media.path().join("early.flv");
    let early = ffmpeg9::play(&b.url("mt"), &early_out);
    std::thread::sleep(Duration::from_millis(500));
    let publisher = ffmpeg9::publish(&src, &a.url("mt"));
    std::thread::sleep(Duration::from_millis(2000));
    let late_out = media.path().join("late.flv");
    let late = ffmpeg9::play(&b.url("mt"), &late_out);
    wait_ok(publisher, "ffmpeg 9 publish to A");
    wait_ok(early, "early player on B");
    wait_ok(late, "late player on B");
    let got = same_tracks("early on B", &early_out, &want);
    assert_eq!(packets(&got), packets(&want), "early on B: every frame");
    let got = same_tracks("late on B", &late_out, &want);
    assert!(got.iter().all(|s| s.packets > 0), "late on B: {got:?}");
}
