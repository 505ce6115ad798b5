//! Reading one HTTP/1.1 response out of a connection's read buffer: the head parsed
//! with `httparse`, then the body framed by `Content-Length`, chunked transfer
//! coding, or the end of the connection (RFC 9112 §6). Pure byte handling, no I/O,
//! so every framing case is tested on plain slices; the body is consumed in place
//! and only copied when the caller asked to keep it.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::StatusCode;

/// Most response head bytes accepted before giving up on the response.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines in a response head.
const MAX_HEADERS: usize = 96;
/// Most bytes of one chunk-size line or trailer line.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// Most body bytes kept for a caller that asked to keep the body (control calls,
/// `/metrics.json` scrapes, job submissions and status polls): a server streaming
/// a chunked or until-close body, or declaring a 10 GB `Content-Length`, must not
/// grow loadgen without bound. Bodies that are only counted (the load itself) are
/// read and dropped whatever their length.
pub const MAX_KEPT_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("unusable Content-Length {0:?}")]
    ContentLength(String),
    #[error("malformed chunked body")]
    Chunked,
    #[error("connection closed before the response was complete")]
    Truncated,
    #[error("unsupported protocol switch (101)")]
    Switched,
    #[error("response body larger than the {0} bytes kept")]
    BodyTooLarge(usize),
}

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complete {
    pub status: StatusCode,
    /// Whether the connection may carry another request (keep-alive, and the body
    /// did not end with the connection).
    pub reusable: bool,
}

/// Where the reader is in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still to come.
    Length(u64),
    /// Before a chunk-size line.
    ChunkSize,
    /// Chunk data bytes still to come.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to the empty line.
    Trailers,
    /// Body until the server closes the connection.
    UntilClose,
    Done,
}

/// Reads one response; make a new one per request.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    /// Most body bytes appended to a kept body.
    body_limit: usize,
    /// The request was HEAD: the response has no body whatever its headers say.
    head_request: bool,
    status: StatusCode,
    keep_alive: bool,
}

impl ResponseReader {
    pub fn new(head_request: bool) -> Self {
        Self::with_body_limit(head_request, MAX_KEPT_BODY_BYTES)
    }

    /// A reader that keeps at most `body_limit` body bytes (when asked to keep the
    /// body at all).
    pub fn with_body_limit(head_request: bool, body_limit: usize) -> Self {
        ResponseReader {
            state: State::Head,
            body_limit,
            head_request,
            status: StatusCode::OK,
            keep_alive: true,
        }
    }

