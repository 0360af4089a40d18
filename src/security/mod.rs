//! Authentication and authorization building blocks shared by the listeners, the APIs and the
//! tools' client: SCRAM (`scram`, both sides of the exchange), OAUTHBEARER (`oauthbearer` the
//! server's side, `oauthbearer_login` the client's, with JWTs in `jwt` and their signing keys in
//! `jwks`), a client's SASL login (`login`), PEM material for TLS (`pem`), client certificates'
//! principals (`principal`) and access control lists (`acl`).

pub mod acl;
pub mod jwks;
pub mod jwt;
pub mod login;
pub mod oauthbearer;
pub mod oauthbearer_login;
pub mod pem;
pub mod principal;
pub mod scram;

/// Whether `a` and `b` are equal, in a time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

/// `N` bytes from the system's random source (nonces, salts); `None` if it failed.
pub fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes)
}

/// The time of day in milliseconds since the epoch, which tokens are issued at and expire by.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            elapsed.as_millis().min(i64::MAX as u128) as i64
        })
}
