//! How Kafka's tools, running on the JVM, spell numbers and lists: Java's `Double.toString` and
//! `Double.parseDouble`, Scala's collection `toString`, and the iteration order of the hash
//! tables the tools print from (Java's `HashMap` and `Properties`, Scala's immutable maps), so
//! that lines come out in Kafka's order. Pure functions, for the command-line tools.

use std::collections::BTreeMap;

/// Scala's small immutable maps and sets keep insertion order up to this many entries; larger
/// ones are hash tries.
pub const SCALA_SMALL_COLLECTION_MAX: usize = 4;
/// The bins of a `java.util.Properties` table (a ConcurrentHashMap made for 8 entries).
const PROPERTIES_BINS_INITIAL: usize = 16;

/// Java's `String.hashCode`, over UTF-16 code units.
pub fn string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Java's `Double.toString`: the shortest digits that read back as `value`, as a plain decimal
/// with at least one fraction digit from 10^-3 up to 10^7, else as `d.dddE<exponent>`.
pub fn double_to_string(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    let sign = if value.is_sign_negative() { "-" } else { "" };
    if value.is_infinite() {
        return format!("{sign}Infinity");
    }
    if value == 0.0 {
        return format!("{sign}0.0");
    }
    let magnitude = value.abs();
    let scientific = format!("{magnitude:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(1e-3..1e7).contains(&magnitude) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        return format!("{sign}{first}.{rest}E{exponent}");
    }
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = exponent as usize + 1;
    let padded = format!("{digits:0<point$}");
    let (whole, fraction) = padded.split_at(point);
    let fraction = if fraction.is_empty() { "0" } else { fraction };
    format!("{sign}{whole}.{fraction}")
}

/// Java's `Double.parseDouble` for decimal text: blanks (control characters and spaces) around
/// it are ignored, a sign, `NaN`, `Infinity` and a trailing `d`/`f` are allowed. Hexadecimal
/// floating-point text is not read (`None`, as for any text Java refuses).
pub fn parse_double(text: &str) -> Option<f64> {
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let magnitude = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let number = body.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(body);
            let starts_well = number.starts_with(|c: char| c.is_ascii_digit() || c == '.');
            let decimal = number
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
            if !starts_well || !decimal {
                return None;
            }
            number.parse::<f64>().ok()?
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// The order in which `new java.util.HashMap<>(initial_capacity)` iterates entries put into
/// it in the given order, each given by its key's `hashCode` (keys distinct): by bin, then by
/// insertion within a bin, the table having doubled whenever it passed three quarters full.
pub fn hash_map_order<T>(entries: Vec<(i32, T)>, initial_capacity: usize) -> Vec<T> {
    let mut capacity = initial_capacity.max(1).next_power_of_two();
    for size in 1..=entries.len() {
        if size > capacity * 3 / 4 {
            capacity *= 2;
        }
    }
    by_bin(entries, capacity)
}

/// The order in which a `java.util.Properties` iterates keys set in the given order (its table
/// is a ConcurrentHashMap of 16 bins, doubled at three quarters full).
pub fn properties_order(keys: Vec<String>) -> Vec<String> {
    let mut bins = PROPERTIES_BINS_INITIAL;
    while keys.len() >= bins * 3 / 4 {
        bins *= 2;
    }
    let hashed = keys
        .into_iter()
        .map(|key| (string_hash(&key), key))
        .collect();
    by_bin(hashed, bins)
}

/// The order in which Scala iterates an immutable map built from config keys read from a
/// `Properties` in its order: as read for a small map, the hash trie's order for a larger one.
pub fn scala_map_order(keys: Vec<String>) -> Vec<String> {
    match keys.len() <= SCALA_SMALL_COLLECTION_MAX {
        true => properties_order(keys),
        false => scala_trie_order(keys),
    }
}

/// The order of a Scala immutable set built by adding `items` in order: duplicates dropped, the
/// order kept for a small set, the hash trie's order for a larger one.
pub fn scala_set_order(items: Vec<String>) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for item in items {
        if !distinct.contains(&item) {
            distinct.push(item);
        }
    }
    match distinct.len() <= SCALA_SMALL_COLLECTION_MAX {
        true => distinct,
        false => scala_trie_order(distinct),
    }
}

/// Scala's `toString` of an immutable set whose items are in iteration order: `Set(a, b)`.
pub fn scala_set(items: &[String]) -> String {
    format!("Set({})", items.join(", "))
}

/// Scala's `toString` of an `ArrayBuffer`: `ArrayBuffer(a, b)`.
pub fn array_buffer(items: &[String]) -> String {
    format!("ArrayBuffer({})", items.join(", "))
}

/// Items ordered by the bin of a power-of-two table of `bins` (Java's spread hash `h ^ h>>>16`),
/// insertion order within a bin.
fn by_bin<T>(entries: Vec<(i32, T)>, bins: usize) -> Vec<T> {
    let mut placed: Vec<(usize, usize, T)> = entries
        .into_iter()
        .enumerate()
        .map(|(order, (hash, item))| {
            let hash = hash as u32;
            let spread = (hash ^ (hash >> 16)) as usize;
            (spread & (bins - 1), order, item)
        })
        .collect();
    placed.sort_by_key(|(bin, order, _)| (*bin, *order));
    placed.into_iter().map(|(_, _, item)| item).collect()
}

