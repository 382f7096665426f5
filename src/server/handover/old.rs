//! The old process's half of an upgrade (see the module above).

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::wire::{blocking, Channel, ListenAt, Msg};
use crate::config::Endpoint;
use crate::live::StreamKey;
use crate::node::drain::Signal;
use crate::node::handover::{Collector, ConnState, Reply, StreamState};
use crate::node::Shared;
use crate::server::reload::{Accepting, HttpServers};

/// How long the new process may take to connect and to be ready (load its
/// configuration, bind, reach the cluster registry).
const START: Duration = Duration::from_secs(30);
/// How long connections get to reach a command boundary, per phase. One
/// that does not (a notification still pending, a handshake under way)
/// stays here and is drained the usual way.
const PARK: Duration = Duration::from_secs(3);
/// A connection between commands answers within microseconds; once none
/// has for this long, the rest are busy, and everyone parked would only
/// wait for them (a client stalled in its handshake must not pause every
/// stream for [`PARK`]).
const QUIET: Duration = Duration::from_millis(250);

/// What to start, and the pid file to rename while both processes run.
#[derive(Debug, Clone)]
pub struct Upgrade {
    pub exe: PathBuf,
    pub args: Vec<OsString>,
    pub pid_file: Option<PathBuf>,
}

/// A request to upgrade; `done` answers whether the new process took over.
pub struct Request {
    pub upgrade: Upgrade,
    pub done: oneshot::Sender<bool>,
}

/// A connection parked for the move.
struct Parked {
    id: u64,
    /// Taken when sent.
    state: Option<Box<ConnState>>,
    fd: OwnedFd,
    verdict: oneshot::Sender<bool>,
}

