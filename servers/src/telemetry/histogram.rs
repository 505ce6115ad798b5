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

/// An empty histogram with the bounds above: [`pollwatch`]'s poll histograms
/// have the same form, so one decoder (and its bounds check) reads both.
pub fn new_histogram() -> Histogram<u64> {
    pollwatch::new_histogram()
}

/// `h` compressed (V2 + DEFLATE) and base64-encoded.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into memory cannot fail");
    BASE64.encode(&bytes)
}

/// The V2 + DEFLATE cookie, and the plain V2 one inside it.
const DEFLATE_COOKIE: u32 = 0x1c84_9314;
const V2_COOKIE: u32 = 0x1c84_9313;
/// The plain V2 header: cookie, payload length, normalizing offset, digits (4
/// bytes each), lowest, highest, conversion ratio (8 bytes each).
const V2_HEADER: usize = 40;
/// Most counts a histogram of [`new_histogram`]'s bounds can encode (each count
/// takes at least one byte), with room to spare.
const MAX_PAYLOAD: usize = 1 << 20;

/// The inverse of [`encode`]. The input comes from the network (a scraped
/// server), so it is checked before HdrHistogram's deserializer sizes buffers
/// by the lengths it declares: the compressed length must fit the input, the
/// inflated encoding must be a V2 one with this project's bounds, and its
/// payload must fit what was inflated (at most [`MAX_PAYLOAD`]).
pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    use std::io::Read;
    let bytes = BASE64.decode(text.trim())?;
    let word = |b: &[u8], at: usize| -> anyhow::Result<u32> {
        let four = b
            .get(at..at + 4)
            .ok_or_else(|| anyhow::anyhow!("truncated histogram"))?;
        Ok(u32::from_be_bytes(four.try_into()?))
    };
    anyhow::ensure!(
        word(&bytes, 0)? == DEFLATE_COOKIE,
        "not a V2 + DEFLATE histogram"
    );
    let compressed = word(&bytes, 4)? as usize;
    anyhow::ensure!(
        compressed <= bytes.len() - 8,
        "the histogram declares {compressed} compressed bytes and has {}",
        bytes.len() - 8
    );
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[8..8 + compressed])
        .take((V2_HEADER + MAX_PAYLOAD + 1) as u64)
        .read_to_end(&mut inflated)?;
    anyhow::ensure!(
        word(&inflated, 0)? == V2_COOKIE,
        "not a V2 histogram inside"
    );
    let payload = word(&inflated, 4)? as usize;
    anyhow::ensure!(
        inflated.len() >= V2_HEADER && payload <= inflated.len() - V2_HEADER,
        "the histogram declares a payload of {payload} bytes and has {}",
        inflated.len().saturating_sub(V2_HEADER)
    );
    let bounds = (
        word(&inflated, 12)?,
        u64::from(word(&inflated, 16)?) << 32 | u64::from(word(&inflated, 20)?),
        u64::from(word(&inflated, 24)?) << 32 | u64::from(word(&inflated, 28)?),
    );
    anyhow::ensure!(
        bounds == (u32::from(SIGFIG), LOWEST_NS, HIGHEST_NS),
        "the histogram's bounds are not this project's"
    );
    // The plain V2 encoding, already inflated and checked.
    Ok(Deserializer::new().deserialize(&mut inflated.as_slice())?)
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

    /// A V2 + DEFLATE wrapper around `inner`, declaring `declared` compressed
    /// bytes.
    fn wrapped(inner: &[u8], declared: Option<u32>) -> String {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(inner).unwrap();
        let compressed = z.finish().unwrap();
        let mut bytes = DEFLATE_COOKIE.to_be_bytes().to_vec();
        bytes.extend(declared.unwrap_or(compressed.len() as u32).to_be_bytes());
        bytes.extend(compressed);
        BASE64.encode(bytes)
    }

    #[test]
    fn hostile_lengths_are_refused_before_anything_is_allocated() {
        // A few bytes declaring 2 GiB of compressed data.
        let mut huge = DEFLATE_COOKIE.to_be_bytes().to_vec();
        huge.extend(0x7fff_ffffu32.to_be_bytes());
        huge.extend([0u8; 52]);
        let error = decode(&BASE64.encode(&huge)).unwrap_err().to_string();
        assert!(error.contains("compressed bytes"), "{error}");

        // A real header whose payload length says 2 GiB.
        let mut header = V2_COOKIE.to_be_bytes().to_vec();
        header.extend(0x7fff_ffffu32.to_be_bytes());
        header.extend(0u32.to_be_bytes());
        header.extend(u32::from(SIGFIG).to_be_bytes());
        header.extend(LOWEST_NS.to_be_bytes());
        header.extend(HIGHEST_NS.to_be_bytes());
        header.extend(1.0f64.to_be_bytes());
        let error = decode(&wrapped(&header, None)).unwrap_err().to_string();
        assert!(error.contains("payload"), "{error}");

        // Other bounds (a histogram sized to the attacker's wish).
        let mut other = new_histogram();
        other.record(5_000).unwrap();
        let mut wide = Histogram::<u64>::new_with_bounds(1, 1 << 40, 3).unwrap();
        wide.record(5).unwrap();
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&wide, &mut bytes)
            .unwrap();
        let error = decode(&BASE64.encode(&bytes)).unwrap_err().to_string();
        assert!(error.contains("bounds"), "{error}");
        assert_eq!(decode(&encode(&other)).unwrap().len(), 1);
    }
}
