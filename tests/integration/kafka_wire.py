"""Single Kafka requests on a plain socket, encoded and decoded by kafka-python's protocol classes.

Clients hide the broker's per-partition answers behind retries and local checks; these tests need
to see exactly what one request gets back. kafka-python 3 encodes the messages
(`kafka.protocol.*`, with `encode(header=True, framed=True)`) and builds record batches
(`kafka.record.MemoryRecordsBuilder`); this module only owns the socket.
"""

from __future__ import annotations

import socket
import struct

from kafka.protocol.consumer import (
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse,
)
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record import MemoryRecords, MemoryRecordsBuilder

FRAME_BYTES_MAX = 64 * 1024 * 1024

# The newest versions these tests know how to fill in; the broker's ApiVersions may lower them.
PRODUCE_VERSION_MAX = 8
FETCH_VERSION_MAX = 10
LIST_OFFSETS_VERSION_MAX = 7
# Record batches (magic 2) need Produce v3+ and Fetch v4+.
PRODUCE_VERSION_MIN = 3
FETCH_VERSION_MIN = 4
LIST_OFFSETS_VERSION_MIN = 1  # The first with a single offset per partition.
LATEST_TIMESTAMP = -1  # ListOffsets: the log end offset.


def record_batch(records: list[tuple[bytes | None, bytes]],
                 producer: tuple[int, int, int] | None = None) -> bytes:
    """One uncompressed magic-2 record batch holding the given (key, value) records; with
    `producer` (id, epoch, base sequence), a transactional batch of that producer."""
    if producer is None:
        builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=FRAME_BYTES_MAX)
    else:
        producer_id, epoch, sequence = producer
        builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=FRAME_BYTES_MAX,
                                       transactional=True, producer_id=producer_id,
                                       producer_epoch=epoch, base_sequence=sequence)
    for key, value in records:
        builder.append(timestamp=None, key=key, value=value, headers=[])
    builder.close()
    return bytes(builder.buffer())


def decode_records(data: bytes | None) -> list[tuple[int, bytes | None, bytes]]:
    """(offset, key, value) for every record in a Fetch response's records field, but for
    transaction markers (control batches), which clients never show either."""
    result = []
    if not data:
        return result
    records = MemoryRecords(bytes(data))
    while records.has_next():
        batch = records.next_batch()
        if batch is None:
            break
        if batch.is_control_batch:
            continue
        for record in batch:
            result.append((record.offset, record.key, record.value))
    return result


