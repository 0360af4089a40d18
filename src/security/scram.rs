//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them: both sides of the
//! exchange as pure state machines (nonces, passwords and the credential lookup are passed in;
//! `ScramServer` for the SASL listeners, `ScramClient` for the tools' client), and the
//! credentials Kafka stores (salt, stored key, server key, iterations), derived from the salted
//! password that AlterUserScramCredentials carries.
//!
//! The exchange: client-first `n,,n=<user>,r=<client nonce>`; server-first
//! `r=<client nonce><server nonce>,s=<salt>,i=<iterations>`; client-final
//! `c=<channel binding>,r=<nonce>,p=<proof>`; server-final `v=<server signature>`. Every
//! refusal is the same to the client (Kafka's message names the mechanism only), so an unknown
//! user cannot be told from a wrong password.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// Kafka's bounds on the iterations of a stored credential.
pub const ITERATIONS_MIN: i32 = 4096;
pub const ITERATIONS_MAX: i32 = 16384;
/// The iterations Kafka's tools use when a credential names none.
pub const ITERATIONS_DEFAULT: i32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|mechanism| mechanism.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's `ScramMechanism` type code (AlterUserScramCredentials, DescribeUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|mechanism| mechanism.code() == code)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Bytes of the hash (and so of a salted password).
    pub fn hash_bytes(self) -> usize {
        self.digest().output_len()
    }
}

/// What the server keeps of a user's password for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl ScramCredential {
    /// The credential as Kafka wrote it into a user's config (`salt=<base64>,stored_key=...,
    /// server_key=...,iterations=N`): how the metadata log keeps it.
    pub fn to_config(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key),
            self.iterations
        )
    }

    pub fn from_config(text: &str) -> Option<ScramCredential> {
        let mut fields = BTreeMap::new();
        for pair in text.split(',') {
            let (key, value) = pair.split_once('=')?;
            fields.insert(key, value);
        }
        let bytes = |key: &str| BASE64.decode(fields.get(key)?).ok();
        Some(ScramCredential {
            salt: bytes("salt")?,
            stored_key: bytes("stored_key")?,
            server_key: bytes("server_key")?,
            iterations: fields.get("iterations")?.parse().ok()?,
        })
    }
}

fn hmac_of(mechanism: ScramMechanism, key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac(), key);
    hmac::sign(&key, message).as_ref().to_vec()
}

/// `Hi(password, salt, iterations)`: the salted password.
pub fn salted_password(
    mechanism: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    let mut salted = vec![0u8; mechanism.hash_bytes()];
    let iterations =
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    pbkdf2::derive(mechanism.pbkdf2(), iterations, salt, password, &mut salted);
    salted
}

