//! nginx's `allow`/`deny` and `auth_basic` for the HTTP side, so a config
//! that locked `/control` or `/stat` down keeps it locked.
//!
//! Password files are htpasswd files, read at each request as nginx reads
//! them (an edit applies at once). Entries may be bcrypt (`$2y$`, `$2a$`,
//! `$2b$`), Apache MD5 (`$apr1$`), the crypt family (`$1$`, `$5$`, `$6$`,
//! DES), `{SHA}`, `{SSHA}` or `{PLAIN}`. bcrypt and crypt come from the
//! `pwhash` crate; `$apr1$` and `{SHA}` are a few lines over the RustCrypto
//! MD5 and SHA-1 primitives (the one htpasswd crate depends on the
//! unmaintained `rust-crypto`).

use std::net::IpAddr;
use std::path::Path;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use md5::{Digest, Md5};
use sha1::Sha1;

use crate::config::http::Guard;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// MD5-crypt with Apache's `$apr1$` magic (the FreeBSD algorithm).
fn apr1(pw: &[u8], salt: &[u8]) -> String {
    let magic = b"$apr1$";
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic);
    ctx.update(salt);
    let alt = Md5::new()
        .chain_update(pw)
        .chain_update(salt)
        .chain_update(pw)
        .finalize();
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    let mut out = String::from("$apr1$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]),
            4,
        );
    }
    put(u32::from(fin[11]), 2);
    out
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `pw` matches an htpasswd `hash`.
pub fn verify(hash: &str, pw: &str) -> bool {
    if let Some(rest) = hash.strip_prefix("$apr1$") {
        let salt = rest.split('$').next().unwrap_or_default();
        let salt = &salt.as_bytes()[..salt.len().min(8)];
        return same(apr1(pw.as_bytes(), salt).as_bytes(), hash.as_bytes());
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let d = Sha1::digest(pw.as_bytes());
        return same(B64.encode(d).as_bytes(), b64.as_bytes());
    }
    if let Some(b64) = hash.strip_prefix("{SSHA}") {
        let Ok(raw) = B64.decode(b64) else {
            return false;
        };
        if raw.len() < 20 {
            return false;
        }
        let (digest, salt) = raw.split_at(20);
        let d = Sha1::new()
            .chain_update(pw.as_bytes())
            .chain_update(salt)
            .finalize();
        return same(&d, digest);
    }
    if let Some(plain) = hash.strip_prefix("{PLAIN}") {
        return same(plain.as_bytes(), pw.as_bytes());
    }
    if hash.starts_with("$2") {
        return pwhash::bcrypt::verify(pw, hash);
    }
    pwhash::unix::verify(pw, hash)
}

/// Whether `user`/`pw` match an entry of an htpasswd file's text.
pub fn check_file(text: &str, user: &str, pw: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .find(|(u, _)| *u == user)
        .is_some_and(|(_, h)| {
            // htpasswd may add `:comment` fields after the hash.
            let h = h.split(':').next().unwrap_or_default().trim_end();
            verify(h, pw)
        })
}

/// `Authorization: Basic ...` as (user, password).
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = B64.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Applies a location's guard to a request: `None` lets it through, else
/// the refusal (403 for `deny`, 401 with a challenge for `auth_basic`).
pub async fn check(guard: &Guard, peer: IpAddr, headers: &HeaderMap) -> Option<Response> {
    let permitted = crate::config::access::permits_any(&guard.rules, peer);
    // `satisfy any`: an address the rules allow needs no password.
    if guard.any && permitted && !guard.rules.is_empty() {
        return None;
    }
    let password_may_do = guard.any && guard.basic.is_some();
    if !(permitted || password_may_do) {
        tracing::warn!(%peer, "http: access forbidden by rule");
        return Some(StatusCode::FORBIDDEN.into_response());
    }
    let (realm, file) = guard.basic.as_ref()?;
    let ok = match credentials(headers) {
        Some((user, pw)) => match read(file).await {
            Ok(text) => check_file(&text, &user, &pw),
            Err(e) => {
                tracing::warn!(file = %file.display(), "auth_basic_user_file: {e}");
                return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
        },
        None => false,
    };
    if ok {
        return None;
    }
    let challenge = format!("Basic realm=\"{}\"", realm.replace('"', ""));
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Some(r)
}

async fn read(file: &Path) -> std::io::Result<String> {
    tokio::fs::read_to_string(file).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_entries_of_every_kind() {
        // `openssl passwd -apr1 -salt Xy12Ab34 secret`
        assert!(verify("$apr1$Xy12Ab34$BWlKFbErQ1qyOGAWVSn.f.", "secret"));
        assert!(!verify("$apr1$Xy12Ab34$BWlKFbErQ1qyOGAWVSn.f.", "Secret"));
        // base64(sha1("secret"))
        assert!(verify("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret"));
        assert!(!verify("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secrets"));
        // OpenBSD's bcrypt test vector.
        let b = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(verify(b, "U*U"));
        assert!(!verify(b, "U*V"));
        assert!(verify("{PLAIN}pw", "pw"));
        let file = "# admins\nalice:$apr1$Xy12Ab34$BWlKFbErQ1qyOGAWVSn.f.\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=:Bob\n";
        assert!(check_file(file, "alice", "secret"));
        assert!(check_file(file, "bob", "secret"));
        assert!(!check_file(file, "carol", "secret"));
        assert!(!check_file(file, "alice", ""));
    }
}
