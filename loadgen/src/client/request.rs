//! A request written out once as the bytes that go on the wire, so that sending it
//! again costs one `write` and no formatting or allocation: a stream sends the same
//! request many thousand times a second.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Uri};

/// The `User-Agent` sent unless the caller sets one.
pub const USER_AGENT_VALUE: &str = concat!("loadgen/", env!("CARGO_PKG_VERSION"));

/// A request ready to be written, any number of times.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    wire: Bytes,
    /// HEAD: its response carries no body whatever its headers say.
    head: bool,
    /// The same request for HTTP/2, built once: the head (`:authority` from the
    /// host, no `Host` or framing headers) for `http` and for `https`, and the body.
    /// `None` when the host cannot be an `:authority` (see [`Self::http2_ready`]).
    http2: Option<Arc<Http2Request>>,
}

/// A request's HTTP/2 form (see [`PreparedRequest::http2_head`]).
#[derive(Debug)]
struct Http2Request {
    plain: http::Request<()>,
    tls: http::Request<()>,
    body: Bytes,
}

/// Why a request could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0:?} is not a path (it must start with '/', e.g. /health?x=1)")]
    Path(String),
    #[error("the {0} header is set by loadgen from the body; leave it out")]
    Framing(HeaderName),
    #[error("{0:?} is not a host[:port] HTTP/2 can name as :authority")]
    Authority(String),
}

impl PreparedRequest {
    /// `METHOD path HTTP/1.1` with `Host: host`, a `User-Agent`, `headers` (which
    /// replace `Host` and `User-Agent` when they name them) and `body`, framed by
    /// `Content-Length` whenever there is a body or the method expects one.
    pub fn new(
        method: &Method,
        path_and_query: &str,
        host: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &[u8],
    ) -> Result<PreparedRequest, RequestError> {
        let path_ok = path_and_query.starts_with('/')
            && path_and_query.parse::<Uri>().is_ok_and(|uri| {
                uri.scheme().is_none()
                    && uri.authority().is_none()
                    && uri.path_and_query().is_some()
            });
        if !path_ok {
            return Err(RequestError::Path(path_and_query.to_owned()));
        }
        if let Some((name, _)) = headers
            .iter()
            .find(|(name, _)| name == CONTENT_LENGTH || name == TRANSFER_ENCODING)
        {
            return Err(RequestError::Framing(name.clone()));
        }
        let given = |wanted: &HeaderName| headers.iter().any(|(name, _)| name == wanted);

        let mut wire = BytesMut::with_capacity(128 + path_and_query.len() + body.len());
        wire.put_slice(method.as_str().as_bytes());
        wire.put_u8(b' ');
        wire.put_slice(path_and_query.as_bytes());
        wire.put_slice(b" HTTP/1.1\r\n");
        let mut line = |name: &[u8], value: &[u8]| {
            wire.put_slice(name);
            wire.put_slice(b": ");
            wire.put_slice(value);
            wire.put_slice(b"\r\n");
        };
        if !given(&HOST) {
            line(b"host", host.as_bytes());
        }
        if !given(&USER_AGENT) {
            line(b"user-agent", USER_AGENT_VALUE.as_bytes());
        }
        for (name, value) in headers {
            line(name.as_str().as_bytes(), value.as_bytes());
        }
        let expects_body = [Method::POST, Method::PUT, Method::PATCH].contains(method);
        if !body.is_empty() || expects_body {
            line(b"content-length", body.len().to_string().as_bytes());
        }
        wire.put_slice(b"\r\n");
        wire.put_slice(body);
        let http2 = Http2Request::new(method, path_and_query, host, headers, body).ok();
        Ok(PreparedRequest {
            wire: wire.freeze(),
            head: method == Method::HEAD,
            http2: http2.map(Arc::new),
        })
    }