/// The iteration order of Scala 2.13's immutable hash trie (CHAMP) holding `keys`: five bits of
/// the improved hash a level, a node's own entries before its sub-nodes, each by those bits.
fn scala_trie_order(keys: Vec<String>) -> Vec<String> {
    let hashed = keys
        .into_iter()
        .map(|key| (scala_improve(string_hash(&key)) as u32, key))
        .collect();
    trie_level(hashed, 0)
}

fn trie_level(entries: Vec<(u32, String)>, shift: u32) -> Vec<String> {
    if entries.len() <= 1 || shift >= 32 {
        return entries.into_iter().map(|(_, key)| key).collect();
    }
    let mut by_fragment: BTreeMap<u32, Vec<(u32, String)>> = BTreeMap::new();
    for (hash, key) in entries {
        by_fragment
            .entry((hash >> shift) & 31)
            .or_default()
            .push((hash, key));
    }
    let mut own = Vec::new();
    let mut below = Vec::new();
    for (_, group) in by_fragment {
        match group.len() {
            1 => own.extend(group.into_iter().map(|(_, key)| key)),
            _ => below.extend(trie_level(group, shift + 5)),
        }
    }
    own.extend(below);
    own
}

/// Scala's `Hashing.improve`, which its immutable hash maps and sets apply to `hashCode`.
fn scala_improve(code: i32) -> i32 {
    let mut hash = code.wrapping_add(!(code << 9));
    hash ^= ((hash as u32) >> 14) as i32;
    hash = hash.wrapping_add(hash << 4);
    hash ^ ((hash as u32) >> 10) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    /// Proves doubles print as Java 19 and later print them (values checked with the JDK).
    #[test]
    fn doubles_print_as_java_prints_them() {
        let cases = [
            (1048576.0, "1048576.0"),
            (12.5, "12.5"),
            (1e7, "1.0E7"),
            (10485760.0, "1.048576E7"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (5.0, "5.0"),
            (123456789.125, "1.23456789125E8"),
            (1e21, "1.0E21"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(double_to_string(value), expected, "for {value}");
        }
    }

    /// Proves text parses as `Double.parseDouble` reads it, and what it refuses is refused.
    #[test]
    fn doubles_parse_as_java_reads_them() {
        assert_eq!(parse_double(" 1e3d "), Some(1000.0));
        assert_eq!(parse_double("+.5f"), Some(0.5));
        assert_eq!(parse_double("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_double("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_double("1048576"), Some(1048576.0));
        for refused in [
            "", "abc", "inf", "nan", "1e", "--1", "1,5", "0x10", "1 000", "d",
        ] {
            assert_eq!(parse_double(refused), None, "for {refused:?}");
        }
    }

    /// Proves the hash orders match what the JDK printed for the same keys.
    #[test]
    fn hash_tables_iterate_in_the_jdks_order() {
        let hashed = |keys: &[&str]| -> Vec<(i32, String)> {
            keys.iter()
                .map(|key| (string_hash(key), key.to_string()))
                .collect()
        };
        let quotas = [
            "producer_byte_rate",
            "consumer_byte_rate",
            "request_percentage",
            "controller_mutation_rate",
        ];
        assert_eq!(string_hash("producer_byte_rate"), -832502454);
        assert_eq!(
            hash_map_order(hashed(&quotas), 4),
            strings(&[
                "producer_byte_rate",
                "consumer_byte_rate",
                "controller_mutation_rate",
                "request_percentage"
            ])
        );
        assert_eq!(
            hash_map_order(hashed(&["producer_byte_rate", "consumer_byte_rate"]), 2),
            strings(&["consumer_byte_rate", "producer_byte_rate"])
        );
        assert_eq!(
            hash_map_order(
                hashed(&[
                    "request_percentage",
                    "producer_byte_rate",
                    "consumer_byte_rate"
                ]),
                3
            ),
            strings(&[
                "consumer_byte_rate",
                "request_percentage",
                "producer_byte_rate"
            ])
        );
        assert_eq!(
            properties_order(strings(&[
                "foo",
                "SCRAM-SHA-256",
                "producer_byte_rate",
                "consumer_byte_rate"
            ])),
            strings(&[
                "SCRAM-SHA-256",
                "foo",
                "producer_byte_rate",
                "consumer_byte_rate"
            ])
        );
        assert_eq!(
            properties_order(strings(&["b", "a", "retention.ms", "request_percentage"])),
            strings(&["a", "b", "request_percentage", "retention.ms"])
        );
    }

    /// Proves small Scala sets keep their order and drop repeats, larger ones take the trie's
    /// order (the same for any insertion order), and both print as Scala prints them.
    #[test]
    fn scala_collections_order_and_print_as_scala() {
        let small = scala_set_order(strings(&["b", "a", "b"]));
        assert_eq!(scala_set(&small), "Set(b, a)");
        let large = strings(&["a", "b", "c", "d", "e", "f"]);
        let mut reversed = large.clone();
        reversed.reverse();
        let ordered = scala_set_order(large.clone());
        assert_eq!(ordered, scala_set_order(reversed));
        let mut sorted = ordered.clone();
        sorted.sort();
        assert_eq!(sorted, large);
        assert_eq!(array_buffer(&strings(&["x", "x"])), "ArrayBuffer(x, x)");
    }
}