    /// Consumes what `buffer` holds of the response; `Some` once it is complete.
    /// Body bytes are appended to `body` when given. Bytes after the response stay
    /// in `buffer`.
    pub fn advance(
        &mut self,
        buffer: &mut BytesMut,
        mut body: Option<&mut Vec<u8>>,
    ) -> Result<Option<Complete>, ProtocolError> {
        loop {
            match self.state {
                State::Head => {
                    if !self.read_head(buffer)? {
                        return Ok(None);
                    }
                }
                State::Length(remaining) => {
                    // A kept body declared past the limit fails at once, rather than
                    // after reading (and copying) the limit's worth of it first.
                    let declared_past_limit = body.as_deref().is_some_and(|kept| {
                        (kept.len() as u64).saturating_add(remaining) > self.body_limit as u64
                    });
                    if declared_past_limit {
                        return Err(ProtocolError::BodyTooLarge(self.body_limit));
                    }
                    let taken = take(buffer, remaining, body.as_deref_mut(), self.body_limit)?;
                    if taken == remaining {
                        self.state = State::Done;
                    } else {
                        self.state = State::Length(remaining - taken);
                        return Ok(None);
                    }
                }
                State::ChunkSize => {
                    let size = match httparse::parse_chunk_size(buffer) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buffer.advance(used);
                            size
                        }
                        Ok(httparse::Status::Partial) => return partial_line(buffer),
                        Err(_) => return Err(ProtocolError::Chunked),
                    };
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(remaining) => {
                    let taken = take(buffer, remaining, body.as_deref_mut(), self.body_limit)?;
                    if taken == remaining {
                        self.state = State::ChunkEnd;
                    } else {
                        self.state = State::ChunkData(remaining - taken);
                        return Ok(None);
                    }
                }
                State::ChunkEnd => {
                    if buffer.len() < 2 {
                        return Ok(None);
                    }
                    if &buffer[..2] != b"\r\n" {
                        return Err(ProtocolError::Chunked);
                    }
                    buffer.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") else {
                        return partial_line(buffer);
                    };
                    buffer.advance(end + 2);
                    if end == 0 {
                        self.state = State::Done;
                    }
                }
                State::UntilClose => {
                    take(buffer, u64::MAX, body.as_deref_mut(), self.body_limit)?;
                    return Ok(None);
                }
                State::Done => {
                    return Ok(Some(Complete {
                        status: self.status,
                        reusable: self.keep_alive,
                    }))
                }
            }
        }
    }

    /// The connection reached its end: completes a body that runs until the close,
    /// and is an error anywhere else.
    pub fn finish_at_close(&mut self) -> Result<Complete, ProtocolError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(Complete {
                    status: self.status,
                    reusable: false,
                })
            }
            _ => Err(ProtocolError::Truncated),
        }
    }

    /// Parses the head if `buffer` holds all of it; false when more is needed.
    fn read_head(&mut self, buffer: &mut BytesMut) -> Result<bool, ProtocolError> {
        // Left uninitialised: httparse writes the ones it fills, and zeroing 96
        // header slots per response would cost more than parsing a small head.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            buffer,
            &mut headers,
        );
        let used = match parsed {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD_BYTES => {
                return Err(ProtocolError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(ProtocolError::Head(e.to_string())),
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code)
            .map_err(|_| ProtocolError::Head(format!("status {code}")))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(ProtocolError::Switched);
        }
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: the real response follows.
            buffer.advance(used);
            return Ok(true);
        }
        let framing = Framing::of(response.headers)?;
        // HTTP/1.1 keeps the connection unless told otherwise; 1.0 closes it unless
        // told otherwise.
        self.keep_alive = match response.version {
            Some(1) => !framing.close,
            _ => framing.keep_alive,
        };
        self.status = status;
        let no_body = self.head_request
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        self.state = if no_body {
            State::Done
        } else if framing.transfer_encoding {
            if framing.chunked {
                State::ChunkSize
            } else {
                State::UntilClose
            }
        } else {
            match framing.length {
                Some(length) => State::Length(length),
                None => State::UntilClose,
            }
        };
        if self.state == State::UntilClose {
            self.keep_alive = false;
        }
        buffer.advance(used);
        Ok(true)
    }
}

