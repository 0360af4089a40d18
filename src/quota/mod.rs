//! Client quotas as Kafka keeps them (KIP-13, KIP-55, KIP-546): values set on entities (a user,
//! a client id, both, or an IP address; each name may be the default entity), stored in the
//! metadata log, and resolved for a request's user and client id by Kafka's precedence. The
//! byte rates are enforced per broker (`manager`), with Kafka's sampled rate (`rate`); the
//! controller mutation rate with Kafka's token bucket (`mutation`, `token_bucket`); the request
//! percentage with the sampled rate of each request's running time (`request`); an IP's
//! connection creation rate by the connection limits (`net::connection_quotas`). Pure: the time
//! is passed in.

pub mod manager;
pub mod mutation;
pub mod rate;
pub mod request;
pub mod token_bucket;

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The entity types.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The quota keys Kafka defines.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The keys a user or client-id entity may hold, and whether each is a whole number.
const CLIENT_KEYS: &[(&str, bool)] = &[
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];

/// An entity: its (type, name) parts sorted by type; a `None` name is the type's default
/// entity (`<default>` in Kafka's tools).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity(Vec<(String, Option<String>)>);

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("Invalid empty client quota entity")]
    EmptyEntity,
    #[error("Duplicate {0} entity type")]
    DuplicateType(String),
    #[error("Unhandled client quota entity type: {0}")]
    UnknownType(String),
    #[error("Invalid quota entity combination, {0} cannot be combined with other types")]
    IpCombined(String),
    #[error("Invalid configuration key {0}")]
    UnknownKey(String),
    #[error("Configuration {0} must be a Long value")]
    NotWhole(String),
    #[error("Configuration {key} must be a positive value, not {value}")]
    NotPositive { key: String, value: f64 },
    #[error("Unknown match type {0}")]
    UnknownMatchType(i8),
}

impl QuotaEntity {
    /// The entity of the given parts, after Kafka's checks of types and combinations.
    pub fn new(parts: Vec<(String, Option<String>)>) -> Result<QuotaEntity, QuotaError> {
        if parts.is_empty() {
            return Err(QuotaError::EmptyEntity);
        }
        let mut parts = parts;
        parts.sort();
        for pair in parts.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(QuotaError::DuplicateType(pair[0].0.clone()));
            }
        }
        for (kind, _) in &parts {
            if ![USER, CLIENT_ID, IP].contains(&kind.as_str()) {
                return Err(QuotaError::UnknownType(kind.clone()));
            }
        }
        if parts.len() > 1 && parts.iter().any(|(kind, _)| kind == IP) {
            return Err(QuotaError::IpCombined(IP.into()));
        }
        Ok(QuotaEntity(parts))
    }

    pub fn parts(&self) -> &[(String, Option<String>)] {
        &self.0
    }

    /// The name this entity gives `kind`: `None` without that type, `Some(None)` for the
    /// default entity.
    pub fn name(&self, kind: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(known, _)| known == kind)
            .map(|(_, name)| name.as_deref())
    }

    /// Checks that `key` may be set on this entity to `value`.
    pub fn validate(&self, key: &str, value: f64) -> Result<(), QuotaError> {
        let whole = match self.name(IP) {
            Some(_) if key == CONNECTION_CREATION_RATE => true,
            Some(_) => return Err(QuotaError::UnknownKey(key.into())),
            None => CLIENT_KEYS
                .iter()
                .find(|(known, _)| *known == key)
                .map(|(_, whole)| *whole)
                .ok_or_else(|| QuotaError::UnknownKey(key.into()))?,
        };
        if whole && value.fract() != 0.0 {
            return Err(QuotaError::NotWhole(key.into()));
        }
        if value.is_nan() || value <= 0.0 {
            return Err(QuotaError::NotPositive {
                key: key.into(),
                value,
            });
        }
        Ok(())
    }
}

/// One component of a DescribeClientQuotas filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The entity has this type with this name.
    Exact(String),
    /// The entity has this type's default entity.
    Default,
    /// The entity has this type, any name.
    Any,
}

impl Match {
    /// From the wire's match type (0 exact, 1 default, 2 any).
    pub fn from_wire(match_type: i8, name: Option<&str>) -> Result<Match, QuotaError> {
        match (match_type, name) {
            (0, Some(name)) => Ok(Match::Exact(name.to_string())),
            (0, None) | (1, _) => Ok(Match::Default),
            (2, _) => Ok(Match::Any),
            (other, _) => Err(QuotaError::UnknownMatchType(other)),
        }
    }
}

