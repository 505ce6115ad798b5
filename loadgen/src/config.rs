//! Configuration as users write it: the one error type for a mistake in flags, a
//! scenario file or a URL (found before anything is sent, with a message that says
//! what to change), and the parsers for the values they hold.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

/// A configuration mistake, with a message that says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses a duration like `500ms`, `10s` or `2m`, naming the setting on error.
pub fn parse_duration(what: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError(format!(
            "{what} {text:?} is not a duration ({e}); write it like 500ms, 10s or 2m"
        ))
    })
}

/// Parses `Name: value` header text.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| ConfigError(format!("header {text:?} must look like 'Name: value'")))?;
    header(name.trim(), value.trim())
}

/// A header from its name and value, both checked.
pub fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let name = HeaderName::try_from(name)
        .map_err(|_| ConfigError(format!("{name:?} is not a valid header name")))?;
    let value = HeaderValue::try_from(value)
        .map_err(|_| ConfigError(format!("header {name}: {value:?} is not a valid value")))?;
    Ok((name, value))
}

/// Parses an HTTP method name.
pub fn parse_method(text: &str) -> Result<Method, ConfigError> {
    Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ConfigError(format!("{text:?} is not an HTTP method")))
}
