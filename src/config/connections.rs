//! `max.connections.per.ip.overrides`: `host:count` pairs, comma separated, as Kafka reads them
//! (the count follows the last colon, so IPv6 addresses need no brackets). A host name is
//! resolved once, at start-up, to every address it has (Kafka resolves each host the same way).

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};

use super::ConfigError;

const KEY: &str = "max.connections.per.ip.overrides";

/// The per-address limits `value` sets, by address.
pub fn parse_per_ip_overrides(value: &str) -> Result<BTreeMap<IpAddr, usize>, ConfigError> {
    let mut overrides = BTreeMap::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let invalid = |reason: String| ConfigError::Invalid {
            key: KEY.to_string(),
            value: value.to_string(),
            reason: format!("'{entry}' {reason}"),
        };
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| invalid("is not of the form host:count".into()))?;
        let (host, count) = (host.trim(), count.trim());
        let count: i32 = count
            .parse()
            .map_err(|_| invalid(format!("has a count '{count}' that is not a number")))?;
        let count = usize::try_from(count)
            .map_err(|_| invalid("has a negative count; use 0 to refuse the host".into()))?;
        for address in resolve(host).map_err(invalid)? {
            overrides.insert(address, count);
        }
    }
    Ok(overrides)
}

/// Every address of `host`: an IP address as it is, a host name through the resolver.
fn resolve(host: &str) -> Result<Vec<IpAddr>, String> {
    let literal = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(address) = literal.parse::<IpAddr>() {
        return Ok(vec![address]);
    }
    if host.is_empty() {
        return Err("has no host".into());
    }
    let addresses: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|error| format!("names host '{host}', which does not resolve: {error}"))?
        .map(|address| address.ip())
        .collect();
    match addresses.is_empty() {
        true => Err(format!("names host '{host}', which has no address")),
        false => Ok(addresses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves addresses (IPv4, bare and bracketed IPv6) and host names parse with their counts,
    /// and malformed entries are errors naming the entry.
    #[test]
    fn parses_host_count_pairs() {
        let overrides =
            parse_per_ip_overrides(" 10.0.0.1:5, ::1:7,[fe80::2]:0,localhost:9 ").unwrap();
        assert_eq!(overrides[&"10.0.0.1".parse::<IpAddr>().unwrap()], 5);
        assert_eq!(overrides[&"fe80::2".parse::<IpAddr>().unwrap()], 0);
        // localhost resolves to 127.0.0.1 (and perhaps ::1), and comes later than `::1:7`.
        assert_eq!(overrides[&"127.0.0.1".parse::<IpAddr>().unwrap()], 9);
        assert!(parse_per_ip_overrides("").unwrap().is_empty());
        for bad in [
            "10.0.0.1",
            "10.0.0.1:many",
            "10.0.0.1:-1",
            ":4",
            "10.0.0.1:99999999999",
        ] {
            let message = parse_per_ip_overrides(bad).unwrap_err().to_string();
            assert!(message.contains(KEY) && message.contains(bad), "{message}");
        }
    }
}
