//! The histogram form shared by the servers and the load generator: nanoseconds,
//! 1 µs to one hour at three significant digits, carried as HdrHistogram's compressed
//! V2 encoding in base64 (the form HdrHistogram's interval logs use), so a full
//! distribution crosses a JSON boundary without losing anything.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Smallest value told apart from zero: 1 µs.
pub const LOWEST_NS: u64 = 1_000;
/// Largest value recorded exactly: one hour. Longer ones are clamped to it.
pub const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;
/// Significant decimal digits kept for every value.
pub const SIGFIG: u8 = 3;

/// An empty histogram with the bounds above.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("constant bounds are valid")
}

/// `h` compressed (V2 + DEFLATE) and base64-encoded.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into memory cannot fail");
    BASE64.encode(&bytes)
}

/// The inverse of [`encode`].
pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = BASE64.decode(text.trim())?;
    Ok(Deserializer::new().deserialize(&mut bytes.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut h = new_histogram();
        for v in [1_000u64, 5_000, 2_000_000, 300_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back.max(), h.max());
        assert!(decode("not base64!").is_err());
    }
}
