//! TLS for a dashboard beyond loopback: the operator's PEM certificate and
//! key, or a self-signed pair generated once into `<data_dir>/dashboard-tls/`
//! (kept, so a browser's exception for it lasts across restarts).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("dashboard TLS: cannot read the certificate {path}: {why}")]
    Cert { path: PathBuf, why: String },
    #[error("dashboard TLS: cannot read the private key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("dashboard TLS: `tls_cert` and `tls_key` go together (only one is set)")]
    Half,
    #[error("dashboard TLS: cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("dashboard TLS: cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("dashboard TLS: {0}")]
    Config(String),
}

/// The acceptor, and the SHA-256 fingerprint of the certificate served.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub fingerprint: String,
    pub cert_path: PathBuf,
    pub generated: bool,
}

/// Generates a self-signed certificate for `names` into `dir` unless one is there.
fn self_signed(dir: &Path, names: Vec<String>) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    stratbox_contract::util::create_private_dir(dir).map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
    let pair = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    stratbox_contract::util::write_atomic(&key, pair.signing_key.serialize_pem().as_bytes(), true).map_err(|source| TlsError::Write { path: key.clone(), source })?;
    stratbox_contract::util::write_atomic(&cert, pair.cert.pem().as_bytes(), false).map_err(|source| TlsError::Write { path: cert.clone(), source })?;
    Ok((cert, key))
}

/// TLS from the configured pair, or a generated one for `names`.
pub fn load(cert: Option<&Path>, key: Option<&Path>, data_dir: &Path, names: Vec<String>) -> Result<Tls, TlsError> {
    let (generated, (cert_path, key_path)) = match (cert, key) {
        (Some(c), Some(k)) => (false, (c.to_owned(), k.to_owned())),
        (None, None) => (true, self_signed(&data_dir.join("dashboard-tls"), names)?),
        _ => return Err(TlsError::Half),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| TlsError::Cert { path: cert_path.clone(), why: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert { path: cert_path.clone(), why: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Cert { path: cert_path, why: "no certificate in the file".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::Key { path: key_path.clone(), why: e.to_string() })?;
    use sha2::Digest;
    let fingerprint = hex::encode(sha2::Sha256::digest(chain[0].as_ref()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), fingerprint, cert_path, generated })
}
