//! null-sink: a Kafka-protocol server that stores nothing, so that a benchmark can measure the
//! most any broker could get from a client on this machine (bench/README.md, "The null sink").
//!
//! - Produce is acknowledged at once: the base offset is a per-partition counter advanced by the
//!   records of the request's batches; acks=0 gets no response. Nothing is kept.
//! - Fetch is answered at once with synthetic record batches (magic 2, correct CRC-32C) starting
//!   at the fetch offset, values of `--record-size` bytes, up to the partition's max bytes (at
//!   least one batch), with a high watermark always ahead of what was served: consumers never
//!   wait and never run out.
//! - Metadata names this server as the only broker; any topic asked for exists with
//!   `--partitions` partitions, led here. ApiVersions, ListOffsets (earliest 0, latest the
//!   counter), CreateTopics (always succeeds), InitProducerId (a fixed producer id) and
//!   FindCoordinator (this server) are answered so that ordinary clients work unchanged.
//!
//! One blocking thread per connection reads, decodes and answers requests in order; requests
//! the client pipelines wait in the socket and in the read buffer, and responses are written
//! only when no whole request is left to answer, so a burst costs few write calls. The request
//! and response buffers are reused, so the steady state allocates no fresh memory (page faults
//! on fresh 1 MiB buffers were a quarter of this server's time), and Fetch copies its records
//! once, from a prebuilt run of batches into the response, then patches their base offsets.
//!
//! Usage: null-sink [--listen 127.0.0.1:9092] [--advertise HOST:PORT] [--partitions 2]
//!                  [--record-size 1024] [--batch-bytes 65536]

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
use std::io::{self, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

const NODE_ID: i32 = 1;
const PRODUCER_ID: i64 = 1000;
const MAX_FRAME_BYTES: usize = 256 << 20;
const IO_BUFFER_BYTES: usize = 256 << 10;
/// The most record bytes one partition gets in one Fetch response.
const FETCH_PARTITION_BYTES_MAX: usize = 4 << 20;
/// How far the high watermark stays ahead of the last record served.
const HIGH_WATERMARK_LEAD: i64 = 1 << 30;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// The APIs served, with the version ranges Flink serves (src/protocol/mod.rs), so that a client
/// picks the same versions against both. Produce is listed from v0 as Flink lists it.
const APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 4),
];

struct Config {
    listen: String,
    host: String,
    port: i32,
    partitions: i32,
    record_size: usize,
    batch_bytes: usize,
}

/// Every topic asked for so far: its id and the next offset of each partition.
#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Topic>,
    names_by_id: HashMap<Uuid, String>,
}

struct Topic {
    id: Uuid,
    next_offsets: Vec<i64>,
}

struct Server {
    config: Config,
    topics: Mutex<Topics>,
    /// Synthetic batches back to back, FETCH_PARTITION_BYTES_MAX of them, each with base offset
    /// 0: Fetch serves a prefix and patches the base offsets, which the CRC does not cover.
    batches: Bytes,
    /// Bytes and records of one of them.
    batch_len: usize,
    batch_records: i64,
}

fn main() {
    let config = parse_arguments();
    let listener = TcpListener::bind(&config.listen).unwrap_or_else(|error| {
        eprintln!("null-sink: cannot listen on {}: {error}", config.listen);
        std::process::exit(1);
    });
    let batch_records = (config.batch_bytes / (config.record_size + 8)).max(1) as i64;
    let batch = synthetic_batch(batch_records as i32, config.record_size);
    let batches = batch.repeat((FETCH_PARTITION_BYTES_MAX / batch.len()).max(1));
    eprintln!(
        "null-sink listening on {} (advertised {}:{}), {} partitions per topic, fetch batches of {} records of {} bytes",
        config.listen, config.host, config.port, config.partitions, batch_records, config.record_size
    );
    let server = Arc::new(Server {
        config,
        topics: Mutex::default(),
        batches: Bytes::from(batches),
        batch_len: batch.len(),
        batch_records,
    });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let server = server.clone();
        std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            match serve(&server, stream) {
                // A client that closes while answers are on their way is not news.
                Err(error) if !matches!(error.kind(), BrokenPipe | ConnectionReset) => {
                    eprintln!("null-sink: connection from {peer} closed: {error}")
                }
                _ => {}
            }
        });
    }
}

