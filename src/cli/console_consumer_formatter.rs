//! Kafka's DefaultMessageFormatter: which fields of a record are printed and how they are
//! separated. Fields come in a fixed order (timestamp, partition, offset, headers, key, value);
//! `key.separator` goes between printed fields and `line.separator` after the last one.

use kafka_protocol::records::TimestampType;

use crate::client::properties::{Properties, PropertiesError};
use crate::client::records::IncomingRecord;

/// The formatter's settings, from `--property` (Kafka's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: Vec<u8>,
    pub line_separator: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub header_key_separator: Vec<u8>,
    pub null_literal: Vec<u8>,
}

impl Formatter {
    pub fn from_properties(properties: &Properties) -> Result<Formatter, PropertiesError> {
        let text =
            |key: &str, default: &str| properties.get(key).unwrap_or(default).as_bytes().to_vec();
        Ok(Formatter {
            print_timestamp: properties.bool_or("print.timestamp", false)?,
            print_partition: properties.bool_or("print.partition", false)?,
            print_offset: properties.bool_or("print.offset", false)?,
            print_headers: properties.bool_or("print.headers", false)?,
            print_key: properties.bool_or("print.key", false)?,
            print_value: properties.bool_or("print.value", true)?,
            key_separator: text("key.separator", "\t"),
            line_separator: text("line.separator", "\n"),
            headers_separator: text("headers.separator", ","),
            header_key_separator: text("headers.key.separator", ":"),
            null_literal: text("null.literal", "null"),
        })
    }

    /// Appends `record` to `output` exactly as Kafka's DefaultMessageFormatter writes it.
    pub fn write(&self, record: &IncomingRecord, output: &mut Vec<u8>) {
        if self.print_timestamp {
            let kind = match record.timestamp_type {
                TimestampType::Creation => "CreateTime",
                TimestampType::LogAppend => "LogAppendTime",
            };
            output.extend_from_slice(format!("{kind}:{}", record.timestamp_ms).as_bytes());
            self.separator(
                output,
                self.print_partition
                    || self.print_offset
                    || self.print_headers
                    || self.print_key
                    || self.print_value,
            );
        }
        if self.print_partition {
            output.extend_from_slice(format!("Partition:{}", record.partition).as_bytes());
            self.separator(
                output,
                self.print_offset || self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_offset {
            output.extend_from_slice(format!("Offset:{}", record.offset).as_bytes());
            self.separator(
                output,
                self.print_headers || self.print_key || self.print_value,
            );
        }
        if self.print_headers {
            self.write_headers(record, output);
            self.separator(output, self.print_key || self.print_value);
        }
        if self.print_key {
            self.write_field(record.key.as_deref(), output);
            self.separator(output, self.print_value);
        }
        if self.print_value {
            self.write_field(record.value.as_deref(), output);
            output.extend_from_slice(&self.line_separator);
        }
    }

    /// Kafka writes key.separator between fields and line.separator when nothing follows.
    fn separator(&self, output: &mut Vec<u8>, more_fields: bool) {
        match more_fields {
            true => output.extend_from_slice(&self.key_separator),
            false => output.extend_from_slice(&self.line_separator),
        }
    }

    fn write_headers(&self, record: &IncomingRecord, output: &mut Vec<u8>) {
        if record.headers.is_empty() {
            output.extend_from_slice(b"NO_HEADERS");
            return;
        }
        for (index, (key, value)) in record.headers.iter().enumerate() {
            if index > 0 {
                output.extend_from_slice(&self.headers_separator);
            }
            output.extend_from_slice(key.as_bytes());
            output.extend_from_slice(&self.header_key_separator);
            self.write_field(value.as_deref(), output);
        }
    }

    fn write_field(&self, field: Option<&[u8]>, output: &mut Vec<u8>) {
        output.extend_from_slice(field.unwrap_or(&self.null_literal));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;

    fn record() -> IncomingRecord {
        IncomingRecord {
            partition: 2,
            offset: 7,
            timestamp_ms: 1234,
            timestamp_type: TimestampType::Creation,
            key: None,
            value: Some(Bytes::from("v")),
            headers: IndexMap::new(),
        }
    }

    fn format(entries: &[&str], record: &IncomingRecord) -> String {
        let entries: Vec<String> = entries.iter().map(|entry| entry.to_string()).collect();
        let properties = Properties::from_arguments(&entries).expect("valid");
        let formatter = Formatter::from_properties(&properties).expect("valid");
        let mut output = Vec::new();
        formatter.write(record, &mut output);
        String::from_utf8(output).expect("utf-8")
    }

    #[test]
    fn default_prints_only_the_value() {
        // With no properties Kafka prints the value and a newline.
        assert_eq!(format(&[], &record()), "v\n");
    }

    #[test]
    fn all_fields_in_kafka_order() {
        // Timestamp, partition, offset, key and value joined by key.separator, null key as "null".
        let printed = format(
            &[
                "print.timestamp=true",
                "print.partition=true",
                "print.offset=true",
                "print.key=true",
            ],
            &record(),
        );
        assert_eq!(printed, "CreateTime:1234\tPartition:2\tOffset:7\tnull\tv\n");
    }

    #[test]
    fn separators_only_between_printed_fields() {
        // Without the value the last field ends with line.separator, not key.separator.
        let printed = format(
            &["print.key=true", "print.value=false", "key.separator=|"],
            &record(),
        );
        assert_eq!(printed, "null\n");
        let mut keyed = record();
        keyed.key = Some(Bytes::from("k"));
        let printed = format(
            &["print.key=true", "key.separator=:", "line.separator=;"],
            &keyed,
        );
        assert_eq!(printed, "k:v;");
        let printed = format(&["print.offset=true", "print.value=false"], &keyed);
        assert_eq!(printed, "Offset:7\n");
    }

    #[test]
    fn headers_print_as_key_colon_value() {
        // No headers print NO_HEADERS; several are joined by headers.separator.
        assert_eq!(
            format(&["print.headers=true"], &record()),
            "NO_HEADERS\tv\n"
        );
        let mut with_headers = record();
        with_headers
            .headers
            .insert(StrBytes::from_static_str("a"), Some(Bytes::from("1")));
        with_headers
            .headers
            .insert(StrBytes::from_static_str("b"), None);
        assert_eq!(
            format(&["print.headers=true"], &with_headers),
            "a:1,b:null\tv\n"
        );
    }
}
