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

/// Largest request body read from a file: it is kept in memory and written whole
/// with every request.
pub const MAX_BODY_FILE_BYTES: u64 = 64 << 20;

/// Reads a request body from `path`, whatever its bytes.
pub fn read_body_file(path: &std::path::Path) -> Result<bytes::Bytes, ConfigError> {
    let size = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("body file {}: {e}", path.display())))?
        .len();
    if size > MAX_BODY_FILE_BYTES {
        return Err(ConfigError(format!(
            "body file {} is {size} bytes; at most {MAX_BODY_FILE_BYTES} are sent",
            path.display()
        )));
    }
    std::fs::read(path)
        .map(bytes::Bytes::from)
        .map_err(|e| ConfigError(format!("body file {}: {e}", path.display())))
}

/// The `Authorization` header of HTTP basic authentication for `USER:PASSWORD`.
pub fn basic_auth(credentials: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    use base64::Engine;
    if !credentials.contains(':') {
        // The value is left out of the message: it may be a password.
        return Err(ConfigError(
            "--auth must look like USER:PASSWORD (no colon given)".into(),
        ));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| ConfigError("--auth: not a valid header value".into()))?;
    Ok((http::header::AUTHORIZATION, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_user_and_password() {
        // RFC 7617's example.
        let (name, value) = basic_auth("Aladdin:open sesame").unwrap();
        assert_eq!(name, http::header::AUTHORIZATION);
        assert_eq!(value, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(basic_auth("no-colon").is_err());
    }

    #[test]
    fn a_body_file_is_read_as_bytes_and_a_missing_one_named() {
        let dir = std::env::temp_dir().join(format!("loadgen-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("body.bin");
        std::fs::write(&path, [0u8, 159, 146, 150, b'\n']).unwrap();
        assert_eq!(
            &read_body_file(&path).unwrap()[..],
            &[0u8, 159, 146, 150, b'\n']
        );
        let missing = read_body_file(&dir.join("nope")).unwrap_err();
        assert!(missing.0.contains("nope"), "{}", missing.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
