//! The tables of `flink consumer-groups`, laid out as Kafka's ConsumerGroupCommand prints them:
//! Java `%-Ns` columns whose widths are the longest value or a minimum (15 for names, 10 for
//! partitions), one space between columns, the last column unpadded, and Kafka's leading blank
//! line. Pure string building, so the layouts are unit-tested.

use std::fmt::Write;

/// What Kafka prints for a value that does not exist (no committed offset, no consumer).
pub const MISSING: &str = "-";
/// Kafka's minimum width of the group, topic, consumer id, host and client id columns.
const NAME_WIDTH_MIN: usize = 15;

/// One row of `--describe` (the offsets view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub consumer_id: String,
    pub host: String,
    pub client_id: String,
}

impl OffsetRow {
    /// LAG = log end − committed, when both are known.
    pub fn lag(&self) -> Option<i64> {
        match (self.current_offset, self.log_end_offset) {
            (Some(current), Some(end)) if current >= 0 => Some(end - current),
            _ => None,
        }
    }
}

/// One row of `--describe --members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub group: String,
    pub consumer_id: String,
    pub host: String,
    pub client_id: String,
    pub partitions: usize,
}

/// The row of `--describe --state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub group: String,
    /// `host:port  (id)`
    pub coordinator: String,
    pub assignment_strategy: String,
    pub state: String,
    pub members: usize,
}

/// One row of the `--reset-offsets` plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub new_offset: i64,
}

/// `--list --state`: `GROUP  STATE`, the group column 10 wider than the longest id (min 15).
pub fn list_with_state(groups: &[(String, String)]) -> String {
    let width = groups
        .iter()
        .map(|(group, _)| group.len().max(NAME_WIDTH_MIN))
        .max()
        .unwrap_or(NAME_WIDTH_MIN)
        + 10;
    let mut text = format!("{:<width$} {:<20}\n", "GROUP", "STATE");
    for (group, state) in groups {
        let _ = writeln!(text, "{group:<width$} {state:<20}");
    }
    text
}

/// `--describe`: a blank line, the header, one row per partition, then a newline.
pub fn offsets(rows: &[OffsetRow]) -> String {
    let widest = |value: fn(&OffsetRow) -> &str| {
        rows.iter()
            .map(|row| value(row).len())
            .fold(NAME_WIDTH_MIN, usize::max)
    };
    let group_width = widest(|row| &row.group);
    let topic_width = widest(|row| &row.topic);
    let consumer_width = widest(|row| &row.consumer_id);
    let host_width = widest(|row| &row.host);
    let line = |cells: [&str; 9]| {
        format!(
            "\n{:<group_width$} {:<topic_width$} {:<10} {:<15} {:<15} {:<15} {:<consumer_width$} {:<host_width$} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[7], cells[8]
        )
    };
    let mut text = line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for row in rows {
        let partition = row.partition.to_string();
        let current = optional(row.current_offset);
        let end = optional(row.log_end_offset);
        let lag = optional(row.lag());
        text.push_str(&line([
            &row.group,
            &row.topic,
            &partition,
            &current,
            &end,
            &lag,
            &row.consumer_id,
            &row.host,
            &row.client_id,
        ]));
    }
    text.push('\n');
    text
}

/// `--describe --members`: Kafka pads every column, the last too, and ends rows with a space.
pub fn members(rows: &[MemberRow]) -> String {
    let widest = |value: fn(&MemberRow) -> &str| {
        rows.iter()
            .map(|row| value(row).len())
            .fold(NAME_WIDTH_MIN, usize::max)
    };
    let group_width = widest(|row| &row.group);
    let consumer_width = widest(|row| &row.consumer_id);
    let host_width = widest(|row| &row.host);
    let client_width = widest(|row| &row.client_id);
    let line = |cells: [&str; 5]| {
        format!(
            "{:<group_width$} {:<consumer_width$} {:<host_width$} {:<client_width$} {:<15} \n",
            cells[0], cells[1], cells[2], cells[3], cells[4]
        )
    };
    let mut text = String::from("\n");
    text.push_str(&line([
        "GROUP",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    ]));
    for row in rows {
        let partitions = row.partitions.to_string();
        text.push_str(&line([
            &row.group,
            &row.consumer_id,
            &row.host,
            &row.client_id,
            &partitions,
        ]));
    }
    text
}

