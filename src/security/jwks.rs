//! A JSON Web Key Set (RFC 7517) and the signatures it verifies: RS256 (RSASSA-PKCS1-v1_5 with
//! SHA-256, RFC 7518 §3.3) from an RSA key's `n` and `e`, and ES256 (ECDSA P-256 with SHA-256,
//! §3.4) from an EC key's `x` and `y`, both with ring. The token's `kid` picks the key; a token
//! without one is verified only when one key of its type is in the set.
//!
//! Pure: the set is parsed from bytes read elsewhere (`config::security` reads the file at
//! start-up). `alg` `none`, and every algorithm but those two, is refused.

use serde_json::{Map, Value};

use super::jwt::{base64url, Jws};

/// The smallest RSA modulus accepted, in bits (ring's bound, and RFC 7518's).
const RSA_MODULUS_BITS_MIN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("the JWK set is not a JSON object with a \"keys\" array")]
    NotASet,
    #[error("the JWK set has no RSA or P-256 EC signing key")]
    NoKeys,
    #[error("JWK {index}: {reason}")]
    BadKey { index: usize, reason: &'static str },
    #[error("the JWS header has no \"alg\"")]
    NoAlgorithm,
    #[error("the JWS algorithm {0} is not allowed (RS256 and ES256 are)")]
    Algorithm(String),
    #[error("Unable to find a suitable verification key for JWS w/ header {0}")]
    NoKeyFor(String),
    #[error("JWS signature is invalid")]
    Signature,
}

/// The public keys tokens may be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Jwk {
    key_id: Option<String>,
    /// The `alg` the key is restricted to, if any.
    algorithm: Option<String>,
    key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// The uncompressed point (0x04, x, y).
    P256 { point: Vec<u8> },
}

impl PublicKey {
    /// The JWS algorithm this key verifies.
    fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "RS256",
            PublicKey::P256 { .. } => "ES256",
        }
    }
}

impl JwkSet {
    /// Reads a JWK set (`{"keys":[...]}`). Keys for encryption (`"use":"enc"`) and of other
    /// types (`oct`, `OKP`, other curves) are skipped; a set left with no key is an error, and
    /// so is an RSA or P-256 key that cannot be read.
    pub fn parse(text: &[u8]) -> Result<JwkSet, JwksError> {
        let set: Value = serde_json::from_slice(text).map_err(|_| JwksError::NotASet)?;
        let entries = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotASet)?;
        let mut keys = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.as_object().ok_or(JwksError::BadKey {
                index,
                reason: "not a JSON object",
            })?;
            if let Some(jwk) =
                read_key(entry).map_err(|reason| JwksError::BadKey { index, reason })?
            {
                keys.push(jwk);
            }
        }
        match keys.is_empty() {
            true => Err(JwksError::NoKeys),
            false => Ok(JwkSet { keys }),
        }
    }

    /// Checks the token's signature with the key its header names.
    pub fn verify(&self, jws: &Jws) -> Result<(), JwksError> {
        let algorithm = jws.algorithm().ok_or(JwksError::NoAlgorithm)?;
        if !matches!(algorithm, "RS256" | "ES256") {
            return Err(JwksError::Algorithm(algorithm.to_string()));
        }
        let key_id = jws.key_id();
        let mut candidates = self.keys.iter().filter(|jwk| {
            jwk.key.algorithm() == algorithm
                && jwk
                    .algorithm
                    .as_deref()
                    .is_none_or(|only| only == algorithm)
                && (key_id.is_none() || jwk.key_id.as_deref() == key_id)
        });
        let key = match (candidates.next(), candidates.next(), key_id) {
            (Some(key), _, Some(_)) | (Some(key), None, None) => key,
            _ => {
                let header = Value::Object(jws.header.clone()).to_string();
                return Err(JwksError::NoKeyFor(header));
            }
        };
        let message = jws.signing_input.as_bytes();
        let verified = match &key.key {
            PublicKey::Rsa { modulus, exponent } => ring::signature::RsaPublicKeyComponents {
                n: modulus,
                e: exponent,
            }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                &jws.signature,
            ),
            PublicKey::P256 { point } => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(message, &jws.signature),
        };
        verified.map_err(|_| JwksError::Signature)
    }
}

