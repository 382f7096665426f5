//! nginx's HTTP access rules on Sluice's own pages: `/control` and `/stat`
//! behind `allow`/`deny` (inherited from server{} and http{} as nginx does)
//! and behind `auth_basic` with an htpasswd file, alone and with
//! `satisfy any`. A drain through a refused `/control` must not happen.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

/// GET with an optional `Authorization: Basic` for `user:pw`.
fn get(port: u16, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let header = auth
        .map(|a| {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(a);
            format!("Authorization: Basic {b}\r\n")
        })
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n{header}\r\n").unwrap();
    let mut all = String::new();
    let _ = s.read_to_string(&mut all);
    let status = all
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, all)
}

#[test]
fn control_and_stat_behind_allow_deny_and_auth_basic() {
    let port = free_port();
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("htpasswd");
    // `openssl passwd -apr1 -salt Xy12Ab34 secret`, and {SHA} of "secret".
    std::fs::write(
        &users,
        "alice:$apr1$Xy12Ab34$BWlKFbErQ1qyOGAWVSn.f.\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
    )
    .unwrap();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
http {{
    deny 127.0.0.1;
    server {{
        listen 127.0.0.1:{http};
        location /control {{ rtmp_control all; }}
        location /stat {{ rtmp_stat all; allow 127.0.0.1; deny all; }}
        location /private {{
            rtmp_stat all;
            allow all;
            auth_basic \"Sluice admin\";
            auth_basic_user_file {users};
        }}
        location /either {{
            rtmp_stat all;
            satisfy any;
            deny all;
            auth_basic \"Sluice admin\";
            auth_basic_user_file {users};
        }}
    }}
}}",
        users = users.display()
    );
    let mut server = Server::with_config(&conf, port);

    // http{}'s deny reaches /control: a drain request is refused and
    // nothing drains.
    let (code, _) = get(http, "/control/drain", None);
    assert_eq!(code, 403);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.alive(),
        "a refused /control/drain drained the server"
    );
    assert!(!server.log().contains("drain"), "{}", server.log());

    // The location's own rules replace the inherited ones.
    let (code, body) = get(http, "/stat", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<rtmp>"));

    let (code, head) = get(http, "/private", None);
    assert_eq!(code, 401);
    let lower = head.to_lowercase();
    assert!(
        lower.contains("www-authenticate: basic realm=\"sluice admin\""),
        "{head}"
    );
    assert_eq!(get(http, "/private", Some("alice:wrong")).0, 401);
    assert_eq!(get(http, "/private", Some("nobody:secret")).0, 401);
    assert_eq!(get(http, "/private", Some("alice:secret")).0, 200);
    assert_eq!(get(http, "/private", Some("bob:secret")).0, 200);

    // satisfy any: the rules refuse this address, the password lets in.
    assert_eq!(get(http, "/either", None).0, 401);
    assert_eq!(get(http, "/either", Some("alice:secret")).0, 200);
}

#[test]
fn unimplemented_restrictions_refuse_the_config() {
    let dir = tempfile::tempdir().unwrap();
    for (what, body) in [
        (
            "auth_request",
            "location /stat { rtmp_stat all; auth_request /auth; }",
        ),
        (
            "if",
            "location /stat { rtmp_stat all; if ($remote_addr != 1.2.3.4) { return 403; } }",
        ),
        (
            "auth_basic",
            "location /stat { rtmp_stat all; auth_basic \"x\"; }",
        ),
    ] {
        let path = dir.path().join("c.conf");
        std::fs::write(
            &path,
            format!("rtmp {{ server {{ listen 1935; application live {{ live on; }} }} }}\nhttp {{ server {{ listen 8080; {body} }} }}\n"),
        )
        .unwrap();
        let (ok, err) = check_config(&path);
        assert!(!ok, "{what} loaded: {err}");
        assert!(
            err.contains(&format!("{}:2:", path.display())),
            "{what}: {err}"
        );
    }
}

/// `listen ... proxy_protocol` in http{}: the PROXY header's client is the
/// one `allow`/`deny` judge; a request without the header is not served.
#[test]
fn http_proxy_protocol_names_the_client_for_the_rules() {
    let port = free_port();
    let http = free_port();
    let conf = format!(
        "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
http {{ server {{ listen 127.0.0.1:{http} proxy_protocol;
    location /stat {{ rtmp_stat all; allow 10.1.2.3; deny all; }} }} }}"
    );
    let _server = Server::with_config(&conf, port);
    let ask = |header: &[u8]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(header).unwrap();
        s.write_all(b"GET /stat HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        let _ = s.read_to_string(&mut all);
        all.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(0)
    };
    assert_eq!(ask(b"PROXY TCP4 10.1.2.3 127.0.0.1 5000 80\r\n"), 200);
    assert_eq!(ask(b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n"), 403);
    assert_eq!(ask(b""), 0, "a request without a PROXY header was answered");
}

/// `listen ... ssl` in http{} with no certificate is an error naming the
/// server, as in nginx: nothing meant to be encrypted is served in clear.
#[test]
fn an_https_listener_needs_a_certificate() {
    let (port, plain, tls) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nginx.conf");
    std::fs::write(
        &path,
        format!(
            "rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}
http {{ server {{ listen 127.0.0.1:{tls} ssl; listen 127.0.0.1:{plain};
    location /stat {{ rtmp_stat all; }} }} }}"
        ),
    )
    .unwrap();
    let (ok, err) = check_config(&path);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "nginx.conf:2: no \"ssl_certificate\" and \"ssl_certificate_key\" are defined for the \"listen 127.0.0.1:{tls} ssl\" directive"
        )),
        "{err}"
    );
}
