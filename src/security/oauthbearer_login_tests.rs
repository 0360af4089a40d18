use super::*;
use crate::security::oauthbearer::{InitialResponse, UnsecuredValidator, Validator};

const NOW_MS: i64 = 1_700_000_000_123;

fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn login(pairs: &[(&str, &str)]) -> Result<UnsecuredLogin, OAuthLoginError> {
    UnsecuredLogin::from_options(&options(pairs))
}

fn claims(token: &str) -> serde_json::Map<String, Value> {
    Jws::parse(token).unwrap().claims
}

fn validator(required_scope: &[&str]) -> Validator {
    Validator::Unsecured(UnsecuredValidator {
        principal_claim: "sub".into(),
        scope_claim: "scope".into(),
        required_scope: required_scope.iter().map(|s| s.to_string()).collect(),
        clock_skew_ms: 0,
    })
}

/// Proves the default unsecured token: header `{"alg":"none"}`, `exp` and `iat` in seconds
/// with the milliseconds as a fraction, an hour apart, the principal claim, base64url without
/// padding and no signature; and that the broker's unsecured validator accepts it.
#[test]
fn makes_kafkas_unsecured_token() {
    let login = login(&[("unsecuredLoginStringClaim_sub", "alice")]).unwrap();
    assert_eq!(login.principal, "alice");
    let token = login.token(NOW_MS);
    assert!(token.ends_with('.') && !token.contains('='), "{token}");
    let (header, rest) = token.split_once('.').unwrap();
    let header = crate::security::jwt::base64url(header).unwrap();
    assert_eq!(header, br#"{"alg":"none"}"#);
    let payload = crate::security::jwt::base64url(rest.trim_end_matches('.')).unwrap();
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        r#"{"exp":1700003600.123,"iat":1700000000.123,"sub":"alice"}"#
    );
    let accepted = validator(&[]).validate(&token, NOW_MS).unwrap();
    assert_eq!(accepted.principal, "alice");
    assert_eq!(accepted.expires_at_ms, NOW_MS + 3_600_000);
    // Each login makes its own token, issued at its own time.
    assert_ne!(login.token(NOW_MS + 1), token);
}

/// Proves the lifetime, principal claim name, number and list claims (the first character
/// separates the list) and that the scope they give satisfies a required scope.
#[test]
fn claims_and_lifetime_from_the_options() {
    let login = login(&[
        ("unsecuredLoginPrincipalClaimName", " user "),
        ("unsecuredLoginStringClaim_user", "bob \"the\" builder"),
        ("unsecuredLoginNumberClaim_level", "7"),
        ("unsecuredLoginNumberClaim_ratio", " 0.25 "),
        ("unsecuredLoginListClaim_scope", "|kafka|admin"),
        ("unsecuredLoginListClaim_empty", ","),
        ("unsecuredLoginListClaim_gaps", ",a,,b,"),
        ("unsecuredLoginLifetimeSeconds", "60"),
        ("unsecuredValidatorRequiredScope", "ignored here"),
        ("unsecuredLoginStringClaim_", "no name: ignored"),
    ])
    .unwrap();
    assert_eq!(login.principal, "bob \"the\" builder");
    let token = login.token(NOW_MS);
    let claims = claims(&token);
    assert_eq!(claims["user"], "bob \"the\" builder");
    assert_eq!(claims["level"].as_f64(), Some(7.0));
    assert_eq!(claims["ratio"].as_f64(), Some(0.25));
    assert_eq!(claims["scope"], serde_json::json!(["kafka", "admin"]));
    assert_eq!(claims["empty"], serde_json::json!([]));
    assert_eq!(claims["gaps"], serde_json::json!(["a", "", "b", ""]));
    assert_eq!(claims["exp"].as_f64(), Some(1_700_000_060.123));
    let validator = Validator::Unsecured(UnsecuredValidator {
        principal_claim: "user".into(),
        scope_claim: "scope".into(),
        required_scope: vec!["kafka".into()],
        clock_skew_ms: 0,
    });
    let accepted = validator.validate(&token, NOW_MS + 59_000).unwrap();
    assert_eq!(accepted.expires_at_ms, NOW_MS + 60_000);
    assert!(validator.validate(&token, NOW_MS + 60_000).is_err());
}

