//! A connection task's slot: opens its connection on first use and again after it
//! breaks, retries a request that never reached the server once, and bounds every
//! exchange (connect included) by the request timeout.

use std::pin::Pin;

use http::StatusCode;
use tokio::time::{Instant, Sleep};

use super::connection::{Connection, SendError};
use super::endpoint::Endpoint;
use super::request::PreparedRequest;
use super::Failure;

/// One connection's worth of sending.
pub struct Slot {
    addr: Endpoint,
    connection: Option<Connection>,
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
    pub fn new(addr: impl Into<Endpoint>, connection: Option<Connection>) -> Self {
        Slot {
            addr: addr.into(),
            connection,
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
            addr,
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
                addr,
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
    addr: &Endpoint,
    connection: &mut Option<Connection>,
    connected_in: &mut Option<std::time::Duration>,
    connecting_since: &mut Option<std::time::Instant>,
    request: &PreparedRequest,
    mut body: Option<&mut Vec<u8>>,
) -> Result<StatusCode, Failure> {
    // At most one retry, and only for a request that never reached the server.
    for _ in 0..2 {
        if !connection.as_ref().is_some_and(Connection::is_open) {
            *connection = None;
            let started = *connecting_since.insert(std::time::Instant::now());
            let opened = Connection::open(addr.clone()).await;
            *connecting_since = None;
            add_connect_time(connected_in, started.elapsed());
            *connection = Some(opened.map_err(|_| Failure::Connect)?);
        }
        let open = connection.as_mut().expect("just opened");
        match open.send(request, body.as_deref_mut()).await {
            Ok(status) => return Ok(status),
            Err(SendError::NotSent) => *connection = None,
            Err(SendError::Failed) => {
                *connection = None;
                return Err(Failure::Io);
            }
            Err(SendError::TooLarge(_)) => {
                *connection = None;
                return Err(Failure::TooLarge);
            }
        }
    }
    Err(Failure::Io)
}
