//! Reading the numeric query parameters, with messages that say what to send instead.

use std::collections::HashMap;

use super::ApiError;

/// Reads `name` from the query as a whole number in `1..=cap`.
pub fn bounded(
    query: &HashMap<String, String>,
    name: &str,
    cap: u64,
    cap_flag: &str,
) -> Result<u64, ApiError> {
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
    if value == 0 {
        return Err(ApiError::bad_request(format!(
            "`{name}` must be at least 1, got 0"
        )));
    }
    if value > cap {
        return Err(ApiError::bad_request(format!(
            "`{name}`={value} is over the cap of {cap}; start the server with {cap_flag} to raise it"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepts_values_in_range() {
        assert_eq!(
            bounded(&query(&[("units", "5")]), "units", 10, "--max-units").unwrap(),
            5
        );
        assert_eq!(
            bounded(&query(&[("units", "10")]), "units", 10, "--max-units").unwrap(),
            10
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
            assert!(bounded(&q, "units", 10, "--max-units").is_err(), "{q:?}");
        }
    }
}
