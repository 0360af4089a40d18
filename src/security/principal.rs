//! The principal of a TLS client certificate, as Kafka derives it: the subject's distinguished
//! name in RFC 2253 form (what Java's `X500Principal.getName()` gives, most specific RDN first:
//! `CN=client,OU=Eng,O=Flink`), then `ssl.principal.mapping.rules`: `DEFAULT` keeps the name,
//! `RULE:pattern/replacement/[LU]` rewrites a name the pattern matches whole (Java's `$1`
//! group references, L or U for lower or upper case). The first rule that applies wins; when
//! none does, the connection is refused, as Kafka refuses it.

use std::fmt;

use regex::Regex;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("the client certificate cannot be read: {0}")]
    Certificate(&'static str),
    #[error("Invalid rule: {0}")]
    InvalidRule(String),
    #[error("No rules apply to {name}, rules {rules}")]
    NoRuleApplies { name: String, rules: String },
}

/// A minimal DER reader: enough of X.509 to reach the subject.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element: (tag, content, whole encoding).
    fn next(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), PrincipalError> {
        let bad = PrincipalError::Certificate("truncated DER");
        let (&tag, rest) = self.0.split_first().ok_or(bad.clone())?;
        let (&first, rest) = rest.split_first().ok_or(bad.clone())?;
        let (length, rest) = match first {
            short if short < 0x80 => (usize::from(short), rest),
            long => {
                let count = usize::from(long & 0x7f);
                if count == 0 || count > 4 || rest.len() < count {
                    return Err(PrincipalError::Certificate("bad DER length"));
                }
                let length = rest[..count]
                    .iter()
                    .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
                (length, &rest[count..])
            }
        };
        if rest.len() < length {
            return Err(bad);
        }
        let header = self.0.len() - rest.len();
        let whole = &self.0[..header + length];
        let content = &rest[..length];
        self.0 = &rest[length..];
        Ok((tag, content, whole))
    }

    fn expect(&mut self, tag: u8, what: &'static str) -> Result<&'a [u8], PrincipalError> {
        match self.next()? {
            (found, content, _) if found == tag => Ok(content),
            _ => Err(PrincipalError::Certificate(what)),
        }
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject of the DER certificate `der` in RFC 2253 form.
pub fn subject_name(der: &[u8]) -> Result<String, PrincipalError> {
    let certificate = Der(der).expect(SEQUENCE, "not a certificate")?;
    let mut tbs = Der(Der(certificate).expect(SEQUENCE, "no certificate body")?);
    let (mut tag, _, _) = tbs.next()?;
    if tag == 0xa0 {
        // The explicit version; the serial number follows.
        tag = tbs.next()?.0;
    }
    if tag != 0x02 {
        return Err(PrincipalError::Certificate("no serial number"));
    }
    tbs.expect(SEQUENCE, "no signature algorithm")?;
    tbs.expect(SEQUENCE, "no issuer")?;
    tbs.expect(SEQUENCE, "no validity")?;
    let mut name = Der(tbs.expect(SEQUENCE, "no subject")?);
    let mut rdns = Vec::new();
    while !name.0.is_empty() {
        let mut set = Der(name.expect(SET, "bad relative distinguished name")?);
        let mut attributes = Vec::new();
        while !set.0.is_empty() {
            let mut pair = Der(set.expect(SEQUENCE, "bad attribute")?);
            let oid = oid_text(pair.expect(OID, "bad attribute type")?)?;
            let (value_tag, value, whole) = pair.next()?;
            attributes.push(match keyword(&oid) {
                Some(keyword) => format!("{keyword}={}", escape(&string_value(value_tag, value)?)),
                None => format!("{oid}=#{}", hex(whole)),
            });
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn oid_text(bytes: &[u8]) -> Result<String, PrincipalError> {
    let (&first, rest) = bytes
        .split_first()
        .ok_or(PrincipalError::Certificate("empty OID"))?;
    let mut arcs = vec![u64::from(first / 40).min(2), 0];
    arcs[1] = u64::from(first) - arcs[0] * 40;
    let mut value: u64 = 0;
    for byte in rest {
        value = value
            .checked_mul(128)
            .ok_or(PrincipalError::Certificate("OID arc too large"))?
            | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let arcs: Vec<String> = arcs.iter().map(u64::to_string).collect();
    Ok(arcs.join("."))
}

/// The keywords Java's RFC 2253 form uses; other attributes are written as OIDs.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn string_value(tag: u8, bytes: &[u8]) -> Result<String, PrincipalError> {
    let bad = PrincipalError::Certificate("bad attribute string");
    match tag {
        // UTF8String, PrintableString, IA5String, VisibleString.
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8(bytes.to_vec()).map_err(|_| bad),
        // TeletexString, read as Latin-1 as Java reads it.
        0x14 => Ok(bytes.iter().map(|byte| char::from(*byte)).collect()),
        // BMPString (UTF-16BE).
        0x1e if bytes.len().is_multiple_of(2) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| bad)
        }
        _ => Err(bad),
    }
}

/// RFC 2253 escaping, as Java applies it.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && (c == '#' || c == ' '))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Rewrite {
        /// The pattern anchored at both ends (Java's `Matcher.matches`).
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Clone, Debug)]
pub struct PrincipalMapper {
    source: String,
    rules: Vec<Rule>,
}

impl PartialEq for PrincipalMapper {
    fn eq(&self, other: &PrincipalMapper) -> bool {
        self.source == other.source
    }
}

impl Eq for PrincipalMapper {}

impl fmt::Display for PrincipalMapper {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(&self.source)
    }
}

