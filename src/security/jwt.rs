//! JSON Web Tokens (RFC 7519) in the compact JWS form (RFC 7515) that OAUTHBEARER carries:
//! three base64url sections, the JOSE header and the claims as JSON objects, and the time
//! claims (`exp`, `iat`, `nbf`) checked against a time passed in, with an allowed clock skew.
//!
//! Pure: no clock and no I/O. Nothing here trusts the token: every section, every claim's
//! presence and type is checked, and a malformed token is an error, never a panic. Whether the
//! signature is right is `security::jwks`'s business; what the claims mean is
//! `security::oauthbearer`'s.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Map, Value};

/// Why a token could not be read or is not valid at the given time. The messages are those
/// Kafka's validators give (`OAuthBearerValidationUtils`), for the log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JwtError {
    #[error("JWS compact serializations must have 3 dot-separated Base64URL-encoded values")]
    Sections,
    #[error("malformed Base64 URL encoded value")]
    Base64,
    #[error("malformed JSON")]
    Json,
    #[error("Required claim missing: {0}")]
    Missing(String),
    #[error("The '{claim}' claim was not of type {expected}")]
    Type {
        claim: String,
        expected: &'static str,
    },
    #[error("The Issued At value ({issued_at_seconds} seconds) was after the indicated time ({now_ms} ms) plus allowable clock skew ({skew_ms} ms)")]
    IssuedInFuture {
        issued_at_seconds: f64,
        now_ms: i64,
        skew_ms: u64,
    },
    #[error("The Not Before value ({not_before_seconds} seconds) was after the indicated time ({now_ms} ms) plus allowable clock skew ({skew_ms} ms)")]
    NotYetValid {
        not_before_seconds: f64,
        now_ms: i64,
        skew_ms: u64,
    },
    #[error("The indicated time ({now_ms} ms) minus allowable clock skew ({skew_ms} ms) was on or after the Expiration Time value ({expires_seconds} seconds)")]
    Expired {
        expires_seconds: f64,
        now_ms: i64,
        skew_ms: u64,
    },
    #[error("The Expiration Time time ({expires_seconds} seconds) was not after the Issued At time ({issued_at_seconds} seconds)")]
    Inconsistent {
        expires_seconds: f64,
        issued_at_seconds: f64,
    },
}

/// A token split into its parts; nothing in it is trusted yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Jws {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `<header>.<claims>` as sent: what the signature covers.
    pub signing_input: String,
    pub signature: Vec<u8>,
}

/// Which time claims a validator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// Refuse a token without `iat` (Kafka's JWKS validator does; its unsecured one does not).
    pub issued_at_required: bool,
    /// How far the broker's clock and the issuer's may disagree.
    pub skew_ms: u64,
}

