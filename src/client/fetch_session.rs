//! The fetching side of a fetch session (KIP-227), as Kafka's `FetchSessionHandler`: the first
//! fetch to a broker is full and opens a session; each later one names only the partitions whose
//! fetch changed, and those no longer wanted as forgotten. A refused session (unknown id, wrong
//! epoch), a lost connection or an answer without a session id starts over with a full fetch.
//! Pure: the caller sends the request and reports the answer.

use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};

/// What a fetch says of its session, and the partitions it names.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFetch {
    pub session_id: i32,
    pub session_epoch: i32,
    pub topics: Vec<FetchTopic>,
    pub forgotten: Vec<ForgottenTopic>,
}

impl SessionFetch {
    /// `request` with this fetch's session fields and partitions.
    pub fn apply_to(self, request: FetchRequest) -> FetchRequest {
        request
            .with_session_id(self.session_id)
            .with_session_epoch(self.session_epoch)
            .with_topics(self.topics)
            .with_forgotten_topics_data(self.forgotten)
    }
}

type Key = (TopicName, i32);

#[derive(Debug, Default)]
pub struct FetchSession {
    /// The broker's id for the session; 0 before it gave one.
    id: i32,
    /// The epoch of the next fetch: 0 opens a session (a full fetch).
    epoch: i32,
    /// What the broker's session holds, as last acknowledged.
    held: IndexMap<Key, FetchPartition>,
    /// What it will hold once the fetch on its way is answered.
    pending: IndexMap<Key, FetchPartition>,
}

impl FetchSession {
    /// The fetch for `wanted` (every partition to fetch, as a full fetch would name it).
    pub fn next_fetch(
        &mut self,
        wanted: impl IntoIterator<Item = (TopicName, FetchPartition)>,
    ) -> SessionFetch {
        self.pending = wanted
            .into_iter()
            .map(|(topic, asked)| ((topic, asked.partition), asked))
            .collect();
        if self.epoch == 0 {
            // A full fetch; naming the old id closes that session if the broker still has it.
            let topics = by_topic(self.pending.iter());
            return SessionFetch {
                session_id: self.id,
                session_epoch: 0,
                topics,
                forgotten: Vec::new(),
            };
        }
        let changed = self
            .pending
            .iter()
            .filter(|(key, asked)| self.held.get(*key) != Some(*asked));
        let topics = by_topic(changed);
        let mut forgotten: IndexMap<&TopicName, Vec<i32>> = IndexMap::new();
        for (topic, partition) in self.held.keys() {
            if !self.pending.contains_key(&(topic.clone(), *partition)) {
                forgotten.entry(topic).or_default().push(*partition);
            }
        }
        let forgotten = forgotten
            .into_iter()
            .map(|(topic, partitions)| {
                ForgottenTopic::default()
                    .with_topic(topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        SessionFetch {
            session_id: self.id,
            session_epoch: self.epoch,
            topics,
            forgotten,
        }
    }

    /// The broker answered the last fetch with top-level `error_code` and `session_id`.
    pub fn answered(&mut self, error_code: i16, session_id: i32) {
        if error_code != 0 {
            // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, or any other refusal:
            // what the broker holds is unknown, so the next fetch is full.
            self.start_over();
            return;
        }
        self.held = std::mem::take(&mut self.pending);
        match (self.epoch, session_id) {
            (_, 0) => {
                // No session (none opened, or the broker cannot keep one): full fetches.
                self.id = 0;
                self.epoch = 0;
            }
            (0, id) => {
                self.id = id;
                self.epoch = 1;
            }
            (epoch, _) => self.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 },
        }
    }

    /// The connection was lost, or the fetch was not answered: the next fetch is full (and
    /// closes the old session, if the broker still has it).
    pub fn start_over(&mut self) {
        self.epoch = 0;
        self.held.clear();
        self.pending.clear();
    }
}

fn by_topic<'a>(
    partitions: impl Iterator<Item = (&'a Key, &'a FetchPartition)>,
) -> Vec<FetchTopic> {
    let mut topics: IndexMap<&TopicName, Vec<FetchPartition>> = IndexMap::new();
    for ((topic, _), asked) in partitions {
        topics.entry(topic).or_default().push(asked.clone());
    }
    topics
        .into_iter()
        .map(|(topic, partitions)| {
            FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(partitions)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn wanted(partitions: &[(&str, i32, i64)]) -> Vec<(TopicName, FetchPartition)> {
        partitions
            .iter()
            .map(|(topic, index, offset)| {
                let name = TopicName(StrBytes::from_string(topic.to_string()));
                let asked = FetchPartition::default()
                    .with_partition(*index)
                    .with_fetch_offset(*offset);
                (name, asked)
            })
            .collect()
    }

    /// (topic, partition, fetch offset) named, and (topic, partitions) forgotten.
    type Named = (Vec<(String, i32, i64)>, Vec<(String, Vec<i32>)>);

    fn named(fetch: &SessionFetch) -> Named {
        let topics = fetch
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|p| (topic.topic.to_string(), p.partition, p.fetch_offset))
            })
            .collect();
        let forgotten = fetch
            .forgotten
            .iter()
            .map(|topic| (topic.topic.to_string(), topic.partitions.clone()))
            .collect();
        (topics, forgotten)
    }