fn parse_arguments() -> Config {
    let mut config = Config {
        listen: "127.0.0.1:9092".into(),
        host: String::new(),
        port: 0,
        partitions: 2,
        record_size: 1024,
        batch_bytes: 65536,
    };
    let mut advertise = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let mut value = || arguments.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => config.listen = value(),
            "--advertise" => advertise = Some(value()),
            "--partitions" => config.partitions = value().parse().unwrap_or_else(|_| usage()),
            "--record-size" => config.record_size = value().parse().unwrap_or_else(|_| usage()),
            "--batch-bytes" => config.batch_bytes = value().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let advertised = advertise.unwrap_or_else(|| config.listen.clone());
    let (host, port) = advertised.rsplit_once(':').unwrap_or_else(|| usage());
    config.host = host.to_string();
    config.port = port.parse().unwrap_or_else(|_| usage());
    if config.partitions < 1 {
        usage();
    }
    config
}

fn usage() -> ! {
    eprintln!(
        "usage: null-sink [--listen 127.0.0.1:9092] [--advertise HOST:PORT] [--partitions 2] \
         [--record-size 1024] [--batch-bytes 65536]"
    );
    std::process::exit(2);
}

// --- the connection --------------------------------------------------------------------------

fn serve(server: &Server, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(IO_BUFFER_BYTES, stream);
    let mut request = BytesMut::new();
    let mut responses = BytesMut::new();
    loop {
        // Send what is answered before waiting for input that is not there yet.
        let waiting = !holds_whole_frame(reader.buffer());
        if !responses.is_empty() && (waiting || responses.len() >= IO_BUFFER_BYTES) {
            writer.write_all(&responses)?;
            responses.clear();
        }
        let Some(frame) = read_frame(&mut reader, &mut request)? else {
            return Ok(());
        };
        server.answer(frame, &mut responses)?;
    }
}

fn holds_whole_frame(buffer: &[u8]) -> bool {
    buffer.len() >= 4
        && buffer.len() - 4 >= u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize
}

/// One request without its size prefix, read into `buffer` (whose memory comes back for the
/// next request once this one is dropped); None at a clean end of the stream.
fn read_frame(reader: &mut impl Read, buffer: &mut BytesMut) -> io::Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size) {
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        result => result?,
    }
    let size = i32::from_be_bytes(size);
    if size < 8 || size as usize > MAX_FRAME_BYTES {
        return Err(invalid(format!("request frame of {size} bytes")));
    }
    buffer.clear();
    buffer.resize(size as usize, 0);
    reader.read_exact(buffer)?;
    Ok(Some(buffer.split().freeze()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Appends the response to `out`: size prefix, response header for `key`/`version`, body.
fn encode<T: Encodable, B: ByteBufMut>(
    out: &mut B,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> io::Result<()> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = key.response_header_version(version);
    let error =
        |error: &dyn std::fmt::Display| invalid(format!("encoding {key:?} v{version}: {error}"));
    let size = header.compute_size(header_version).map_err(|e| error(&e))?
        + body.compute_size(version).map_err(|e| error(&e))?;
    out.put_i32(size as i32);
    header.encode(out, header_version).map_err(|e| error(&e))?;
    body.encode(out, version).map_err(|e| error(&e))?;
    Ok(())
}

/// The response buffer as Fetch encodes into it: it notes where each copy of the server's
/// prebuilt batches lands, one per partition with records, in the order they are encoded.
struct RecordsTracker<'a> {
    out: &'a mut BytesMut,
    batches: Range<*const u8>,
    copies: Vec<Range<usize>>,
}

// SAFETY: every method delegates to the BytesMut, which upholds BufMut's contract.
unsafe impl BufMut for RecordsTracker<'_> {
    fn remaining_mut(&self) -> usize {
        self.out.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, count: usize) {
        self.out.advance_mut(count)
    }
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.out.chunk_mut()
    }
    fn put_slice(&mut self, source: &[u8]) {
        if self.batches.contains(&source.as_ptr()) {
            self.copies
                .push(self.out.len()..self.out.len() + source.len());
        }
        self.out.put_slice(source)
    }
}

impl ByteBufMut for RecordsTracker<'_> {
    fn offset(&self) -> usize {
        self.out.offset()
    }
    fn seek(&mut self, offset: usize) {
        self.out.seek(offset)
    }
    fn range(&mut self, range: Range<usize>) -> &mut [u8] {
        self.out.range(range)
    }
}

