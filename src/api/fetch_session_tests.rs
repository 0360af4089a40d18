use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::*;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// A request naming `partitions` as (topic, index, fetch offset).
fn request(id: i32, epoch: i32, partitions: &[(&str, i32, i64)]) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, index, offset) in partitions {
        let asked = FetchPartition::default()
            .with_partition(*index)
            .with_fetch_offset(*offset);
        match topics.iter_mut().find(|t| t.topic == name(topic)) {
            Some(found) => found.partitions.push(asked),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![asked]),
            ),
        }
    }
    FetchRequest::default()
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// The full answer to the partitions read: (topic, index, high watermark, record bytes).
fn answer(topics: &[FetchTopic], read: &dyn Fn(&str, i32) -> (i64, usize)) -> FetchResponse {
    let responses = topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|asked| {
                    let (high_watermark, bytes) = read(topic.topic.as_str(), asked.partition);
                    PartitionData::default()
                        .with_partition_index(asked.partition)
                        .with_high_watermark(high_watermark)
                        .with_last_stable_offset(high_watermark)
                        .with_log_start_offset(0)
                        .with_records(Some(bytes::Bytes::from(vec![0u8; bytes])))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

/// (topic, index) of every partition of `response`, in order.
fn answered(response: &FetchResponse) -> Vec<(String, i32)> {
    response
        .responses
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |data| (topic.topic.to_string(), data.partition_index))
        })
        .collect()
}

fn read_order(topics: &[FetchTopic]) -> Vec<(String, i32, i64)> {
    topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |asked| (topic.topic.to_string(), asked.partition, asked.fetch_offset))
        })
        .collect()
}

const ALL: &[(&str, i32, i64)] = &[("a", 0, 0), ("a", 1, 0), ("b", 0, 0)];

/// Opens a session over ALL, answered with high watermark 10 everywhere; returns its id.
fn opened(sessions: &mut FetchSessions) -> i32 {
    let (plan, topics) = sessions.resolve(&request(0, 0, ALL), false, 0).unwrap();
    let Plan::Opened(id) = plan else {
        panic!("no session opened: {plan:?}");
    };
    let mut response = answer(&topics, &|_, _| (10, 0));
    sessions.answered(plan, &mut response);
    assert_eq!(response.session_id, id);
    assert_eq!(
        answered(&response).len(),
        3,
        "a full answer has every partition"
    );
    id
}

#[test]
fn a_continued_session_answers_only_what_changed() {
    let mut sessions = FetchSessions::new(10, 1);
    let id = opened(&mut sessions);
    // Nothing asked anew, nothing new: an empty answer, every partition still read.
    let (plan, topics) = sessions.resolve(&request(id, 1, &[]), false, 1).unwrap();
    assert_eq!(plan, Plan::Continued(id));
    assert_eq!(read_order(&topics), read_order(&request(0, 0, ALL).topics));
    let mut response = answer(&topics, &|_, _| (10, 0));
    sessions.answered(plan, &mut response);
    assert_eq!((response.session_id, answered(&response)), (id, vec![]));
    // a-1's high watermark moves: only it is answered.
    let (plan, topics) = sessions.resolve(&request(id, 2, &[]), false, 2).unwrap();
    let mut response = answer(&topics, &|topic, index| match (topic, index) {
        ("a", 1) => (12, 0),
        _ => (10, 0),
    });
    sessions.answered(plan, &mut response);
    assert_eq!(answered(&response), vec![("a".to_string(), 1)]);
    // Records for a-0: answered, and a-0 is read last from now on; the client's new position
    // for it replaces the one the session held.
    let (plan, topics) = sessions.resolve(&request(id, 3, &[]), false, 3).unwrap();
    let mut response = answer(&topics, &|topic, index| match (topic, index) {
        ("a", 0) => (10, 100),
        ("a", 1) => (12, 0),
        _ => (10, 0),
    });
    sessions.answered(plan, &mut response);
    assert_eq!(answered(&response), vec![("a".to_string(), 0)]);
    let (_, topics) = sessions
        .resolve(&request(id, 4, &[("a", 0, 7)]), false, 4)
        .unwrap();
    assert_eq!(
        read_order(&topics),
        vec![
            ("a".to_string(), 1, 0),
            ("a".to_string(), 0, 7),
            ("b".to_string(), 0, 0)
        ],
        "a topic is read once, where it first appears"
    );
}

#[test]
fn partitions_are_added_and_forgotten() {
    let mut sessions = FetchSessions::new(10, 2);
    let id = opened(&mut sessions);
    let mut forgetting = request(id, 1, &[("c", 3, 5)]);
    forgetting.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(name("a"))
        .with_partitions(vec![0, 1])];
    let (plan, topics) = sessions.resolve(&forgetting, false, 1).unwrap();
    assert_eq!(
        read_order(&topics),
        vec![("b".to_string(), 0, 0), ("c".to_string(), 3, 5)]
    );
    // The new partition is answered (never told before); b-0 is not (unchanged).
    let mut response = answer(&topics, &|_, _| (10, 0));
    sessions.answered(plan, &mut response);
    assert_eq!(answered(&response), vec![("c".to_string(), 3)]);
}

