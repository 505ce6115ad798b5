//! HTTP/2 with the `h2` crate: one connection carries several concurrent streams
//! (`--h2-streams`), each driven by a [`Slot`](super::Slot) of its own through an
//! [`Http2Lane`], so the engine's loops (open and closed) work unchanged on
//! connections × streams slots. Plaintext is h2c with prior knowledge (the preface
//! at once, no `Upgrade:`), as `curl --http2-prior-knowledge` and `oha --http2`
//! speak it; over TLS, ALPN must agree on `h2`.
//!
//! The connection's frames are read and written by a driver task h2 needs; the
//! lanes only hand it requests and wait for their responses. A lane that finds its
//! connection broken asks the shared [`Http2Connection`] for a new one, and the
//! first lane to ask opens it for all of them.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use h2::client::SendRequest;
use http::StatusCode;
use tokio::task::JoinHandle;

use super::connection::SendError;
use super::endpoint::{Endpoint, Stream};
use super::request::PreparedRequest;
use super::response::MAX_KEPT_BODY_BYTES;

/// One HTTP/2 connection to a server, shared by the lanes multiplexed on it, and
/// reopened (once, for all of them) when it breaks.
pub struct Http2Connection {
    endpoint: Endpoint,
    current: tokio::sync::Mutex<Current>,
}

/// The connection now in use, numbered so that a lane that saw generation `g`
/// fail does not close its successor.
struct Current {
    generation: u64,
    live: Option<Live>,
}

struct Live {
    send: SendRequest<Bytes>,
    /// The task reading and writing the connection's frames; finished once the
    /// connection is closed (by an error, or a GOAWAY once its streams are done).
    driver: JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Http2Connection {
    /// A connection to `endpoint`, opened on first use or by [`Self::connect`].
    pub fn new(endpoint: Endpoint) -> Arc<Http2Connection> {
        Arc::new(Http2Connection {
            endpoint,
            current: tokio::sync::Mutex::new(Current {
                generation: 0,
                live: None,
            }),
        })
    }

    /// Opens the connection now (before a run's clock starts, so the first
    /// requests do not pay for it).
    pub async fn connect(self: &Arc<Self>) -> std::io::Result<()> {
        self.lane(None).await.map(drop)
    }

    /// A lane on the live connection, opening a new one when there is none, it
    /// has closed, or the caller saw it fail (`retired`, its generation).
    pub async fn lane(self: &Arc<Self>, retired: Option<u64>) -> std::io::Result<Http2Lane> {
        let mut current = self.current.lock().await;
        let usable = current
            .live
            .as_ref()
            .is_some_and(|live| !live.driver.is_finished())
            && retired != Some(current.generation);
        if !usable {
            current.live = None;
            let (send, driver) = handshake(&self.endpoint).await?;
            current.generation += 1;
            current.live = Some(Live { send, driver });
        }
        let live = current.live.as_ref().expect("opened above");
        Ok(Http2Lane {
            connection: Arc::clone(self),
            generation: current.generation,
            send: live.send.clone(),
            usable: true,
            first_byte: None,
            tls: matches!(self.endpoint, Endpoint::Tls(..)),
        })
    }

    /// Checks that the server speaks HTTP/2 at all: a PING must come back. A
    /// server that speaks only HTTP/1.1 answers the preface with an error or
    /// closes; without this, every request of the run would fail the same way.
    pub async fn check(endpoint: &Endpoint) -> std::io::Result<()> {
        let stream = Stream::connect(endpoint).await?;
        let (_send, mut connection) = h2::client::handshake(stream).await.map_err(not_http2)?;
        let mut ping = connection
            .ping_pong()
            .ok_or_else(|| std::io::Error::other("HTTP/2 PING unavailable"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let answered = ping.ping(h2::Ping::opaque()).await;
        driver.abort();
        answered.map(drop).map_err(not_http2)
    }
}

/// Connects, and on it the HTTP/2 preface and settings; the connection's frames
/// are then handled by a task of their own.
async fn handshake(endpoint: &Endpoint) -> std::io::Result<(SendRequest<Bytes>, JoinHandle<()>)> {
    let stream = Stream::connect(endpoint).await?;
    let (send, connection) = h2::client::handshake(stream).await.map_err(not_http2)?;
    let driver = tokio::spawn(async move {
        // How the connection ended shows in the lanes' requests.
        let _ = connection.await;
    });
    Ok((send, driver))
}

fn not_http2(error: h2::Error) -> std::io::Error {
    match error.into_io() {
        Some(io) => io,
        None => std::io::Error::other("the server did not answer as HTTP/2"),
    }
}

/// One stream's share of an [`Http2Connection`]: sends one request at a time, as
/// an HTTP/1.1 connection does, while the connection's other lanes send theirs.
pub struct Http2Lane {
    connection: Arc<Http2Connection>,
    generation: u64,
    send: SendRequest<Bytes>,
    /// False once the connection this lane was given has failed it.
    usable: bool,
    first_byte: Option<Instant>,
    tls: bool,
}

impl Http2Lane {
    /// Whether the lane's connection can still take a request, as far as it knows.
    pub fn is_open(&self) -> bool {
        self.usable
    }

    /// When the last response's head arrived.
    pub fn first_byte(&self) -> Option<Instant> {
        self.first_byte
    }

    /// A lane on a working connection, replacing this one's if it failed.
    pub async fn reopen(&self) -> std::io::Result<Http2Lane> {
        let retired = (!self.usable).then_some(self.generation);
        self.connection.lane(retired).await
    }

    /// Sends `request` on a new stream and reads the whole response, appending
    /// its body to `body` when given. Flow-control capacity is given back as the
    /// body arrives, so a large response does not stall the connection's others.
    pub async fn send(
        &mut self,
        request: &PreparedRequest,
        mut body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, SendError> {
        self.first_byte = None;
        let Some((head, request_body)) = request.http2(self.tls) else {
            return Err(SendError::Failed);
        };
        // Waits while the server's limit on concurrent streams is reached.
        if poll_fn(|cx| self.send.poll_ready(cx)).await.is_err() {
            self.usable = false;
            return Err(SendError::NotSent);
        }
        let end_of_stream = request_body.is_empty();
        let (response, mut outgoing) = match self.send.send_request(head, end_of_stream) {
            Ok(sent) => sent,
            Err(_) => {
                self.usable = false;
                return Err(SendError::NotSent);
            }
        };
        if !end_of_stream {
            outgoing
                .send_data(request_body.clone(), true)
                .map_err(|e| self.failed(&e))?;
        }
        let response = response.await.map_err(|e| self.failed(&e))?;
        self.first_byte = Some(Instant::now());
        let status = response.status();
        let mut incoming = response.into_body();
        while let Some(chunk) = incoming.data().await {
            let chunk = chunk.map_err(|e| self.failed(&e))?;
            let _ = incoming.flow_control().release_capacity(chunk.len());
            if let Some(kept) = body.as_deref_mut() {
                if kept.len() + chunk.len() > MAX_KEPT_BODY_BYTES {
                    return Err(SendError::TooLarge(MAX_KEPT_BODY_BYTES));
                }
                kept.extend_from_slice(&chunk);
            }
        }
        Ok(status)
    }

    /// Names what went wrong with a request in flight: the server reset the
    /// stream (the connection lives on), sent GOAWAY, or the connection broke.
    fn failed(&mut self, error: &h2::Error) -> SendError {
        if error.is_go_away() {
            self.usable = false;
            SendError::GoAway
        } else if error.is_reset() && error.is_remote() {
            SendError::Reset
        } else {
            self.usable = false;
            SendError::Failed
        }
    }
}