/// Runs an upgrade. On success the new process serves every connection it
/// took and listens on every socket; this process stopped accepting and
/// is left with what did not move. On failure everything is as before.
pub async fn run(
    up: &Upgrade,
    shared: &Arc<Shared>,
    rtmp: &mut Accepting,
    http: &mut HttpServers,
) -> anyhow::Result<usize> {
    let path = std::env::temp_dir().join(format!("sluice-upgrade-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let mut child = tokio::process::Command::new(&up.exe)
        .args(&up.args)
        .env(super::ENV, &path)
        .spawn()
        .with_context(|| format!("cannot start {}", up.exe.display()))?;
    let pid = child.id().unwrap_or(0);
    info!(pid, exe = %up.exe.display(), "upgrade: new process started");
    let oldbin = up.pid_file.as_ref().map(|p| {
        let mut o = p.clone().into_os_string();
        o.push(".oldbin");
        (p.clone(), PathBuf::from(o))
    });
    if let Some((p, o)) = &oldbin {
        if let Err(e) = std::fs::rename(p, o) {
            warn!(
                "upgrade: cannot rename {} to {}: {e}",
                p.display(),
                o.display()
            );
        }
    }
    let mut parked = Vec::new();
    let r = transfer(&listener, &mut child, shared, rtmp, http, &mut parked).await;
    let _ = std::fs::remove_file(&path);
    match r {
        Ok(refused) => {
            let mut taken = 0;
            for p in parked {
                let took = !refused.contains(&p.id);
                taken += took as usize;
                let _ = p.verdict.send(took);
            }
            http.stop().await;
            info!(
                pid,
                connections = taken,
                kept = refused.len(),
                "upgrade: the new process took over; this one stops accepting"
            );
            Ok(taken)
        }
        Err(e) => {
            // Nobody moved: everyone parked goes on here.
            for p in parked {
                let _ = p.verdict.send(false);
            }
            rtmp.resume(shared);
            let _ = child.start_kill();
            if let Some((p, o)) = &oldbin {
                let _ = std::fs::rename(o, p);
            }
            error!("upgrade failed, this process goes on serving everything: {e:#}");
            Err(e)
        }
    }
}

/// Steps 1 to 6; returns the ids the new process refused.
async fn transfer(
    listener: &tokio::net::UnixListener,
    child: &mut tokio::process::Child,
    shared: &Arc<Shared>,
    rtmp: &mut Accepting,
    http: &HttpServers,
    parked: &mut Vec<Parked>,
) -> anyhow::Result<Vec<u64>> {
    let sock = tokio::select! {
        a = listener.accept() => a.context("upgrade socket")?.0,
        s = child.wait() => anyhow::bail!("the new process exited ({})", status(s)),
        _ = tokio::time::sleep(START) => anyhow::bail!("the new process did not connect within {START:?}"),
    };
    let sock = sock.into_std()?;
    sock.set_nonblocking(false)?;
    let ch = Arc::new(Channel::new(sock));
    ch.set_timeout(Some(START))?;
    let (hello, _) = blocking(&ch, |ch| ch.recv()).await?;
    let Msg::Hello { pid, version } = hello else {
        anyhow::bail!("expected hello, got {hello:?}");
    };
    info!(pid, version, "upgrade: new process connected");

    // 1. the listening sockets
    {
        let rtmp_socks = rtmp.sockets();
        let http_socks = http.sockets();
        let mut fds: Vec<OwnedFd> = Vec::new();
        let mut at = Vec::new();
        for (e, _proxy, fd) in &rtmp_socks {
            at.push(match e {
                Endpoint::Tcp(a) => ListenAt::Tcp(*a),
                Endpoint::Unix(p) => ListenAt::Unix(p.clone()),
            });
            fds.push(fd.try_clone_to_owned()?);
        }
        let mut addrs = Vec::new();
        for (a, fd) in &http_socks {
            addrs.push(*a);
            fds.push(fd.try_clone_to_owned()?);
        }
        let msg = Msg::Listeners {
            rtmp: at,
            http: addrs,
            next_id: shared.next_id(),
        };
        blocking(&ch, move |ch| {
            let b: Vec<BorrowedFd> = fds.iter().map(|f| f.as_fd()).collect();
            ch.send(&msg, &b)
        })
        .await?;
    }
    // 2. ready?
    match blocking(&ch, |ch| ch.recv()).await? {
        (Msg::Ready, _) => {}
        (Msg::Failed { reason }, _) => anyhow::bail!("the new process could not start: {reason}"),
        (m, _) => anyhow::bail!("expected ready, got {m:?}"),
    }
    rtmp.pause().await;
    let started = Instant::now();

    // 3. publishers and everyone not playing
    let ids = shared.drain.ids();
    let (tx, mut rx) = mpsc::unbounded_channel();
    for id in &ids {
        let c = Collector {
            tx: tx.clone(),
            players: false,
        };
        shared.drain.post(*id, Signal::Handover(c));
    }
    let mut players = Vec::new();
    collect(&mut rx, ids.len(), parked, &mut players).await;
    let first = parked.len();

    // 4. players whose stream no longer gets frames here
    let moved: HashSet<u64> = parked.iter().map(|p| p.id).collect();
    let all: HashSet<u64> = ids.iter().copied().collect();
    let mut asked = 0;
    for (id, key) in players {
        let stream = shared.registry.get(&key);
        let publisher = stream.as_ref().and_then(|s| s.publisher());
        // A publisher that stayed here (still connected) keeps its players
        // here too; a pull's stream (not a connection) starts again there.
        if publisher.is_some_and(|p| all.contains(&p) && !moved.contains(&p)) {
            continue;
        }
        let c = Collector {
            tx: tx.clone(),
            players: true,
        };
        if shared.drain.post(id, Signal::Handover(c)) {
            asked += 1;
        }
    }
    drop(tx);
    collect(&mut rx, asked, parked, &mut Vec::new()).await;
    let pause_ms = started.elapsed().as_millis() as u64;
    info!(
        publishers_and_others = first,
        players = parked.len() - first,
        left = ids.len() - parked.len(),
        pause_ms,
        "upgrade: connections parked"
    );

    // 5. streams, then connections
    let mut keys: Vec<StreamKey> = Vec::new();
    for st in parked.iter().filter_map(|p| p.state.as_ref()) {
        if let (Some(pb), Some(c)) = (&st.publishing, &st.connected) {
            keys.push(StreamKey {
                server: st.server,
                app: c.app_name.clone(),
                name: pb.name.clone(),
            });
        }
    }
    for key in keys {
        let Some(stream) = shared.registry.get(&key) else {
            continue;
        };
        let (who, age, frames) = stream.export();
        let Some(who) = who else { continue };
        let st = StreamState {
            server: key.server,
            app: key.app,
            name: key.name,
            publisher: who.id,
            publisher_addr: who.addr,
            age_ms: age.map(|a| a.as_millis() as u64),
            frames: frames
                .iter()
                .map(|f| crate::server::resume::frame_to_state(f))
                .collect(),
        };
        blocking(&ch, move |ch| ch.send(&Msg::Stream(Box::new(st)), &[])).await?;
    }
    for p in parked.iter_mut() {
        let fd = p.fd.try_clone()?;
        let Some(state) = p.state.take() else {
            continue;
        };
        blocking(&ch, move |ch| ch.send(&Msg::Conn(state), &[fd.as_fd()])).await?;
    }
    blocking(&ch, |ch| ch.send(&Msg::End, &[])).await?;

    // 6. what did it take?
    match blocking(&ch, |ch| ch.recv()).await? {
        (Msg::Accepted { refused }, _) => Ok(refused),
        (m, _) => anyhow::bail!("expected the answer, got {m:?}"),
    }
}

/// Takes replies until `want` came, [`PARK`] passed, or none came for
/// [`QUIET`].
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Reply>,
    want: usize,
    parked: &mut Vec<Parked>,
    players: &mut Vec<(u64, StreamKey)>,
) {
    let deadline = Instant::now() + PARK;
    let mut got = 0;
    while got < want {
        let until = deadline.min(Instant::now() + QUIET);
        let r = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::time::sleep_until(until) => None,
        };
        let Some(r) = r else { break };
        got += 1;
        match r {
            Reply::Handed { state, fd, verdict } => parked.push(Parked {
                id: state.id,
                state: Some(state),
                fd,
                verdict,
            }),
            Reply::Skip { id, stream } => {
                if let Some(k) = stream {
                    players.push((id, k));
                }
            }
        }
    }
}

fn status(s: std::io::Result<std::process::ExitStatus>) -> String {
    match s {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    }
}
