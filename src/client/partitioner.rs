//! Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitions`, with
//! the exact murmur2 variant of Kafka's `Utils.murmur2` so a key lands on the same partition as it
//! would with a Java, librdkafka (`murmur2_random`) or kafka-python producer.

/// Kafka's murmur2 of `data` (seed 0x9747b28c), as a signed 32-bit value like Java's `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const MULTIPLIER: u32 = 0x5bd1_e995;
    const SHIFT: u32 = 24;
    let length = data.len();
    let mut hash = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        word = word.wrapping_mul(MULTIPLIER);
        word ^= word >> SHIFT;
        word = word.wrapping_mul(MULTIPLIER);
        hash = hash.wrapping_mul(MULTIPLIER);
        hash ^= word;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(MULTIPLIER);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(MULTIPLIER);
    hash ^= hash >> 15;
    hash as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(value: i32) -> i32 {
    value & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for `key` among `partition_count` partitions.
pub fn partition_for_key(key: &[u8], partition_count: usize) -> i32 {
    assert!(
        partition_count > 0,
        "partition_for_key needs at least one partition"
    );
    (to_positive(murmur2(key)) as usize % partition_count) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_vectors() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        let vectors: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (input, expected) in vectors {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn to_positive_clears_only_the_sign_bit() {
        // toPositive must map i32::MIN to 0 and leave positive values alone.
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(42), 42);
        assert_eq!(partition_for_key(b"foobar", 1), 0);
        let expected = to_positive(-790332482) % 7;
        assert_eq!(partition_for_key(b"foobar", 7), expected);
    }
}