/// The stored credential for a salted password (what AlterUserScramCredentials sends).
pub fn credential(
    mechanism: ScramMechanism,
    salt: Vec<u8>,
    salted_password: &[u8],
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac_of(mechanism, salted_password, b"Client Key");
    ScramCredential {
        salt,
        stored_key: digest::digest(mechanism.digest(), &client_key)
            .as_ref()
            .to_vec(),
        server_key: hmac_of(mechanism, salted_password, b"Server Key"),
        iterations,
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unknown user")]
    UnknownUser,
    #[error("invalid client proof")]
    InvalidProof,
    #[error("the exchange is already over")]
    Finished,
    #[error("Requested iterations {0} is less than the minimum {ITERATIONS_MIN}")]
    TooFewIterations(i64),
    #[error("the server's signature does not match: the server does not know the password")]
    InvalidServerSignature,
    #[error("the server refused the exchange: {0}")]
    ServerError(String),
}

/// The server's side of one exchange.
#[derive(Debug)]
pub enum ScramServer {
    /// Waiting for the client-first message.
    Initial(ScramMechanism),
    /// Server-first sent; waiting for the client-final message.
    SentFirst {
        mechanism: ScramMechanism,
        user: String,
        credential: ScramCredential,
        /// The gs2 header of the client-first message (`n,,`), which `c=` must repeat.
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Finished,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer::Initial(mechanism)
    }

    /// Takes the next client message and returns the server's answer; `Ok((answer, Some(user)))`
    /// when the exchange succeeded with that user.
    pub fn step(
        &mut self,
        message: &[u8],
        server_nonce: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(Vec<u8>, Option<String>), ScramError> {
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        match std::mem::replace(self, ScramServer::Finished) {
            ScramServer::Initial(mechanism) => {
                let (next, answer) = first(mechanism, message, server_nonce, lookup)?;
                *self = next;
                Ok((answer.into_bytes(), None))
            }
            ScramServer::SentFirst {
                mechanism,
                user,
                credential,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
            } => {
                let (proof, without_proof) = parse_client_final(message, &gs2_header, &nonce)?;
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let client_signature =
                    hmac_of(mechanism, &credential.stored_key, auth_message.as_bytes());
                if proof.len() != client_signature.len() {
                    return Err(ScramError::InvalidProof);
                }
                let client_key: Vec<u8> = proof
                    .iter()
                    .zip(&client_signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                let stored = digest::digest(mechanism.digest(), &client_key);
                if !super::constant_time_eq(stored.as_ref(), &credential.stored_key) {
                    return Err(ScramError::InvalidProof);
                }
                let server_signature =
                    hmac_of(mechanism, &credential.server_key, auth_message.as_bytes());
                let answer = format!("v={}", BASE64.encode(server_signature));
                Ok((answer.into_bytes(), Some(user)))
            }
            ScramServer::Finished => Err(ScramError::Finished),
        }
    }
}

/// The client's side of one exchange, as Kafka's `ScramSaslClient` runs it: client-first, then
/// client-final computed from the server-first, then the server-final's signature checked, so a
/// server that does not hold the credential is caught too.
#[derive(Debug)]
pub enum ScramClient {
    /// Nothing sent yet.
    Initial {
        mechanism: ScramMechanism,
        user: String,
        password: String,
        client_nonce: String,
    },
    /// Client-first sent; waiting for the server-first message.
    SentFirst {
        mechanism: ScramMechanism,
        password: String,
        client_nonce: String,
        client_first_bare: String,
    },
    /// Client-final sent; waiting for the server-final message and its signature.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Finished,
}

/// What the client does next.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send this message and wait for the server's answer.
    Send(Vec<u8>),
    /// The server proved it knows the credential: the exchange succeeded.
    Done,
}

impl ScramClient {
    /// An exchange for `user` with `password`; `client_nonce` must be fresh and random, and
    /// hold no ','.
    pub fn new(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        client_nonce: &str,
    ) -> ScramClient {
        ScramClient::Initial {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            client_nonce: client_nonce.to_string(),
        }
    }

    /// Takes the server's last message (nothing for the first step) and says what to do next.
    pub fn step(&mut self, server_message: &[u8]) -> Result<ClientStep, ScramError> {
        match std::mem::replace(self, ScramClient::Finished) {
            ScramClient::Initial {
                mechanism,
                user,
                password,
                client_nonce,
            } => {
                let client_first_bare = format!("n={},r={client_nonce}", escape(&user));
                let message = format!("n,,{client_first_bare}").into_bytes();
                *self = ScramClient::SentFirst {
                    mechanism,
                    password,
                    client_nonce,
                    client_first_bare,
                };
                Ok(ClientStep::Send(message))
            }
            ScramClient::SentFirst {
                mechanism,
                password,
                client_nonce,
                client_first_bare,
            } => {
                let server_first = std::str::from_utf8(server_message)
                    .map_err(|_| ScramError::Malformed("not UTF-8"))?;
                let (nonce, salt, iterations) = parse_server_first(server_first, &client_nonce)?;
                let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations);
                let without_proof = format!("c={},r={nonce}", BASE64.encode(b"n,,"));
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let (proof, server_signature) = client_proof(mechanism, &salted, &auth_message);
                *self = ScramClient::SentFinal { server_signature };
                let message = format!("{without_proof},p={}", BASE64.encode(proof));
                Ok(ClientStep::Send(message.into_bytes()))
            }
            ScramClient::SentFinal { server_signature } => {
                let server_final = std::str::from_utf8(server_message)
                    .map_err(|_| ScramError::Malformed("not UTF-8"))?;
                if let Some(error) = server_final.strip_prefix("e=") {
                    return Err(ScramError::ServerError(error.to_string()));
                }
                let signature = server_final
                    .split(',')
                    .find_map(|attribute| attribute.strip_prefix("v="))
                    .and_then(|value| BASE64.decode(value).ok())
                    .ok_or(ScramError::Malformed("server-final message without v="))?;
                if !super::constant_time_eq(&signature, &server_signature) {
                    return Err(ScramError::InvalidServerSignature);
                }
                Ok(ClientStep::Done)
            }
            ScramClient::Finished => Err(ScramError::Finished),
        }
    }
}

/// The combined nonce, the salt and the iterations of a server-first message, after checking
/// that the nonce extends the client's and the iterations reach Kafka's minimum.
fn parse_server_first(
    message: &str,
    client_nonce: &str,
) -> Result<(String, Vec<u8>, u32), ScramError> {
    let mut nonce = None;
    let mut salt = None;
    let mut iterations = None;
    for attribute in message.split(',') {
        if let Some(value) = attribute.strip_prefix("r=") {
            nonce = Some(value);
        } else if let Some(value) = attribute.strip_prefix("s=") {
            salt = Some(
                BASE64
                    .decode(value)
                    .map_err(|_| ScramError::Malformed("the salt is not base64"))?,
            );
        } else if let Some(value) = attribute.strip_prefix("i=") {
            iterations = Some(
                value
                    .parse::<i64>()
                    .map_err(|_| ScramError::Malformed("the iterations are not a number"))?,
            );
        } else if attribute.starts_with("m=") {
            return Err(ScramError::Malformed(
                "mandatory extensions are not supported",
            ));
        }
    }
    let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
        return Err(ScramError::Malformed(
            "server-first message without r=, s= or i=",
        ));
    };
    if !nonce.starts_with(client_nonce) || nonce.len() == client_nonce.len() {
        return Err(ScramError::Malformed(
            "the server's nonce does not extend the client's",
        ));
    }
    if iterations < i64::from(ITERATIONS_MIN) {
        return Err(ScramError::TooFewIterations(iterations));
    }
    let iterations = u32::try_from(iterations)
        .map_err(|_| ScramError::Malformed("the iterations are out of range"))?;
    Ok((nonce.to_string(), salt, iterations))
}

