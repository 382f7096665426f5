//! One playing connection to another server, reduced to what a pull needs:
//! media, or the end of the upstream stream.
//!
//! The connection is read by its own task and its events come through a
//! bounded channel: a pull waits on several things at once (its upstream,
//! the next upstream, a timer), and a channel receive can be cancelled
//! safely where a half-written acknowledgement on the socket could not.

use anyhow::Context;

use crate::client::conn::{status_code, ClientConn};
use crate::client::RtmpUrl;
use crate::rtmp::{Amf, Message, UserControl};

pub enum Event {
    Media(Message),
    /// The upstream stream or connection ended; why, for the log.
    Ended(String),
}

struct Upstream {
    conn: ClientConn,
}

/// A running upstream; dropping it closes the connection.
pub struct Handle {
    pub url: RtmpUrl,
    pub rx: tokio::sync::mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Handle {
    /// The next event; an ended reader reads as the end.
    pub async fn next(&mut self) -> Event {
        self.rx
            .recv()
            .await
            .unwrap_or_else(|| Event::Ended("upstream reader stopped".into()))
    }
}

/// Connects, plays `url`, and starts reading it.
pub async fn start(
    url: &RtmpUrl,
    extra: Vec<(String, Amf)>,
    ca: Option<&std::path::Path>,
    buffer_ms: u32,
) -> anyhow::Result<Handle> {
    let mut up = Upstream::open(url, extra, ca, buffer_ms).await?;
    // About two seconds of a busy stream: enough to ride out a slow
    // consumer turn, small enough to bound a stalled pull's memory.
    let (tx, rx) = tokio::sync::mpsc::channel(512);
    let task = tokio::spawn(async move {
        loop {
            let ev = up.next().await;
            let end = matches!(ev, Event::Ended(_));
            if tx.send(ev).await.is_err() || end {
                break;
            }
        }
        up.conn.abandon().await;
    });
    Ok(Handle {
        url: url.clone(),
        rx,
        task,
    })
}

impl Upstream {
    /// Connects and plays `url`. `extra` goes into the connect object
    /// (tcUrl, pageUrl... from the directive); `buffer_ms` is the buffer
    /// length asked for.
    async fn open(
        url: &RtmpUrl,
        extra: Vec<(String, Amf)>,
        ca: Option<&std::path::Path>,
        buffer_ms: u32,
    ) -> anyhow::Result<Upstream> {
        let mut conn = ClientConn::connect_trusting(url, extra, ca)
            .await
            .with_context(|| format!("relay connect to {}", url.addr()))?;
        conn.play(&url.stream).await?;
        if buffer_ms > 0 {
            conn.set_buffer_length(buffer_ms);
        }
        Ok(Upstream { conn })
    }

    /// The next media message, or the end.
    async fn next(&mut self) -> Event {
        loop {
            let m = match self.conn.next_message().await {
                Ok(Some(m)) => m,
                Ok(None) => return Event::Ended("upstream closed the connection".into()),
                Err(e) => return Event::Ended(format!("upstream error: {e:#}")),
            };
            match &m {
                Message::Audio { .. } | Message::Video { .. } | Message::Data { .. } => {
                    return Event::Media(m)
                }
                Message::UserControl(UserControl::StreamEof(_)) => {
                    return Event::Ended("upstream stream ended".into())
                }
                Message::Command { .. } => match status_code(&m).as_deref() {
                    Some("NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop") => {
                        return Event::Ended("upstream stream ended".into())
                    }
                    Some(code) if code.contains("NotFound") || code.contains("Failed") => {
                        return Event::Ended(format!("upstream refused play: {code}"))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}
