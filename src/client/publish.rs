//! `sluice publish`: sends an FLV file or stdin to a server, paced by the
//! tags' timestamps so a file plays out in real time.

use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::conn::ClientConn;
use super::url::RtmpUrl;
use crate::flv::{FlvParser, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::rtmp::amf;
use crate::rtmp::message::types;
use crate::rtmp::Amf;

#[derive(Debug, Default, Clone)]
pub struct PublishStats {
    pub frames: u64,
    pub bytes: u64,
}

/// Publishes the FLV read from `input` to `url`.
pub async fn publish<R: AsyncRead + Unpin>(
    mut input: R,
    url: &str,
    pace: bool,
) -> anyhow::Result<PublishStats> {
    let url = RtmpUrl::parse(url).map_err(anyhow::Error::msg)?;
    let mut conn = ClientConn::connect(&url, vec![]).await?;
    conn.publish(&url.stream, "live").await?;
    let mut parser = FlvParser::new();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut stats = PublishStats::default();
    let start = tokio::time::Instant::now();
    let mut first_ts: Option<u32> = None;
    loop {
        let tag = match parser.next_tag(&mut buf).context("reading FLV input")? {
            Some(t) => t,
            None => {
                conn.flush().await?;
                if input.read_buf(&mut buf).await? == 0 {
                    break;
                }
                continue;
            }
        };
        if pace {
            let base = *first_ts.get_or_insert(tag.timestamp);
            let due = start + Duration::from_millis(tag.timestamp.wrapping_sub(base) as u64);
            if due > tokio::time::Instant::now() {
                conn.flush().await?;
                tokio::time::sleep_until(due).await;
            }
        }
        conn.poll_incoming()?;
        match tag.tag_type {
            TAG_AUDIO => conn.queue_media(types::AUDIO, tag.timestamp, &tag.data),
            TAG_VIDEO => conn.queue_media(types::VIDEO, tag.timestamp, &tag.data),
            TAG_SCRIPT => {
                let data = set_data_frame(&tag.data);
                conn.queue_media(types::DATA_AMF0, tag.timestamp, &data);
                continue;
            }
            _ => continue,
        }
        stats.frames += 1;
        stats.bytes += tag.data.len() as u64;
    }
    conn.unpublish(&url.stream).await?;
    Ok(stats)
}

/// Script tags carry `onMetaData`; RTMP publishers send it behind
/// `@setDataFrame` so the server keeps it for late joiners.
fn set_data_frame(data: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    amf::encode(&Amf::str("@setDataFrame"), &mut out);
    out.extend_from_slice(data);
    out.freeze()
}
