//! A client RTMP connection on the same sans-IO [`Session`] the server
//! uses: handshake, `connect`, and the publish/play command sequences.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::rtmp::chunk::DecoderLimits;
use crate::rtmp::handshake::ClientHandshake;
use crate::rtmp::message::{csid, types};
use crate::rtmp::RtmpUrl;
use crate::rtmp::{Amf, Command, Message, Session, UserControl};

/// Chunk size we send with (what OBS and ffmpeg use).
const OUT_CHUNK_SIZE: usize = 4096;
/// How long the server may take to answer a command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection handed over to a caller that reads the socket itself
/// (`sluice bench`), with the state it needs to carry on.
pub struct Parts {
    pub sock: ClientSock,
    /// Bytes read but not yet decoded; they start at a chunk boundary.
    pub leftover: BytesMut,
    pub chunk_size: usize,
    pub peer_window: Option<u32>,
    pub received: u64,
}

/// The client's socket: plain TCP, or TLS over it (`rtmps://`).
pub enum ClientSock {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientSock {
    /// Reads what is there without waiting: `WouldBlock` when nothing is.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            ClientSock::Plain(s) => s.try_read_buf(buf),
            ClientSock::Tls(s) => {
                use std::task::{Context, Poll, Waker};
                use tokio::io::AsyncRead;
                let mut cx = Context::from_waker(Waker::noop());
                let mut tmp = [0u8; 16 * 1024];
                let mut rb = tokio::io::ReadBuf::new(&mut tmp);
                match std::pin::Pin::new(s.as_mut()).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        buf.extend_from_slice(rb.filled());
                        Ok(n)
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl tokio::io::AsyncRead for ClientSock {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientSock::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            ClientSock::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for ClientSock {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientSock::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            ClientSock::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientSock::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            ClientSock::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientSock::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            ClientSock::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub struct ClientConn {
    sock: ClientSock,
    session: Session,
    input: BytesMut,
    next_txn: f64,
    pub url: RtmpUrl,
    /// Message stream id from `createStream`.
    pub stream_id: u32,
    pub bytes_out: u64,
    /// The properties object of the server's `connect` result (fmsVer,
    /// capabilities, Enhanced RTMP `fourCcList`...).
    pub server_props: Amf,
}

impl ClientConn {
    /// Connects, handshakes and sends `connect` with `extra` fields added
    /// to the command object.
    pub async fn connect(url: &RtmpUrl, extra: Vec<(String, Amf)>) -> anyhow::Result<ClientConn> {
        Self::connect_trusting(url, extra, None).await
    }

    /// [`Self::connect`]; an `rtmps://` server is verified against the
    /// system's roots and `ca` (a relay's
    /// `rtmp_relay_ssl_trusted_certificate`; else the CLI's `--ca`).
    pub async fn connect_trusting(
        url: &RtmpUrl,
        extra: Vec<(String, Amf)>,
        ca: Option<&std::path::Path>,
    ) -> anyhow::Result<ClientConn> {
        let tcp = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(url.addr()))
            .await
            .map_err(|_| anyhow!("{}: connect timed out", url.addr()))?
            .with_context(|| format!("cannot connect to {}", url.addr()))?;
        tcp.set_nodelay(true)?;
        let sock = if url.tls {
            let config = super::tls::config(ca)?;
            let name = super::tls::server_name(&url.host)?;
            let tls = tokio::time::timeout(
                REPLY_TIMEOUT,
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
            )
            .await
            .map_err(|_| anyhow!("{}: TLS handshake timed out", url.addr()))?
            .with_context(|| format!("TLS handshake with {}", url.addr()))?;
            ClientSock::Tls(Box::new(tls))
        } else {
            ClientSock::Plain(tcp)
        };
        let mut c = ClientConn {
            sock,
            session: Session::new(DecoderLimits {
                max_message: 64 << 20,
                max_streams: 64,
                max_reassembly: 256 << 20,
            }),
            input: BytesMut::with_capacity(64 * 1024),
            next_txn: 1.0,
            url: url.clone(),
            stream_id: 0,
            bytes_out: 0,
            server_props: Amf::Null,
        };
        let mut hs = ClientHandshake::new();
        loop {
            let mut out = BytesMut::new();
            let done = hs.advance(&mut c.input, &mut out)?;
            if !out.is_empty() {
                c.sock.write_all(&out).await?;
            }
            if done {
                break;
            }
            c.read_more().await?;
        }
        c.session.set_chunk_size(OUT_CHUNK_SIZE);
        let mut props = vec![
            ("app".to_owned(), Amf::String(url.app.clone())),
            ("type".to_owned(), Amf::str("nonprivate")),
            (
                "flashVer".to_owned(),
                Amf::str("FMLE/3.0 (compatible; Sluice)"),
            ),
            ("tcUrl".to_owned(), Amf::String(url.tc_url())),
            ("fpad".to_owned(), Amf::Boolean(false)),
            ("capabilities".to_owned(), Amf::Number(15.0)),
            ("audioCodecs".to_owned(), Amf::Number(4071.0)),
            ("videoCodecs".to_owned(), Amf::Number(252.0)),
            ("videoFunction".to_owned(), Amf::Number(1.0)),
        ];
        props.extend(extra);
        let reply = c.call("connect", Amf::Object(props), vec![]).await?;
        if reply.name != "_result" {
            bail!("connect refused: {}", describe(&reply));
        }
        c.server_props = reply.object;
        Ok(c)
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let n = self.sock.read_buf(&mut self.input).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.session.note_received(n);
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.session.out.is_empty() {
            let out = self.session.take_output();
            self.bytes_out += out.len() as u64;
            self.sock.write_all(&out).await?;
        }
        Ok(())
    }

    /// Next message from the server, or `None` when it closed the
    /// connection. Pings are answered by the session on the way.
    pub async fn next_message(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            if let Some(m) = self.session.next_message(&mut self.input)? {
                return Ok(Some(m));
            }
            self.flush().await?;
            let n = self.sock.read_buf(&mut self.input).await?;
            if n == 0 {
                return Ok(None);
            }
            self.session.note_received(n);
        }
    }

    /// Handles whatever the server sent without waiting (acks, pings), so
    /// a publisher that only writes still answers pings.
    pub fn poll_incoming(&mut self) -> anyhow::Result<Vec<Message>> {
        let mut msgs = Vec::new();
        loop {
            match self.sock.try_read_buf(&mut self.input) {
                Ok(0) => bail!("server closed the connection"),
                Ok(n) => self.session.note_received(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        while let Some(m) = self.session.next_message(&mut self.input)? {
            msgs.push(m);
        }
        Ok(msgs)
    }

    /// Sends a command and waits for its `_result` or `_error`.
    pub async fn call(&mut self, name: &str, obj: Amf, args: Vec<Amf>) -> anyhow::Result<Command> {
        let txn = self.next_txn;
        self.next_txn += 1.0;
        self.session
            .send_command(0, &Command::new(name, txn, obj, args));
        self.flush().await?;
        let wait = async {
            loop {
                match self.next_message().await? {
                    None => bail!("server closed the connection while waiting for {name}"),
                    Some(Message::Command { command, .. })
                        if (command.name == "_result" || command.name == "_error")
                            && command.transaction == txn =>
                    {
                        return Ok(command);
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .map_err(|_| anyhow!("no reply to {name}"))?
    }

    pub async fn create_stream(&mut self) -> anyhow::Result<u32> {
        let r = self.call("createStream", Amf::Null, vec![]).await?;
        let id = r
            .arg_f64(0)
            .ok_or_else(|| anyhow!("createStream failed: {}", describe(&r)))?;
        self.stream_id = id as u32;
        Ok(self.stream_id)
    }

    /// Waits for an onStatus on our stream; `Ok(code)` for level status,
    /// an error carrying the code and description otherwise.
    async fn await_status(&mut self) -> anyhow::Result<String> {
        let wait = async {
            loop {
                match self.next_message().await? {
                    None => bail!("server closed the connection"),
                    Some(Message::Command { command, .. }) if command.name == "onStatus" => {
                        let info = command.args.first().cloned().unwrap_or(Amf::Null);
                        let code = info
                            .get("code")
                            .and_then(Amf::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        if info.get("level").and_then(Amf::as_str) == Some("error") {
                            bail!(
                                "{code}: {}",
                                info.get("description")
                                    .and_then(Amf::as_str)
                                    .unwrap_or_default()
                            );
                        }
                        return Ok(code);
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, wait)
            .await
            .map_err(|_| anyhow!("no onStatus from server"))?
    }

    /// The FMLE/OBS publish sequence.
    pub async fn publish(&mut self, name: &str, kind: &str) -> anyhow::Result<()> {
        let base = name.split('?').next().unwrap_or(name).to_owned();
        let txn = self.next_txn;
        self.next_txn += 2.0;
        self.session.send_command(
            0,
            &Command::new("releaseStream", txn, Amf::Null, vec![Amf::str(&base)]),
        );
        self.session.send_command(
            0,
            &Command::new("FCPublish", txn + 1.0, Amf::Null, vec![Amf::str(&base)]),
        );
        let sid = self.create_stream().await?;
        let cmd = Command::new(
            "publish",
            0.0,
            Amf::Null,
            vec![Amf::str(name), Amf::str(kind)],
        );
        self.session.send_command(sid, &cmd);
        self.flush().await?;
        loop {
            if self.await_status().await? == "NetStream.Publish.Start" {
                return Ok(());
            }
        }
    }

    /// Starts playing `name`; media follows through [`Self::next_message`].
    pub async fn play(&mut self, name: &str) -> anyhow::Result<()> {
        self.play_from(name, -2000.0, 3000).await
    }

    /// `play` with a start position (ms; negative: live).
    /// `play` from `start` ms, announcing a `buffer_ms` buffer in the same
    /// write: a buffer length sent later races the server's first batch of
    /// a file, which is sized by the buffer it knows.
    pub async fn play_from(
        &mut self,
        name: &str,
        start: f64,
        buffer_ms: u32,
    ) -> anyhow::Result<()> {
        let sid = self.create_stream().await?;
        let cmd = Command::new(
            "play",
            0.0,
            Amf::Null,
            vec![Amf::str(name), Amf::Number(start)],
        );
        self.session.send_command(sid, &cmd);
        self.session
            .send_user_control(UserControl::SetBufferLength {
                stream_id: sid,
                ms: buffer_ms,
            });
        self.flush().await
    }

    /// `seek` to `ms` on our stream.
    pub async fn seek(&mut self, ms: f64) -> anyhow::Result<()> {
        let cmd = Command::new("seek", 0.0, Amf::Null, vec![Amf::Number(ms)]);
        self.session.send_command(self.stream_id, &cmd);
        self.flush().await
    }

    /// `pause` (true) or resume (false) our stream.
    pub async fn pause(&mut self, on: bool) -> anyhow::Result<()> {
        let cmd = Command::new(
            "pause",
            0.0,
            Amf::Null,
            vec![Amf::Boolean(on), Amf::Number(0.0)],
        );
        self.session.send_command(self.stream_id, &cmd);
        self.flush().await
    }

    /// Asks the server for a different buffer length on our stream.
    pub fn set_buffer_length(&mut self, ms: u32) {
        self.session
            .send_user_control(UserControl::SetBufferLength {
                stream_id: self.stream_id,
                ms,
            });
    }

    /// Gives up the socket after writing what is queued. Meant to be called
    /// right after [`Self::play`], when no message is half decoded.
    pub fn into_parts(self) -> Parts {
        Parts {
            leftover: self.input,
            chunk_size: self.session.in_chunk_size(),
            peer_window: self.session.peer_window(),
            received: self.session.bytes_received(),
            sock: self.sock,
        }
    }

    /// Queues one audio, video or data message on our stream.
    pub fn queue_media(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) {
        let cs = match type_id {
            types::AUDIO => csid::AUDIO,
            types::VIDEO => csid::VIDEO,
            _ => csid::DATA,
        };
        self.session
            .send_raw(cs, timestamp, type_id, self.stream_id, payload);
    }

    /// Leaves without FCUnpublish/deleteStream, as Go Away asks, so the
    /// stream can be taken over elsewhere: flush what is queued, then FIN.
    pub async fn abandon(mut self) {
        let _ = self.flush().await;
        let _ = self.sock.shutdown().await;
    }

    /// Ends publishing the polite way (FCUnpublish, deleteStream).
    pub async fn unpublish(&mut self, name: &str) -> anyhow::Result<()> {
        let base = name.split('?').next().unwrap_or(name).to_owned();
        let txn = self.next_txn;
        self.next_txn += 2.0;
        self.session.send_command(
            0,
            &Command::new("FCUnpublish", txn, Amf::Null, vec![Amf::str(&base)]),
        );
        let sid = self.stream_id as f64;
        self.session.send_command(
            0,
            &Command::new("deleteStream", txn + 1.0, Amf::Null, vec![Amf::Number(sid)]),
        );
        self.flush().await?;
        let _ = self.sock.shutdown().await;
        Ok(())
    }
}

fn describe(c: &Command) -> String {
    let info = c.args.first().cloned().unwrap_or(Amf::Null);
    let code = info.get("code").and_then(Amf::as_str).unwrap_or("?");
    let desc = info.get("description").and_then(Amf::as_str).unwrap_or("");
    format!("{code} {desc}")
}

/// The info object of an `onStatus` command, if `m` is one.
pub fn status_code(m: &Message) -> Option<String> {
    match m {
        Message::Command { command, .. } if command.name == "onStatus" => command
            .args
            .first()
            .and_then(|i| i.get("code"))
            .and_then(Amf::as_str)
            .map(str::to_owned),
        _ => None,
    }
}