impl Default for PrincipalMapper {
    fn default() -> PrincipalMapper {
        PrincipalMapper {
            source: "DEFAULT".into(),
            rules: vec![Rule::Default],
        }
    }
}

/// Reads up to the next unescaped `/`; returns (text, rest after the slash).
fn until_slash(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((&text[..index], &text[index + 1..])),
            _ => {}
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\$`) in the regex crate's (`${1}`, `$$`).
fn replacement(java: &str) -> String {
    let mut out = String::with_capacity(java.len());
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut group = String::new();
                while let Some(digit) = chars.peek().filter(|c| c.is_ascii_digit()) {
                    group.push(*digit);
                    chars.next();
                }
                match group.is_empty() {
                    true => out.push_str("$$"),
                    false => out.push_str(&format!("${{{group}}}")),
                }
            }
            other => out.push(other),
        }
    }
    out
}

impl PrincipalMapper {
    pub fn parse(text: &str) -> Result<PrincipalMapper, PrincipalError> {
        let invalid = || PrincipalError::InvalidRule(text.to_string());
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(invalid)?;
                let (replace, after) = until_slash(after).ok_or_else(invalid)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|error| PrincipalError::InvalidRule(format!("{text}: {error}")))?;
                rules.push(Rule::Rewrite {
                    pattern,
                    replacement: replacement(replace),
                    case,
                });
                rest = after;
            } else {
                return Err(invalid());
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(invalid()),
            }
        }
        if rules.is_empty() {
            return Err(invalid());
        }
        Ok(PrincipalMapper {
            source: text.trim().to_string(),
            rules,
        })
    }

    /// The principal name for the distinguished name `name`.
    pub fn map(&self, name: &str) -> Result<String, PrincipalError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(name.to_string()),
                Rule::Rewrite {
                    pattern,
                    replacement,
                    case,
                } if pattern.is_match(name) => {
                    let mapped = pattern.replace(name, replacement.as_str());
                    return Ok(match case {
                        Case::Keep => mapped.into_owned(),
                        Case::Lower => mapped.to_lowercase(),
                        Case::Upper => mapped.to_uppercase(),
                    });
                }
                Rule::Rewrite { .. } => {}
            }
        }
        Err(PrincipalError::NoRuleApplies {
            name: name.to_string(),
            rules: self.source.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the rules map names as Kafka's `SslPrincipalMapper` does: the first applying rule
    /// wins, groups and case flags work, DEFAULT keeps the name, and no applying rule refuses.
    #[test]
    fn maps_names_as_kafka() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper.map("CN=Kafka-Svc,OU=ServiceUsers,O=Org").unwrap(),
            "kafka-svc"
        );
        assert_eq!(
            mapper.map("CN=alice,OU=Eng,O=Org,C=US").unwrap(),
            "alice@Eng"
        );
        assert_eq!(mapper.map("CN=bob").unwrap(), "CN=bob");
        let strict = PrincipalMapper::parse("RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(strict.map("CN=carol,O=x").unwrap(), "CAROL");
        assert!(matches!(
            strict.map("O=x"),
            Err(PrincipalError::NoRuleApplies { .. })
        ));
        assert_eq!(PrincipalMapper::default().map("CN=a").unwrap(), "CN=a");
        for bad in ["", "RULE:abc", "SOMETHING", "RULE:(/x/"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
        // An escaped slash belongs to the pattern.
        let slash = PrincipalMapper::parse(r"RULE:^CN=a\/b$/ab/").unwrap();
        assert_eq!(slash.map("CN=a/b").unwrap(), "ab");
    }

    /// Proves RFC 2253 escaping of the characters Java escapes.
    #[test]
    fn escapes_as_java() {
        assert_eq!(escape("a,b+c"), r"a\,b\+c");
        assert_eq!(escape(" #x "), r"\ #x\ ");
        assert_eq!(escape("#x"), r"\#x");
    }

    /// Proves the subject of a certificate reads in RFC 2253 order (most specific first), with
    /// unknown attribute types as OIDs, and garbage is an error rather than a panic.
    #[test]
    fn reads_the_subject() {
        let der = test_certificate();
        assert_eq!(
            subject_name(&der).unwrap(),
            "CN=client\\, one,OU=Eng+2.5.4.5=#130133,O=Flink Test,C=NL"
        );
        for cut in 0..der.len() {
            assert!(subject_name(&der[..cut]).is_err());
        }
        assert!(subject_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    /// A DER certificate skeleton with the parts `subject_name` walks (signature and keys are
    /// not read): subject C=NL, O=Flink Test, OU=Eng + serialNumber=3, CN="client, one".
    fn test_certificate() -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            match content.len() {
                short if short < 0x80 => out.push(short as u8),
                long => out.extend([0x82, (long >> 8) as u8, long as u8]),
            }
            out.extend_from_slice(content);
            out
        }
        let attribute = |oid: &[u8], tag: u8, value: &str| {
            tlv(
                SEQUENCE,
                &[tlv(OID, oid), tlv(tag, value.as_bytes())].concat(),
            )
        };
        let country = tlv(SET, &attribute(&[0x55, 0x04, 0x06], 0x13, "NL"));
        let org = tlv(SET, &attribute(&[0x55, 0x04, 0x0a], 0x0c, "Flink Test"));
        let unit = tlv(
            SET,
            &[
                attribute(&[0x55, 0x04, 0x0b], 0x0c, "Eng"),
                attribute(&[0x55, 0x04, 0x05], 0x13, "3"),
            ]
            .concat(),
        );
        let common = tlv(SET, &attribute(&[0x55, 0x04, 0x03], 0x0c, "client, one"));
        let subject = tlv(SEQUENCE, &[country, org, unit, common].concat());
        let tbs = tlv(
            SEQUENCE,
            &[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(0x02, &[1]),
                tlv(SEQUENCE, &[]),
                tlv(SEQUENCE, &[]),
                tlv(SEQUENCE, &[]),
                subject,
            ]
            .concat(),
        );
        tlv(
            SEQUENCE,
            &[tbs, tlv(SEQUENCE, &[]), tlv(0x03, &[0])].concat(),
        )
    }
}
