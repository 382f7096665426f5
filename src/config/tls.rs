//! nginx's `ssl_*` directives, as the `http {}` and `stream {}` blocks
//! write them (the `rtmp {}` ones go through the directive table like any
//! other).

use std::time::Duration;

use super::syntax::{err, ConfigError, Directive, Pos};
use super::units::parse_msec;
use super::TlsConf;

/// The `ssl_*` directives of one scope (http, stream or server), nginx's
/// names.
#[derive(Debug, Clone, Default)]
pub(super) struct TlsScope {
    certificate: Option<String>,
    key: Option<String>,
    protocols: Option<Vec<String>>,
    ciphers: bool,
    /// `ssl on` (before nginx 1.25): every `listen` of the server is TLS.
    pub(super) on: Option<bool>,
    /// `ssl_handshake_timeout` (stream {}).
    handshake_timeout: Option<Duration>,
}

impl TlsScope {
    /// Takes `d` when it is a TLS directive; false otherwise.
    pub(super) fn take(
        &mut self,
        d: &Directive,
        warnings: &mut Vec<String>,
        errors: &mut Vec<ConfigError>,
    ) -> bool {
        match (d.name.as_str(), d.args.as_slice()) {
            ("ssl_certificate", [f]) => {
                if self.certificate.is_some() {
                    warnings.push(format!(
                        "{}: a second ssl_certificate is not used: Sluice serves one certificate chain per server",
                        d.pos
                    ));
                } else {
                    self.certificate = Some(f.clone());
                }
            }
            ("ssl_certificate_key", [f]) => {
                self.key.get_or_insert_with(|| f.clone());
            }
            ("ssl_protocols", p) if !p.is_empty() => self.protocols = Some(p.to_vec()),
            ("ssl_ciphers", [_]) => self.ciphers = true,
            ("ssl", [v]) if v == "on" || v == "off" => self.on = Some(v == "on"),
            ("ssl_handshake_timeout", [v]) => match parse_msec(v) {
                Some(ms) => self.handshake_timeout = Some(Duration::from_millis(ms)),
                None => errors.push(err(
                    &d.pos,
                    format!("invalid value \"{v}\" in \"ssl_handshake_timeout\" directive"),
                )),
            },
            // Settings rustls makes its own choices for: session caches and
            // tickets are on, the suites are AEAD with forward secrecy.
            (
                "ssl_session_cache"
                | "ssl_session_timeout"
                | "ssl_session_tickets"
                | "ssl_prefer_server_ciphers"
                | "ssl_dhparam"
                | "ssl_ecdh_curve"
                | "ssl_buffer_size"
                | "ssl_early_data",
                _,
            ) => {}
            (
                "ssl_certificate"
                | "ssl_certificate_key"
                | "ssl_protocols"
                | "ssl_ciphers"
                | "ssl"
                | "ssl_handshake_timeout",
                _,
            ) => errors.push(err(
                &d.pos,
                format!("invalid number of arguments in \"{}\" directive", d.name),
            )),
            _ => return false,
        }
        true
    }

    /// The settings in force: this scope's over `outer`'s. `listen` names
    /// the first TLS listener, if any: it is then an error, as in nginx,
    /// to have no certificate, and unhonoured settings are warned about.
    pub(super) fn resolve(
        &self,
        outer: &TlsScope,
        listen: Option<&str>,
        pos: &Pos,
        warnings: &mut Vec<String>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<TlsConf> {
        let certificate = self.certificate.as_ref().or(outer.certificate.as_ref());
        let key = self.key.as_ref().or(outer.key.as_ref());
        let protocols = self.protocols.as_ref().or(outer.protocols.as_ref());
        let tls = match (certificate, key) {
            (Some(c), Some(k)) => Some(TlsConf {
                certificate: c.into(),
                key: k.into(),
                protocols: protocols.cloned().unwrap_or_default(),
                handshake_timeout: self.handshake_timeout.or(outer.handshake_timeout),
            }),
            _ => None,
        };
        let listen = listen?;
        if tls.is_none() {
            errors.push(err(
                pos,
                format!("no \"ssl_certificate\" and \"ssl_certificate_key\" are defined for the \"{listen}\" directive"),
            ));
        }
        if let Some(old) = protocols
            .into_iter()
            .flatten()
            .find(|p| !matches!(p.as_str(), "TLSv1.2" | "TLSv1.3"))
        {
            warnings.push(format!(
                "{pos}: ssl_protocols {old} is not offered: rustls speaks TLSv1.2 and TLSv1.3 only"
            ));
        }
        if self.ciphers || outer.ciphers {
            warnings.push(format!(
                "{pos}: ssl_ciphers is not applied: rustls offers its own (AEAD, forward-secret) suites"
            ));
        }
        tls
    }
}
