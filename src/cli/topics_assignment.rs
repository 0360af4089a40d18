//! `--replica-assignment` of kafka-topics.sh: the brokers of each partition, partitions separated
//! by commas and replicas by colons (`1:2,2:3,3:1`), checked as Kafka's tool checks them.

use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
use kafka_protocol::messages::BrokerId;

/// Kafka's messages for an assignment its tool refuses.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    /// Java's NumberFormatException, as the tool prints it.
    #[error("For input string: \"{0}\"")]
    NotANumber(String),
    #[error("Partition replica lists may not contain duplicate entries: {0}")]
    Duplicates(String),
    #[error("Partition {partition} has different replication factor: {brokers}")]
    DifferentReplicationFactor { partition: usize, brokers: String },
}

/// The brokers of each partition, in partition order.
pub fn parse(text: &str) -> Result<Vec<Vec<i32>>, AssignmentError> {
    let mut partitions: Vec<Vec<i32>> = Vec::new();
    for (index, listed) in text.split(',').enumerate() {
        let brokers = listed
            .split(':')
            .map(|broker| {
                let broker = broker.trim();
                broker
                    .parse::<i32>()
                    .map_err(|_| AssignmentError::NotANumber(broker.to_string()))
            })
            .collect::<Result<Vec<i32>, _>>()?;
        let mut duplicates: Vec<i32> = Vec::new();
        for (position, broker) in brokers.iter().enumerate() {
            if brokers[..position].contains(broker) && !duplicates.contains(broker) {
                duplicates.push(*broker);
            }
        }
        if !duplicates.is_empty() {
            let listed: Vec<String> = duplicates.iter().map(i32::to_string).collect();
            return Err(AssignmentError::Duplicates(listed.join(",")));
        }
        if partitions
            .first()
            .is_some_and(|first| first.len() != brokers.len())
        {
            // Java's List.toString.
            let listed: Vec<String> = brokers.iter().map(i32::to_string).collect();
            return Err(AssignmentError::DifferentReplicationFactor {
                partition: index,
                brokers: format!("[{}]", listed.join(", ")),
            });
        }
        partitions.push(brokers);
    }
    Ok(partitions)
}

/// The assignment as CreateTopics carries it.
pub fn creatable(partitions: &[Vec<i32>]) -> Vec<CreatableReplicaAssignment> {
    partitions
        .iter()
        .enumerate()
        .map(|(index, brokers)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(index as i32)
                .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves assignments parse in partition order with spaces allowed, and that Kafka's tool's
    /// refusals come with its messages.
    #[test]
    fn parses_and_refuses_as_kafkas_tool() {
        assert_eq!(
            parse("4:5, 5 : 6,6:4"),
            Ok(vec![vec![4, 5], vec![5, 6], vec![6, 4]])
        );
        assert_eq!(parse("7"), Ok(vec![vec![7]]));
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            message("1:1"),
            "Partition replica lists may not contain duplicate entries: 1"
        );
        assert_eq!(
            message("1:2:1:2:1"),
            "Partition replica lists may not contain duplicate entries: 1,2"
        );
        assert_eq!(
            message("1,2:3"),
            "Partition 1 has different replication factor: [2, 3]"
        );
        assert_eq!(message("1:x"), "For input string: \"x\"");
        assert_eq!(message(""), "For input string: \"\"");
        let creatable = creatable(&[vec![4, 5], vec![5, 4]]);
        assert_eq!(creatable[1].partition_index, 1);
        assert_eq!(creatable[1].broker_ids, vec![BrokerId(5), BrokerId(4)]);
    }
}
