//! One HTTP/1.1 keep-alive connection, driven inside the task that sends on it: the
//! request is one `write` of prepared bytes, the response is read into a buffer the
//! connection keeps and parsed in place. No channel, no second task, no allocation
//! per request: a load generator's cost per request should be the kernel's, not its
//! own (see README, "loadgen vs oha vs wrk").

use bytes::BytesMut;
use http::StatusCode;

use super::endpoint::{Endpoint, Stream};
use super::request::PreparedRequest;
use super::response::{ProtocolError, ResponseReader};

/// Size of a connection's read buffer. A read that does not fill the space left
/// tells tokio the socket is drained, which saves a `read` that would only say
/// "would block" before the next response.
const READ_BUFFER: usize = 16 * 1024;
/// Grow the buffer before a read when less than this is free.
const MIN_READ_SPACE: usize = 4 * 1024;

/// Why [`Connection::send`] did not return a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Nothing of the request reached the server: the connection had been closed
    /// while idle, or broke on the first write. Safe to send on a new connection.
    #[error("the connection was closed before the request could be sent")]
    NotSent,
    /// The request was (at least partly) written but no complete, well-formed
    /// response came back.
    #[error("no complete response (connection broken, or the response malformed)")]
    Failed,
    /// The response's body, which the caller asked to keep, was larger than
    /// [`super::response::MAX_KEPT_BODY_BYTES`]; the connection is dropped.
    #[error("response body larger than the {0} bytes kept")]
    TooLarge(usize),
    /// HTTP/2: the server reset the request's stream (RST_STREAM); the
    /// connection lives on.
    #[error("the server reset the request's HTTP/2 stream")]
    Reset,
    /// HTTP/2: the server sent GOAWAY while the request was in flight.
    #[error("the server closed the HTTP/2 connection (GOAWAY) with the request in flight")]
    GoAway,
}

/// An open connection.
pub struct Connection {
    stream: Stream,
    buffer: BytesMut,
    /// False once the connection cannot carry another request.
    open: bool,
    /// When the last response's first byte was read.
    first_byte: Option<std::time::Instant>,
}

impl Connection {
    /// Connects to `endpoint` (a `SocketAddr` will do).
    pub async fn open(endpoint: impl Into<Endpoint>) -> std::io::Result<Connection> {
        let stream = Stream::connect(&endpoint.into()).await?;
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_BUFFER),
            open: true,
            first_byte: None,
        })
    }

    /// When the first byte of the last response was read (`None` before one
    /// arrived): one clock read per response, on its first read.
    pub fn first_byte(&self) -> Option<std::time::Instant> {
        self.first_byte
    }

    /// Whether the connection can still take a request.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Sends `request` and reads the whole response, appending its body to `body`
    /// when given.
    pub async fn send(
        &mut self,
        request: &PreparedRequest,
        mut body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, SendError> {
        if !self.open || !self.idle() {
            self.open = false;
            return Err(SendError::NotSent);
        }
        self.first_byte = None;
        let wire = request.wire();
        let mut written = 0;
        while written < wire.len() {
            match self.stream.write(&wire[written..]).await {
                Ok(n) if n > 0 => written += n,
                _ => {
                    self.open = false;
                    return Err(if written == 0 {
                        SendError::NotSent
                    } else {
                        SendError::Failed
                    });
                }
            }
        }
        if self.stream.flush().await.is_err() {
            self.open = false;
            return Err(SendError::Failed);
        }
        let mut reader = ResponseReader::new(request.is_head());
        loop {
            match reader.advance(&mut self.buffer, body.as_deref_mut()) {
                Ok(Some(complete)) => {
                    // Bytes after the response were never asked for: the server and
                    // this client no longer agree where a response starts.
                    self.open = complete.reusable && self.buffer.is_empty();
                    return Ok(complete.status);
                }
                Ok(None) => {}
                Err(ProtocolError::BodyTooLarge(limit)) => {
                    self.open = false;
                    return Err(SendError::TooLarge(limit));
                }
                Err(_) => {
                    self.open = false;
                    return Err(SendError::Failed);
                }
            }
            if self.buffer.capacity() - self.buffer.len() < MIN_READ_SPACE {
                self.buffer.reserve(READ_BUFFER);
            }
            let read = self.stream.read_buf(&mut self.buffer).await;
            if self.first_byte.is_none() && matches!(read, Ok(n) if n > 0) {
                self.first_byte = Some(std::time::Instant::now());
            }
            match read {
                Ok(0) => {
                    self.open = false;
                    return reader
                        .finish_at_close()
                        .map(|complete| complete.status)
                        .map_err(|_| SendError::Failed);
                }
                Ok(_) => {}
                Err(_) => {
                    self.open = false;
                    return Err(SendError::Failed);
                }
            }
        }
    }

    /// Whether the connection is still open and quiet before a request is written.
    /// A server may close an idle keep-alive connection; that shows up as the socket
    /// turning readable. tokio knows the socket's readiness already, so in the usual
    /// case (nothing happened) this costs no system call.
    fn idle(&mut self) -> bool {
        if !self.buffer.is_empty() {
            return false;
        }
        match self.stream.try_read_buf(&mut self.buffer) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            // End of stream, unsolicited bytes, or an error: not usable.
            _ => false,
        }
    }
}
