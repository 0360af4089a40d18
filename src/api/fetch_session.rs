//! Fetch sessions (KIP-227), a pure state machine (time passed in): a client that fetches many
//! partitions names them once, in a full fetch that opens a session, and afterwards sends only
//! the partitions whose fetch position changed and those it no longer wants; the broker answers
//! only the partitions with something new (records, a changed high watermark, last stable
//! offset or log start offset, an error, a diverging epoch).
//!
//! Sessions are kept per shard, by the shard a connection landed on: a client that reconnects
//! elsewhere is told FETCH_SESSION_ID_NOT_FOUND and opens a new one with a full fetch, which
//! is what Kafka's clients do with any session the broker has lost. Each shard has its share of
//! `max.incremental.fetch.session.cache.slots`; when they are all taken, a new session takes the
//! slot of one unused for two minutes, else (Kafka's order of worth: a follower's session before
//! a consumer's, then the one with more partitions) of a less worthy one, else none is opened
//! and the answer carries session id 0, so the client goes on with full fetches.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// The epoch of a request that opens a session.
const INITIAL_EPOCH: i32 = 0;
/// The epoch of a request that closes its session, or of a fetch without one.
const FINAL_EPOCH: i32 = -1;
/// A session unused this long gives its slot to any new one (Kafka's fixed two minutes).
pub const EVICTION_MS: u64 = 120_000;

/// Why a request's session cannot serve it; the answer is this error with no partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("fetch session {0} is not found")]
    NotFound(i32),
    #[error("fetch session {id} expects epoch {expected}, not {given}")]
    InvalidEpoch { id: i32, expected: i32, given: i32 },
    #[error("a fetch without a session cannot have epoch {0}")]
    EpochWithoutSession(i32),
}

impl SessionError {
    pub fn code(&self) -> i16 {
        match self {
            SessionError::NotFound(_) => ResponseError::FetchSessionIdNotFound.code(),
            SessionError::InvalidEpoch { .. } | SessionError::EpochWithoutSession(_) => {
                ResponseError::InvalidFetchSessionEpoch.code()
            }
        }
    }
}

/// A partition of a session: its topic's name (Fetch v12 and older) or id (v13 and newer; the
/// name is then empty), and its index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    topic: TopicName,
    topic_id: Uuid,
    partition: i32,
}

/// What the last answer told the client of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Told {
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

impl Told {
    fn of(data: &PartitionData) -> Told {
        Told {
            high_watermark: data.high_watermark,
            last_stable_offset: data.last_stable_offset,
            log_start_offset: data.log_start_offset,
        }
    }
}

struct Cached {
    /// The fetch the client last asked of the partition.
    asked: FetchPartition,
    /// None until an answer carried the partition.
    told: Option<Told>,
}

struct Session {
    /// The epoch the session's next request must carry.
    epoch: i32,
    /// A follower's session (a `replica_id` of 0 or more) is worth more than a consumer's.
    follower: bool,
    /// In the order they are read and answered (those that last returned records go last, so
    /// that a response's byte limit does not always favour the same partitions).
    partitions: IndexMap<Key, Cached>,
    created_ms: u64,
    last_used_ms: u64,
}

impl Session {
    /// Kafka's order of worth when a new session needs a slot.
    fn worth(&self) -> (bool, usize) {
        (self.follower, self.partitions.len())
    }
}

/// How a request's answer is to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// No session: a full answer carrying session id 0.
    Sessionless,
    /// A session opened by this request: a full answer carrying its id.
    Opened(i32),
    /// A session continued: only the partitions with something new are answered.
    Continued(i32),
}

impl Plan {
    pub fn session_id(self) -> i32 {
        match self {
            Plan::Sessionless => 0,
            Plan::Opened(id) | Plan::Continued(id) => id,
        }
    }
}

/// The sessions of one shard.
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    slots: usize,
    /// State of the generator of session ids (xorshift; ids need to be unused, not secret).
    seed: u32,
}

impl FetchSessions {
    /// Room for `slots` sessions; `seed` makes different shards draw different ids.
    pub fn new(slots: usize, seed: u32) -> FetchSessions {
        FetchSessions {
            sessions: HashMap::new(),
            slots,
            seed: seed.wrapping_mul(0x9E37_79B9) | 1,
        }
    }

    pub fn count(&self) -> usize {
        self.sessions.len()
    }

    /// The partitions all sessions hold.
    pub fn partitions(&self) -> usize {
        self.sessions
            .values()
            .map(|session| session.partitions.len())
            .sum()
    }

    /// Resolves `request`'s session: how to answer it, and every partition to read, in the order
    /// to read them (the request's own for a full fetch, the session's otherwise).
    pub fn resolve(
        &mut self,
        request: &FetchRequest,
        follower: bool,
        now_ms: u64,
    ) -> Result<(Plan, Vec<FetchTopic>), SessionError> {
        let (id, epoch) = (request.session_id, request.session_epoch);
        match epoch {
            FINAL_EPOCH => {
                self.sessions.remove(&id);
                Ok((Plan::Sessionless, request.topics.clone()))
            }
            INITIAL_EPOCH => {
                self.sessions.remove(&id);
                let plan = match self.open(request, follower, now_ms) {
                    Some(id) => Plan::Opened(id),
                    None => Plan::Sessionless,
                };
                Ok((plan, request.topics.clone()))
            }
            _ if id == 0 || epoch < 0 => Err(SessionError::EpochWithoutSession(epoch)),
            _ => {
                let session = self
                    .sessions
                    .get_mut(&id)
                    .ok_or(SessionError::NotFound(id))?;
                if session.epoch != epoch {
                    return Err(SessionError::InvalidEpoch {
                        id,
                        expected: session.epoch,
                        given: epoch,
                    });
                }
                session.epoch = next_epoch(epoch);
                session.last_used_ms = now_ms;
                for topic in &request.topics {
                    for asked in &topic.partitions {
                        let key = key(&topic.topic, topic.topic_id, asked.partition);
                        match session.partitions.get_mut(&key) {
                            Some(cached) => cached.asked = asked.clone(),
                            None => {
                                let cached = Cached {
                                    asked: asked.clone(),
                                    told: None,
                                };
                                session.partitions.insert(key, cached);
                            }
                        }
                    }
                }
                for forgotten in &request.forgotten_topics_data {
                    for partition in &forgotten.partitions {
                        let key = key(&forgotten.topic, forgotten.topic_id, *partition);
                        session.partitions.shift_remove(&key);
                    }
                }
                Ok((Plan::Continued(id), topics_of(session)))
            }
        }
    }

