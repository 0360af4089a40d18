//! `key=value` client properties, as given by `--property`, `--producer-property`,
//! `--consumer-property` and `--command-config` files (Java properties syntax, the common subset:
//! `#`/`!` comments, `=` or `:` separators, surrounding blanks trimmed, a line ending in `\`
//! continued on the next, as multi-line `sasl.jaas.config` values are written).

use std::collections::BTreeMap;
use std::path::Path;

/// Problems with properties given on the command line or in a file.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    #[error("Invalid command line properties: '{entry}' is not of the form key=value")]
    NotKeyValue { entry: String },
    #[error("cannot read properties file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: &'static str,
    },
    /// A security key (`security.protocol`, `ssl.*`, `sasl.*`) that cannot be honoured.
    #[error("{0}")]
    Security(#[from] super::security::SecurityError),
}

/// An ordered set of properties; later entries override earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: BTreeMap<String, String>,
}

impl Properties {
    /// Parses command-line `key=value` entries; the value may itself contain `=`.
    pub fn from_arguments(arguments: &[String]) -> Result<Properties, PropertiesError> {
        let mut properties = Properties::default();
        for entry in arguments {
            let (key, value) = entry
                .split_once('=')
                .filter(|(key, _)| !key.trim().is_empty())
                .ok_or_else(|| PropertiesError::NotKeyValue {
                    entry: entry.clone(),
                })?;
            properties.set(key.trim(), value);
        }
        Ok(properties)
    }

    /// Reads a Java-style properties file.
    pub fn from_file(path: &Path) -> Result<Properties, PropertiesError> {
        let text = std::fs::read_to_string(path).map_err(|source| PropertiesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Properties::parse_file_text(&text))
    }

    fn parse_file_text(text: &str) -> Properties {
        let mut properties = Properties::default();
        for line in logical_lines(text) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let split = line.find(['=', ':']);
            let (key, value) = match split {
                Some(index) => (&line[..index], &line[index + 1..]),
                None => (line, ""),
            };
            properties.set(key.trim(), value.trim());
        }
        properties
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.entries.insert(key.to_string(), value.to_string());
    }

    /// Adds every entry of `other`, overriding entries with the same key.
    pub fn extend(&mut self, other: Properties) {
        self.entries.extend(other.entries);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Every key, in sorted order (for warning about the ones a tool does not use).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// A boolean property (`true`/`false`, case-insensitive), or `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, PropertiesError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
            Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
            Some(value) => Err(invalid(key, value, "expected true or false")),
        }
    }

    /// An integer property, or `default` when absent.
    pub fn integer_or<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
    ) -> Result<T, PropertiesError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| invalid(key, value, "expected an integer")),
        }
    }
}

/// The lines of a properties file with continuations joined: a line ending in an odd number of
/// backslashes goes on with the next, whose leading blanks are dropped (Java's rule). A comment
/// line is never continued.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current: Option<String> = None;
    for physical in text.lines() {
        let piece = physical.trim_start();
        if current.is_none() && (piece.starts_with('#') || piece.starts_with('!')) {
            lines.push(piece.to_string());
            continue;
        }
        let backslashes = piece.chars().rev().take_while(|c| *c == '\\').count();
        let continues = backslashes % 2 == 1;
        let piece = match continues {
            true => &piece[..piece.len() - 1],
            false => piece,
        };
        current.get_or_insert_with(String::new).push_str(piece);
        if !continues {
            lines.extend(current.take());
        }
    }
    lines.extend(current);
    lines
}

fn invalid(key: &str, value: &str, reason: &'static str) -> PropertiesError {
    PropertiesError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_properties_split_on_the_first_equals() {
        // Values may contain '=', keys may not be empty, later entries win.
        let arguments = [
            "parse.key=true".to_string(),
            "key.separator==".to_string(),
            "parse.key=false".to_string(),
        ];
        let properties = Properties::from_arguments(&arguments).expect("valid entries");
        assert_eq!(properties.get("key.separator"), Some("="));
        assert_eq!(properties.bool_or("parse.key", true).ok(), Some(false));
        assert_eq!(properties.bool_or("print.key", true).ok(), Some(true));
        assert!(Properties::from_arguments(&["novalue".to_string()]).is_err());
        assert!(Properties::from_arguments(&["=x".to_string()]).is_err());
    }

    #[test]
    fn files_follow_java_properties_basics() {
        // Comments and blank lines are skipped; '=' and ':' both separate.
        let properties = Properties::parse_file_text("# c\n\nclient.id = tool\nacks:1\n");
        assert_eq!(properties.get("client.id"), Some("tool"));
        assert_eq!(properties.integer_or("acks", -1).ok(), Some(1));
        assert!(properties.integer_or::<i32>("client.id", 0).is_err());
    }

    #[test]
    fn backslashes_continue_lines() {
        // A JAAS config written over three lines is one value; an even count of backslashes
        // ends the line, and a comment never continues.
        let text =
            "sasl.jaas.config=Module required \\\n    username=\"a\" \\\n\tpassword=\"b\";\n\
                    path=C:\\\\\n# note \\\nnext=1\n";
        let properties = Properties::parse_file_text(text);
        assert_eq!(
            properties.get("sasl.jaas.config"),
            Some("Module required username=\"a\" password=\"b\";")
        );
        assert_eq!(properties.get("path"), Some("C:\\\\"));
        assert_eq!(properties.get("next"), Some("1"));
    }
}