/// One key of the set; `None` for a key this broker does not verify with.
fn read_key(entry: &Map<String, Value>) -> Result<Option<Jwk>, &'static str> {
    let text = |name: &str| entry.get(name).and_then(Value::as_str);
    let bytes = |name: &'static str| -> Result<Vec<u8>, &'static str> {
        let value = text(name).ok_or(match name {
            "n" => "an RSA key needs \"n\"",
            "e" => "an RSA key needs \"e\"",
            "x" => "an EC key needs \"x\"",
            _ => "an EC key needs \"y\"",
        })?;
        base64url(value).map_err(|_| "a key parameter is not base64url")
    };
    if text("use") == Some("enc") {
        return Ok(None);
    }
    let key = match (text("kty"), text("crv")) {
        (Some("RSA"), _) => {
            let modulus = without_leading_zeros(bytes("n")?);
            let exponent = without_leading_zeros(bytes("e")?);
            if modulus.len() * 8 < RSA_MODULUS_BITS_MIN || exponent.is_empty() {
                return Err("an RSA key's modulus must have at least 2048 bits");
            }
            PublicKey::Rsa { modulus, exponent }
        }
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 key's \"x\" and \"y\" are 32 bytes each");
            }
            let point = [&[0x04][..], &x, &y].concat();
            PublicKey::P256 { point }
        }
        _ => return Ok(None),
    };
    Ok(Some(Jwk {
        key_id: text("kid").map(str::to_string),
        algorithm: text("alg").map(str::to_string),
        key,
    }))
}

fn without_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|byte| **byte == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// Keys and tokens for the tests of this module and of `security::oauthbearer`: an RSA key
/// made once with `openssl genpkey -algorithm RSA` (ring cannot make one) and P-256 keys made
/// by ring; tokens signed with ring.
#[cfg(test)]
pub mod test_keys {
    use base64::Engine;
    use ring::signature::KeyPair;

    /// A 2048-bit RSA private key, PKCS#8 DER in base64, for tests only.
    const RSA_PKCS8: &[&str] = &[
        "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCkcBR7ZCz0gKd94RCwv/dPe2X3/dLwCQ7LSupuMFMA4Prs89Z6",
        "iY9vSY1IzAft4ggeoR0yMk9HniyzRmOBM++v0w9n6h5HV+C4z9Zgyxa/9uTq+D9IJXfKth2mRAKtKuXnaFZueUPNXkvxePckfKJh",
        "8VTTgzYCLWi6WOMpIdxJ0dgNgaxT6mtRkbxY3N7xfEK4HsVuy6HCehfsaE0yF8mP+qRGQ6bK5u9bn3taBTnp6ln8YL2r+sq1tCVQ",
        "oqEUk3dgzpe80reZB6Q0DCLNwWmxaCXLPPNR+LuuxDRePNGm4rDfg76JQHqA3T0BysQ+YE7/HYxzf7mQOEqq3DkySi7tAgMBAAEC",
        "ggEAHCNbteOl967eOmGdeAlZWf39LGsAQffi0rG+nN1jDrbw6UQucuiAJWR6KzdSsgeoKQmb09+dBl3QO1szosPO45DjxX3f8Yhd",
        "mXJjNkv6WB34/SY+uetDbOot96oSpSw+jBMkGyJgEk/tAeSXseQr60OfJtSAlO3NSnn0YTD8n5rlK3j9btEsGpgLNUCr1R67/bVb",
        "22RZYKuBWSJmuhmfnCpGBzBi435MgcTFgtV81+S4QOEyYtmNradw8yRsp9KqgdZmQ4zxwIv6HKimU9uuEWxFdSHaJl5lGTYRIAj3",
        "HN7zMtA04wk2M26ESuRgVLh1dvxz01iPTCtCWqzgu5PMAQKBgQDWOt3N6wln0B1eeh9EQMYL3ylNhNQES8CEs8p73AG7SKkCNHOI",
        "8mXPlZEmuStjr7Deen8l33Cz3zq+CDrqrQjYXiEIN3KCpQbBCkj6ASoS0KbZ0TTtS68Ftfy3Os56Q8l1kDRPKtNZJKvwLTuSJAMh",
        "QZP9dH31vCu4XzpeNDR6AQKBgQDEf+ACnl9948UFZR41a6JLbYkgjvXZ6SmLQzbVjzFaT4oaqDzAVdLV4RPWSWApZwid3FBYqxBq",
        "4l1bfY/h3M+WUCVBOTfdFBrxAUWKGgLBmyJ0J8soozcVkkG7+v1o7xCCjHeyxe+M4t7RpK+g7cCTwhT4kSEAUPLvgIHOvx087QKB",
        "gQCQrBxSDWHCq7bJsKsgyqV0KvaXlRYg+I9AjrI1RvQcaAtKo+VKHHhI4XausentXh6RgCQRjX1s21muL5yqEsSgaaDhDaDVPWD8",
        "SFfUDak+H44uFqwpfCzsLGRH0PzTcKfCLupEdGVaE/vRLJrILG24rbKlPWA67SKRVi3ypEq0AQKBgHxBaIP/Zd8TgujQcnPRZkVQ",
        "NKBUBn8Pg+e+TxRoggrbtTb6H8B4BOSeeY7Nw3Mq5jX8tQn80lrkXaiXE779hH9GmuhNqFeyeP7hkPmtTQTkdrsA1uURoKmRXOPj",
        "6Q7L7aK/9IklxT9Pzxq+ixi2f0pwNhagnz+18Ikmt+7mxzRZAoGBALggGj/H0PvWy9kgySIo/QHthwESeuaUAKdKYY784fS3/xAG",
        "NB3vrAo8yP3bkxyCwXgc0Y3gpuexBm8Oks6chHoVDH+tew8IXOlDrOPSX0A/FuNHVes7bKnk8ySvnL+/6RmlSL7XlRv4Z5C+sBRz",
        "6P/FkcUYpSbaFn18N3EoGmeF",
    ];

