use super::*;
use crate::security::jwks::test_keys::{encode, set, Signer};

const NOW_MS: i64 = 1_700_000_000_000;
const NOW_S: i64 = NOW_MS / 1000;

fn unsecured_token(claims: &str) -> String {
    format!("{}.{}.", encode(r#"{"alg":"none"}"#), encode(claims))
}

fn unsecured() -> UnsecuredValidator {
    UnsecuredValidator {
        principal_claim: "sub".into(),
        scope_claim: "scope".into(),
        required_scope: Vec::new(),
        clock_skew_ms: 0,
    }
}

fn message(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// Proves the initial response is read as Kafka reads it: authzid, token and extensions,
/// with every malformed variant refused.
#[test]
fn parses_initial_responses() {
    let parsed =
        InitialResponse::parse(b"n,a=alice,\x01host=h\x01auth=Bearer a.b.c\x01\x01").unwrap();
    assert_eq!(parsed.authorization_id, "alice");
    assert_eq!(parsed.token, "a.b.c");
    assert_eq!(parsed.extensions["host"], "h");
    let plain = InitialResponse::parse(b"n,,\x01auth=bearer  x-_.9\x01\x01").unwrap();
    assert_eq!(
        (plain.authorization_id.as_str(), plain.token.as_str()),
        ("", "x-_.9")
    );
    let escaped = InitialResponse::parse(b"n,a=a=2Cb,\x01auth=Bearer t\x01\x01").unwrap();
    assert_eq!(escaped.authorization_id, "a=2Cb");

    let refused: &[&[u8]] = &[
        b"",
        b"y,,\x01auth=Bearer t\x01\x01",
        b"n,,auth=Bearer t\x01\x01",
        b"n,,\x01auth=Bearer t\x01",
        b"n,,\x01auth=Bearer t",
        b"n,,\x01\x01",
        b"n,,\x01host=h\x01\x01",
        b"n,,\x01auth=Bearer\x01\x01",
        b"n,,\x01auth=Bearer t t\x01\x01",
        b"n,,\x01auth=Bearer t/\x01\x01",
        b"n,,\x01auth=Basic t\x01\x01",
        b"n,,\x01auth=Bearer t\x01h0st=x\x01\x01",
        b"n,,\x01auth=Bearer t\x01host=\x01\x01",
        b"n,,\x01auth=Bearer t\x01=x\x01\x01",
        b"n,,\x01auth=Bearer t\x01host\x01\x01",
        b"n,,\x01auth=Bearer t\x01host=\xff\x01\x01",
        b"n,a=,\x01auth=Bearer t\x01\x01",
        b"n,a=b=c,\x01auth=Bearer t\x01\x01",
        b"n,b=x,\x01auth=Bearer t\x01\x01",
        b"n,a=\xc3\xa9,\x01auth=Bearer t\x01\x01",
    ];
    for message in refused {
        assert!(
            matches!(
                InitialResponse::parse(message),
                Err(OAuthError::Malformed(_))
            ),
            "{:?}",
            String::from_utf8_lossy(message)
        );
    }
    let huge = message(&"a".repeat(INITIAL_RESPONSE_BYTES_MAX));
    assert!(InitialResponse::parse(&huge).is_err());
}

/// Proves Kafka's unsecured validator: `alg` none without signature, the principal claim,
/// `exp` against the time, and the required scope answered `insufficient_scope`.
#[test]
fn validates_unsecured_tokens() {
    let validator = Validator::Unsecured(unsecured());
    let claims = format!(
        r#"{{"sub":"alice","exp":{},"iat":{NOW_S},"scope":["read"]}}"#,
        NOW_S + 60
    );
    let token = validator
        .validate(&unsecured_token(&claims), NOW_MS)
        .unwrap();
    assert_eq!(token.principal, "alice");
    assert_eq!(token.expires_at_ms, NOW_MS + 60_000);
    assert!(token.scope.contains("read"));

    let refused = |token: &str| validator.validate(token, NOW_MS).unwrap_err();
    let expired = format!(r#"{{"sub":"alice","exp":{NOW_S}}}"#);
    assert!(refused(&unsecured_token(&expired))
        .reason
        .contains("Expiration Time"));
    let no_exp = r#"{"sub":"alice"}"#;
    assert_eq!(
        refused(&unsecured_token(no_exp)).reason,
        "Required claim missing: exp"
    );
    let no_sub = format!(r#"{{"exp":{}}}"#, NOW_S + 60);
    assert_eq!(
        refused(&unsecured_token(&no_sub)).reason,
        "Required claim missing: sub"
    );
    let blank_sub = format!(r#"{{"sub":" ","exp":{}}}"#, NOW_S + 60);
    assert!(refused(&unsecured_token(&blank_sub)).status == "invalid_token");
    let signed = Signer::p256("k").sign(&claims);
    assert_eq!(
        refused(&signed).reason,
        "Unsecured JWS must have 'none' for an algorithm"
    );
    let with_signature = format!("{}sig", unsecured_token(&claims));
    assert_eq!(
        refused(&with_signature).reason,
        "Unsecured JWS must not contain a digital signature"
    );
    assert_eq!(
        refused("garbage").challenge(),
        r#"{"status":"invalid_token"}"#
    );

    let other_names = Validator::Unsecured(UnsecuredValidator {
        principal_claim: "user".into(),
        scope_claim: "scp".into(),
        required_scope: vec!["read".into(), "write".into()],
        clock_skew_ms: 5000,
    });
    let claims = format!(r#"{{"user":"bob","exp":{},"scp":["read"]}}"#, NOW_S - 2);
    let rejection = other_names
        .validate(&unsecured_token(&claims), NOW_MS)
        .unwrap_err();
    assert_eq!(rejection.status, "insufficient_scope");
    assert_eq!(
        rejection.challenge(),
        r#"{"status":"insufficient_scope", "scope":"[read, write]"}"#
    );
    assert!(rejection
        .reason
        .contains("missing a required scope (write)"));
    let claims = format!(
        r#"{{"user":"bob","exp":{},"scp":["read","write"]}}"#,
        NOW_S - 2
    );
    let token = other_names
        .validate(&unsecured_token(&claims), NOW_MS)
        .unwrap();
    assert_eq!(token.principal, "bob");
}

fn jwks_validator(signers: &[&Signer]) -> JwksValidator {
    JwksValidator {
        keys: JwkSet::parse(set(signers).as_bytes()).unwrap(),
        audience: vec!["flink".into(), "other".into()],
        issuer: Some("https://issuer.example".into()),
        subject_claim: "sub".into(),
        scope_claim: "scope".into(),
        clock_skew_seconds: 30,
    }
}

fn signed_claims(extra: &str) -> String {
    format!(
        r#"{{"sub":"alice","iss":"https://issuer.example","aud":"flink","iat":{NOW_S},"exp":{}{extra}}}"#,
        NOW_S + 300
    )
}

/// Proves the JWKS validator: a token signed by a key of the set, for the expected audience
/// and issuer, within its times, is accepted; each of those failing is `invalid_token`.
#[test]
fn validates_signed_tokens() {
    let (rsa, ec) = (Signer::rsa("r1"), Signer::p256("e1"));
    let validator = Validator::Jwks(jwks_validator(&[&rsa, &ec]));
    for signer in [&rsa, &ec] {
        let token = validator
            .validate(&signer.sign(&signed_claims("")), NOW_MS)
            .unwrap();
        assert_eq!(
            (token.principal.as_str(), token.expires_at_ms),
            ("alice", NOW_MS + 300_000)
        );
    }
    let list_audience = signed_claims(r#","aud":["x","other"]"#).replace(r#""aud":"flink","#, "");
    assert!(validator
        .validate(&rsa.sign(&list_audience), NOW_MS)
        .is_ok());

    let reason = |token: &str| {
        let rejection = validator.validate(token, NOW_MS).unwrap_err();
        assert_eq!(rejection.challenge(), r#"{"status":"invalid_token"}"#);
        rejection.reason
    };
    let wrong_audience = signed_claims("").replace(r#""aud":"flink""#, r#""aud":"nobody""#);
    assert!(reason(&rsa.sign(&wrong_audience)).contains("Audience (aud)"));
    let no_audience = signed_claims("").replace(r#""aud":"flink","#, "");
    assert!(reason(&rsa.sign(&no_audience)).contains("No Audience (aud) claim"));
    let numeric_audience = signed_claims("").replace(r#""aud":"flink""#, r#""aud":7"#);
    assert!(reason(&rsa.sign(&numeric_audience)).contains("'aud' claim was not of type"));
    let mut any_audience = jwks_validator(&[&rsa]);
    any_audience.audience.clear();
    let any_audience = Validator::Jwks(any_audience);
    assert!(any_audience
        .validate(&rsa.sign(&no_audience), NOW_MS)
        .is_ok());
    let named = any_audience.validate(&rsa.sign(&signed_claims("")), NOW_MS);
    assert!(named.unwrap_err().reason.contains("no expected audience"));
    let wrong_issuer = signed_claims("").replace("issuer.example", "evil.example");
    assert!(reason(&rsa.sign(&wrong_issuer)).contains("Issuer (iss)"));
    let stranger = Signer::p256("e1");
    assert!(reason(&stranger.sign(&signed_claims(""))).contains("signature is invalid"));
    let unsigned = unsecured_token(&signed_claims(""));
    assert!(reason(&unsigned).contains("none"));
    let no_iat = signed_claims("").replace(&format!(r#""iat":{NOW_S},"#), "");
    assert!(reason(&rsa.sign(&no_iat)).contains("Required claim missing: iat"));
    let expired =
        signed_claims("").replace(&format!("{}", NOW_S + 300), &format!("{}", NOW_S - 31));
    assert!(reason(&rsa.sign(&expired)).contains("Expiration Time"));
    let within_skew = signed_claims("")
        .replace(&format!("{}", NOW_S + 300), &format!("{}", NOW_S - 29))
        .replace(
            &format!(r#""iat":{NOW_S}"#),
            &format!(r#""iat":{}"#, NOW_S - 100),
        );
    assert!(validator.validate(&rsa.sign(&within_skew), NOW_MS).is_ok());
    let not_yet = signed_claims(&format!(r#","nbf":{}"#, NOW_S + 60));
    assert!(reason(&rsa.sign(&not_yet)).contains("Not Before"));
    assert!(reason("a.b").starts_with("Could not validate the access token: "));
}

/// Proves the exchange: a good token authenticates; a refused one is challenged and the
/// client's ^A ends it with the challenge; another message after a challenge starts over;
/// an authorization id other than the principal is refused.
#[test]
fn runs_the_exchange() {
    let validator = Validator::Unsecured(unsecured());
    let good = unsecured_token(&format!(r#"{{"sub":"alice","exp":{}}}"#, NOW_S + 60));
    let bad = unsecured_token(&format!(r#"{{"sub":"alice","exp":{}}}"#, NOW_S - 60));

    let mut server = OAuthServer::default();
    let step = server.step(&validator, &message(&good), NOW_MS).unwrap();
    assert!(
        matches!(step, Step::Authenticated(Token { ref principal, .. }) if principal == "alice")
    );

    let mut server = OAuthServer::default();
    let Step::Challenge { challenge, reason } =
        server.step(&validator, &message(&bad), NOW_MS).unwrap()
    else {
        panic!("expected a challenge");
    };
    assert_eq!(challenge, r#"{"status":"invalid_token"}"#);
    assert!(reason.contains("Expiration Time"));
    assert_eq!(
        server.step(&validator, b"\x01", NOW_MS),
        Err(OAuthError::Refused(challenge.clone()))
    );

    let mut server = OAuthServer::default();
    assert!(matches!(
        server.step(&validator, b"\x01", NOW_MS),
        Err(OAuthError::Malformed(_))
    ));
    server.step(&validator, &message(&bad), NOW_MS).unwrap();
    let retried = server.step(&validator, &message(&good), NOW_MS).unwrap();
    assert!(matches!(retried, Step::Authenticated(_)));

    let mut server = OAuthServer::default();
    let other = format!("n,a=bob,\x01auth=Bearer {good}\x01\x01");
    let refused = server
        .step(&validator, other.as_bytes(), NOW_MS)
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "Authentication failed: Client requested an authorization id (bob) that is different from the token's principal name (alice)"
    );
    let same = format!("n,a=alice,\x01auth=Bearer {good}\x01\x01");
    assert!(server.step(&validator, same.as_bytes(), NOW_MS).is_ok());
}
