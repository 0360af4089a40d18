use super::*;
use crate::storage::batch::{
    self, tests::encoded_batch, tests::encoded_batch_with, BATCH_HEADER_BYTES,
};
use kafka_protocol::records::Compression;

const NOW: i64 = 1_700_000_000_000;

fn config() -> ValidationConfig {
    ValidationConfig {
        max_message_bytes: 1 << 20,
        log_append_time: false,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        now_ms: NOW,
        produce_version: 9,
    }
}

fn validate(buffer: &[u8], config: &ValidationConfig) -> Result<RecordsSummary, RecordError> {
    let headers = batch::validate_batches(buffer, usize::MAX).expect("framing and CRC are valid");
    validate_client_batches(buffer, &headers, config, "t-0")
}

fn zigzag(value: i64) -> Vec<u8> {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// One record's body (without its length prefix).
fn record_body(offset_delta: i64, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend(zigzag(0));
    body.extend(zigzag(offset_delta));
    match key {
        Some(key) => {
            body.extend(zigzag(key.len() as i64));
            body.extend_from_slice(key);
        }
        None => body.extend(zigzag(-1)),
    }
    body.extend(zigzag(value.len() as i64));
    body.extend_from_slice(value);
    body.extend(zigzag(0));
    body
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = zigzag(body.len() as i64);
    out.extend_from_slice(body);
    out
}

/// A batch around `records` with the given count and last offset delta, CRC made valid.
fn craft(
    records: &[u8],
    count: i32,
    last_offset_delta: i32,
    attributes: i16,
    base_timestamp: i64,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0i64.to_be_bytes());
    out.extend(((BATCH_HEADER_BYTES - 12 + records.len()) as i32).to_be_bytes());
    out.extend(0i32.to_be_bytes());
    out.push(2);
    out.extend(0u32.to_be_bytes());
    out.extend(attributes.to_be_bytes());
    out.extend(last_offset_delta.to_be_bytes());
    out.extend(base_timestamp.to_be_bytes());
    out.extend(base_timestamp.to_be_bytes());
    out.extend((-1i64).to_be_bytes());
    out.extend((-1i16).to_be_bytes());
    out.extend((-1i32).to_be_bytes());
    out.extend(count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fn two_records() -> Vec<u8> {
    let mut records = framed(&record_body(0, Some(b"a"), b"one"));
    records.extend(framed(&record_body(1, Some(b"b"), b"two")));
    records
}

fn compressed_batch(compression: Compression, count: i32, value_bytes: usize) -> Vec<u8> {
    encoded_batch_with(count, value_bytes, compression)
}

fn is_invalid(result: Result<RecordsSummary, RecordError>) -> bool {
    matches!(result, Err(RecordError::Invalid(..)))
}

/// Proves well-formed batches pass, uncompressed and with every codec, and keyless records
/// are counted.
#[test]
fn accepts_valid_batches() {
    let summary = validate(&encoded_batch(5, 10), &config()).unwrap();
    assert!(summary.keyless_records.is_empty());
    assert_eq!(
        validate(&craft(&two_records(), 2, 1, 0, NOW), &config()),
        Ok(RecordsSummary::default())
    );
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let summary = validate(&compressed_batch(compression, 50, 100), &config())
            .unwrap_or_else(|error| panic!("{compression:?}: {error}"));
        assert!(summary.keyless_records.is_empty(), "{compression:?}");
    }
}

/// Proves keyless records are named by their index in the batch.
#[test]
fn names_keyless_records() {
    let mut records = framed(&record_body(0, Some(b"a"), b"one"));
    records.extend(framed(&record_body(1, None, b"two")));
    records.extend(framed(&record_body(2, Some(b"c"), b"three")));
    records.extend(framed(&record_body(3, None, b"four")));
    let summary = validate(&craft(&records, 4, 3, 0, NOW), &config()).unwrap();
    assert_eq!(summary.keyless_records, [1, 3]);
}

/// Proves a count or offset range that disagrees with the records present is refused: the
/// offset-delta jump that once aborted the broker, counts above and below the records, zero.
#[test]
fn refuses_counts_that_disagree_with_the_records() {
    let records = two_records();
    for (count, last_delta) in [
        (1, 0x7fff_fff0),
        (1 << 30, (1 << 30) - 1),
        (3, 2),
        (1, 0),
        (0, -1),
        (2, 5),
    ] {
        let crafted = craft(&records, count, last_delta, 0, NOW);
        let Ok(headers) = batch::validate_batches(&crafted, usize::MAX) else {
            continue; // A negative last offset delta is refused by the framing already.
        };
        assert!(
            is_invalid(validate_client_batches(
                &crafted,
                &headers,
                &config(),
                "t-0"
            )),
            "count {count}, last offset delta {last_delta}"
        );
    }
}

/// Proves malformed records are refused: offset deltas out of order, an overlong varint, a
/// length past the record, negative lengths and header counts, trailing bytes.
#[test]
fn refuses_malformed_records() {
    let out_of_order = [
        framed(&record_body(0, None, b"x")),
        framed(&record_body(5, None, b"y")),
    ]
    .concat();
    let overlong_varint = [vec![0xff; 10], vec![0x01]].concat();
    let mut past_end = zigzag(200);
    past_end.extend(record_body(0, None, b"x"));
    let mut negative_key = vec![0u8];
    negative_key.extend(zigzag(0));
    negative_key.extend(zigzag(0));
    negative_key.extend(zigzag(-7));
    let negative_key = framed(&negative_key);
    let mut negative_headers = record_body(0, None, b"x");
    negative_headers.pop();
    negative_headers.extend(zigzag(-1));
    let negative_headers = framed(&negative_headers);
    let trailing = [framed(&record_body(0, None, b"x")), vec![1, 2, 3]].concat();
    let mut short_record = framed(&record_body(0, None, b"x"));
    short_record[0] = zigzag(2)[0];
    for (name, records) in [
        ("out of order", out_of_order.clone()),
        ("overlong varint", overlong_varint),
        ("length past the record", past_end),
        ("negative key length", negative_key),
        ("negative header count", negative_headers),
        ("trailing bytes", trailing),
        ("record shorter than its fields", short_record),
    ] {
        let count = if name == "out of order" { 2 } else { 1 };
        let crafted = craft(&records, count, count - 1, 0, NOW);
        assert!(is_invalid(validate(&crafted, &config())), "{name}");
    }
}

/// Proves compressed batches are checked the same way: a cut payload and a batch inflating past
/// the bound are refused, without inflating it whole.
#[test]
fn refuses_bad_compressed_batches() {
    for (codec, compression) in [
        (CODEC_GZIP, Compression::Gzip),
        (CODEC_SNAPPY, Compression::Snappy),
        (CODEC_LZ4, Compression::Lz4),
        (CODEC_ZSTD, Compression::Zstd),
    ] {
        let whole = compressed_batch(compression, 20, 500);
        let payload = &whole[BATCH_HEADER_BYTES..];
        let cut = &payload[..payload.len() / 2];
        let crafted = craft(cut, 20, 19, codec, NOW);
        assert!(
            is_invalid(validate(&crafted, &config())),
            "{compression:?} cut"
        );
    }
    let small = ValidationConfig {
        max_message_bytes: 1024,
        ..config()
    };
    // 80 MiB of one byte compress to a few kilobytes, past the 64 MiB floor.
    let bomb = compressed_batch(Compression::Zstd, 1, 80 << 20);
    match validate(&bomb, &small) {
        Err(RecordError::Invalid(message, _)) => {
            assert!(message.contains("decompresses"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

/// Proves control batches, idempotent batches without a sequence and unknown codecs are refused,
/// and zstd needs Produce v7.
#[test]
fn refuses_what_clients_may_not_send() {
    let records = framed(&record_body(0, None, b"x"));
    assert!(is_invalid(validate(
        &craft(&records, 1, 0, 1 << 5, NOW),
        &config()
    )));
    let mut idempotent = craft(&records, 1, 0, 0, NOW);
    idempotent[43..51].copy_from_slice(&7i64.to_be_bytes());
    let crc = crc32c::crc32c(&idempotent[21..]);
    idempotent[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(is_invalid(validate(&idempotent, &config())));
    assert!(matches!(
        validate(&craft(&records, 1, 0, 6, NOW), &config()),
        Err(RecordError::Compression(_))
    ));
    let zstd = compressed_batch(Compression::Zstd, 2, 10);
    let old = ValidationConfig {
        produce_version: 6,
        ..config()
    };
    assert!(matches!(
        validate(&zstd, &old),
        Err(RecordError::Compression(_))
    ));
}

/// Proves record timestamps are held to `message.timestamp.before/after.max.ms`, and not at all
/// under LogAppendTime.
#[test]
fn checks_timestamps() {
    let records = framed(&record_body(0, None, b"x"));
    let day = 86_400_000;
    let future = craft(&records, 1, 0, 0, NOW + 2 * 3_600_000);
    assert!(matches!(
        validate(&future, &config()),
        Err(RecordError::Timestamp(..))
    ));
    let old = craft(&records, 1, 0, 0, NOW - day);
    assert!(validate(&old, &config()).is_ok());
    let strict = ValidationConfig {
        timestamp_before_max_ms: 60_000,
        ..config()
    };
    assert!(matches!(
        validate(&old, &strict),
        Err(RecordError::Timestamp(..))
    ));
    let appended = ValidationConfig {
        log_append_time: true,
        ..strict
    };
    assert!(validate(&future, &appended).is_ok());
}

/// Proves the record at fault is named, for the response's `record_errors`: the second record
/// of a batch whose offset deltas jump, the one record too far in the future; none for a count
/// that disagrees with the header.
#[test]
fn names_the_record_at_fault() {
    let jump = [
        framed(&record_body(0, None, b"x")),
        framed(&record_body(5, None, b"y")),
    ]
    .concat();
    let error = validate(&craft(&jump, 2, 1, 0, NOW), &config()).unwrap_err();
    assert_eq!(error.record_index(), Some(1), "{error}");
    let future = craft(
        &framed(&record_body(0, None, b"x")),
        1,
        0,
        0,
        NOW + 7_200_000,
    );
    let error = validate(&future, &config()).unwrap_err();
    assert!(
        matches!(error, RecordError::Timestamp(_, Some(0))),
        "{error:?}"
    );
    let error = validate(&craft(&two_records(), 1, 0, 0, NOW), &config()).unwrap_err();
    assert_eq!(error.record_index(), None, "{error}");
}
