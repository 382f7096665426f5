//! Server-side TLS settings: nginx's `ssl_certificate`,
//! `ssl_certificate_key` and `ssl_protocols` made into a rustls
//! configuration, for RTMPS listeners and HTTPS alike.
//!
//! Certificates are read when a configuration generation is first used, so
//! a reload (SIGHUP) picks up renewed files: new connections get the new
//! certificate, open ones keep theirs. rustls only: no OpenSSL.

use std::sync::Arc;

use crate::config::TlsConf;

/// The rustls configuration of a `server {}` with TLS listeners, from its
/// PEM files (certificate chain first, then the key).
pub fn server_config(t: &TlsConf) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.certificate)
        .with_context(|| format!("ssl_certificate {}", t.certificate.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("ssl_certificate {}", t.certificate.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "ssl_certificate {}: no certificate in it",
            t.certificate.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&t.key)
        .with_context(|| format!("ssl_certificate_key {}", t.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(&t.protocols);
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .context("ssl_protocols")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("ssl_certificate and ssl_certificate_key do not match")?;
    // Sessions resume, by ticket and by id.
    c.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    if let Ok(t) = rustls::crypto::ring::Ticketer::new() {
        c.ticketer = t;
    }
    Ok(Arc::new(c))
}

/// TLS versions from `ssl_protocols` (nginx's names). rustls speaks only
/// TLS 1.2 and 1.3; older names are ignored (config warns).
fn versions(protocols: &[String]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut v = Vec::new();
    if protocols.is_empty() || protocols.iter().any(|p| p == "TLSv1.2") {
        v.push(&rustls::version::TLS12);
    }
    if protocols.is_empty() || protocols.iter().any(|p| p == "TLSv1.3") {
        v.push(&rustls::version::TLS13);
    }
    if v.is_empty() {
        v.push(&rustls::version::TLS13);
    }
    v
}

/// Checks a server's TLS files load, for `sluice check` and start-up.
pub fn check(t: &TlsConf) -> anyhow::Result<()> {
    server_config(t).map(|_| ())
}

/// The acceptor of one listener, rebuilt from the files once per
/// configuration generation. A generation whose files do not load keeps
/// the previous acceptor (reload checks them first, so this is the case
/// of files changed under a running server).
#[derive(Default)]
pub struct Acceptors(Option<(usize, tokio_rustls::TlsAcceptor)>);

impl Acceptors {
    /// The acceptor for generation `generation` (any number that changes
    /// with the configuration, such as its `Arc`'s address) and its TLS
    /// settings.
    pub fn get(
        &mut self,
        generation: usize,
        conf: Option<&TlsConf>,
    ) -> Option<tokio_rustls::TlsAcceptor> {
        if let Some((g, a)) = &self.0 {
            if *g == generation {
                return Some(a.clone());
            }
        }
        match server_config(conf?) {
            Ok(c) => {
                let a = tokio_rustls::TlsAcceptor::from(c);
                self.0 = Some((generation, a.clone()));
                Some(a)
            }
            Err(e) => {
                tracing::warn!("TLS configuration not loaded, keeping the previous one: {e:#}");
                self.0.as_ref().map(|(_, a)| a.clone())
            }
        }
    }
}
