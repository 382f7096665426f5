//! Replays a byte capture of a real ffmpeg 5.1 publish session (client to
//! server: handshake, connect, publish, 1.5 s of 10 fps H.264 + AAC, then
//! FCUnpublish/deleteStream) into the sans-IO core, in uneven pieces, and
//! checks every event the server would act on.
//!
//! The capture was made with:
//! `ffmpeg -re -f lavfi -i testsrc=size=160x120:rate=10 -f lavfi -i sine=sample_rate=22050
//!  -t 1.5 -c:v libx264 -g 10 -c:a aac -f flv rtmp://127.0.0.1:PORT/live/cap` through a
//! recording TCP proxy.

use bytes::BytesMut;
use sluice::flv;
use sluice::rtmp::chunk::DecoderLimits;
use sluice::rtmp::handshake::ServerHandshake;
use sluice::rtmp::{Amf, Message, Session};

const CAPTURE: &[u8] = include_bytes!("data/ffmpeg_publish.bin");

fn replay(piece: usize) -> Vec<Message> {
    let mut hs = ServerHandshake::new();
    let mut session = Session::new(DecoderLimits::default());
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut done = false;
    let mut msgs = Vec::new();
    for chunk in CAPTURE.chunks(piece) {
        input.extend_from_slice(chunk);
        if !done {
            done = hs.advance(&mut input, &mut out).expect("handshake");
            if !done {
                continue;
            }
            assert!(hs.digest, "ffmpeg uses the digest handshake");
        }
        session.note_received(chunk.len());
        while let Some(m) = session.next_message(&mut input).expect("valid session") {
            msgs.push(m);
        }
    }
    assert!(input.is_empty(), "{} bytes left undecoded", input.len());
    msgs
}

#[test]
fn ffmpeg_publish_capture_decodes_identically_in_any_pieces() {
    let reference = replay(CAPTURE.len());
    for piece in [1, 7, 128, 1500, 4096] {
        assert_eq!(replay(piece), reference, "piece size {piece}");
    }
}

#[test]
fn ffmpeg_publish_capture_events() {
    let msgs = replay(1000);
    let commands: Vec<&str> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Command { command, .. } => Some(command.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        commands,
        [
            "connect",
            "releaseStream",
            "FCPublish",
            "createStream",
            "publish",
            "FCUnpublish",
            "deleteStream"
        ]
    );
    let Message::Command {
        command: connect, ..
    } = &msgs
        .iter()
        .find(|m| matches!(m, Message::Command { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert_eq!(connect.object.get("app"), Some(&Amf::str("live")));
    assert!(connect
        .object
        .get("flashVer")
        .and_then(Amf::as_str)
        .unwrap()
        .starts_with("FMLE/3.0 (compatible; Lavf"));
    assert_eq!(
        connect.object.get("tcUrl").and_then(Amf::as_str),
        Some("rtmp://127.0.0.1:19351/live")
    );
    let publish = msgs
        .iter()
        .find_map(|m| match m {
            Message::Command { command, stream_id } if command.name == "publish" => {
                Some((command, *stream_id))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(publish.0.arg_str(0), Some("cap"));
    assert_eq!(publish.0.arg_str(1), Some("live"));
    assert_eq!(publish.1, 1);

    assert!(msgs.iter().any(|m| matches!(m, Message::SetChunkSize(_))));
    let meta = msgs.iter().find_map(|m| match m {
        Message::Data { values, .. } => Some(values),
        _ => None,
    });
    let meta = meta.expect("metadata");
    assert_eq!(meta[0], Amf::str("@setDataFrame"));
    assert_eq!(meta[1], Amf::str("onMetaData"));
    assert_eq!(meta[2].get("width"), Some(&Amf::Number(160.0)));

    let video: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Video { payload, .. } => Some((flv::video_info(payload).unwrap(), payload[1])),
            _ => None,
        })
        .collect();
    assert!(video[0].0.sequence_header && video[0].0.keyframe);
    // AVC packet type 1 = coded frames; ffmpeg ends with one type-2 EOS tag
    let coded: Vec<_> = video.iter().filter(|v| v.1 == 1).collect();
    assert_eq!(coded.len(), 15, "1.5 s at 10 fps");
    assert_eq!(
        coded.iter().filter(|v| v.0.keyframe).count(),
        2,
        "GOP of 10"
    );
    assert_eq!(video.last().map(|v| (v.1, v.0.keyframe)), Some((2, false)));
    let audio: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Audio { payload, .. } => Some(flv::audio_info(payload).unwrap()),
            _ => None,
        })
        .collect();
    assert!(audio[0].sequence_header);
    assert!(audio.len() > 30, "about 1.5 s of 22.05 kHz AAC");
}
