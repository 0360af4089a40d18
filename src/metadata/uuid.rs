//! Kafka's text form of a `Uuid` (topic ids, cluster ids): URL-safe base64 of the 16 bytes
//! without padding, 22 characters.

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString()`: URL-safe base64 without padding (22 characters).
pub fn uuid_to_base64(bytes: [u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let value = chunk
            .iter()
            .fold(0u32, |value, byte| (value << 8) | u32::from(*byte))
            << (8 * (3 - chunk.len()));
        for index in 0..=chunk.len() {
            out.push(BASE64_URL[((value >> (18 - 6 * index)) & 0x3f) as usize] as char);
        }
    }
    out
}

pub fn uuid_from_base64(text: &str) -> Option<[u8; 16]> {
    if text.len() != 22 {
        return None;
    }
    let values: Vec<u128> = text
        .bytes()
        .map(|character| {
            BASE64_URL
                .iter()
                .position(|&symbol| symbol == character)
                .map(|value| value as u128)
        })
        .collect::<Option<_>>()?;
    // 21 characters carry 126 bits; the last carries 2 more and 4 bits of zero padding.
    let (last, leading) = values.split_last()?;
    if last & 0xf != 0 {
        return None;
    }
    let bits = leading
        .iter()
        .fold(0u128, |bits, value| (bits << 6) | value);
    Some(((bits << 2) | (last >> 4)).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::random_uuid;

    /// Proves the encoding matches Kafka's Uuid.toString and round-trips.
    #[test]
    fn base64_uuid_matches_kafka() {
        // Kafka: new Uuid(0x0123456789abcdefL, 0xfedcba9876543210L).toString() == "ASNFZ4mrze_-3LqYdlQyEA"
        let bytes = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54,
            0x32, 0x10,
        ];
        assert_eq!(uuid_to_base64(bytes), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(uuid_from_base64("ASNFZ4mrze_-3LqYdlQyEA"), Some(bytes));
        assert_eq!(uuid_from_base64("short"), None);
        assert!(
            (0..2000).all(|_| !uuid_to_base64(random_uuid()).starts_with('-')),
            "an id reads as a flag"
        );
        let random = random_uuid();
        assert_eq!(uuid_from_base64(&uuid_to_base64(random)), Some(random));
        assert_eq!(uuid_to_base64([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let high = [
            0xfb, 0xff, 0xbe, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54,
            0x76, 0x98,
        ];
        assert_eq!(uuid_to_base64(high), "-_--ASNFZ4mrze8QMlR2mA");
    }
}
