//! `sluice check` and `sluice serve -c` on real configuration files.

mod common;

use std::process::Command;

use common::BIN;

fn check(path: &std::path::Path) -> (bool, String, String) {
    let o = Command::new(BIN)
        .args(["check", "-c"])
        .arg(path)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn real_world_nginx_conf_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nginx-real.conf");
    let (ok, out, err) = check(&path);
    assert!(ok, "{err}");
    assert!(out.contains("test is successful"));
    // one warning per ignored top-level directive, none from inside blocks
    for d in [
        "load_module",
        "user",
        "worker_processes",
        "error_log",
        "events",
    ] {
        assert_eq!(
            err.matches(&format!("\"{d}\" is outside rtmp")).count(),
            1,
            "warning for {d} in {err}"
        );
    }
    assert!(!err.contains("worker_connections"));
    // `pid` is read (sluice reload finds the process through it).
    assert!(!err.contains("\"pid\""), "{err}");
    // http {} is read: the directives Sluice does not serve are named.
    assert!(err.contains("\"sendfile\" in http {} is ignored"), "{err}");
    // ...and the /stat location is served, as nginx-rtmp serves it.
    assert!(!err.contains("rtmp_stat"), "{err}");
    let c = sluice::config::Config::load(&path).unwrap();
    assert_eq!(
        c.http[0].location("/stat").unwrap().stat,
        sluice::config::http::stat::ALL
    );
    assert_eq!(c.servers.len(), 2);
    assert_eq!(c.max_connections, Some(1000));
    let s = &c.servers[0];
    assert_eq!(s.core.chunk_size, 4000);
    assert_eq!(s.core.ping.as_secs(), 30);
    assert_eq!(s.core.max_message, 4 << 20);
    assert!(s.app("backstage").unwrap().interleave, "include applied");
    assert!(!s.app("backstage").unwrap().idle_streams);
    assert!(!c.servers[1].app("tv").unwrap().gop_cache);
}

#[test]
fn errors_name_file_and_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "rtmp {\n    server {\n        listen 1935;\n        application live {\n            live yes;\n            ssl_certificate /etc/cert.pem;\n            frobnicate on;\n        }\n        wait_key on;\n        chunk_size 4k;\n    }\n}\n",
    )
    .unwrap();
    let (ok, _, err) = check(&path);
    assert!(!ok);
    let p = path.display();
    assert!(
        err.contains(&format!("{p}:5: invalid value \"yes\" in \"live\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:6: \"ssl_certificate\" directive is not allowed in application {{}}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:7: unknown directive \"frobnicate\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:10: invalid value \"4k\" in \"chunk_size\"")),
        "{err}"
    );
    assert!(err.contains("test failed"));
    // serve refuses the same file
    let o = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn serve_runs_a_real_world_conf() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nginx-real.conf");
    let c = sluice::config::Config::load(&path).unwrap();
    let port = c.servers[1].listen[0].port().unwrap();
    let conf = std::fs::read_to_string(&path).unwrap();
    let srv = common::Server::with_config(
        &conf.replace(
            "sluice-extra.conf",
            &format!(
                "{}/tests/data/sluice-extra.conf",
                env!("CARGO_MANIFEST_DIR")
            ),
        ),
        port,
    );
    // both server blocks listen
    assert!(std::net::TcpStream::connect(("127.0.0.1", 19399)).is_ok());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(srv);
}