/// Proves what Kafka's unsecured login refuses: a reserved claim, a principal claim that is
/// missing, blank or not a string, a scope that is a number, numbers and lifetimes that do
/// not parse; and a claim set twice.
#[test]
fn refuses_what_kafka_refuses() {
    let error = |pairs: &[(&str, &str)]| login(pairs).unwrap_err();
    let sub = ("unsecuredLoginStringClaim_sub", "alice");
    assert_eq!(
        error(&[sub, ("unsecuredLoginStringClaim_exp", "never")]),
        OAuthLoginError::ReservedClaim("exp".into())
    );
    assert_eq!(
        error(&[sub, ("unsecuredLoginNumberClaim_iat", "1")]).to_string(),
        "Cannot explicitly set the 'iat' claim"
    );
    let missing = error(&[("unsecuredLoginStringClaim_user", "alice")]);
    assert_eq!(missing, OAuthLoginError::NoPrincipal("sub".into()));
    assert!(missing
        .to_string()
        .starts_with("No principal name in JWT claim: sub"));
    assert_eq!(
        error(&[("unsecuredLoginStringClaim_sub", "  ")]),
        OAuthLoginError::NoPrincipal("sub".into())
    );
    assert_eq!(
        error(&[("unsecuredLoginListClaim_sub", ",alice")]).to_string(),
        "The 'sub' claim was not of type String"
    );
    assert!(matches!(
        error(&[sub, ("unsecuredLoginNumberClaim_scope", "1")]),
        OAuthLoginError::ClaimType { .. }
    ));
    for number in ["seven", "NaN", "inf", ""] {
        assert!(matches!(
            error(&[sub, ("unsecuredLoginNumberClaim_level", number)]),
            OAuthLoginError::Number { .. }
        ));
    }
    assert_eq!(
        error(&[sub, ("unsecuredLoginLifetimeSeconds", "1h")]),
        OAuthLoginError::Lifetime("1h".into())
    );
    assert_eq!(
        error(&[sub, ("unsecuredLoginListClaim_sub", ",bob")]),
        OAuthLoginError::DuplicateClaim("sub".into())
    );
}

/// Proves extensions are checked as Kafka checks them and sent in the initial response
/// after the token, and that the broker's parser reads that response back.
#[test]
fn extensions_and_the_initial_response() {
    let login = login(&[
        ("unsecuredLoginStringClaim_sub", "alice"),
        ("unsecuredLoginExtension_traceId", "123"),
        ("unsecuredLoginExtension_logicalCluster", "lkc 1"),
    ])
    .unwrap();
    let token = login.token(NOW_MS);
    let message = initial_response(&token, &login.extensions);
    let expected =
        format!("n,,\x01auth=Bearer {token}\x01traceId=123\x01logicalCluster=lkc 1\x01\x01");
    assert_eq!(String::from_utf8(message.clone()).unwrap(), expected);
    let parsed = InitialResponse::parse(&message).unwrap();
    assert_eq!(parsed.token, token);
    assert_eq!(parsed.authorization_id, "");
    assert_eq!(parsed.extensions.len(), 2);
    assert_eq!(
        initial_response("t", &[]),
        b"n,,\x01auth=Bearer t\x01\x01".to_vec()
    );
    let error = |name: &str, value: &str| {
        let key = format!("unsecuredLoginExtension_{name}");
        login_error(&[("unsecuredLoginStringClaim_sub", "a"), (&key, value)])
    };
    assert_eq!(
        error("auth", "x").to_string(),
        "Extension name auth is invalid"
    );
    assert_eq!(
        error("trace_id", "x"),
        OAuthLoginError::ExtensionName("trace_id".into())
    );
    assert_eq!(
        error("", "x"),
        OAuthLoginError::ExtensionName(String::new())
    );
    assert_eq!(
        error("trace", "é").to_string(),
        "Extension value (é) for extension trace is invalid"
    );
    assert!(matches!(
        error("trace", ""),
        OAuthLoginError::ExtensionValue { .. }
    ));
}