fn decode<T: Decodable>(frame: &mut Bytes, key: ApiKey, version: i16) -> io::Result<T> {
    T::decode(frame, version)
        .map_err(|error| invalid(format!("decoding {key:?} v{version}: {error}")))
}

// --- the APIs --------------------------------------------------------------------------------

impl Server {
    /// Appends the response to one request frame to `out` (nothing for Produce with acks=0).
    fn answer(&self, mut frame: Bytes, out: &mut BytesMut) -> io::Result<()> {
        let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes(frame[4..8].try_into().unwrap());
        let key =
            ApiKey::try_from(raw_key).map_err(|_| invalid(format!("unknown API key {raw_key}")))?;
        let served = APIS
            .iter()
            .any(|(k, min, max)| *k == key && (*min..=*max).contains(&version));
        if !served {
            if key == ApiKey::ApiVersions {
                // KIP-511: answer a newer ApiVersions in v0 with our list, so the client retries.
                let body = api_versions().with_error_code(UNSUPPORTED_VERSION);
                return encode(out, key, 0, correlation_id, &body);
            }
            return Err(invalid(format!("{key:?} v{version} is not served")));
        }
        let header: RequestHeader = {
            let header_version = key.request_header_version(version);
            RequestHeader::decode(&mut frame, header_version)
                .map_err(|error| invalid(format!("request header: {error}")))?
        };
        let id = header.correlation_id;
        let frame = &mut frame;
        match key {
            ApiKey::Produce => match self.produce(decode(frame, key, version)?) {
                Some(body) => encode(out, key, version, id, &body),
                None => Ok(()),
            },
            ApiKey::Fetch => self.fetch(out, decode(frame, key, version)?, version, id),
            ApiKey::Metadata => encode(
                out,
                key,
                version,
                id,
                &self.metadata(decode(frame, key, version)?, version),
            ),
            ApiKey::ListOffsets => encode(
                out,
                key,
                version,
                id,
                &self.list_offsets(decode(frame, key, version)?),
            ),
            ApiKey::ApiVersions => encode(out, key, version, id, &api_versions()),
            ApiKey::CreateTopics => encode(
                out,
                key,
                version,
                id,
                &self.create_topics(decode(frame, key, version)?),
            ),
            ApiKey::InitProducerId => encode(
                out,
                key,
                version,
                id,
                &InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(PRODUCER_ID))
                    .with_producer_epoch(0),
            ),
            ApiKey::FindCoordinator => encode(
                out,
                key,
                version,
                id,
                &self.find_coordinator(decode(frame, key, version)?, version),
            ),
            _ => unreachable!("every key in APIS is answered"),
        }
    }

    /// Acknowledges every partition's records at once, at the partition's counter.
    fn produce(&self, request: ProduceRequest) -> Option<ProduceResponse> {
        let mut topics = self.topics.lock().unwrap();
        let mut responses = Vec::with_capacity(request.topic_data.len());
        for data in request.topic_data {
            let topic = topics.get_or_create(&data.name.0, self.config.partitions);
            let partitions = data.partition_data.into_iter().map(|partition| {
                let response = PartitionProduceResponse::default().with_index(partition.index);
                match topic.next_offsets.get_mut(partition.index as usize) {
                    Some(next) => {
                        let base = *next;
                        *next += partition.records.as_deref().map_or(0, record_count);
                        response.with_base_offset(base)
                    }
                    None => response.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                }
            });
            responses.push(
                TopicProduceResponse::default()
                    .with_name(data.name)
                    .with_partition_responses(partitions.collect()),
            );
        }
        (request.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
    }

    /// Synthetic batches from each partition's fetch offset, as many as fit, copied once into
    /// `out` from the prebuilt ones, whose base offsets are then set.
    fn fetch(
        &self,
        out: &mut BytesMut,
        request: FetchRequest,
        version: i16,
        id: i32,
    ) -> io::Result<()> {
        let max_bytes = request.max_bytes.max(0) as usize;
        let mut budget = max_bytes;
        // The fetch offset of each partition that gets records, in the order they are encoded.
        let mut first_offsets = Vec::new();
        let mut responses = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let partitions = topic.partitions.iter().map(|partition| {
                let limit = budget.min(partition.partition_max_bytes.max(0) as usize);
                // At least one batch in a response, as Kafka does, so a consumer always progresses.
                let batches = match (
                    limit.min(self.batches.len()) / self.batch_len,
                    budget == max_bytes,
                ) {
                    (0, true) => 1,
                    (count, _) => count,
                };
                budget = budget.saturating_sub(batches * self.batch_len);
                if batches > 0 {
                    first_offsets.push(partition.fetch_offset);
                }
                let high_watermark = partition.fetch_offset
                    + batches as i64 * self.batch_records
                    + HIGH_WATERMARK_LEAD;
                let data = PartitionData::default()
                    .with_partition_index(partition.partition)
                    .with_high_watermark(high_watermark)
                    .with_last_stable_offset(high_watermark)
                    .with_records(Some(self.batches.slice(..batches * self.batch_len)));
                match version >= 5 {
                    true => data.with_log_start_offset(0),
                    false => data,
                }
            });
            let response = FetchableTopicResponse::default().with_partitions(partitions.collect());
            responses.push(match version >= 13 {
                true => response.with_topic_id(topic.topic_id),
                false => response.with_topic(topic.topic),
            });
        }
        let response = FetchResponse::default().with_responses(responses);
        let mut tracker = RecordsTracker {
            out,
            batches: self.batches.as_ptr_range(),
            copies: Vec::with_capacity(first_offsets.len()),
        };
        encode(&mut tracker, ApiKey::Fetch, version, id, &response)?;
        let RecordsTracker { out, copies, .. } = tracker;
        assert_eq!(
            copies.len(),
            first_offsets.len(),
            "one copy of the batches per partition"
        );
        for (copy, first_offset) in copies.into_iter().zip(first_offsets) {
            for (index, batch) in out[copy].chunks_exact_mut(self.batch_len).enumerate() {
                let base = first_offset + index as i64 * self.batch_records;
                batch[..8].copy_from_slice(&base.to_be_bytes());
            }
        }
        Ok(())
    }

    fn metadata(&self, request: MetadataRequest, version: i16) -> MetadataResponse {
        let mut topics = self.topics.lock().unwrap();
        let names: Vec<Result<String, Uuid>> = match request.topics {
            // All topics: the ones asked for so far. (v0 says "all" with an empty list.)
            None => topics.by_name.keys().cloned().map(Ok).collect(),
            Some(list) if list.is_empty() && version == 0 => {
                topics.by_name.keys().cloned().map(Ok).collect()
            }
            Some(list) => list
                .into_iter()
                .map(|topic| match topic.name {
                    Some(name) => Ok(name.0.to_string()),
                    None => topics
                        .names_by_id
                        .get(&topic.topic_id)
                        .cloned()
                        .ok_or(topic.topic_id),
                })
                .collect(),
        };
        let partitions = self.config.partitions;
        let topics = names.into_iter().map(|name| match name {
            Ok(name) => {
                let id = topics.get_or_create(&name, partitions).id;
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name))))
                    .with_topic_id(id)
                    .with_partitions((0..partitions).map(metadata_partition).collect())
            }
            Err(id) => MetadataResponseTopic::default()
                .with_topic_id(id)
                .with_error_code(UNKNOWN_TOPIC_ID),
        });
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(StrBytes::from_string(self.config.host.clone()))
                .with_port(self.config.port)])
            .with_cluster_id(Some(StrBytes::from_static_str("null-sink")))
            .with_controller_id(BrokerId(NODE_ID))
            .with_topics(topics.collect())
    }

    /// Earliest is 0; latest (and anything else) is the partition's counter.
    fn list_offsets(&self, request: ListOffsetsRequest) -> ListOffsetsResponse {
        let mut topics = self.topics.lock().unwrap();
        let responses = request.topics.into_iter().map(|requested| {
            let topic = topics.get_or_create(&requested.name.0, self.config.partitions);
            let partitions = requested.partitions.iter().map(|partition| {
                let response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(partition.partition_index);
                match topic.next_offsets.get(partition.partition_index as usize) {
                    Some(next) => {
                        response.with_offset(if partition.timestamp == -2 { 0 } else { *next })
                    }
                    None => response.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                }
            });
            ListOffsetsTopicResponse::default()
                .with_name(requested.name)
                .with_partitions(partitions.collect())
        });
        ListOffsetsResponse::default().with_topics(responses.collect())
    }

    /// Every topic exists already: success, with the configured partition count.
    fn create_topics(&self, request: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut topics = self.topics.lock().unwrap();
        let results = request.topics.into_iter().map(|requested| {
            let id = topics
                .get_or_create(&requested.name.0, self.config.partitions)
                .id;
            CreatableTopicResult::default()
                .with_name(requested.name)
                .with_topic_id(id)
                .with_num_partitions(self.config.partitions)
                .with_replication_factor(1)
        });
        CreateTopicsResponse::default().with_topics(results.collect())
    }

    fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        let host = StrBytes::from_string(self.config.host.clone());
        let response = FindCoordinatorResponse::default();
        if version < 4 {
            return response
                .with_node_id(BrokerId(NODE_ID))
                .with_host(host)
                .with_port(self.config.port);
        }
        let coordinators = request.coordinator_keys.into_iter().map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(NODE_ID))
                .with_host(host.clone())
                .with_port(self.config.port)
        });
        response.with_coordinators(coordinators.collect())
    }
}