    /// Records what `response` (the full answer to the request `plan` was resolved for) tells
    /// the client, and for a continued session leaves in it only the partitions with something
    /// new. Sets the response's session id.
    pub fn answered(&mut self, plan: Plan, response: &mut FetchResponse) {
        response.session_id = plan.session_id();
        let Some(session) = self.sessions.get_mut(&plan.session_id()) else {
            // Sessionless, or closed meanwhile: the answer stays whole.
            return;
        };
        let continued = matches!(plan, Plan::Continued(_));
        let mut fed = Vec::new();
        for topic in &mut response.responses {
            topic.partitions.retain(|data| {
                let key = key(&topic.topic, topic.topic_id, data.partition_index);
                let Some(cached) = session.partitions.get_mut(&key) else {
                    return true;
                };
                let told = Told::of(data);
                let records = data
                    .records
                    .as_ref()
                    .is_some_and(|records| !records.is_empty());
                if records {
                    fed.push(key);
                }
                let new = records
                    || data.error_code != 0
                    || data.diverging_epoch.epoch >= 0
                    || data.preferred_read_replica.0 >= 0
                    || data.current_leader.leader_id.0 >= 0
                    || cached.told != Some(told);
                cached.told = Some(told);
                new || !continued
            });
        }
        response
            .responses
            .retain(|topic| !topic.partitions.is_empty() || !continued);
        if continued {
            for key in fed {
                if let Some(cached) = session.partitions.shift_remove(&key) {
                    session.partitions.insert(key, cached);
                }
            }
        }
    }

    /// A new session for `request`'s partitions, if a slot is free or can be freed.
    fn open(&mut self, request: &FetchRequest, follower: bool, now_ms: u64) -> Option<i32> {
        let partitions: IndexMap<Key, Cached> = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(move |asked| {
                    let cached = Cached {
                        asked: asked.clone(),
                        told: None,
                    };
                    (key(&topic.topic, topic.topic_id, asked.partition), cached)
                })
            })
            .collect();
        let session = Session {
            epoch: next_epoch(INITIAL_EPOCH),
            follower,
            partitions,
            created_ms: now_ms,
            last_used_ms: now_ms,
        };
        if self.sessions.len() >= self.slots && !self.evict_for(&session, now_ms) {
            return None;
        }
        let id = loop {
            let id = self.draw();
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        self.sessions.insert(id, session);
        Some(id)
    }

    /// Frees a slot for `new`: the least recently used session if unused for `EVICTION_MS`,
    /// else the least worthy of those `new` may take (a follower's: any; a consumer's: those
    /// older than `EVICTION_MS`) if it is worth less than `new`.
    fn evict_for(&mut self, new: &Session, now_ms: u64) -> bool {
        let stale = self
            .sessions
            .iter()
            .min_by_key(|(_, session)| session.last_used_ms)
            .filter(|(_, session)| now_ms.saturating_sub(session.last_used_ms) >= EVICTION_MS)
            .map(|(id, _)| *id);
        let victim = stale.or_else(|| {
            self.sessions
                .iter()
                .filter(|(_, session)| {
                    new.follower || now_ms.saturating_sub(session.created_ms) >= EVICTION_MS
                })
                .min_by_key(|(_, session)| session.worth())
                .filter(|(_, session)| session.worth() < new.worth())
                .map(|(id, _)| *id)
        });
        victim.is_some_and(|id| self.sessions.remove(&id).is_some())
    }

    /// A positive id, never 0.
    fn draw(&mut self) -> i32 {
        loop {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 17;
            self.seed ^= self.seed << 5;
            let id = (self.seed & 0x7fff_ffff) as i32;
            if id != 0 {
                return id;
            }
        }
    }
}

fn key(topic: &TopicName, topic_id: Uuid, partition: i32) -> Key {
    Key {
        topic: topic.clone(),
        topic_id,
        partition,
    }
}

/// Kafka's epoch after `epoch`: it wraps to 1, never to the initial or final epoch.
fn next_epoch(epoch: i32) -> i32 {
    match epoch {
        i32::MAX => 1,
        epoch => epoch + 1,
    }
}

/// A session's partitions as request topics, each topic once, in the order topics first
/// appear in the session.
fn topics_of(session: &Session) -> Vec<FetchTopic> {
    let mut topics: IndexMap<(&TopicName, Uuid), Vec<FetchPartition>> = IndexMap::new();
    for (key, cached) in &session.partitions {
        topics
            .entry((&key.topic, key.topic_id))
            .or_default()
            .push(cached.asked.clone());
    }
    topics
        .into_iter()
        .map(|((topic, topic_id), partitions)| {
            FetchTopic::default()
                .with_topic(topic.clone())
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect()
}

#[cfg(test)]
#[path = "fetch_session_tests.rs"]
mod tests;
