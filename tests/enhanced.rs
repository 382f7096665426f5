//! Enhanced RTMP (HEVC via the ExVideoTagHeader) through the server. The
//! ffmpeg in Debian 12 (5.1) cannot mux HEVC into FLV, so the publisher is
//! Sluice's client sending a synthetic `hvc1` FLV.

mod common;

use std::io::Cursor;
use std::time::Duration;

use bytes::BytesMut;
use sluice::client::conn::ClientConn;
use sluice::client::{publish, RtmpUrl};
use sluice::flv;
use sluice::rtmp::{Amf, Message};

/// hvc1 at 25 fps, keyframe every 25 frames (CodedFramesX), inter frames
/// (CodedFrames), preceded by a SequenceStart; 3 s.
fn hevc_flv() -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&flv::file_header(false, true));
    flv::write_tag(
        flv::TAG_VIDEO,
        0,
        &[0x90, b'h', b'v', b'c', b'1', 1, 2, 3],
        &mut out,
    );
    for i in 0..75u32 {
        let key = i % 25 == 0;
        let mut body = if key {
            vec![0x93, b'h', b'v', b'c', b'1']
        } else {
            vec![0xa1, b'h', b'v', b'c', b'1', 0, 0, 0]
        };
        body.extend_from_slice(&i.to_be_bytes());
        body.resize(800, 0xEE);
        flv::write_tag(flv::TAG_VIDEO, i * 40, &body, &mut out);
    }
    out.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_passes_through_and_late_joiner_starts_decodable() {
    let (addr, _) = common::in_process().await;
    let url = format!("rtmp://{addr}/live/hevc");

    // The connect result advertises what is forwarded when asked.
    let u = RtmpUrl::parse(&url).unwrap();
    let probe = ClientConn::connect(
        &u,
        vec![(
            "fourCcList".into(),
            Amf::StrictArray(vec![Amf::str("hvc1")]),
        )],
    )
    .await
    .unwrap();
    let list = probe
        .server_props
        .get("fourCcList")
        .cloned()
        .expect("fourCcList in result");
    let Amf::StrictArray(items) = list else {
        panic!("{list:?}")
    };
    for f in ["hvc1", "av01", "vp09"] {
        assert!(items.contains(&Amf::str(f)), "{f} advertised");
    }
    drop(probe);

    let publisher = tokio::spawn({
        let url = url.clone();
        async move { publish::publish(Cursor::new(hevc_flv()), &[url], true).await }
    });
    // Join mid-GOP (frame ~37 of 75: the last keyframe was frame 25).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut player = ClientConn::connect(&u, vec![]).await.unwrap();
    player.play(&u.stream).await.unwrap();
    let mut video = Vec::new();
    while video.len() < 5 {
        match tokio::time::timeout(Duration::from_secs(5), player.next_message()).await {
            Ok(Ok(Some(Message::Video { payload, .. }))) => video.push(payload),
            Ok(Ok(Some(_))) => {}
            other => panic!("player stopped: {other:?}"),
        }
    }
    let first = flv::video_info(&video[0]).unwrap();
    assert!(
        first.sequence_header && first.fourcc == Some(*b"hvc1"),
        "SequenceStart first"
    );
    let second = flv::video_info(&video[1]).unwrap();
    assert!(second.keyframe, "then a keyframe from the GOP cache");
    // payloads arrive byte for byte: the frame index after the 5-byte header
    assert_eq!(
        &video[1][5..9],
        &25u32.to_be_bytes(),
        "the latest keyframe, frame 25"
    );
    let n = u32::from_be_bytes(video[2][8..12].try_into().unwrap());
    assert_eq!(n, 26, "followed by the frames after it, in order");
    publisher.await.unwrap().unwrap();
}
