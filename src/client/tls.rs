//! The client side of RTMPS: `rtmps://` for `sluice publish`, `play`,
//! `bench`, pushes and pulls. Servers are verified against the system's
//! roots, plus the CAs of `--ca` (CLI) or `rtmp_relay_ssl_trusted_certificate`
//! (relays); `--insecure` verifies nothing. SNI carries the URL's host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What the CLI asked for (`--ca FILE`, `--insecure`), for every client
/// connection of this process that names no CA of its own.
#[derive(Debug, Default, Clone)]
pub struct Defaults {
    pub ca: Option<PathBuf>,
    pub insecure: bool,
}

static DEFAULTS: OnceLock<Defaults> = OnceLock::new();

/// Sets the process's defaults (once, at start).
pub fn set_defaults(d: Defaults) {
    let _ = DEFAULTS.set(d);
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

type Cache = Mutex<HashMap<Option<PathBuf>, Arc<ClientConfig>>>;

/// The client configuration trusting the system roots and `ca` (else the
/// CLI's `--ca`), built once per CA file.
pub fn config(ca: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let d = DEFAULTS.get().cloned().unwrap_or_default();
    let ca = ca.map(Path::to_path_buf).or(d.ca.clone());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&ca) {
        return Ok(c.clone());
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let c = if d.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &ca {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("CA file {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("CA file {}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("CA file {}: no certificate in it", path.display());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("CA file {}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let c = Arc::new(c);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ca, c.clone());
    Ok(c)
}

/// The name the server is checked against and sent as SNI.
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned()).with_context(|| format!("bad TLS server name {host}"))
}

/// `--insecure`: any certificate passes (signatures are still checked, so
/// the session is encrypted, just not authenticated).
#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
