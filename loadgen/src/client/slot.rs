//! A connection task's slot: opens its connection on first use and again after it
//! breaks, retries a request that never reached the server once, and bounds every
//! exchange (connect included) by the request timeout.

use std::net::SocketAddr;
use std::pin::Pin;

use http::StatusCode;
use tokio::time::{Instant, Sleep};

use super::connection::{Connection, SendError};
use super::request::PreparedRequest;
use super::Failure;

/// One connection's worth of sending.
pub struct Slot {
    addr: SocketAddr,
    connection: Option<Connection>,
    /// The timeout clock, kept across requests. Arming a fresh timer per request
    /// would insert into and remove from tokio's timer wheel every time; instead the
    /// timer may lag behind the current deadline (it only ever fires early, never
    /// late), and is moved forward only on the rare occasions it fires.
    timer: Option<Pin<Box<Sleep>>>,
    /// How long the last connection this slot opened took to connect, until taken.
    connected_in: Option<std::time::Duration>,
}

impl Slot {
    pub fn new(addr: SocketAddr, connection: Option<Connection>) -> Self {
        Slot {
            addr,
            connection,
            timer: None,
            connected_in: None,
        }
    }

    /// How long the connection opened by the last exchange took to connect, if that
    /// exchange opened one.
    pub fn take_connect_time(&mut self) -> Option<std::time::Duration> {
        self.connected_in.take()
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
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let answered = {
            let exchange = send(*addr, connection, connected_in, request, body);
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
            // The connection is in an unknown state; start afresh next time.
            *connection = None;
            Err(Failure::Timeout)
        })
    }
}

async fn send(
    addr: SocketAddr,
    connection: &mut Option<Connection>,
    connected_in: &mut Option<std::time::Duration>,
    request: &PreparedRequest,
    mut body: Option<&mut Vec<u8>>,
) -> Result<StatusCode, Failure> {
    // At most one retry, and only for a request that never reached the server.
    for _ in 0..2 {
        if !connection.as_ref().is_some_and(Connection::is_open) {
            *connection = None;
            let started = std::time::Instant::now();
            *connection = Some(Connection::open(addr).await.map_err(|_| Failure::Connect)?);
            *connected_in = Some(started.elapsed());
        }
        let open = connection.as_mut().expect("just opened");
        match open.send(request, body.as_deref_mut()).await {
            Ok(status) => return Ok(status),
            Err(SendError::NotSent) => *connection = None,
            Err(SendError::Failed) => {
                *connection = None;
                return Err(Failure::Io);
            }
        }
    }
    Err(Failure::Io)
}