/// The client proof for `auth_message` and the server signature the client then expects.
fn client_proof(
    mechanism: ScramMechanism,
    salted_password: &[u8],
    auth_message: &str,
) -> (Vec<u8>, Vec<u8>) {
    let client_key = hmac_of(mechanism, salted_password, b"Client Key");
    let stored_key = digest::digest(mechanism.digest(), &client_key);
    let signature = hmac_of(mechanism, stored_key.as_ref(), auth_message.as_bytes());
    let proof = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac_of(mechanism, salted_password, b"Server Key");
    let server_signature = hmac_of(mechanism, &server_key, auth_message.as_bytes());
    (proof, server_signature)
}

/// A user name with ',' and '=' escaped as `=2C` and `=3D` (RFC 5802's saslname).
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn first(
    mechanism: ScramMechanism,
    message: &str,
    server_nonce: &str,
    lookup: impl FnOnce(&str) -> Option<ScramCredential>,
) -> Result<(ScramServer, String), ScramError> {
    // gs2-header: "n" (no channel binding) or "y", then "," [ "a=" authzid ] ",".
    let mut parts = message.splitn(3, ',');
    let (Some(binding), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ScramError::Malformed(
            "client-first message without a gs2 header",
        ));
    };
    if binding != "n" && binding != "y" {
        return Err(ScramError::Malformed("channel binding is not supported"));
    }
    let mut user = None;
    let mut client_nonce = None;
    for attribute in bare.split(',') {
        if let Some(value) = attribute.strip_prefix("n=") {
            user = Some(unescape(value)?);
        } else if let Some(value) = attribute.strip_prefix("r=") {
            client_nonce = Some(value.to_string());
        } else if attribute.starts_with("m=") {
            return Err(ScramError::Malformed(
                "mandatory extensions are not supported",
            ));
        }
        // Other extensions (Kafka's tokenauth) are ignored.
    }
    let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
        return Err(ScramError::Malformed(
            "client-first message without n= or r=",
        ));
    };
    if client_nonce.is_empty() {
        return Err(ScramError::Malformed("empty client nonce"));
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if unescape(authzid)? != user {
            return Err(ScramError::Malformed(
                "the authorization id differs from the user name",
            ));
        }
    }
    let credential = lookup(&user).ok_or(ScramError::UnknownUser)?;
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&credential.salt),
        credential.iterations
    );
    let gs2_header = format!("{binding},{authzid},");
    Ok((
        ScramServer::SentFirst {
            mechanism,
            user,
            credential,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        },
        server_first,
    ))
}

