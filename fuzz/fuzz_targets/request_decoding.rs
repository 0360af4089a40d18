//! Request framing and decoding: the input is a byte stream as a client connection delivers it.
//! It is cut into frames by the connection's own `net::frame::read_frame` (with a small
//! `socket.request.max.bytes`), and every frame is decoded by `protocol::decode_request`, the
//! broker's only way from bytes to a request, for any API key and version. A Produce request's
//! record batches then go through `storage::batch::validate_batches`, as the produce handler
//! checks them. Nothing may panic or abort, which a single allocation far beyond what the frame
//! holds does (libFuzzer reports it as out-of-memory); every malformed frame must come back as an
//! error (which closes only that connection in the broker).
//!
//! Input layout: byte 0, if below 0x80, picks an API of `protocol::SUPPORTED_APIS` (modulo its
//! length) and byte 1 one of its served versions (modulo their count); the key and version
//! overwrite the first frame's first four bytes, so that every API's decoder is reached without
//! the fuzzer having to guess a valid pair, and the stream starts at byte 2. Byte 0 from 0x80 up
//! (or an input too short to hold a frame header) leaves the stream, byte 1 on, as it is.

#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;

use flink::net::frame::read_frame;
use flink::protocol::{decode_request, SUPPORTED_APIS};
use flink::storage::batch::validate_batches;

/// A small request limit keeps single inputs cheap; framing is the same at any limit.
const REQUEST_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut stream = rest.to_vec();
    if selector < 0x80 && stream.len() >= 9 {
        let (key, min, max) = SUPPORTED_APIS[selector as usize % SUPPORTED_APIS.len()];
        let span = (max - min + 1) as u8;
        let version = min + i16::from(stream[0] % span);
        // The first frame's size prefix is bytes 1..5; its key and version follow.
        stream[5..7].copy_from_slice(&(key as i16).to_be_bytes());
        stream[7..9].copy_from_slice(&version.to_be_bytes());
        stream.remove(0);
    }
    let mut reader: &[u8] = &stream;
    futures_lite::future::block_on(async {
        while let Ok(Some(frame)) = read_frame(&mut reader, REQUEST_BYTES_MAX).await {
            check_frame(frame);
        }
    });
});

fn check_frame(frame: Bytes) {
    let Ok(request) = decode_request(frame) else {
        return;
    };
    if let RequestKind::Produce(produce) = request.body {
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                if let Some(records) = &partition.records {
                    let _ = validate_batches(records, REQUEST_BYTES_MAX);
                }
            }
        }
    }
}