/// Every quota of the cluster (the metadata image holds it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientQuotas {
    by_entity: BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
    /// How many entities set `request_percentage`: every request asks, so it is kept at hand.
    request_percentages: usize,
}

/// Where a resolved quota applies: the (user, client id) its usage is counted under. A quota
/// set on a user counts all of that user's clients together, as in Kafka.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaScope {
    pub user: String,
    pub client_id: String,
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.by_entity.is_empty()
    }

    /// Whether any entity sets `request_percentage` (in constant time).
    pub fn holds_request_percentage(&self) -> bool {
        self.request_percentages > 0
    }

    /// Sets (`Some`) or removes (`None`) `key` of `entity`.
    pub fn set(&mut self, entity: &QuotaEntity, key: &str, value: Option<f64>) {
        let (had, has) = match value {
            Some(value) => {
                let values = self.by_entity.entry(entity.clone()).or_default();
                (values.insert(key.to_string(), value).is_some(), true)
            }
            None => {
                let mut had = false;
                if let Some(values) = self.by_entity.get_mut(entity) {
                    had = values.remove(key).is_some();
                    if values.is_empty() {
                        self.by_entity.remove(entity);
                    }
                }
                (had, false)
            }
        };
        if key == REQUEST_PERCENTAGE {
            match (had, has) {
                (false, true) => self.request_percentages += 1,
                (true, false) => self.request_percentages -= 1,
                _ => {}
            }
        }
    }

    pub fn values(&self, entity: &QuotaEntity) -> Option<&BTreeMap<String, f64>> {
        self.by_entity.get(entity)
    }

    /// Every entity with its values.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, f64>)> {
        self.by_entity.iter()
    }

    /// The entities a filter selects (Kafka's DescribeClientQuotas): each component's type
    /// must match as it says; `strict` also excludes entities with other types.
    pub fn matching<'a>(
        &'a self,
        components: &'a [(String, Match)],
        strict: bool,
    ) -> impl Iterator<Item = (&'a QuotaEntity, &'a BTreeMap<String, f64>)> + 'a {
        self.by_entity.iter().filter(move |(entity, _)| {
            let each = components
                .iter()
                .all(|(kind, wanted)| match (entity.name(kind), wanted) {
                    (None, _) => false,
                    (Some(name), Match::Exact(wanted)) => name == Some(wanted.as_str()),
                    (Some(name), Match::Default) => name.is_none(),
                    (Some(_), Match::Any) => true,
                });
            let only = !strict
                || entity
                    .parts()
                    .iter()
                    .all(|(kind, _)| components.iter().any(|(wanted, _)| wanted == kind));
            each && only
        })
    }

    /// The quota `key` for a request of `user` with `client_id`, and the scope its usage is
    /// counted in, by Kafka's precedence: user and client id, user and default client, user,
    /// default user and client id, both defaults, default user, client id, default client.
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(f64, QuotaScope)> {
        let entity = |user: Option<Option<&str>>, client: Option<Option<&str>>| {
            let mut parts = Vec::new();
            if let Some(user) = user {
                parts.push((USER.to_string(), user.map(str::to_string)));
            }
            if let Some(client) = client {
                parts.push((CLIENT_ID.to_string(), client.map(str::to_string)));
            }
            parts.sort();
            QuotaEntity(parts)
        };
        let both = QuotaScope {
            user: user.to_string(),
            client_id: client_id.to_string(),
        };
        let user_only = QuotaScope {
            user: user.to_string(),
            client_id: String::new(),
        };
        let client_only = QuotaScope {
            user: String::new(),
            client_id: client_id.to_string(),
        };
        let order = [
            (entity(Some(Some(user)), Some(Some(client_id))), &both),
            (entity(Some(Some(user)), Some(None)), &both),
            (entity(Some(Some(user)), None), &user_only),
            (entity(Some(None), Some(Some(client_id))), &both),
            (entity(Some(None), Some(None)), &both),
            (entity(Some(None), None), &user_only),
            (entity(None, Some(Some(client_id))), &client_only),
            (entity(None, Some(None)), &client_only),
        ];
        let found = order.into_iter().find_map(|(entity, scope)| {
            let value = self.by_entity.get(&entity)?.get(key)?;
            Some((*value, scope.clone()))
        });
        found
    }

    /// The `connection_creation_rate` of connections from `address`: its own ip entity's, else
    /// the default ip entity's (Kafka's `ConnectionQuotas.connectionRateForIp`). An entity
    /// names an address as Kafka's tools write it or any other spelling of it (`::1`,
    /// `0:0:0:0:0:0:0:1`); a host name matches nothing, as nothing here resolves names.
    pub fn connection_rate(&self, address: IpAddr) -> Option<f64> {
        let address = address.to_canonical();
        let first_ip = QuotaEntity(vec![(IP.to_string(), None)]);
        let mut default = None;
        // Ip entities have no other type, so they sort together from the default one on.
        for (entity, values) in self.by_entity.range(first_ip..) {
            let [(kind, name)] = entity.parts() else {
                break;
            };
            if kind != IP {
                break;
            }
            let Some(rate) = values.get(CONNECTION_CREATION_RATE) else {
                continue;
            };
            match name {
                None => default = Some(*rate),
                Some(name) => {
                    let named = name.parse::<IpAddr>().map(|named| named.to_canonical());
                    if named == Ok(address) {
                        return Some(*rate);
                    }
                }
            }
        }
        default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::new(
            parts
                .iter()
                .map(|(kind, name)| (kind.to_string(), name.map(str::to_string)))
                .collect(),
        )
        .unwrap()
    }

    /// Proves Kafka's precedence: the most specific entity with the key wins, and a user's
    /// quota counts all of its clients together while a client-id quota counts per client.
    #[test]
    fn resolves_by_kafkas_precedence() {
        let mut quotas = ClientQuotas::default();
        quotas.set(&entity(&[(CLIENT_ID, None)]), PRODUCER_BYTE_RATE, Some(1.0));
        let scope = |user: &str, client: &str| QuotaScope {
            user: user.into(),
            client_id: client.into(),
        };
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some((1.0, scope("", "app")))
        );
        quotas.set(
            &entity(&[(CLIENT_ID, Some("app"))]),
            PRODUCER_BYTE_RATE,
            Some(2.0),
        );
        assert_eq!(
            quotas
                .resolve(PRODUCER_BYTE_RATE, "alice", "app")
                .unwrap()
                .0,
            2.0
        );
        quotas.set(&entity(&[(USER, None)]), PRODUCER_BYTE_RATE, Some(3.0));
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some((3.0, scope("alice", "")))
        );
        quotas.set(
            &entity(&[(USER, Some("alice")), (CLIENT_ID, None)]),
            PRODUCER_BYTE_RATE,
            Some(4.0),
        );
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some((4.0, scope("alice", "app")))
        );
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "bob", "app").unwrap().0,
            3.0
        );
        assert_eq!(quotas.resolve(CONSUMER_BYTE_RATE, "alice", "app"), None);
        quotas.set(&entity(&[(USER, None)]), PRODUCER_BYTE_RATE, None);
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "bob", "app").unwrap().0,
            2.0
        );
    }

    /// Proves the image tells in constant time whether any entity sets `request_percentage`,
    /// through sets, overwrites and removals.
    #[test]
    fn knows_whether_request_percentages_are_set() {
        let mut quotas = ClientQuotas::default();
        let (app, other) = (entity(&[(CLIENT_ID, Some("app"))]), entity(&[(USER, None)]));
        assert!(!quotas.holds_request_percentage());
        quotas.set(&app, PRODUCER_BYTE_RATE, Some(1.0));
        assert!(!quotas.holds_request_percentage());
        quotas.set(&app, REQUEST_PERCENTAGE, Some(10.0));
        quotas.set(&app, REQUEST_PERCENTAGE, Some(20.0));
        quotas.set(&other, REQUEST_PERCENTAGE, Some(5.0));
        quotas.set(&app, REQUEST_PERCENTAGE, None);
        assert!(quotas.holds_request_percentage());
        quotas.set(&app, REQUEST_PERCENTAGE, None);
        quotas.set(&other, REQUEST_PERCENTAGE, None);
        assert!(!quotas.holds_request_percentage());
        let mut expected = ClientQuotas::default();
        expected.set(&app, PRODUCER_BYTE_RATE, Some(1.0));
        assert_eq!(quotas, expected);
    }

    /// Proves an address takes its own ip entity's connection rate, whatever the spelling,
    /// else the default ip entity's, and that user and client entities do not count.
    #[test]
    fn resolves_connection_rates_by_address() {
        let mut quotas = ClientQuotas::default();
        let address = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(quotas.connection_rate(address("127.0.0.1")), None);
        quotas.set(&entity(&[(USER, None)]), PRODUCER_BYTE_RATE, Some(1.0));
        quotas.set(&entity(&[(IP, None)]), CONNECTION_CREATION_RATE, Some(10.0));
        quotas.set(
            &entity(&[(IP, Some("0:0:0:0:0:0:0:1"))]),
            CONNECTION_CREATION_RATE,
            Some(3.0),
        );
        quotas.set(
            &entity(&[(IP, Some("10.0.0.1"))]),
            CONNECTION_CREATION_RATE,
            Some(2.0),
        );
        quotas.set(
            &entity(&[(IP, Some("broker.example"))]),
            CONNECTION_CREATION_RATE,
            Some(1.0),
        );
        assert_eq!(quotas.connection_rate(address("10.0.0.1")), Some(2.0));
        assert_eq!(
            quotas.connection_rate(address("::ffff:10.0.0.1")),
            Some(2.0)
        );
        assert_eq!(quotas.connection_rate(address("::1")), Some(3.0));
        assert_eq!(quotas.connection_rate(address("10.0.0.2")), Some(10.0));
        quotas.set(&entity(&[(IP, None)]), CONNECTION_CREATION_RATE, None);
        assert_eq!(quotas.connection_rate(address("10.0.0.2")), None);
    }

    /// Proves entity and value checks refuse what Kafka refuses.
    #[test]
    fn validates_entities_and_values() {
        let part = |kind: &str| (kind.to_string(), Some("x".to_string()));
        assert!(matches!(
            QuotaEntity::new(vec![part(USER), part(USER)]),
            Err(QuotaError::DuplicateType(_))
        ));
        assert!(QuotaEntity::new(vec![part("topic")]).is_err());
        assert!(QuotaEntity::new(vec![part(IP), part(USER)]).is_err());
        assert!(QuotaEntity::new(Vec::new()).is_err());
        let user = entity(&[(USER, Some("u"))]);
        assert_eq!(user.validate(PRODUCER_BYTE_RATE, 1024.0), Ok(()));
        assert_eq!(
            user.validate(PRODUCER_BYTE_RATE, 1.5),
            Err(QuotaError::NotWhole(PRODUCER_BYTE_RATE.into()))
        );
        assert_eq!(user.validate(REQUEST_PERCENTAGE, 12.5), Ok(()));
        assert!(user.validate(CONNECTION_CREATION_RATE, 5.0).is_err());
        assert!(user.validate(PRODUCER_BYTE_RATE, 0.0).is_err());
        let ip = entity(&[(IP, None)]);
        assert_eq!(ip.validate(CONNECTION_CREATION_RATE, 5.0), Ok(()));
        assert!(ip.validate(PRODUCER_BYTE_RATE, 5.0).is_err());
    }

    /// Proves DescribeClientQuotas filters select as Kafka's do.
    #[test]
    fn filters_entities() {
        let mut quotas = ClientQuotas::default();
        for parts in [
            vec![(USER, Some("alice"))],
            vec![(USER, None)],
            vec![(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            vec![(CLIENT_ID, Some("app"))],
        ] {
            quotas.set(&entity(&parts), PRODUCER_BYTE_RATE, Some(10.0));
        }
        let count =
            |components: &[(String, Match)], strict| quotas.matching(components, strict).count();
        let user = |wanted: Match| vec![(USER.to_string(), wanted)];
        assert_eq!(count(&user(Match::Exact("alice".into())), false), 2);
        assert_eq!(count(&user(Match::Exact("alice".into())), true), 1);
        assert_eq!(count(&user(Match::Default), false), 1);
        assert_eq!(count(&user(Match::Any), false), 3);
        assert_eq!(count(&user(Match::Any), true), 2);
        assert_eq!(count(&[], false), 4);
        assert_eq!(count(&[], true), 0);
    }
}
