//! The HTTPS certificate: a self-signed one generated with rcgen into the state directory on
//! first start (`xapi-ssl.pem`, key and certificate), loaded into a rustls acceptor.
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("bad PEM in {path}: {message}")]
    Pem { path: String, message: String },
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Loads `<state>/xapi-ssl.pem`, generating it first when missing.
pub fn acceptor(state_dir: &Path, hostname: &str) -> Result<TlsAcceptor, TlsError> {
    let path = state_dir.join("xapi-ssl.pem");
    let io = |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    };
    if !path.exists() {
        let names = vec![
            hostname.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        let cert = rcgen::generate_simple_self_signed(names)?;
        let pem = format!("{}{}", cert.key_pair.serialize_pem(), cert.cert.pem());
        crate::files::write_private(&path, pem.as_bytes()).map_err(io)?;
    }
    let pem = std::fs::read(&path).map_err(io)?;
    let bad = |message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
