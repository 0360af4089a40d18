//! PEM material for TLS, shared by the broker's listeners (`net::tls`) and the tools' client
//! (`client::stream`): certificates, a private key and a trust store, each read from a file or
//! from an inline value (`config::security::Pem`), and the rustls crypto provider both use.
//! Reading happens when a listener binds or a client starts, never per connection.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;

use crate::config::security::{KeyPassword, Pem};

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

/// The PEM label of an encrypted PKCS#8 key (RFC 5958).
const ENCRYPTED_KEY_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// The private key of `pem`: with `password` (`ssl.key.password`), its encrypted PKCS#8 block
/// (PBES2: PBKDF2 or scrypt with AES-CBC, what `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes);
/// without, its first unencrypted key (PKCS#8, PKCS#1 or SEC1). As in Kafka, a password for an
/// unencrypted key and an encrypted key without one are both errors.
pub fn private_key(
    pem: &Pem,
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = pem_bytes(pem)?;
    let encrypted = encrypted_block(&bytes);
    match (password, encrypted) {
        (Some(password), Some(block)) => decrypt(block, password),
        (Some(_), None) => Err(format!(
            "ssl.key.password is set but there is no {ENCRYPTED_KEY_LABEL} block in it"
        )),
        (None, Some(_)) => Err(format!(
            "the key is encrypted ({ENCRYPTED_KEY_LABEL}): set ssl.key.password"
        )),
        (None, None) => PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| match error {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no unencrypted PRIVATE KEY block in it (PKCS#8, PKCS#1 or SEC1)".to_string()
            }
            error => format!("not valid PEM: {error}"),
        }),
    }
}

/// The first `ENCRYPTED PRIVATE KEY` block of PEM text, armour included.
fn encrypted_block(bytes: &[u8]) -> Option<&[u8]> {
    let begin = format!("-----BEGIN {ENCRYPTED_KEY_LABEL}-----");
    let end = format!("-----END {ENCRYPTED_KEY_LABEL}-----");
    let start = find(bytes, begin.as_bytes())?;
    let stop = start + find(&bytes[start..], end.as_bytes())? + end.len();
    Some(&bytes[start..stop])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn decrypt(block: &[u8], password: &KeyPassword) -> Result<PrivateKeyDer<'static>, String> {
    use pkcs8::der::Decode;
    let (label, der) =
        pkcs8::der::pem::decode_vec(block).map_err(|error| format!("not valid PEM: {error}"))?;
    if label != ENCRYPTED_KEY_LABEL {
        return Err(format!(
            "expected an {ENCRYPTED_KEY_LABEL} block, found {label}"
        ));
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
        .map_err(|error| format!("the {ENCRYPTED_KEY_LABEL} block does not parse: {error}"))?;
    // A wrong password mostly shows as bad padding; the library cannot tell the two apart.
    let document = info.decrypt(password.0.as_bytes()).map_err(|error| {
        format!("the key does not open with ssl.key.password (a wrong password, or an unsupported cipher: {error})")
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        document.as_bytes().to_vec(),
    )))
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
        assert!(private_key(&empty, None)
            .unwrap_err()
            .contains("no unencrypted"));
        let missing = Pem::File("/nonexistent/flink.pem".into());
        assert!(root_store(&missing).is_err());
        assert_eq!(source_name(&missing), "/nonexistent/flink.pem");
    }

    /// A P-256 key, unencrypted and as `openssl pkcs8 -topk8 -v2 aes-256-cbc` wrote it with
    /// the passphrase `secret` (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC).
    const PLAIN_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/62bk+Vn5ferp/0P\nkUYRXWWXZCf/EkZsD40mYGF2N4uhRANCAARQTF3I0UD3Bxgo1gBWgOGEbxrd+9Ls\nak6AvoXZM+f19bBfT3yhKhz+t9fN0MlO71Cxfi3pkcF17yVuD6VfdNZ5\n-----END PRIVATE KEY-----";
    const ENCRYPTED_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgdTgvwzyNA/QICCAAw\nDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEJk2r2sEVspLlbcj9NLVP4MEgZDG\n598hhgfGqvbbzc07ox3Wo+4vV8oZthg1HIwVOLhWnoVZ1aFy+YDJWxX0Gxw5OIFE\n+6pIcqN28X+4eMLgNqPCh9dc9jIYc2yTweskddyO/WSHdh+EQzna/3PpMVk1YbNU\ne0futTY/L4LB84+ZcCv4JFirynklZz024Oo3MnZpOYay+okbA1IAq6gObGLkdG4=\n-----END ENCRYPTED PRIVATE KEY-----";

    /// Proves an encrypted key opens with its password into the same key, and that a wrong
    /// password, a missing one, or one given for an unencrypted key is refused with a reason.
    #[test]
    fn opens_encrypted_keys_with_the_password() {
        let plain = private_key(&Pem::Inline(PLAIN_KEY.into()), None).unwrap();
        let encrypted = Pem::Inline(ENCRYPTED_KEY.into());
        let password = KeyPassword("secret".into());
        let opened = private_key(&encrypted, Some(&password)).unwrap();
        assert_eq!(opened.secret_der(), plain.secret_der());
        let wrong = KeyPassword("guess".into());
        assert!(private_key(&encrypted, Some(&wrong))
            .unwrap_err()
            .contains("does not open with ssl.key.password"));
        assert!(private_key(&encrypted, None)
            .unwrap_err()
            .contains("set ssl.key.password"));
        assert!(private_key(&Pem::Inline(PLAIN_KEY.into()), Some(&password))
            .unwrap_err()
            .contains("no ENCRYPTED PRIVATE KEY block"));
        assert_eq!(format!("{password:?}"), "[hidden]");
    }
}