fn login_error(pairs: &[(&str, &str)]) -> OAuthLoginError {
    login(pairs).unwrap_err()
}

fn token_file() -> TokenFile {
    TokenFile::new(
        "/tokens/alice.jwt".into(),
        "sub",
        "scope",
        &options(&[("extension_traceId", "7")]),
    )
    .unwrap()
}

fn signed(claims: &str) -> String {
    let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.{}",
        encode(r#"{"alg":"RS256"}"#),
        encode(claims),
        encode("signature")
    )
}

/// Proves a token file's text is trimmed and checked as Kafka's client checks it (sections,
/// `exp`, the subject claim, the scope's type), but not for expiry: the broker says that.
#[test]
fn token_files_are_checked_as_kafka_checks_them() {
    let file = token_file();
    assert_eq!(file.extensions, options(&[("traceId", "7")]));
    let good = signed(r#"{"sub":"alice","exp":1,"iat":0,"scope":["kafka"]}"#);
    assert_eq!(file.token(&format!("\n  {good}\n")), Ok(good.clone()));
    assert_eq!(file.token(" \n"), Err(OAuthLoginError::EmptyToken));
    assert_eq!(file.token("a.b"), Err(OAuthLoginError::Sections(2)));
    let unsigned = good.rsplit_once('.').unwrap().0.to_string() + ".";
    assert_eq!(
        file.token(&unsigned),
        Err(OAuthLoginError::SectionMissing("signature"))
    );
    assert_eq!(
        file.token("a b.c.d"),
        Err(OAuthLoginError::SectionCharacters("header"))
    );
    assert!(matches!(
        file.token("e30.!!!!.c2ln"),
        Err(OAuthLoginError::SectionCharacters("payload"))
    ));
    assert!(matches!(
        file.token("e30.bm90IGpzb24.c2ln"),
        Err(OAuthLoginError::Token(JwtError::Json))
    ));
    let refused = |claims: &str| file.token(&signed(claims)).unwrap_err().to_string();
    assert_eq!(refused(r#"{"sub":"alice"}"#), "exp value must be non-null");
    assert_eq!(
        refused(r#"{"exp":1}"#),
        "sub value must be non-null, non-empty, and non-whitespace"
    );
    assert_eq!(
        refused(r#"{"sub":" ","exp":1}"#),
        "sub value must be non-null, non-empty, and non-whitespace"
    );
    assert_eq!(
        refused(r#"{"sub":"a","exp":-1}"#),
        "exp value must be non-negative; value given was \"-1000\""
    );
    assert!(refused(r#"{"sub":"a","exp":1,"scope":7}"#).contains("'scope' claim"));
    assert!(refused(r#"{"sub":7,"exp":1}"#).contains("'sub' claim"));
}

/// Proves the exchange: the initial response first, then done on the server's empty answer;
/// a challenge is acknowledged with ^A, and a server that does not fail after it is an error
/// naming the challenge.
#[test]
fn the_exchange_as_kafkas_client_runs_it() {
    let mut client = OAuthBearerClient::new("token", &[]);
    assert_eq!(
        client.step(b""),
        Ok(Some(b"n,,\x01auth=Bearer token\x01\x01".to_vec()))
    );
    assert_eq!(client.step(b""), Ok(None));

    let mut refused = OAuthBearerClient::new("token", &[]);
    assert!(refused.step(b"").unwrap().is_some());
    let challenge = br#"{"status":"invalid_token"}"#;
    assert_eq!(refused.step(challenge), Ok(Some(vec![0x01])));
    assert_eq!(
        refused.step(b""),
        Err(OAuthLoginError::AfterChallenge(
            r#"{"status":"invalid_token"}"#.into()
        ))
    );
}