    /// A request whose body (possibly empty) is JSON: what a jobs API expects.
    pub fn json(
        method: &Method,
        path_and_query: &str,
        host: &str,
        body: &[u8],
    ) -> Result<PreparedRequest, RequestError> {
        let json = [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        PreparedRequest::new(method, path_and_query, host, &json, body)
    }

    /// A GET of `path_and_query` without extra headers.
    pub fn get(path_and_query: &str, host: &str) -> Result<PreparedRequest, RequestError> {
        PreparedRequest::new(&Method::GET, path_and_query, host, &[], &[])
    }

    /// The bytes to write.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Whether this is a HEAD request.
    pub fn is_head(&self) -> bool {
        self.head
    }

    /// Whether the request can go over HTTP/2; if not, why (checked before a
    /// run, so that sending never has to).
    pub fn http2_ready(&self) -> Result<(), RequestError> {
        match &self.http2 {
            Some(_) => Ok(()),
            None => Err(RequestError::Authority(self.host_for_error())),
        }
    }

    /// The HTTP/2 head to send (a copy: h2 takes it by value), over TLS or not,
    /// and the body; `None` unless [`Self::http2_ready`].
    pub fn http2(&self, tls: bool) -> Option<(http::Request<()>, &Bytes)> {
        let http2 = self.http2.as_deref()?;
        let head = if tls { &http2.tls } else { &http2.plain };
        Some((head.clone(), &http2.body))
    }

    /// The `Host` line's value, for an error message.
    fn host_for_error(&self) -> String {
        let text = String::from_utf8_lossy(&self.wire);
        text.lines()
            .find_map(|line| line.strip_prefix("host: "))
            .unwrap_or_default()
            .to_owned()
    }
}

impl Http2Request {
    /// HTTP/2 has no `Host` header: a given one becomes `:authority`, as
    /// RFC 9113 section 8.3.1 asks. The length is left to h2 (it frames DATA).
    fn new(
        method: &Method,
        path_and_query: &str,
        host: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &[u8],
    ) -> Result<Http2Request, RequestError> {
        let authority = headers
            .iter()
            .find(|(name, _)| name == HOST)
            .and_then(|(_, value)| value.to_str().ok())
            .unwrap_or(host);
        let head = |scheme: &str| {
            let uri = format!("{scheme}://{authority}{path_and_query}")
                .parse::<Uri>()
                .map_err(|_| RequestError::Authority(authority.to_owned()))?;
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(uri)
                .body(())
                .map_err(|_| RequestError::Path(path_and_query.to_owned()))?;
            let map = request.headers_mut();
            if !headers.iter().any(|(name, _)| name == USER_AGENT) {
                map.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            }
            for (name, value) in headers.iter().filter(|(name, _)| name != HOST) {
                map.append(name.clone(), value.clone());
            }
            Ok(request)
        };
        Ok(Http2Request {
            plain: head("http")?,
            tls: head("https")?,
            body: Bytes::copy_from_slice(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(request: &PreparedRequest) -> String {
        String::from_utf8(request.wire().to_vec()).unwrap()
    }

    #[test]
    fn a_get_has_host_and_user_agent_and_no_length() {
        let request = PreparedRequest::get("/health?x=1", "127.0.0.1:8080").unwrap();
        assert_eq!(
            text(&request),
            format!("GET /health?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nuser-agent: {USER_AGENT_VALUE}\r\n\r\n")
        );
        assert!(!request.is_head());
    }

    #[test]
    fn a_body_is_framed_by_its_length_and_headers_replace_defaults() {
        let headers = [
            (HOST, HeaderValue::from_static("example.test")),
            (
                HeaderName::from_static("content-type"),
                HeaderValue::from_static("application/json"),
            ),
        ];
        let request =
            PreparedRequest::new(&Method::POST, "/jobs", "127.0.0.1:1", &headers, b"{}").unwrap();
        let written = text(&request);
        assert!(written.starts_with("POST /jobs HTTP/1.1\r\n"), "{written}");
        assert!(written.contains("\r\nhost: example.test\r\n"), "{written}");
        assert!(!written.contains("127.0.0.1"), "{written}");
        assert!(
            written.ends_with("content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"),
            "{written}"
        );
        // A POST without a body still says so.
        let empty = PreparedRequest::new(&Method::POST, "/jobs", "h", &[], b"").unwrap();
        assert!(text(&empty).contains("content-length: 0\r\n"));
        assert!(PreparedRequest::new(&Method::HEAD, "/", "h", &[], b"")
            .unwrap()
            .is_head());
    }

    #[test]
    fn bad_paths_and_framing_headers_are_refused() {
        for path in ["health", "http://x/y", "/a b", ""] {
            assert!(
                matches!(PreparedRequest::get(path, "h"), Err(RequestError::Path(_))),
                "{path:?}"
            );
        }
        let length = [(CONTENT_LENGTH, HeaderValue::from_static("3"))];
        assert_eq!(
            PreparedRequest::new(&Method::POST, "/", "h", &length, b"abc").unwrap_err(),
            RequestError::Framing(CONTENT_LENGTH)
        );
    }
}
