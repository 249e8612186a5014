//! Trust on first use for server certificates: a known-hosts file maps `host:port` to the
//! SHA-256 fingerprint of the certificate first seen there. A new host is recorded with a
//! notice on stderr; a changed certificate is refused. Never talks to the network itself.
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Environment variable naming the known-hosts file (default `~/.xe-known-hosts`).
pub const KNOWN_HOSTS_ENV: &str = "XE_KNOWN_HOSTS";

/// A certificate verifier backed by the known-hosts file.
#[derive(Debug)]
pub struct TrustStore {
    key: String,
    no_verify: bool,
    path: Option<PathBuf>,
    provider: rustls::crypto::CryptoProvider,
}

/// The known-hosts file in use.
pub fn known_hosts_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(KNOWN_HOSTS_ENV) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".xe-known-hosts"))
}

/// `AB:CD:...` SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::new();
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// The fingerprint recorded for `key` in the file's text, if any.
fn lookup(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim().to_owned())
}

impl TrustStore {
    /// A verifier for `host:port`; `no_verify` accepts anything and records nothing.
    pub fn new(host: &str, port: u16, no_verify: bool) -> TrustStore {
        TrustStore {
            key: format!("{host}:{port}"),
            no_verify,
            path: known_hosts_path(),
            provider: rustls::crypto::ring::default_provider(),
        }
    }

    fn check(&self, der: &[u8]) -> Result<(), rustls::Error> {
        if self.no_verify {
            return Ok(());
        }
        let seen = fingerprint(der);
        let Some(path) = &self.path else {
            return Err(rustls::Error::General(
                "no known-hosts file (HOME is not set); use --no-verify".into(),
            ));
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match lookup(&text, &self.key) {
            Some(known) if known == seen => Ok(()),
            Some(known) => {
                eprintln!(
                    "The certificate of {} has CHANGED since it was first trusted.\n\
                     Recorded SHA-256 fingerprint: {known}\n\
                     Presented SHA-256 fingerprint: {seen}\n\
                     If the change is expected, remove the line for {} from {}.",
                    self.key,
                    self.key,
                    path.display()
                );
                Err(rustls::Error::General(
                    "server certificate does not match the known-hosts file".into(),
                ))
            }
            None => {
                eprintln!(
                    "The certificate of {} is not known yet; trusting it on first use.\n\
                     SHA-256 fingerprint: {seen}\n\
                     It is recorded in {} and will be required from now on.",
                    self.key,
                    path.display()
                );
                let line = format!("{} {seen}\n", self.key);
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(line.as_bytes()));
                if let Err(e) = written {
                    eprintln!("Warning: could not record it in {}: {e}", path.display());
                }
                Ok(())
            }
        }
    }
}

impl ServerCertVerifier for TrustStore {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity.as_ref())?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_colon_separated_upper_hex_sha256() {
        let f = fingerprint(b"abc");
        assert!(f.starts_with("BA:78:16:BF"));
        assert_eq!(f.len(), 32 * 3 - 1);
    }

    #[test]
    fn lookup_finds_the_line_for_the_exact_host_and_port() {
        let text = "a:443 AA\nb:443 BB\n";
        assert_eq!(lookup(text, "b:443").as_deref(), Some("BB"));
        assert_eq!(lookup(text, "b:80"), None);
    }
}