class WireConnection:
    """One TCP connection speaking Kafka requests one at a time."""

    def __init__(self, host: str, port: int, timeout: float = 15,
                 client_id: str = "flink-integration", source: str | None = None):
        """`source`: the local address to connect from (any of 127.0.0.0/8 on loopback)."""
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None)
        self.client_id = client_id
        self.correlation_id = 0
        self.versions: dict[int, tuple[int, int]] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "WireConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_request(self, request, version: int) -> int:
        self.correlation_id += 1
        request.API_VERSION = version
        request.with_header(correlation_id=self.correlation_id, client_id=self.client_id)
        self.sock.sendall(bytes(request.encode(header=True, framed=True)))
        return self.correlation_id

    def receive_frame(self) -> bytes:
        size = struct.unpack(">i", self._receive_exactly(4))[0]
        assert 0 <= size <= FRAME_BYTES_MAX, f"response frame size {size}"
        return struct.pack(">i", size) + self._receive_exactly(size)

    def _receive_exactly(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self.sock.recv(count)
            if not chunk:
                raise ConnectionError("broker closed the connection mid-response")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def call(self, request, response_class, version: int):
        correlation_id = self.send_request(request, version)
        frame = self.receive_frame()
        response = response_class.decode(frame, version=version, header=True, framed=True)
        assert response.header.correlation_id == correlation_id, (
            f"correlation id {response.header.correlation_id}, expected {correlation_id}"
        )
        return response

    def api_versions(self) -> dict[int, tuple[int, int]]:
        """ApiVersions v0 (understood by every broker): {api_key: (min_version, max_version)}."""
        response = self.call(ApiVersionsRequest(), ApiVersionsResponse, 0)
        assert response.error_code == 0, f"ApiVersions error_code {response.error_code}"
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        return self.versions

    def version_for(self, api_key: int, lowest: int, highest: int) -> int:
        if not self.versions:
            self.api_versions()
        assert api_key in self.versions, f"broker does not advertise api key {api_key}"
        broker_min, broker_max = self.versions[api_key]
        version = min(highest, broker_max)
        assert version >= max(lowest, broker_min), (
            f"api key {api_key}: broker supports {broker_min}..{broker_max}, tests need {lowest}+"
        )
        return version

    def produce(self, topic_partitions: dict[str, dict[int, bytes]], acks: int = -1,
                timeout_ms: int = 10_000, transactional_id: str | None = None):
        """One ProduceRequest; returns {(topic, partition): (error_code, base_offset)}."""
        return {
            place: (partition.error_code, partition.base_offset)
            for place, partition in self.produce_answers(
                topic_partitions, acks, timeout_ms, transactional_id=transactional_id).items()
        }

    def produce_answers(self, topic_partitions: dict[str, dict[int, bytes]], acks: int = -1,
                        timeout_ms: int = 10_000, version: int | None = None,
                        transactional_id: str | None = None):
        """One ProduceRequest (the newest version both sides know, or `version`); returns
        {(topic, partition): the partition's whole answer} (error_code, base_offset, and from
        v8 on error_message and record_errors)."""
        if version is None:
            version = self.version_for(ProduceRequest.API_KEY, PRODUCE_VERSION_MIN,
                                       PRODUCE_VERSION_MAX)
        topic_type = ProduceRequest.TopicProduceData
        partition_type = topic_type.PartitionProduceData
        request = ProduceRequest(
            transactional_id=transactional_id, acks=acks, timeout_ms=timeout_ms,
            topic_data=[
                topic_type(name=topic, partition_data=[
                    partition_type(index=index, records=records)
                    for index, records in partitions.items()
                ])
                for topic, partitions in topic_partitions.items()
            ],
        )
        response = self.call(request, ProduceResponse, version)
        return {
            (topic.name, partition.index): partition
            for topic in response.responses
            for partition in topic.partition_responses
        }

    def fetch(self, topic: str, offsets: dict[int, int], max_wait_ms: int = 0,
              min_bytes: int = 1, max_bytes: int = 1 << 20):
        """One FetchRequest; returns {partition: (error_code, high_watermark, records)}."""
        return {
            index: (partition.error_code, partition.high_watermark,
                    decode_records(partition.records))
            for index, partition in self.fetch_answers(topic, offsets, max_wait_ms, min_bytes,
                                                       max_bytes).items()
        }

    def fetch_answers(self, topic: str, offsets: dict[int, int], max_wait_ms: int = 0,
                      min_bytes: int = 1, max_bytes: int = 1 << 20, isolation_level: int = 0):
        """One FetchRequest (READ_COMMITTED with `isolation_level=1`); returns {partition: the
        partition's whole answer} (records, high watermark, last stable offset, aborted
        transactions)."""
        version = self.version_for(FetchRequest.API_KEY, FETCH_VERSION_MIN, FETCH_VERSION_MAX)
        topic_type = FetchRequest.FetchTopic
        partition_type = topic_type.FetchPartition
        request = FetchRequest(
            replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
            isolation_level=isolation_level, session_id=0, session_epoch=-1,
            topics=[topic_type(topic=topic, partitions=[
                partition_type(partition=index, fetch_offset=offset, log_start_offset=-1,
                               partition_max_bytes=max_bytes)
                for index, offset in offsets.items()
            ])],
            forgotten_topics_data=[],
        )
        response = self.call(request, FetchResponse, version)
        if version >= 7:
            assert response.error_code == 0, f"Fetch top-level error_code {response.error_code}"
        return {partition.partition_index: partition
                for topic_response in response.responses
                for partition in topic_response.partitions}

    def offset_commit(self, group: str, member_id: str, generation: int,
                      offsets: dict[tuple[str, int], int], version: int = 8):
        """One OffsetCommitRequest (v8: what Kafka 3.x-4.x clients send to a group coordinator;
        a single node is every group's coordinator); returns {(topic, partition): error_code}."""
        topic_type = OffsetCommitRequest.OffsetCommitRequestTopic
        partition_type = topic_type.OffsetCommitRequestPartition
        topics: dict[str, list] = {}
        for (topic, partition), offset in offsets.items():
            topics.setdefault(topic, []).append(partition_type(
                partition_index=partition, committed_offset=offset, committed_leader_epoch=-1,
                committed_metadata=""))
        request = OffsetCommitRequest(
            group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
            group_instance_id=None, retention_time_ms=-1,
            topics=[topic_type(name=name, partitions=parts) for name, parts in topics.items()])
        response = self.call(request, OffsetCommitResponse, version)
        return {(topic.name, partition.partition_index): partition.error_code
                for topic in response.topics for partition in topic.partitions}

    def list_offsets(self, topic: str, partitions: list[int], timestamp: int = LATEST_TIMESTAMP,
                     isolation_level: int = 0) -> dict[int, tuple[int, int]]:
        """One ListOffsetsRequest (read uncommitted, or READ_COMMITTED with
        `isolation_level=1`); returns {partition: (error_code, offset)}. The default timestamp
        asks for the log end offset (READ_COMMITTED: the last stable offset)."""
        version = self.version_for(ListOffsetsRequest.API_KEY, LIST_OFFSETS_VERSION_MIN,
                                   LIST_OFFSETS_VERSION_MAX)
        topic_type = ListOffsetsRequest.ListOffsetsTopic
        partition_type = topic_type.ListOffsetsPartition
        request = ListOffsetsRequest(
            replica_id=-1, isolation_level=isolation_level,
            topics=[topic_type(name=topic, partitions=[
                partition_type(partition_index=index, current_leader_epoch=-1,
                               timestamp=timestamp)
                for index in partitions
            ])],
        )
        response = self.call(request, ListOffsetsResponse, version)
        return {
            partition.partition_index: (partition.error_code, partition.offset)
            for topic_response in response.topics
            for partition in topic_response.partitions
        }
