//! Listener and quorum-voter strings: `NAME://host:port,...` and `id@host:port,...`.

use super::ConfigError;

/// One entry of `listeners` or `advertised.listeners`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty means every interface when binding, the machine's host name when advertising.
    pub host: String,
    pub port: u16,
}

/// One entry of `controller.quorum.voters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
}

pub fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: format!("'{entry}' {reason}"),
        };
        let (name, address) = entry
            .split_once("://")
            .ok_or_else(|| invalid("is not of the form NAME://host:port"))?;
        let (host, port) = split_host_port(address).ok_or_else(|| invalid("has no valid port"))?;
        if listeners.iter().any(|listener| listener.name == name) {
            return Err(invalid("repeats a listener name"));
        }
        listeners.push(Listener {
            name: name.to_ascii_uppercase(),
            host,
            port,
        });
    }
    Ok(listeners)
}

pub fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut voters = Vec::new();
    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: format!("'{entry}' {reason}"),
        };
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| invalid("is not of the form id@host:port"))?;
        let node_id = id.parse().map_err(|_| invalid("has no numeric node id"))?;
        let (host, port) = split_host_port(address).ok_or_else(|| invalid("has no valid port"))?;
        voters.push(Voter {
            node_id,
            host,
            port,
        });
    }
    Ok(voters)
}

/// Splits `host:port`, `[v6]:port` or `:port`.
fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves listener and voter strings from the seed README parse, and bad ones name the entry.
    #[test]
    fn parses_listeners_and_voters() {
        let listeners = parse_listeners(
            "listeners",
            "PLAINTEXT://:19092,PLAINTEXT_HOST://localhost:9092",
        )
        .unwrap();
        assert_eq!(listeners[0].host, "");
        assert_eq!(listeners[0].port, 19092);
        assert_eq!(listeners[1].name, "PLAINTEXT_HOST");
        let voters = parse_voters(
            "controller.quorum.voters",
            "1@controller-1:9093,2@[::1]:9093",
        )
        .unwrap();
        assert_eq!(
            voters[1],
            Voter {
                node_id: 2,
                host: "::1".into(),
                port: 9093
            }
        );
        let error = parse_listeners("listeners", "PLAINTEXT:9092")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("listeners") && error.contains("PLAINTEXT:9092"),
            "{error}"
        );
    }
}
