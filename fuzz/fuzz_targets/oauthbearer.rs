//! OAUTHBEARER as an unauthenticated client can drive it: the input is a SaslAuthenticate's auth
//! bytes, taken by `security::oauthbearer::OAuthServer` with Kafka's unsecured validator (byte 0
//! even) or with the JWKS validator (byte 0 odd: one fixed P-256 key, an expected audience and
//! issuer), at a fixed time, followed by the client's `^A`; then the same bytes (byte 1 on) as a
//! bare token and as a JWK set. Nothing may panic or abort: every answer is a challenge, a token
//! or an error, which in the broker ends only that connection.

#![no_main]

use libfuzzer_sys::fuzz_target;

use flink::security::jwks::JwkSet;
use flink::security::oauthbearer::{
    JwksValidator, OAuthServer, UnsecuredValidator, Validator,
};

/// A P-256 public key made once with `openssl ecparam -name prime256v1 -genkey`.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"8o-sM51P5tuwnLeMCSwPCTvxPprPs0cRFPl5bYzaV6E","y":"g5o0hddQlu6QlkGOs5YQ9tuXmYBZa-Kb8Bz40Eeyo08"}]}"#;
/// The broker's clock, fixed: 2023-11-14.
const NOW_MS: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let validator = match selector % 2 {
        0 => Validator::Unsecured(UnsecuredValidator {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: vec!["kafka".into()],
            clock_skew_ms: 1000,
        }),
        _ => match JwkSet::parse(JWKS.as_bytes()) {
            Ok(keys) => Validator::Jwks(JwksValidator {
                keys,
                audience: vec!["flink".into()],
                issuer: Some("https://issuer.test".into()),
                subject_claim: "sub".into(),
                scope_claim: "scope".into(),
                clock_skew_seconds: 30,
            }),
            Err(error) => panic!("the target's own JWK set is refused: {error}"),
        },
    };
    let mut server = OAuthServer::default();
    let _ = server.step(&validator, message, NOW_MS);
    let _ = server.step(&validator, b"\x01", NOW_MS);
    if let Ok(token) = std::str::from_utf8(message) {
        let _ = validator.validate(token, NOW_MS);
    }
    let _ = JwkSet::parse(message);
});