/// The proof and the message without it, after checking the binding and the nonce.
fn parse_client_final<'a>(
    message: &'a str,
    gs2_header: &str,
    nonce: &str,
) -> Result<(Vec<u8>, &'a str), ScramError> {
    let proof_at = message.rfind(",p=").ok_or(ScramError::Malformed(
        "client-final message without a proof",
    ))?;
    let (without_proof, proof) = (&message[..proof_at], &message[proof_at + 3..]);
    let mut binding = None;
    let mut final_nonce = None;
    for attribute in without_proof.split(',') {
        if let Some(value) = attribute.strip_prefix("c=") {
            binding = Some(value);
        } else if let Some(value) = attribute.strip_prefix("r=") {
            final_nonce = Some(value);
        }
    }
    let binding = binding.ok_or(ScramError::Malformed("client-final message without c="))?;
    if BASE64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
        return Err(ScramError::Malformed(
            "the channel binding differs from the gs2 header",
        ));
    }
    // Kafka checks that the nonce ends with the server's, not that it equals it: librdkafka
    // before 2.1 sends its client nonce in front of the server's once more, and Kafka serves it.
    if !final_nonce.is_some_and(|final_nonce| final_nonce.ends_with(nonce)) {
        return Err(ScramError::Malformed(
            "the nonce does not end with the server's",
        ));
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("the proof is not base64"))?;
    Ok((proof, without_proof))
}

