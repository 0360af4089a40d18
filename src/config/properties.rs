//! Parser for Java `.properties` text, the format of Kafka's `server.properties`.
//!
//! Supports `key=value`, `key: value` and `key value`, `#` and `!` comments, backslash line
//! continuation and the common escapes. Later keys win, as in `java.util.Properties`.

use indexmap::IndexMap;

/// Parses properties text into ordered key/value pairs; later duplicates replace earlier ones.
pub fn parse(text: &str) -> IndexMap<String, String> {
    let mut properties = IndexMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if ends_with_continuation(line) {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split_key_value(&logical);
        properties.insert(unescape(&key), unescape(value.trim_start()));
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_key_value(&logical);
        properties.insert(unescape(&key), unescape(value.trim_start()));
    }
    properties
}

/// A line continues when it ends in an odd number of backslashes.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (String, &str) {
    let mut key = String::new();
    let mut chars = line.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => {
                key.push('\\');
                if let Some((_, next)) = chars.next() {
                    key.push(next);
                }
            }
            '=' | ':' => return (key, &line[index + 1..]),
            ' ' | '\t' => {
                let rest = line[index..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (key, rest);
            }
            _ => key.push(c),
        }
    }
    (key, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the separators, comments and continuations of Kafka's server.properties parse.
    #[test]
    fn parses_kafka_style_properties() {
        let text = "# comment\n! also\nnode.id=1\nlisteners = PLAINTEXT://:9092,\\\n  CONTROLLER://:9093\n\
                    log.dirs: /tmp/a\nnum.partitions 3\nempty=\nnode.id=2\n";
        let properties = parse(text);
        assert_eq!(properties["node.id"], "2");
        assert_eq!(
            properties["listeners"],
            "PLAINTEXT://:9092,CONTROLLER://:9093"
        );
        assert_eq!(properties["log.dirs"], "/tmp/a");
        assert_eq!(properties["num.partitions"], "3");
        assert_eq!(properties["empty"], "");
        assert_eq!(properties.len(), 5);
    }
}
