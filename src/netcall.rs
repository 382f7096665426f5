//! HTTP notifications, call for call as nginx-rtmp sends them.
//!
//! Field names, order and escaping follow nginx-rtmp's notify module
//! (lowercase `flashver`, `swfurl`, `tcurl`, `pageurl`; `clientid` on every
//! call but connect; the client's own `?args` appended raw). Answers are
//! read the same way: 2xx continues, 3xx redirects through `Location`,
//! anything else (or a timeout, or no answer) rejects.
//!
//! Where nginx-rtmp is weak Sluice differs without breaking compatibility:
//! values are never truncated, `done`/`disconnect` calls carry `bytes_in`
//! and `bytes_out`, and requests go through one pooled keep-alive client
//! (with rustls for https) instead of a new TCP connection per call. Each
//! call runs in its own task, so a slow hook server only delays the command
//! that waits for it.

use std::time::Duration;

use tracing::{debug, warn};

use crate::config::NotifyMethod;

/// The answer of a checked notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Continue,
    /// 3xx with this `Location`.
    Redirect(String),
    /// Why: `HTTP 403`, `timeout after 10s`, `unreachable: ...`.
    Reject(String),
}

/// An `application/x-www-form-urlencoded` body built field by field.
#[derive(Debug, Default, Clone)]
pub struct Form(String);

/// Escapes a value the way nginx's `ngx_escape_uri(NGX_ESCAPE_ARGS)` does:
/// controls, space, non-ASCII and ``"#%&'+;<>?`` become `%XX`.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b <= 0x20 || b >= 0x7f || b"\"#%&'+;<>?".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn field(mut self, key: &str, value: &str) -> Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&escape(value));
        self
    }

    /// Appends the client's own `a=b&c=d` string unescaped, as nginx does.
    pub fn raw(mut self, args: &str) -> Self {
        if !args.is_empty() {
            if !self.0.is_empty() {
                self.0.push('&');
            }
            self.0.push_str(args);
        }
        self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What every call but `connect` starts with.
#[derive(Debug, Clone, Default)]
pub struct SessionFields {
    pub app: String,
    pub flashver: String,
    pub swfurl: String,
    pub tcurl: String,
    pub pageurl: String,
    pub addr: String,
    pub clientid: u64,
}

impl SessionFields {
    pub fn form(&self) -> Form {
        Form::new()
            .field("app", &self.app)
            .field("flashver", &self.flashver)
            .field("swfurl", &self.swfurl)
            .field("tcurl", &self.tcurl)
            .field("pageurl", &self.pageurl)
            .field("addr", &self.addr)
            .field("clientid", &self.clientid.to_string())
    }
}

/// One HTTP call to make.
#[derive(Debug, Clone)]
pub struct Call {
    pub url: String,
    pub method: NotifyMethod,
    pub timeout: Duration,
    pub form: Form,
    /// `call=` value, for logs.
    pub name: &'static str,
}

/// The shared HTTP client.
#[derive(Clone)]
pub struct Notifier {
    client: reqwest::Client,
    /// Fire-and-forget calls still running, so a draining server can wait
    /// for its last `done`/`disconnect` calls before it exits.
    inflight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// Building the client only fails when the TLS backend cannot
    /// initialise, which is a broken build, not bad input.
    #[allow(clippy::expect_used)]
    pub fn new() -> Notifier {
        let client = reqwest::Client::builder()
            // 3xx is an answer to interpret, not a hop to follow.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Notifier {
            client,
            inflight: Default::default(),
        }
    }

    /// Makes the call and interprets the answer.
    pub async fn call(&self, call: &Call) -> Answer {
        let req = match call.method {
            NotifyMethod::Get => {
                let sep = if call.url.contains('?') { '&' } else { '?' };
                self.client
                    .get(format!("{}{sep}{}", call.url, call.form.as_str()))
            }
            NotifyMethod::Post => self
                .client
                .post(&call.url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(call.form.as_str().to_owned()),
        };
        let t0 = std::time::Instant::now();
        let mut result = "error";
        let answer = match tokio::time::timeout(call.timeout, req.send()).await {
            Err(_) => {
                result = "timeout";
                Answer::Reject(format!("timeout after {:?}", call.timeout))
            }
            Ok(Err(e)) => Answer::Reject(format!("unreachable: {}", error_chain(e))),
            Ok(Ok(resp)) => {
                let status = resp.status();
                result = match status.as_u16() {
                    200..=299 => "2xx",
                    300..=399 => "3xx",
                    400..=499 => "4xx",
                    _ => "5xx",
                };
                if status.is_success() {
                    Answer::Continue
                } else if status.is_redirection() {
                    match resp
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                    {
                        Some(loc) if !loc.is_empty() => Answer::Redirect(loc.to_owned()),
                        _ => Answer::Continue,
                    }
                } else {
                    Answer::Reject(format!("HTTP {}", status.as_u16()))
                }
            }
        };
        crate::telemetry::notify(call.name, result, t0.elapsed().as_secs_f64());
        debug!(call = call.name, url = %crate::redact::args(&call.url), ?answer, "notify");
        answer
    }

    /// Fires a call whose answer nobody waits for (done, disconnect).
    pub fn fire(&self, call: Call) {
        use std::sync::atomic::Ordering;
        let me = self.clone();
        self.inflight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Answer::Reject(why) = me.call(&call).await {
                warn!(
                    call = call.name,
                    url = call.url,
                    "notification failed: {why}"
                );
            }
            me.inflight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Waits (at most `limit`) until no fired call is still running.
    pub async fn settle(&self, limit: Duration) {
        let t = tokio::time::Instant::now();
        while self.inflight.load(std::sync::atomic::Ordering::SeqCst) > 0 && t.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A request error and its causes, without the URL: with `notify_method
/// get` the URL carries the client's args (stream keys), which must not
/// reach logs or the client's status description.
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_what_nginx_sent() {
        // values observed from nginx-rtmp 1.2.2 (shared/reference)
        assert_eq!(
            escape("FMLE/3.0 (compatible; Lavf59.27"),
            "FMLE/3.0%20(compatible%3B%20Lavf59.27"
        );
        assert_eq!(
            escape("rtmp://127.0.0.1:19350/myapp?arg1=v1&arg2=v2"),
            "rtmp://127.0.0.1:19350/myapp%3Farg1=v1%26arg2=v2"
        );
        assert_eq!(escape("LNX 9,0,124,2"), "LNX%209,0,124,2");
    }

    #[test]
    fn form_order_and_raw_args() {
        let s = SessionFields {
            app: "myapp".into(),
            addr: "127.0.0.1".into(),
            clientid: 4,
            ..Default::default()
        };
        let f = s
            .form()
            .field("call", "play")
            .field("name", "cam")
            .raw("k=secret");
        assert_eq!(
            f.as_str(),
            "app=myapp&flashver=&swfurl=&tcurl=&pageurl=&addr=127.0.0.1&clientid=4&call=play&name=cam&k=secret"
        );
    }
}