/// A SCRAM user name with `=2C` and `=3D` decoded.
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("a user name with a bad escape")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side, as RFC 5802 gives it, to drive the server.
    fn client_final(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce_prefix: &str,
    ) -> (String, Vec<u8>) {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        let salt = BASE64
            .decode(fields[1].strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = salted_password(mechanism, password.as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce_prefix}{nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let (proof, expected) = client_proof(mechanism, &salted, &auth_message);
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            expected,
        )
    }

    fn stored(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        let salt = b"0123456789abcdef".to_vec();
        let salted = salted_password(mechanism, password.as_bytes(), &salt, 4096);
        credential(mechanism, salt, &salted, 4096)
    }

    /// Proves a full exchange succeeds for both mechanisms with the right password, the server
    /// signature is the one the client expects, and a wrong password, an unknown user, a
    /// changed nonce or binding are refused.
    #[test]
    fn exchanges_succeed_and_refuse_as_rfc_5802_says() {
        for mechanism in ScramMechanism::ALL {
            let credential = stored(mechanism, "alice-secret");
            let exchange = |password: &str, prefix: &str, tamper: fn(String) -> String| {
                let mut server = ScramServer::new(mechanism);
                let bare = "n=alice,r=clientnonce";
                let (server_first, done) = server
                    .step(format!("n,,{bare}").as_bytes(), "servernonce", |user| {
                        (user == "alice").then(|| credential.clone())
                    })
                    .unwrap();
                assert_eq!(done, None);
                let server_first = String::from_utf8(server_first).unwrap();
                assert!(server_first.starts_with("r=clientnonceservernonce,s="));
                let (message, expected) =
                    client_final(mechanism, password, bare, &server_first, prefix);
                server
                    .step(tamper(message).as_bytes(), "", |_| None)
                    .map(|(answer, user)| (answer, user, expected))
            };
            let (answer, user, expected) = exchange("alice-secret", "", |m| m).unwrap();
            assert_eq!(user.as_deref(), Some("alice"));
            assert_eq!(
                answer,
                format!("v={}", BASE64.encode(expected)).into_bytes()
            );
            assert_eq!(
                exchange("wrong", "", |m| m).unwrap_err(),
                ScramError::InvalidProof
            );
            assert!(exchange("alice-secret", "", |m| m
                .replace("servernonce", "othernonce"))
            .is_err());
            // Older librdkafka repeats its nonce in front of the server's; Kafka accepts it.
            let (_, user, _) = exchange("alice-secret", "client", |m| m).unwrap();
            assert_eq!(user.as_deref(), Some("alice"));
            assert!(exchange("alice-secret", "", |m| m.replace("c=biws", "c=eSws")).is_err());
            let mut server = ScramServer::new(mechanism);
            assert_eq!(
                server.step(b"n,,n=bob,r=x", "s", |_| None).unwrap_err(),
                ScramError::UnknownUser
            );
        }
    }

    /// Proves user names are unescaped, malformed first messages are refused, mechanisms map
    /// to Kafka's names and codes, and a credential survives its config form.
    #[test]
    fn parses_names_and_mechanisms() {
        assert_eq!(unescape("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape("a=2").is_err());
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.step(b"n=alice,r=x", "s", |_| None).is_err());
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server.step(b"p=tls,,n=alice,r=x", "s", |_| None).is_err());
        assert_eq!(
            ScramMechanism::parse("scram-sha-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_code(1), Some(ScramMechanism::Sha256));
        assert_eq!(ScramMechanism::Sha512.hash_bytes(), 64);
        let credential = stored(ScramMechanism::Sha256, "pw");
        assert_eq!(
            ScramCredential::from_config(&credential.to_config()),
            Some(credential)
        );
        assert_eq!(ScramCredential::from_config("salt=x"), None);
    }

    /// Proves the client side computes RFC 7677's SHA-256 example exactly: the client-first and
    /// client-final messages, and accepts the server signature of the example.
    #[test]
    fn client_follows_rfc_7677_example() {
        let mut client = ScramClient::new(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(
            client.step(b"").unwrap(),
            ClientStep::Send(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec())
        );
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            client.step(server_first).unwrap(),
            ClientStep::Send(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                    .to_vec()
            )
        );
        assert_eq!(
            client
                .step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            ClientStep::Done
        );
        assert_eq!(client.step(b"").unwrap_err(), ScramError::Finished);
    }

    /// Proves the client and the server state machines agree for both mechanisms (a user name
    /// needing escapes included), and that a wrong password fails at the server while a server
    /// without the right credential fails at the client.
    #[test]
    fn client_and_server_agree() {
        for mechanism in ScramMechanism::ALL {
            let credential = stored(mechanism, "s3cret");
            let run = |password: &str, credential: ScramCredential| {
                let mut client = ScramClient::new(mechanism, "a,b=c", password, "clientnonce");
                let mut server = ScramServer::new(mechanism);
                let ClientStep::Send(first) = client.step(b"").unwrap() else {
                    panic!("the client starts with a message")
                };
                let lookup = |user: &str| (user == "a,b=c").then(|| credential.clone());
                let (server_first, _) = server.step(&first, "servernonce", lookup).unwrap();
                let ClientStep::Send(last) = client.step(&server_first).unwrap() else {
                    panic!("the client answers the server-first message")
                };
                let (server_final, user) = server.step(&last, "", |_| None)?;
                assert_eq!(user.as_deref(), Some("a,b=c"));
                Ok::<_, ScramError>(client.step(&server_final))
            };
            assert_eq!(run("s3cret", credential.clone()), Ok(Ok(ClientStep::Done)));
            assert_eq!(
                run("wrong", credential.clone()).unwrap_err(),
                ScramError::InvalidProof
            );
            // A server holding another credential for the same password proves nothing.
            let mut other = credential;
            other.server_key[0] ^= 1;
            assert_eq!(
                run("s3cret", other),
                Ok(Err(ScramError::InvalidServerSignature))
            );
        }
    }

    /// Proves the client refuses server-first messages it must not answer: too few iterations,
    /// a nonce that does not extend its own, missing attributes; and reports a server's e=.
    #[test]
    fn client_refuses_bad_server_messages() {
        let answer = |server_first: &str| {
            let mut client = ScramClient::new(ScramMechanism::Sha512, "u", "p", "abc");
            client.step(b"").unwrap();
            client.step(server_first.as_bytes())
        };
        assert_eq!(
            answer("r=abcdef,s=c2FsdA==,i=1024").unwrap_err(),
            ScramError::TooFewIterations(1024)
        );
        assert!(answer("r=xyzdef,s=c2FsdA==,i=4096").is_err());
        assert!(answer("r=abc,s=c2FsdA==,i=4096").is_err());
        assert!(answer("r=abcdef,i=4096").is_err());
        assert!(answer("r=abcdef,s=c2FsdA==,i=4096").is_ok());
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p", "abc");
        client.step(b"").unwrap();
        client.step(b"r=abcdef,s=c2FsdA==,i=4096").unwrap();
        assert_eq!(
            client.step(b"e=invalid-proof").unwrap_err(),
            ScramError::ServerError("invalid-proof".to_string())
        );
    }
}
