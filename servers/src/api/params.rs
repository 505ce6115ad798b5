//! Reading the size query parameters of `/work/*`, with messages that say what to send
//! instead. The range check itself is [`Limits::check`], shared with `POST /jobs`.

use std::collections::HashMap;

use super::ApiError;
use crate::limits::{Limits, Size};

/// Reads `size` from the query as a whole number in `1..=` its cap in `limits`.
pub fn bounded(
    query: &HashMap<String, String>,
    size: Size,
    limits: &Limits,
) -> Result<u64, ApiError> {
    let (name, cap) = (size.name(), limits.cap(size));
    let raw = query.get(name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "missing query parameter `{name}`: send ?{name}=N with N from 1 to {cap}"
        ))
    })?;
    let value: u64 = raw.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "`{name}` must be a whole number from 1 to {cap}, got {raw:?}"
        ))
    })?;
    limits.check(size, value).map_err(ApiError::bad_request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::background::JobSpec;

    const LIMITS: Limits = Limits {
        max_units: 10,
        max_io_ms: 100,
    };

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_values_in_range() {
        assert_eq!(
            bounded(&query(&[("units", "5")]), Size::Units, &LIMITS).unwrap(),
            5
        );
        assert_eq!(
            bounded(&query(&[("units", "10")]), Size::Units, &LIMITS).unwrap(),
            10
        );
        assert_eq!(
            bounded(&query(&[("ms", "100")]), Size::Ms, &LIMITS).unwrap(),
            100
        );
    }

    #[test]
    fn rejects_missing_zero_negative_junk_and_over_cap() {
        for q in [
            query(&[]),
            query(&[("units", "0")]),
            query(&[("units", "-3")]),
            query(&[("units", "abc")]),
            query(&[("units", "1.5")]),
            query(&[("units", "11")]),
        ] {
            assert!(bounded(&q, Size::Units, &LIMITS).is_err(), "{q:?}");
        }
    }

    #[test]
    fn over_the_cap_reads_the_same_as_for_a_background_job() {
        let work = bounded(&query(&[("units", "11")]), Size::Units, &LIMITS).unwrap_err();
        let job = JobSpec::Cpu { units: 11 }.validate(&LIMITS).unwrap_err();
        assert_eq!(work.message(), job);
        let work = bounded(&query(&[("ms", "0")]), Size::Ms, &LIMITS).unwrap_err();
        let job = JobSpec::Io { ms: 0 }.validate(&LIMITS).unwrap_err();
        assert_eq!(work.message(), job);
    }
}