    pub fn encode(bytes: impl AsRef<[u8]>) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    pub struct Signer {
        kind: Kind,
        pub key_id: String,
    }

    enum Kind {
        Rsa(ring::signature::RsaKeyPair),
        P256(ring::signature::EcdsaKeyPair),
    }

    impl Signer {
        pub fn rsa(key_id: &str) -> Signer {
            let der = base64::engine::general_purpose::STANDARD
                .decode(RSA_PKCS8.concat())
                .unwrap();
            let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
            Signer {
                kind: Kind::Rsa(pair),
                key_id: key_id.to_string(),
            }
        }

        pub fn p256(key_id: &str) -> Signer {
            let random = ring::rand::SystemRandom::new();
            let algorithm = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(algorithm, &random).unwrap();
            let pair =
                ring::signature::EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &random)
                    .unwrap();
            Signer {
                kind: Kind::P256(pair),
                key_id: key_id.to_string(),
            }
        }

        /// The public key as a JWK.
        pub fn jwk(&self) -> String {
            match &self.kind {
                Kind::Rsa(pair) => {
                    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
                    format!(
                        r#"{{"kty":"RSA","use":"sig","kid":"{}","n":"{}","e":"{}"}}"#,
                        self.key_id,
                        encode(&public.n),
                        encode(&public.e)
                    )
                }
                Kind::P256(pair) => {
                    let point = pair.public_key().as_ref();
                    format!(
                        r#"{{"kty":"EC","crv":"P-256","kid":"{}","x":"{}","y":"{}"}}"#,
                        self.key_id,
                        encode(&point[1..33]),
                        encode(&point[33..])
                    )
                }
            }
        }

