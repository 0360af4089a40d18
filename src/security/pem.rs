//! PEM material for TLS, shared by the broker's listeners (`net::tls`) and the tools' client
//! (`client::stream`): certificates, a private key and a trust store, each read from a file or
//! from an inline value (`config::security::Pem`), and the rustls crypto provider both use.
//! Reading happens when a listener binds or a client starts, never per connection.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use crate::config::security::Pem;

/// The crypto provider of every TLS configuration: ring.
pub fn provider() -> Arc<CryptoProvider> {
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange
    // (X25519MLKEM768, only in aws-lc-rs, a C build of minutes). The clients this broker
    // serves (JDK 17, OpenSSL 3.0 under librdkafka) do not offer it either; see
    // io_uring_notes.md.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// The TLS versions to offer: `tls13` and/or `tls12` (`ssl.enabled.protocols`).
pub fn protocol_versions(
    tls12: bool,
    tls13: bool,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut versions = Vec::new();
    if tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if tls12 {
        versions.push(&rustls::version::TLS12);
    }
    versions
}

/// Where `pem` comes from, for error messages: the file, or "its inline PEM value".
pub fn source_name(pem: &Pem) -> String {
    match pem {
        Pem::File(path) => path.display().to_string(),
        Pem::Inline(_) => "its inline PEM value".to_string(),
    }
}

/// Every CERTIFICATE block of `pem`, in order; none at all is an error.
pub fn certificates(pem: &Pem) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = pem_bytes(pem)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("not valid PEM: {error}"))?;
    if certificates.is_empty() {
        return Err("no CERTIFICATE block in it".to_string());
    }
    Ok(certificates)
}

/// The first unencrypted private key of `pem` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = pem_bytes(pem)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no unencrypted PRIVATE KEY block in it (PKCS#8, PKCS#1 or SEC1)".to_string()
        }
        error => format!("not valid PEM: {error}"),
    })
}

/// A trust store holding every certificate of `pem`.
pub fn root_store(pem: &Pem) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(pem)? {
        roots.add(certificate).map_err(|error| error.to_string())?;
    }
    Ok(roots)
}

fn pem_bytes(pem: &Pem) -> Result<Vec<u8>, String> {
    match pem {
        Pem::File(path) => std::fs::read(path).map_err(|error| error.to_string()),
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves text without PEM blocks is refused with a reason, for certificates and keys alike.
    #[test]
    fn refuses_material_without_blocks() {
        let empty = Pem::Inline("not a certificate".to_string());
        assert_eq!(
            certificates(&empty).unwrap_err(),
            "no CERTIFICATE block in it"
        );
        assert!(private_key(&empty).unwrap_err().contains("no unencrypted"));
        let missing = Pem::File("/nonexistent/flink.pem".into());
        assert!(root_store(&missing).is_err());
        assert_eq!(source_name(&missing), "/nonexistent/flink.pem");
    }
}