    #[test]
    fn a_session_names_only_what_changed() {
        let mut session = FetchSession::default();
        let full = session.next_fetch(wanted(&[("a", 0, 5), ("a", 1, 7), ("b", 0, 0)]));
        assert_eq!((full.session_id, full.session_epoch), (0, 0));
        assert_eq!(named(&full).0.len(), 3);
        session.answered(0, 42);
        let same = session.next_fetch(wanted(&[("a", 0, 5), ("a", 1, 7), ("b", 0, 0)]));
        assert_eq!((same.session_id, same.session_epoch), (42, 1));
        assert_eq!(named(&same), (vec![], vec![]));
        session.answered(0, 42);
        // a-0 moved on, b-0 is no longer wanted, c-2 is new.
        let changed = session.next_fetch(wanted(&[("a", 0, 9), ("a", 1, 7), ("c", 2, 0)]));
        assert_eq!(changed.session_epoch, 2);
        assert_eq!(
            named(&changed),
            (
                vec![("a".into(), 0, 9), ("c".into(), 2, 0)],
                vec![("b".into(), vec![0])]
            )
        );
        session.answered(0, 42);
        assert_eq!(
            named(&session.next_fetch(wanted(&[("a", 0, 9), ("a", 1, 7), ("c", 2, 0)]))),
            (vec![], vec![])
        );
    }

    #[test]
    fn refusals_and_lost_connections_start_over() {
        let mut session = FetchSession::default();
        session.next_fetch(wanted(&[("a", 0, 0)]));
        session.answered(0, 7);
        session.next_fetch(wanted(&[("a", 0, 1)]));
        // FETCH_SESSION_ID_NOT_FOUND (70): a full fetch naming the old id next.
        session.answered(70, 0);
        let full = session.next_fetch(wanted(&[("a", 0, 1)]));
        assert_eq!((full.session_id, full.session_epoch), (7, 0));
        assert_eq!(named(&full).0, vec![("a".into(), 0, 1)]);
        session.answered(0, 8);
        session.next_fetch(wanted(&[("a", 0, 2)]));
        session.start_over();
        let full = session.next_fetch(wanted(&[("a", 0, 2)]));
        assert_eq!((full.session_id, full.session_epoch), (8, 0));
        // A broker that keeps no session: every fetch is full.
        session.answered(0, 0);
        let full = session.next_fetch(wanted(&[("a", 0, 3)]));
        assert_eq!((full.session_id, full.session_epoch), (0, 0));
        assert_eq!(named(&full).0, vec![("a".into(), 0, 3)]);
    }
}
