//! A connection task's slot: opens its connection on first use and again after it
//! breaks, retries a request that never reached the server once, and bounds every
//! exchange (connect included) by the request timeout. Over HTTP/2 a slot is one
//! stream's share of a connection (see [`super::http2`]).

use std::pin::Pin;
use std::sync::Arc;

use http::StatusCode;
use tokio::time::{Instant, Sleep};

use super::connection::{Connection, SendError};
use super::endpoint::Endpoint;
use super::http2::{Http2Connection, Http2Lane};
use super::request::PreparedRequest;
use super::Failure;

/// Where a slot gets its connection from.
enum Dialer {
    Http1(Endpoint),
    Http2(Arc<Http2Connection>),
}

/// What a slot sends on.
pub enum Channel {
    Http1(Connection),
    Http2(Http2Lane),
}

impl Channel {
    fn is_open(&self) -> bool {
        match self {
            Channel::Http1(c) => c.is_open(),
            Channel::Http2(lane) => lane.is_open(),
        }
    }

    fn first_byte(&self) -> Option<std::time::Instant> {
        match self {
            Channel::Http1(c) => c.first_byte(),
            Channel::Http2(lane) => lane.first_byte(),
        }
    }

    async fn send(
        &mut self,
        request: &PreparedRequest,
        body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, SendError> {
        match self {
            Channel::Http1(c) => c.send(request, body).await,
            Channel::Http2(lane) => lane.send(request, body).await,
        }
    }
}

impl Dialer {
    /// A channel in place of `broken` (which an HTTP/2 lane uses to tell its
    /// connection which generation failed).
    async fn open(&self, broken: Option<Channel>) -> std::io::Result<Channel> {
        match (self, broken) {
            (Dialer::Http2(_), Some(Channel::Http2(lane))) => {
                Ok(Channel::Http2(lane.reopen().await?))
            }
            (Dialer::Http2(connection), _) => Ok(Channel::Http2(connection.lane(None).await?)),
            (Dialer::Http1(addr), _) => Ok(Channel::Http1(Connection::open(addr.clone()).await?)),
        }
    }
}

/// One connection's worth of sending.
pub struct Slot {
    dialer: Dialer,
    /// Kept after it fails (marked not open) until the next exchange replaces it.
    connection: Option<Channel>,
    /// The timeout clock, kept across requests. Arming a fresh timer per request
    /// would insert into and remove from tokio's timer wheel every time; instead the
    /// timer may lag behind the current deadline (it only ever fires early, never
    /// late), and is moved forward only on the rare occasions it fires.
    timer: Option<Pin<Box<Sleep>>>,
    /// The time spent connecting during the last exchange (every attempt's, summed;
    /// an attempt cut off by the timeout counts up to then), until taken.
    connected_in: Option<std::time::Duration>,
}

impl Slot {
    /// An HTTP/1.1 slot, on `connection` if one was opened ahead.
    pub fn new(addr: impl Into<Endpoint>, connection: Option<Connection>) -> Self {
        Slot {
            dialer: Dialer::Http1(addr.into()),
            connection: connection.map(Channel::Http1),
            timer: None,
            connected_in: None,
        }
    }

    /// An HTTP/2 slot: one concurrent stream on `connection`, on `lane` if the
    /// connection was opened ahead.
    pub fn http2(connection: Arc<Http2Connection>, lane: Option<Http2Lane>) -> Self {
        Slot {
            dialer: Dialer::Http2(connection),
            connection: lane.map(Channel::Http2),
            timer: None,
            connected_in: None,
        }
    }

    /// How long the last exchange spent connecting, if it opened a connection (or
    /// tried to). After a timeout during a connect, a lower bound.
    pub fn take_connect_time(&mut self) -> Option<std::time::Duration> {
        self.connected_in.take()
    }

    /// When the first byte of the last exchange's response arrived, if its
    /// connection is still held.
    pub fn first_byte(&self) -> Option<std::time::Instant> {
        self.connection.as_ref()?.first_byte()
    }

    /// Closes the connection, so that the next exchange opens a new one: a stream
    /// of new clients does not wait for the server's close to tell it so.
    pub fn disconnect(&mut self) {
        self.connection = None;
    }

    /// One request and its response, connect included, by `deadline` (the caller
    /// knows when it sent, so no clock is read here); the body is appended to `body`
    /// when given.
    pub async fn exchange(
        &mut self,
        request: &PreparedRequest,
        deadline: std::time::Instant,
        body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, Failure> {
        let deadline = Instant::from_std(deadline);
        let Slot {
            dialer,
            connection,
            timer,
            connected_in,
        } = self;
        *connected_in = None;
        let mut connecting_since = None;
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let answered = {
            let exchange = send(
                dialer,
                connection,
                connected_in,
                &mut connecting_since,
                request,
                body,
            );
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    biased;
                    result = &mut exchange => break Some(result),
                    () = timer.as_mut() => {
                        if Instant::now() >= deadline {
                            break None;
                        }
                        // Set for an earlier request; this one still has time.
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        };
        answered.unwrap_or_else(|| {
            if let Some(since) = connecting_since {
                add_connect_time(connected_in, since.elapsed());
            }
            // The connection is in an unknown state; start afresh next time.
            *connection = None;
            Err(Failure::Timeout)
        })
    }
}

fn add_connect_time(total: &mut Option<std::time::Duration>, attempt: std::time::Duration) {
    *total = Some(total.unwrap_or_default() + attempt);
}

/// `connecting_since` is set while a connect is under way, so that a timeout that
/// cuts it off can still count its time.
async fn send(
    dialer: &Dialer,
    connection: &mut Option<Channel>,
    connected_in: &mut Option<std::time::Duration>,
    connecting_since: &mut Option<std::time::Instant>,
    request: &PreparedRequest,
    mut body: Option<&mut Vec<u8>>,
) -> Result<StatusCode, Failure> {
    // At most one retry, and only for a request that never reached the server.
    for _ in 0..2 {
        if !connection.as_ref().is_some_and(Channel::is_open) {
            let broken = connection.take();
            let started = *connecting_since.insert(std::time::Instant::now());
            let opened = dialer.open(broken).await;
            *connecting_since = None;
            add_connect_time(connected_in, started.elapsed());
            *connection = Some(opened.map_err(|_| Failure::Connect)?);
        }
        let open = connection.as_mut().expect("just opened");
        // A failed channel marks itself not open; it is replaced next time.
        match open.send(request, body.as_deref_mut()).await {
            Ok(status) => return Ok(status),
            Err(SendError::NotSent) => {}
            Err(SendError::Failed) => return Err(Failure::Io),
            Err(SendError::TooLarge(_)) => {
                *connection = None;
                return Err(Failure::TooLarge);
            }
            Err(SendError::Reset) => return Err(Failure::Reset),
            Err(SendError::GoAway) => return Err(Failure::GoAway),
        }
    }
    Err(Failure::Io)
}