impl Topics {
    fn get_or_create(&mut self, name: &str, partitions: i32) -> &mut Topic {
        if !self.by_name.contains_key(name) {
            let id = topic_id(name);
            self.names_by_id.insert(id, name.to_string());
            let topic = Topic {
                id,
                next_offsets: vec![0; partitions as usize],
            };
            self.by_name.insert(name.to_string(), topic);
        }
        self.by_name.get_mut(name).unwrap()
    }
}

/// A stable, non-nil id derived from the name.
fn topic_id(name: &str) -> Uuid {
    let hash = |salt: u64| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (salt, name).hash(&mut hasher);
        hasher.finish()
    };
    Uuid::from_u64_pair(hash(1), hash(2) | 1)
}

fn metadata_partition(index: i32) -> MetadataResponsePartition {
    MetadataResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(NODE_ID))
        .with_leader_epoch(0)
        .with_replica_nodes(vec![BrokerId(NODE_ID)])
        .with_isr_nodes(vec![BrokerId(NODE_ID)])
}

fn api_versions() -> ApiVersionsResponse {
    let keys = APIS.iter().map(|(key, min, max)| {
        ApiVersion::default()
            .with_api_key(*key as i16)
            .with_min_version(if *key == ApiKey::Produce { 0 } else { *min })
            .with_max_version(*max)
    });
    ApiVersionsResponse::default().with_api_keys(keys.collect())
}