        pub fn algorithm(&self) -> &'static str {
            match self.kind {
                Kind::Rsa(_) => "RS256",
                Kind::P256(_) => "ES256",
            }
        }

        /// A token with these claims, its header naming the key.
        pub fn sign(&self, claims: &str) -> String {
            let header = format!(
                r#"{{"alg":"{}","kid":"{}"}}"#,
                self.algorithm(),
                self.key_id
            );
            self.sign_with_header(&header, claims)
        }

        pub fn sign_with_header(&self, header: &str, claims: &str) -> String {
            let input = format!("{}.{}", encode(header), encode(claims));
            let random = ring::rand::SystemRandom::new();
            let signature = match &self.kind {
                Kind::Rsa(pair) => {
                    let mut signature = vec![0; pair.public().modulus_len()];
                    pair.sign(
                        &ring::signature::RSA_PKCS1_SHA256,
                        &random,
                        input.as_bytes(),
                        &mut signature,
                    )
                    .unwrap();
                    signature
                }
                Kind::P256(pair) => pair
                    .sign(&random, input.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
            };
            format!("{input}.{}", encode(signature))
        }
    }

    /// A JWK set holding these signers' public keys.
    pub fn set(signers: &[&Signer]) -> String {
        let keys: Vec<String> = signers.iter().map(|signer| signer.jwk()).collect();
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{encode, set, Signer};
    use super::*;

    fn verify(keys: &str, token: &str) -> Result<(), JwksError> {
        let set = JwkSet::parse(keys.as_bytes()).unwrap();
        set.verify(&Jws::parse(token).unwrap())
    }

    /// Proves RS256 and ES256 signatures verify with the key `kid` names, and fail with a
    /// changed claim, another key, a truncated signature or no signature.
    #[test]
    fn verifies_rs256_and_es256() {
        let (rsa, ec) = (Signer::rsa("r1"), Signer::p256("e1"));
        let keys = set(&[&rsa, &ec]);
        for signer in [&rsa, &ec] {
            let token = signer.sign(r#"{"sub":"alice"}"#);
            assert_eq!(verify(&keys, &token), Ok(()), "{}", signer.algorithm());
            let (input, signature) = token.rsplit_once('.').unwrap();
            let (header, _) = input.split_once('.').unwrap();
            let forged = format!("{header}.{}.{signature}", encode(r#"{"sub":"admin"}"#));
            assert_eq!(verify(&keys, &forged), Err(JwksError::Signature));
            assert_eq!(
                verify(&keys, &format!("{input}.{}", &signature[..8])),
                Err(JwksError::Signature)
            );
            assert_eq!(
                verify(&keys, &format!("{input}.")),
                Err(JwksError::Signature)
            );
        }
        let other = Signer::p256("e1");
        assert_eq!(verify(&keys, &other.sign("{}")), Err(JwksError::Signature));
    }

    /// Proves the key is chosen by `kid` and algorithm: an unknown `kid`, a key of another
    /// type, or no `kid` with several keys finds none; no `kid` with one key uses it.
    #[test]
    fn picks_the_key_by_kid() {
        let (first, second) = (Signer::p256("one"), Signer::p256("two"));
        let keys = set(&[&first, &second]);
        assert_eq!(verify(&keys, &second.sign("{}")), Ok(()));
        let unknown = Signer::p256("three");
        assert!(matches!(
            verify(&keys, &unknown.sign("{}")),
            Err(JwksError::NoKeyFor(_))
        ));
        let no_kid = first.sign_with_header(r#"{"alg":"ES256"}"#, "{}");
        assert!(matches!(
            verify(&keys, &no_kid),
            Err(JwksError::NoKeyFor(_))
        ));
        assert_eq!(verify(&set(&[&first]), &no_kid), Ok(()));
        let rsa_named_like_ec = Signer::rsa("one").sign("{}");
        assert!(matches!(
            verify(&keys, &rsa_named_like_ec),
            Err(JwksError::NoKeyFor(_))
        ));
    }

    /// Proves `none` and other algorithms are refused before any key is looked at.
    #[test]
    fn refuses_other_algorithms() {
        let keys = set(&[&Signer::p256("k")]);
        let token = |header: &str| format!("{}.{}.", encode(header), encode("{}"));
        assert_eq!(
            verify(&keys, &token(r#"{"alg":"none"}"#)),
            Err(JwksError::Algorithm("none".into()))
        );
        assert_eq!(
            verify(&keys, &token(r#"{"alg":"HS256","kid":"k"}"#)),
            Err(JwksError::Algorithm("HS256".into()))
        );
        assert_eq!(verify(&keys, &token("{}")), Err(JwksError::NoAlgorithm));
    }

    /// Proves a set is read leniently about keys it does not use and strictly about those it
    /// does, and that a set without usable keys is refused.
    #[test]
    fn reads_jwk_sets() {
        let rsa = Signer::rsa("r");
        let mixed = format!(
            r#"{{"keys":[{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}},{},{{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}}]}}"#,
            rsa.jwk()
        );
        assert_eq!(JwkSet::parse(mixed.as_bytes()).unwrap().keys.len(), 1);
        assert_eq!(JwkSet::parse(b"[]"), Err(JwksError::NotASet));
        assert_eq!(JwkSet::parse(b"{\"keys\":1}"), Err(JwksError::NotASet));
        assert_eq!(JwkSet::parse(b"{\"keys\":[]}"), Err(JwksError::NoKeys));
        assert_eq!(JwkSet::parse(b"not json"), Err(JwksError::NotASet));
        let short = r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#;
        assert!(matches!(
            JwkSet::parse(short.as_bytes()),
            Err(JwksError::BadKey { index: 0, .. })
        ));
        let missing = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA"}]}"#;
        assert!(matches!(
            JwkSet::parse(missing.as_bytes()),
            Err(JwksError::BadKey { index: 0, .. })
        ));
        assert!(JwkSet::parse(br#"{"keys":[3]}"#).is_err());
    }
}