/// `--describe --state`: header and one row, each after a newline, then a newline.
pub fn state(row: &StateRow) -> String {
    let group_width = row.group.len().max(NAME_WIDTH_MIN);
    let coordinator_width = row.coordinator.len().max(25);
    let strategy = match row.assignment_strategy.is_empty() {
        true => MISSING,
        false => &row.assignment_strategy,
    };
    let line = |cells: [&str; 5]| {
        format!(
            "\n{:<group_width$} {:<coordinator_width$} {:<20} {:<20} {}",
            cells[0], cells[1], cells[2], cells[3], cells[4]
        )
    };
    let members = row.members.to_string();
    let mut text = line([
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
    ]);
    text.push_str(&line([
        &row.group,
        &row.coordinator,
        strategy,
        &row.state,
        &members,
    ]));
    text.push('\n');
    text
}

/// `--reset-offsets`: `GROUP  TOPIC  PARTITION  NEW-OFFSET`; no header for an empty plan.
pub fn reset_plan(rows: &[ResetRow]) -> String {
    let group_width = rows
        .iter()
        .map(|row| row.group.len())
        .fold(NAME_WIDTH_MIN, usize::max);
    let topic_width = rows
        .iter()
        .map(|row| row.topic.len())
        .fold(NAME_WIDTH_MIN, usize::max);
    let line = |cells: [&str; 4]| {
        format!(
            "\n{:<group_width$} {:<topic_width$} {:<10} {}",
            cells[0], cells[1], cells[2], cells[3]
        )
    };
    let mut text = String::new();
    if !rows.is_empty() {
        text.push_str(&line(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]));
    }
    for row in rows {
        let partition = row.partition.to_string();
        let offset = row.new_offset.to_string();
        text.push_str(&line([&row.group, &row.topic, &partition, &offset]));
    }
    text.push('\n');
    text
}

fn optional(value: Option<i64>) -> String {
    value.map_or_else(|| MISSING.to_string(), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(partition: i32, current: Option<i64>, consumer: &str) -> OffsetRow {
        OffsetRow {
            group: "g".to_string(),
            topic: "orders".to_string(),
            partition,
            current_offset: current,
            log_end_offset: Some(10),
            consumer_id: consumer.to_string(),
            host: "/127.0.0.1".to_string(),
            client_id: "console-consumer".to_string(),
        }
    }

    #[test]
    fn offsets_table_matches_kafka_layout() {
        // Columns are %-15s minimum (widened by content), lag is end − current, and a missing
        // committed offset prints "-" for both CURRENT-OFFSET and LAG.
        let consumer = "console-consumer-0123456789abcdef-long-member-id";
        let text = offsets(&[row(0, Some(7), consumer), row(1, None, MISSING)]);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "");
        let consumer_width = consumer.len();
        assert_eq!(
            lines[1],
            format!(
                "GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             {:<consumer_width$} HOST            CLIENT-ID",
                "CONSUMER-ID"
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "g               orders          0          7               10              3               {consumer} /127.0.0.1      console-consumer"
            )
        );
        assert!(lines[3].starts_with(
            "g               orders          1          -               10              -               -"
        ));
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[4], "");
    }

    #[test]
    fn list_state_and_reset_tables_match_kafka_layout() {
        // --list --state pads the group column to max(15, longest)+10 and the state to 20.
        let text = list_with_state(&[("g1".to_string(), "Stable".to_string())]);
        assert_eq!(
            text,
            format!(
                "{:<25} {:<20}\n{:<25} {:<20}\n",
                "GROUP", "STATE", "g1", "Stable"
            )
        );
        let plan = reset_plan(&[ResetRow {
            group: "g".to_string(),
            topic: "t".to_string(),
            partition: 0,
            new_offset: 0,
        }]);
        assert_eq!(
            plan,
            "\nGROUP           TOPIC           PARTITION  NEW-OFFSET\ng               t               0          0\n"
        );
        assert_eq!(reset_plan(&[]), "\n");
    }

    #[test]
    fn state_and_members_tables_match_kafka_layout() {
        // --state widens the coordinator column to 25; --members pads every column.
        let text = state(&StateRow {
            group: "g".to_string(),
            coordinator: "127.0.0.1:9092  (1)".to_string(),
            assignment_strategy: "range".to_string(),
            state: "Stable".to_string(),
            members: 2,
        });
        assert_eq!(
            text,
            "\nGROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                #MEMBERS\ng               127.0.0.1:9092  (1)       range                Stable               2\n"
        );
        let text = members(&[MemberRow {
            group: "g".to_string(),
            consumer_id: "m".to_string(),
            host: "/h".to_string(),
            client_id: "c".to_string(),
            partitions: 2,
        }]);
        assert_eq!(
            text,
            "\nGROUP           CONSUMER-ID     HOST            CLIENT-ID       #PARTITIONS     \ng               m               /h              c               2               \n"
        );
    }
}