impl Jws {
    /// Splits a compact serialization (`header.claims.signature`, each base64url) and reads
    /// its header and claims as JSON objects.
    pub fn parse(token: &str) -> Result<Jws, JwtError> {
        let mut sections = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) = (
            sections.next(),
            sections.next(),
            sections.next(),
            sections.next(),
        ) else {
            return Err(JwtError::Sections);
        };
        if header.is_empty() || claims.is_empty() {
            return Err(JwtError::Sections);
        }
        Ok(Jws {
            header: json_object(&base64url(header)?)?,
            claims: json_object(&base64url(claims)?)?,
            signing_input: token[..header.len() + 1 + claims.len()].to_string(),
            signature: base64url(signature)?,
        })
    }

    /// The header's `alg`, if it is a string.
    pub fn algorithm(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The header's `kid`, if it is a string.
    pub fn key_id(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// A string claim; `None` when absent, an error when of another type.
    pub fn string_claim(&self, name: &str) -> Result<Option<&str>, JwtError> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(JwtError::Type {
                claim: name.to_string(),
                expected: "String",
            }),
        }
    }

    /// A numeric claim (seconds since the epoch for the time claims, maybe fractional).
    pub fn number_claim(&self, name: &str) -> Result<Option<f64>, JwtError> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => Ok(number.as_f64()),
            Some(_) => Err(JwtError::Type {
                claim: name.to_string(),
                expected: "Number",
            }),
        }
    }

    /// The scope claim as Kafka reads it: one string (trimmed, as one scope element) or a
    /// list of strings (each trimmed; blank ones dropped); absent means no scope.
    pub fn scope_claim(&self, name: &str) -> Result<BTreeSet<String>, JwtError> {
        let wrong_type = || JwtError::Type {
            claim: name.to_string(),
            expected: "List",
        };
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(BTreeSet::new()),
            Some(Value::String(scope)) => Ok(non_blank(scope).into_iter().collect()),
            Some(Value::Array(elements)) => elements
                .iter()
                .map(|element| element.as_str().ok_or_else(wrong_type))
                .filter_map(|element| element.map(non_blank).transpose())
                .collect(),
            Some(_) => Err(wrong_type()),
        }
    }

    /// Checks `exp` (required), `iat` and `nbf` against `now_ms` and returns when the token
    /// expires, in milliseconds since the epoch.
    pub fn check_times(&self, now_ms: i64, rules: TimeRules) -> Result<i64, JwtError> {
        let skew_ms = rules.skew_ms;
        let skew = skew_ms as f64;
        let now = now_ms as f64;
        let issued_at = self.number_claim("iat")?;
        if rules.issued_at_required && issued_at.is_none() {
            return Err(JwtError::Missing("iat".into()));
        }
        if let Some(issued_at_seconds) = issued_at {
            if issued_at_seconds * 1000.0 > now + skew {
                return Err(JwtError::IssuedInFuture {
                    issued_at_seconds,
                    now_ms,
                    skew_ms,
                });
            }
        }
        if let Some(not_before_seconds) = self.number_claim("nbf")? {
            if not_before_seconds * 1000.0 > now + skew {
                return Err(JwtError::NotYetValid {
                    not_before_seconds,
                    now_ms,
                    skew_ms,
                });
            }
        }
        let expires_seconds = self
            .number_claim("exp")?
            .ok_or_else(|| JwtError::Missing("exp".into()))?;
        if now - skew >= expires_seconds * 1000.0 {
            return Err(JwtError::Expired {
                expires_seconds,
                now_ms,
                skew_ms,
            });
        }
        if let Some(issued_at_seconds) = issued_at {
            if expires_seconds <= issued_at_seconds {
                return Err(JwtError::Inconsistent {
                    expires_seconds,
                    issued_at_seconds,
                });
            }
        }
        // Saturating: a float beyond i64 becomes its bound rather than wrapping.
        Ok((expires_seconds * 1000.0).round() as i64)
    }
}

/// Decodes base64url (RFC 4648 §5), without padding as JWS writes it; padding is tolerated.
pub fn base64url(text: &str) -> Result<Vec<u8>, JwtError> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(text).map_err(|_| JwtError::Base64)
}

fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, JwtError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(JwtError::Json),
    }
}

