//! systemd's readiness protocol (`Type=notify`): a datagram of `KEY=VALUE`
//! lines to the socket `NOTIFY_SOCKET` names, when it is set. Sluice sends
//! `READY=1` once it listens, `RELOADING=1` (with `MONOTONIC_USEC`) and
//! `READY=1` around a reload, and `STOPPING=1` when it starts draining.
//! Without `NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` to the service manager, if there is one. Errors are
/// logged at debug level: readiness must never stop the server.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = (|| -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::debug!("sd_notify {state:?}: {e}");
    }
}

/// `RELOADING=1` with the monotonic time systemd asks for.
pub fn reloading() {
    let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0);
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}
