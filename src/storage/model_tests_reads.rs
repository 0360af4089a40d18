//! Reading a log back for the model tests (`model_tests.rs`): every visible batch, every record
//! as a consumer reads it, the first difference from the model, and the segment files on disk.

use super::*;

/// The headers of every batch readable in `[start, end)`.
pub(super) async fn visible_batches(
    log: &Log,
    start: i64,
    end: i64,
) -> Result<Vec<BatchHeader>, String> {
    let mut headers = Vec::new();
    let mut offset = start;
    while offset < end {
        let bytes = log
            .read(offset, 1 << 20)
            .await
            .map_err(|error| format!("read at {offset}: {error}"))?;
        if bytes.is_empty() {
            break;
        }
        let read = checked_batches(&bytes)?;
        offset = read.last().expect("at least one batch").next_offset();
        headers.extend(read);
    }
    Ok(headers)
}

/// The batches of a read: whole, CRCs valid, offsets increasing.
pub(super) fn checked_batches(bytes: &[u8]) -> Result<Vec<BatchHeader>, String> {
    let headers = batch::validate_batches(bytes, usize::MAX)
        .map_err(|error| format!("a read returned bad batches: {error}"))?;
    for pair in headers.windows(2) {
        check!(
            pair[0].next_offset() <= pair[1].base_offset,
            "batches out of order: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    Ok(headers)
}

/// The records of `bytes` at or after `from`.
pub(super) fn decode(mut bytes: Bytes, from: i64) -> Result<Vec<(i64, Rec)>, String> {
    let sets = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|error| format!("cannot decode a read: {error}"))?;
    let text =
        |bytes: Option<Bytes>| bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    Ok(sets
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|record| record.offset >= from)
        .map(|record| {
            let rec = Rec {
                key: text(record.key),
                value: text(record.value),
                timestamp: record.timestamp,
            };
            (record.offset, rec)
        })
        .collect())
}

/// Every record from `start` to `end`, read the way a consumer does (reads of varying size).
pub(super) async fn read_all(log: &Log, start: i64, end: i64) -> Result<Vec<(i64, Rec)>, String> {
    let mut records: Vec<(i64, Rec)> = Vec::new();
    let mut offset = start;
    let mut round = 0usize;
    while offset < end {
        let max_bytes = [1 << 20, 1, 3000][round % 3];
        round += 1;
        let bytes = log
            .read(offset, max_bytes)
            .await
            .map_err(|error| format!("read at {offset}: {error}"))?;
        if bytes.is_empty() {
            break;
        }
        let headers = checked_batches(&bytes)?;
        let next = headers.last().expect("at least one batch").next_offset();
        check!(
            next > offset,
            "read at {offset} made no progress: {headers:?}"
        );
        let read = decode(bytes, offset)?;
        if let (Some((last, _)), Some((first, _))) = (records.last(), read.first()) {
            check!(first > last, "record {first} read after {last}");
        }
        records.extend(read);
        offset = next;
    }
    Ok(records)
}

pub(super) fn first_difference(got: &[(i64, Rec)], expected: &[(i64, Rec)]) -> String {
    let short = |entry: Option<&(i64, Rec)>| {
        entry.map(|(offset, record)| {
            let value = record.value.as_ref().map(|value| {
                let number = value.split(':').next().unwrap_or("");
                format!("#{number} ({} bytes)", value.len())
            });
            format!(
                "{offset}: {:?} = {value:?} @{}",
                record.key, record.timestamp
            )
        })
    };
    let position = got
        .iter()
        .zip(expected)
        .position(|(left, right)| left != right)
        .unwrap_or(got.len().min(expected.len()));
    format!(
        "{} records read, {} expected; at position {position} read {:?}, expected {:?}",
        got.len(),
        expected.len(),
        short(got.get(position)),
        short(expected.get(position))
    )
}

/// The segments in `dir`: base offset and `.log` file length, by base offset.
pub(super) fn segment_files(dir: &Path) -> Result<Vec<(i64, u64)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|error| error.to_string())?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| error.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(base) = name
            .strip_suffix(".log")
            .and_then(|stem| stem.parse::<i64>().ok())
        else {
            continue;
        };
        debug_assert_eq!(name, segment_file_name(base, "log"));
        let length = entry.metadata().map_err(|error| error.to_string())?.len();
        files.push((base, length));
    }
    files.sort_unstable();
    Ok(files)
}