/// What the headers say about the body and the connection.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    transfer_encoding: bool,
    /// The last transfer coding is chunked.
    chunked: bool,
    close: bool,
    keep_alive: bool,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>]) -> Result<Framing, ProtocolError> {
        let mut framing = Framing::default();
        for header in headers {
            let name = header.name;
            let framing_header = name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("connection");
            if !framing_header {
                continue;
            }
            let value = std::str::from_utf8(header.value).unwrap_or("");
            if name.eq_ignore_ascii_case("content-length") {
                // Repeated (or comma-joined) values must agree (RFC 9110 §8.6).
                for part in value.split(',') {
                    let length: u64 = part
                        .trim()
                        .parse()
                        .map_err(|_| ProtocolError::ContentLength(value.to_owned()))?;
                    if framing.length.is_some_and(|l| l != length) {
                        return Err(ProtocolError::ContentLength(value.to_owned()));
                    }
                    framing.length = Some(length);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                framing.transfer_encoding = true;
                if let Some(last) = value.rsplit(',').next() {
                    framing.chunked = last.trim().eq_ignore_ascii_case("chunked");
                }
            } else {
                for token in value.split(',').map(str::trim) {
                    framing.close |= token.eq_ignore_ascii_case("close");
                    framing.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
        }
        Ok(framing)
    }
}

/// Consumes up to `limit` bytes from the front of `buffer`, copying them into
/// `body` when given; returns how many. A kept body that would pass `body_limit`
/// bytes is an error instead (nothing more is copied).
fn take(
    buffer: &mut BytesMut,
    limit: u64,
    body: Option<&mut Vec<u8>>,
    body_limit: usize,
) -> Result<u64, ProtocolError> {
    let n = buffer
        .len()
        .min(usize::try_from(limit).unwrap_or(usize::MAX));
    if let Some(body) = body {
        if body.len() + n > body_limit {
            return Err(ProtocolError::BodyTooLarge(body_limit));
        }
        body.extend_from_slice(&buffer[..n]);
    }
    buffer.advance(n);
    Ok(n as u64)
}

/// An incomplete chunk-size or trailer line: wait for more, unless it is already
/// longer than any sane line.
fn partial_line(buffer: &BytesMut) -> Result<Option<Complete>, ProtocolError> {
    if buffer.len() > MAX_LINE_BYTES {
        Err(ProtocolError::Chunked)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` to a reader in pieces of `step` bytes, as reads would deliver it.
    fn read_in_steps(
        wire: &[u8],
        step: usize,
        head_request: bool,
    ) -> (Result<Option<Complete>, ProtocolError>, Vec<u8>, BytesMut) {
        let mut reader = ResponseReader::new(head_request);
        let mut buffer = BytesMut::new();
        let mut body = Vec::new();
        for piece in wire.chunks(step) {
            buffer.extend_from_slice(piece);
            match reader.advance(&mut buffer, Some(&mut body)) {
                Ok(None) => {}
                other => return (other, body, buffer),
            }
        }
        (Ok(None), body, buffer)
    }

    fn complete(status: u16, reusable: bool) -> Result<Option<Complete>, ProtocolError> {
        Ok(Some(Complete {
            status: StatusCode::from_u16(status).unwrap(),
            reusable,
        }))
    }

    #[test]
    fn content_length_body_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhelloHTTP/1.1";
        for step in [1, 2, 7, 1000] {
            let (result, body, rest) = read_in_steps(wire, step, false);
            assert_eq!(result, complete(200, true), "step {step}");
            assert_eq!(body, b"hello");
            // Whatever followed the response stays for the caller to judge.
            assert!(b"HTTP/1.1".starts_with(&rest), "step {step}: {rest:?}");
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let wire = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nTrailer: x\r\n\r\n";
        for step in [1, 3, 1000] {
            let (result, body, rest) = read_in_steps(wire, step, false);
            assert_eq!(result, complete(201, true), "step {step}");
            assert_eq!(body, b"hello, world!!!");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn body_until_close_ends_with_the_connection() {
        let wire = b"HTTP/1.1 200 OK\r\n\r\npart one, part two";
        let mut reader = ResponseReader::new(false);
        let mut buffer = BytesMut::from(&wire[..]);
        let mut body = Vec::new();
        assert_eq!(reader.advance(&mut buffer, Some(&mut body)), Ok(None));
        assert_eq!(
            reader.finish_at_close(),
            Ok(Complete {
                status: StatusCode::OK,
                reusable: false
            })
        );
        assert_eq!(body, b"part one, part two");
    }

    #[test]
    fn responses_without_a_body() {
        // HEAD: no body despite the length; 204 and 304 never have one.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(read_in_steps(head, 1000, true).0, complete(200, true));
        let no_content = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            read_in_steps(no_content, 1000, false).0,
            complete(204, true)
        );
        let not_modified = b"HTTP/1.1 304 Not Modified\r\n\r\n";
        assert_eq!(read_in_steps(not_modified, 1, false).0, complete(304, true));
    }

    #[test]
    fn informational_responses_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n\
            HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno";
        let (result, body, _) = read_in_steps(wire, 4, false);
        assert_eq!(result, complete(500, true));
        assert_eq!(body, b"no");
    }

    #[test]
    fn connection_header_and_version_decide_reuse() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_in_steps(close, 1000, false).0, complete(200, false));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_in_steps(old, 1000, false).0, complete(200, false));
        let old_kept = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_in_steps(old_kept, 1000, false).0, complete(200, true));
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: [&[u8]; 6] = [
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ];
        for wire in cases {
            let (result, _, _) = read_in_steps(wire, 1000, false);
            assert!(
                result.is_err(),
                "{:?}: {result:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // Chunk data not followed by CRLF.
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n";
        assert_eq!(
            read_in_steps(wire, 1000, false).0,
            Err(ProtocolError::Chunked)
        );
    }

    #[test]
    fn oversized_heads_are_refused_rather_than_buffered_forever() {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        while wire.len() <= MAX_HEAD_BYTES {
            wire.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let (result, _, _) = read_in_steps(&wire, 4096, false);
        assert!(result.is_err(), "{result:?}");
    }

    #[test]
    fn a_cut_response_is_truncated_at_close() {
        let mut reader = ResponseReader::new(false);
        let mut buffer = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..]);
        assert_eq!(reader.advance(&mut buffer, None), Ok(None));
        assert_eq!(reader.finish_at_close(), Err(ProtocolError::Truncated));
        // Closed before any byte of an answer.
        let mut fresh = ResponseReader::new(false);
        assert_eq!(fresh.finish_at_close(), Err(ProtocolError::Truncated));
    }

    #[test]
    fn an_endless_header_line_is_refused_at_the_head_limit() {
        // One header whose value never ends: within the header count, so only the
        // byte limit stops it.
        let mut reader = ResponseReader::new(false);
        let mut buffer = BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Endless: "[..]);
        let mut result = reader.advance(&mut buffer, None);
        for _ in 0..1024 {
            if result != Ok(None) {
                break;
            }
            assert!(buffer.len() <= MAX_HEAD_BYTES, "holds {}", buffer.len());
            buffer.extend_from_slice(&[b'a'; 4096]);
            result = reader.advance(&mut buffer, None);
        }
        assert_eq!(result, Err(ProtocolError::HeadTooLarge));
    }

    #[test]
    fn endless_chunk_lines_are_refused_with_a_bounded_buffer() {
        // A chunk-size line whose extension never ends, and a trailer that never
        // ends: each is refused once it passes the longest line allowed, rather
        // than held while it grows.
        let starts: [&[u8]; 2] = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: ",
        ];
        for start in starts {
            let mut reader = ResponseReader::new(false);
            let mut buffer = BytesMut::from(start);
            let mut result = reader.advance(&mut buffer, None);
            for _ in 0..1024 {
                if result != Ok(None) {
                    break;
                }
                assert!(buffer.len() <= MAX_LINE_BYTES, "holds {}", buffer.len());
                buffer.extend_from_slice(&[b'a'; 1024]);
                result = reader.advance(&mut buffer, None);
            }
            assert_eq!(result, Err(ProtocolError::Chunked));
        }
    }

    #[test]
    fn a_kept_body_stops_at_its_limit_whatever_the_framing() {
        let body = "x".repeat(100);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n{body}\r\n0\r\n\r\n"
        );
        for wire in [
            format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{body}"),
            format!("HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n{body}"),
            chunked,
            format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}"),
        ] {
            // Kept, with room for 99 bytes: refused, and no more than that kept.
            let mut reader = ResponseReader::with_body_limit(false, 99);
            let mut buffer = BytesMut::from(wire.as_bytes());
            let mut kept = Vec::new();
            let result = reader.advance(&mut buffer, Some(&mut kept));
            assert_eq!(result, Err(ProtocolError::BodyTooLarge(99)), "{wire}");
            assert!(kept.len() <= 99);
            // Not kept: the same bytes are read (and counted) as before.
            let mut reader = ResponseReader::with_body_limit(false, 99);
            let mut buffer = BytesMut::from(wire.as_bytes());
            assert!(reader.advance(&mut buffer, None).is_ok(), "{wire}");
        }
        // Exactly at the limit is fine.
        let mut reader = ResponseReader::with_body_limit(false, 100);
        let wire = format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{body}");
        let mut buffer = BytesMut::from(wire.as_bytes());
        let mut kept = Vec::new();
        assert!(matches!(
            reader.advance(&mut buffer, Some(&mut kept)),
            Ok(Some(_))
        ));
        assert_eq!(kept.len(), 100);
    }
}

/// Property tests: whatever the bytes and wherever reads split them, the reader
/// never panics, returns from every call having done all it could (a call that
/// asks for more bytes changes nothing when called again without them), holds at
/// most a head's worth of unparsed bytes, keeps no more than its limit, and stops
/// exactly where a declared body ends, leaving the next response unread.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A response framed as a server might send it, and what reading it must give.
    #[derive(Debug, Clone)]
    struct Framed {
        wire: Vec<u8>,
        head_request: bool,
        status: u16,
        body: Vec<u8>,
        reusable: bool,
        /// The body runs until the connection closes: nothing may follow it.
        until_close: bool,
        /// The body is declared by `Content-Length` (so a kept body past the limit
        /// fails before any of it is read).
        declared: bool,
    }

    /// How the body is framed.
    #[derive(Debug, Clone)]
    enum Framing {
        Length,
        Chunked {
            sizes: Vec<usize>,
            upper_hex: bool,
            extension: bool,
            trailers: usize,
            gzip_first: bool,
        },
        UntilClose,
    }

    fn framing() -> impl Strategy<Value = Framing> {
        prop_oneof![
            Just(Framing::Length),
            (
                prop::collection::vec(1usize..80, 1..6),
                any::<bool>(),
                any::<bool>(),
                0usize..3,
                any::<bool>()
            )
                .prop_map(|(sizes, upper_hex, extension, trailers, gzip_first)| {
                    Framing::Chunked {
                        sizes,
                        upper_hex,
                        extension,
                        trailers,
                        gzip_first,
                    }
                }),
            Just(Framing::UntilClose),
        ]
    }

    /// Headers that say nothing about framing or the connection.
    fn other_headers() -> impl Strategy<Value = Vec<(String, String)>> {
        let header = ("[A-Za-z][A-Za-z0-9-]{0,12}", "[!-~]([ -~]{0,20}[!-~])?").prop_filter(
            "not a framing header",
            |(name, _)| {
                !["content-length", "transfer-encoding", "connection"]
                    .iter()
                    .any(|f| name.eq_ignore_ascii_case(f))
            },
        );
        prop::collection::vec(header, 0..5)
    }

    fn framed() -> impl Strategy<Value = Framed> {
        (
            any::<bool>(),
            prop_oneof![
                4 => prop_oneof![Just(200u16), Just(201), Just(404), Just(500)],
                1 => prop_oneof![Just(204u16), Just(304)],
                1 => 200u16..600,
            ],
            any::<bool>(),
            prop_oneof![
                Just(None),
                Just(Some("close")),
                Just(Some("keep-alive")),
                Just(Some("Keep-Alive, Upgrade")),
            ],
            other_headers(),
            prop::collection::vec(any::<u8>(), 0..300),
            framing(),
            prop::bool::weighted(0.1),
        )
            .prop_map(
                |(http11, status, informational, connection, headers, body, framing, head)| {
                    build(
                        http11,
                        status,
                        informational,
                        connection,
                        &headers,
                        body,
                        &framing,
                        head,
                    )
                },
            )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        http11: bool,
        status: u16,
        informational: bool,
        connection: Option<&str>,
        headers: &[(String, String)],
        body: Vec<u8>,
        framing: &Framing,
        head_request: bool,
    ) -> Framed {
        let mut wire = Vec::new();
        if informational {
            wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let version = if http11 { "HTTP/1.1" } else { "HTTP/1.0" };
        wire.extend_from_slice(format!("{version} {status} Whatever\r\n").as_bytes());
        for (name, value) in headers {
            wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if let Some(connection) = connection {
            wire.extend_from_slice(format!("Connection: {connection}\r\n").as_bytes());
        }
        match framing {
            Framing::Length => {
                wire.extend_from_slice(format!("content-Length: {}\r\n", body.len()).as_bytes())
            }
            Framing::Chunked { gzip_first, .. } => {
                let coding = if *gzip_first {
                    "gzip, chunked"
                } else {
                    "chunked"
                };
                wire.extend_from_slice(format!("Transfer-Encoding: {coding}\r\n").as_bytes());
            }
            Framing::UntilClose => {}
        }
        wire.extend_from_slice(b"\r\n");
        let no_body = head_request || status == 204 || status == 304;
        let body = if no_body { Vec::new() } else { body };
        if !no_body {
            match framing {
                Framing::Length | Framing::UntilClose => wire.extend_from_slice(&body),
                Framing::Chunked {
                    sizes,
                    upper_hex,
                    extension,
                    trailers,
                    ..
                } => {
                    let mut rest = &body[..];
                    for size in sizes.iter().cycle() {
                        if rest.is_empty() {
                            break;
                        }
                        let (chunk, after) = rest.split_at((*size).min(rest.len()));
                        let size = if *upper_hex {
                            format!("{:X}", chunk.len())
                        } else {
                            format!("{:x}", chunk.len())
                        };
                        let extension = if *extension { ";name=value" } else { "" };
                        wire.extend_from_slice(format!("{size}{extension}\r\n").as_bytes());
                        wire.extend_from_slice(chunk);
                        wire.extend_from_slice(b"\r\n");
                        rest = after;
                    }
                    wire.extend_from_slice(b"0\r\n");
                    for t in 0..*trailers {
                        wire.extend_from_slice(format!("X-Trailer-{t}: v\r\n").as_bytes());
                    }
                    wire.extend_from_slice(b"\r\n");
                }
            }
        }
        let until_close = !no_body && matches!(framing, Framing::UntilClose);
        let token = |t: &str| {
            connection.is_some_and(|c| c.split(',').any(|p| p.trim().eq_ignore_ascii_case(t)))
        };
        let keep_alive = if http11 {
            !token("close")
        } else {
            token("keep-alive")
        };
        Framed {
            wire,
            head_request,
            status,
            body,
            reusable: keep_alive && !until_close,
            until_close,
            declared: !no_body && matches!(framing, Framing::Length),
        }
    }

    /// What feeding a reader gave.
    struct Fed {
        /// From `advance`, or from `finish_at_close` once every byte was fed.
        result: Result<Complete, ProtocolError>,
        kept: Vec<u8>,
        /// The bytes never consumed: those left in the buffer, then those not fed.
        unread: Vec<u8>,
    }

    /// Feeds `wire` to `reader` in pieces whose lengths cycle through `steps`, as
    /// reads would deliver it, keeping the body when `keep`, and checks after each
    /// call what every call must satisfy.
    fn feed(mut reader: ResponseReader, wire: &[u8], steps: &[usize], keep: bool) -> Fed {
        let limit = reader.body_limit;
        let mut buffer = BytesMut::new();
        let mut kept = Vec::new();
        let mut fed = 0;
        let mut steps = steps.iter().cycle();
        while fed < wire.len() {
            let piece = (*steps.next().expect("steps are not empty")).min(wire.len() - fed);
            buffer.extend_from_slice(&wire[fed..fed + piece]);
            fed += piece;
            let answer = reader.advance(&mut buffer, keep.then_some(&mut kept));
            assert!(kept.len() <= limit, "kept {} past {limit}", kept.len());
            match answer {
                Ok(None) => {
                    // Waiting for more, with no more than a head's worth held.
                    assert!(buffer.len() <= MAX_HEAD_BYTES, "holds {}", buffer.len());
                    // It did all it could with what it had: without new bytes, a
                    // second call consumes and keeps nothing more.
                    let (held, kept_len) = (buffer.len(), kept.len());
                    let again = reader.advance(&mut buffer, keep.then_some(&mut kept));
                    assert_eq!(again, Ok(None));
                    assert_eq!((buffer.len(), kept.len()), (held, kept_len));
                }
                Ok(Some(complete)) => {
                    let mut unread = buffer.to_vec();
                    unread.extend_from_slice(&wire[fed..]);
                    return Fed {
                        result: Ok(complete),
                        kept,
                        unread,
                    };
                }
                Err(e) => {
                    let mut unread = buffer.to_vec();
                    unread.extend_from_slice(&wire[fed..]);
                    return Fed {
                        result: Err(e),
                        kept,
                        unread,
                    };
                }
            }
        }
        Fed {
            result: reader.finish_at_close(),
            kept,
            unread: buffer.to_vec(),
        }
    }

    /// Bytes that look like parts of responses more often than chance would make
    /// them, so that the arbitrary input reaches past the status line.
    fn noisy_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            2 => any::<u8>(),
            3 => prop::sample::select(b"0123456789abcdefABCDEF\r\n;=: ,".to_vec()),
        ];
        prop::collection::vec(byte, 0..600)
    }

    fn head_then_noise() -> impl Strategy<Value = Vec<u8>> {
        let heads: [&[u8]; 8] = [
            b"",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ];
        (prop::sample::select(heads.to_vec()), noisy_bytes()).prop_map(|(head, noise)| {
            let mut wire = head.to_vec();
            wire.extend_from_slice(&noise);
            wire
        })
    }

    fn limit() -> impl Strategy<Value = usize> {
        prop_oneof![Just(MAX_KEPT_BODY_BYTES), 0usize..400]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_bytes_never_panic_loop_or_overhold(
            wire in head_then_noise(),
            steps in prop::collection::vec(1usize..64, 1..6),
            keep in any::<bool>(),
            head_request in prop::bool::weighted(0.1),
            limit in limit(),
        ) {
            let fed = feed(
                ResponseReader::with_body_limit(head_request, limit),
                &wire,
                &steps,
                keep,
            );
            prop_assert!(fed.kept.len() <= limit);
            prop_assert!(fed.unread.len() <= wire.len());
            prop_assert!(wire.ends_with(&fed.unread));
        }

        #[test]
        fn framed_responses_read_exactly_their_body(
            framed in framed(),
            next in prop_oneof![
                Just(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()),
                prop::collection::vec(any::<u8>(), 0..40),
            ],
            steps in prop::collection::vec(1usize..200, 1..6),
            keep in any::<bool>(),
            limit in limit(),
        ) {
            let mut wire = framed.wire.clone();
            if !framed.until_close {
                wire.extend_from_slice(&next);
            }
            let reader = ResponseReader::with_body_limit(framed.head_request, limit);
            let fed = feed(reader, &wire, &steps, keep);
            if keep && framed.body.len() > limit {
                prop_assert_eq!(fed.result, Err(ProtocolError::BodyTooLarge(limit)));
                prop_assert!(fed.kept.len() <= limit);
                if framed.declared {
                    // Refused on the declaration alone.
                    prop_assert!(fed.kept.is_empty());
                }
                return Ok(());
            }
            let complete = fed.result.expect("a well-framed response reads");
            prop_assert_eq!(complete.status.as_u16(), framed.status);
            prop_assert_eq!(complete.reusable, framed.reusable);
            if keep {
                prop_assert_eq!(&fed.kept, &framed.body);
            } else {
                prop_assert!(fed.kept.is_empty());
            }
            // Nothing past the response was consumed.
            let expected_unread: &[u8] = if framed.until_close { &[] } else { &next };
            prop_assert_eq!(&fed.unread[..], expected_unread);
        }
    }
}