#[test]
fn errors_and_diverging_epochs_are_always_answered() {
    let mut sessions = FetchSessions::new(10, 3);
    let id = opened(&mut sessions);
    for epoch in 1..=2 {
        let (plan, topics) = sessions.resolve(&request(id, epoch, &[]), true, 1).unwrap();
        let mut response = answer(&topics, &|_, _| (10, 0));
        response.responses[0].partitions[0].error_code = ResponseError::NotLeaderOrFollower.code();
        response.responses[1].partitions[0].diverging_epoch.epoch = 3;
        sessions.answered(plan, &mut response);
        assert_eq!(
            answered(&response),
            vec![("a".to_string(), 0), ("b".to_string(), 0)]
        );
    }
}

#[test]
fn unknown_sessions_and_wrong_epochs_are_refused() {
    let mut sessions = FetchSessions::new(10, 4);
    let id = opened(&mut sessions);
    let refused = |sessions: &mut FetchSessions, id, epoch| {
        sessions
            .resolve(&request(id, epoch, &[]), false, 1)
            .unwrap_err()
    };
    assert_eq!(
        refused(&mut sessions, id + 1, 1),
        SessionError::NotFound(id + 1)
    );
    assert_eq!(
        refused(&mut sessions, id, 2),
        SessionError::InvalidEpoch {
            id,
            expected: 1,
            given: 2
        }
    );
    assert_eq!(
        refused(&mut sessions, 0, 1),
        SessionError::EpochWithoutSession(1)
    );
    assert_eq!(
        refused(&mut sessions, id, -2).code(),
        ResponseError::InvalidFetchSessionEpoch.code()
    );
    assert_eq!(
        SessionError::NotFound(1).code(),
        ResponseError::FetchSessionIdNotFound.code()
    );
    // A refused request does not move the session on.
    assert!(sessions.resolve(&request(id, 1, &[]), false, 1).is_ok());
}

#[test]
fn the_final_epoch_closes_and_epoch_zero_replaces() {
    let mut sessions = FetchSessions::new(10, 5);
    let id = opened(&mut sessions);
    let (plan, topics) = sessions.resolve(&request(id, -1, ALL), false, 1).unwrap();
    assert_eq!((plan, topics.len()), (Plan::Sessionless, 2));
    let mut response = answer(&topics, &|_, _| (10, 0));
    sessions.answered(plan, &mut response);
    assert_eq!((response.session_id, answered(&response).len()), (0, 3));
    assert_eq!(sessions.count(), 0);
    assert_eq!(
        sessions
            .resolve(&request(id, 1, &[]), false, 1)
            .unwrap_err(),
        SessionError::NotFound(id)
    );
    // Epoch 0 with an id: that session is closed and a new one opened.
    let first = opened(&mut sessions);
    let (plan, _) = sessions.resolve(&request(first, 0, ALL), false, 2).unwrap();
    assert!(matches!(plan, Plan::Opened(id) if id != first), "{plan:?}");
    assert_eq!(sessions.count(), 1);
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(next_epoch(0), 1);
    assert_eq!(next_epoch(41), 42);
    assert_eq!(next_epoch(i32::MAX), 1);
}

#[test]
fn a_full_cache_gives_slots_by_staleness_and_worth() {
    let mut sessions = FetchSessions::new(1, 6);
    let consumer = opened(&mut sessions);
    // Another consumer's session, as large: no slot (it goes on without a session).
    let (plan, _) = sessions.resolve(&request(0, 0, ALL), false, 1_000).unwrap();
    assert_eq!(plan, Plan::Sessionless);
    // A follower's session is worth more: it takes the slot.
    let (plan, _) = sessions.resolve(&request(0, 0, ALL), true, 2_000).unwrap();
    let Plan::Opened(follower) = plan else {
        panic!("{plan:?}")
    };
    assert_eq!(
        sessions.resolve(&request(consumer, 1, &[]), false, 2_001),
        Err(SessionError::NotFound(consumer))
    );
    // A consumer may not take a follower's slot while it is in use...
    let (plan, _) = sessions
        .resolve(&request(follower, 1, &[]), true, 3_000)
        .unwrap();
    assert_eq!(plan, Plan::Continued(follower));
    let (plan, _) = sessions.resolve(&request(0, 0, ALL), false, 3_001).unwrap();
    assert_eq!(plan, Plan::Sessionless);
    // ...but once it has been unused for two minutes, any new session may.
    let later = 3_000 + EVICTION_MS;
    let (plan, _) = sessions
        .resolve(&request(0, 0, &[("z", 0, 0)]), false, later)
        .unwrap();
    assert!(matches!(plan, Plan::Opened(_)), "{plan:?}");
    assert_eq!(sessions.count(), 1);
}

#[test]
fn session_ids_are_positive_and_distinct() {
    let mut sessions = FetchSessions::new(1_000, 7);
    let ids: std::collections::HashSet<i32> = (0..1_000).map(|_| opened(&mut sessions)).collect();
    assert_eq!(ids.len(), 1_000);
    assert!(ids.iter().all(|id| *id > 0));
}