// --- record batches --------------------------------------------------------------------------

/// Records in the magic-2 batches of a Produce partition: the recordCount field of each.
fn record_count(mut records: &[u8]) -> i64 {
    let mut count = 0;
    while records.len() >= 61 {
        let length = 12 + i32::from_be_bytes(records[8..12].try_into().unwrap()).max(0) as usize;
        count += i32::from_be_bytes(records[57..61].try_into().unwrap()).max(0) as i64;
        records = &records[length.min(records.len())..];
    }
    count
}

/// A magic-2 batch of `records` records of `value_size` bytes each (no key, no headers), base
/// offset 0, timestamps now, no producer id; its CRC-32C covers everything from the attributes.
fn synthetic_batch(records: i32, value_size: usize) -> Vec<u8> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let value: Vec<u8> = (0..value_size).map(|i| (i * 31 + 7) as u8).collect();
    let mut body = Vec::new();
    for offset_delta in 0..records {
        let mut record = vec![0u8]; // attributes
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, offset_delta as i64);
        put_varint(&mut record, -1); // no key
        put_varint(&mut record, value_size as i64);
        record.extend_from_slice(&value);
        put_varint(&mut record, 0); // no headers
        put_varint(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let mut batch = Vec::with_capacity(61 + body.len());
    batch.put_i64(0); // base offset, patched per fetch
    batch.put_i32((49 + body.len()) as i32); // batch length: everything after this field
    batch.put_i32(0); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(0); // CRC, below
    batch.put_i16(0); // attributes: no compression, create time
    batch.put_i32(records - 1); // last offset delta
    batch.put_i64(now_ms); // base timestamp
    batch.put_i64(now_ms); // max timestamp
    batch.put_i64(-1); // producer id
    batch.put_i16(-1); // producer epoch
    batch.put_i32(-1); // base sequence
    batch.put_i32(records);
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Zigzag varint, as Kafka's record fields are encoded.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}
