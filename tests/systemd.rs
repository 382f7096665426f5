//! systemd's readiness protocol, with a socket of our own standing in for
//! systemd: READY=1 once Sluice listens, RELOADING=1 (with MONOTONIC_USEC)
//! then READY=1 around a reload, STOPPING=1 when a drain starts.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_reloading_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = free_port();
    let conf = dir.path().join("sluice.conf");
    std::fs::write(
        &conf,
        format!("rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&conf)
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(next(&sock), "READY=1");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "READY before listening"
    );
    let pid = child.id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let reloading = next(&sock);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    let usec: u64 = reloading.rsplit('=').next().unwrap().parse().unwrap();
    assert!(usec > 0);
    assert_eq!(next(&sock), "READY=1");
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert_eq!(next(&sock), "STOPPING=1");
    let st = child.wait().unwrap();
    assert!(st.success());
}

/// After a binary upgrade the new process names itself with MAINPID= (so
/// systemd follows the service to it), and the old one, leaving, does not
/// say STOPPING=1: the service goes on.
#[test]
fn an_upgrade_announces_the_new_main_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = free_port();
    let conf = dir.path().join("sluice.conf");
    std::fs::write(
        &conf,
        format!("rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}"),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&conf)
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(next(&sock), "READY=1");
    Command::new("kill")
        .args(["-USR2", &child.id().to_string()])
        .status()
        .unwrap();
    let msg = next(&sock);
    let new_pid: u32 = msg
        .strip_prefix("MAINPID=")
        .and_then(|r| r.strip_suffix("\nREADY=1"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("expected MAINPID=N and READY=1, got {msg:?}"));
    assert_ne!(new_pid, child.id());
    let st = child.wait().unwrap();
    assert!(st.success(), "old process: {st}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the new process listens"
    );
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(
        sock.recv(&mut buf).is_err(),
        "nothing more from the old one"
    );
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    Command::new("kill")
        .args(["-TERM", &new_pid.to_string()])
        .status()
        .unwrap();
    assert_eq!(next(&sock), "STOPPING=1");
}