fn non_blank(text: &str) -> Option<String> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.", encode(header), encode(claims))
    }

    const RULES: TimeRules = TimeRules {
        issued_at_required: false,
        skew_ms: 0,
    };

    /// Proves a compact serialization is split into header, claims and signature, and that
    /// malformed ones (sections, base64, JSON, non-objects) are errors.
    #[test]
    fn parses_compact_serializations() {
        let jws = Jws::parse(&token(r#"{"alg":"none"}"#, r#"{"sub":"alice"}"#)).unwrap();
        assert_eq!(jws.algorithm(), Some("none"));
        assert_eq!(jws.key_id(), None);
        assert_eq!(jws.string_claim("sub"), Ok(Some("alice")));
        assert!(jws.signature.is_empty());
        assert_eq!(jws.signing_input.matches('.').count(), 1);

        let signed = format!("{}.{}.{}", encode("{}"), encode("{}"), encode("sig"));
        assert_eq!(Jws::parse(&signed).unwrap().signature, b"sig");
        let padded = format!("{}=.{}.", encode(r#"{"a":1}"#), encode("{}"));
        assert!(Jws::parse(&padded).is_ok());

        assert_eq!(Jws::parse("a.b"), Err(JwtError::Sections));
        assert_eq!(Jws::parse("a.b.c.d"), Err(JwtError::Sections));
        assert_eq!(Jws::parse("..").unwrap_err(), JwtError::Sections);
        assert_eq!(Jws::parse("!!.e30."), Err(JwtError::Base64));
        let not_json = format!("{}.{}.", encode("{"), encode("{}"));
        assert_eq!(Jws::parse(&not_json), Err(JwtError::Json));
        let not_object = format!("{}.{}.", encode("[1]"), encode("{}"));
        assert_eq!(Jws::parse(&not_object), Err(JwtError::Json));
        assert_eq!(base64url("YWI"), Ok(b"ab".to_vec()));
        assert_eq!(base64url("-_8"), Ok(vec![0xfb, 0xff]));
        assert_eq!(base64url("+/8"), Err(JwtError::Base64));
    }

    /// Proves claims are read by type: a claim of the wrong type is an error, an absent one
    /// `None`, and scope is a trimmed string or a list of strings.
    #[test]
    fn reads_claims_by_type() {
        let claims = r#"{"sub":7,"exp":"soon","scope":[" a ","b",""],"one":"x y ","bad":[1]}"#;
        let jws = Jws::parse(&token("{}", claims)).unwrap();
        assert!(matches!(
            jws.string_claim("sub"),
            Err(JwtError::Type {
                expected: "String",
                ..
            })
        ));
        assert!(jws.number_claim("exp").is_err());
        assert_eq!(jws.number_claim("nbf"), Ok(None));
        let scope = jws.scope_claim("scope").unwrap();
        assert_eq!(scope.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        let one = jws.scope_claim("one").unwrap();
        assert_eq!(one.into_iter().collect::<Vec<_>>(), vec!["x y"]);
        assert!(jws.scope_claim("none").unwrap().is_empty());
        assert!(jws.scope_claim("bad").is_err());
        assert!(jws.scope_claim("sub").is_err());
    }

    /// Proves `exp` is required and checked, `iat` and `nbf` are checked when present (or
    /// `iat` when required), the skew widens each bound, and `exp` must follow `iat`.
    #[test]
    fn checks_the_time_claims() {
        let at = |claims: &str, now_ms: i64, rules: TimeRules| {
            Jws::parse(&token("{}", claims))
                .unwrap()
                .check_times(now_ms, rules)
        };
        let now = 1_000_000_000;
        assert_eq!(at(r#"{"exp":1000001}"#, now, RULES), Ok(1_000_001_000));
        assert_eq!(at(r#"{"exp":1000000.5}"#, now, RULES), Ok(1_000_000_500));
        assert_eq!(at("{}", now, RULES), Err(JwtError::Missing("exp".into())));
        assert!(matches!(
            at(r#"{"exp":1000000}"#, now, RULES),
            Err(JwtError::Expired { .. })
        ));
        let skewed = TimeRules {
            issued_at_required: false,
            skew_ms: 2000,
        };
        assert!(at(r#"{"exp":999999}"#, now, skewed).is_ok());
        assert!(at(r#"{"exp":999998}"#, now, skewed).is_err());
        let later = r#"{"exp":1000100,"iat":1000001}"#;
        assert!(matches!(
            at(later, now, RULES),
            Err(JwtError::IssuedInFuture { .. })
        ));
        assert!(at(later, now, skewed).is_ok());
        let not_before = r#"{"exp":1000100,"nbf":1000003}"#;
        assert!(matches!(
            at(not_before, now, skewed),
            Err(JwtError::NotYetValid { .. })
        ));
        let required = TimeRules {
            issued_at_required: true,
            skew_ms: 0,
        };
        assert_eq!(
            at(r#"{"exp":1000100}"#, now, required),
            Err(JwtError::Missing("iat".into()))
        );
        let backwards = r#"{"exp":1000001,"iat":1000001}"#;
        assert!(matches!(
            at(backwards, now, skewed),
            Err(JwtError::Inconsistent { .. })
        ));
        assert!(at(r#"{"exp":1e300}"#, now, RULES).is_ok());
    }
}
