//! Counts of the traffic a process took: connections it accepted and requests it
//! served. In a `multi-worker` group they show which process the load reached: with
//! one shared accept queue a stuck process stops accepting, with `SO_REUSEPORT` the
//! kernel keeps hashing connections to it. Also the connection limits at work
//! (see [`crate::connections`]): connections open against the cap, how often the
//! accept loop waited at the cap, and connections closed for not sending a
//! request head in time.
//!
//! Like the job counters, they are process-wide relaxed atomics, always on: the
//! accept point ([`counted`], around the listener) and the router (a middleware)
//! bump them without being handed anything.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::{Listener, ListenerExt};

/// The process's traffic counters.
pub static TRAFFIC: TrafficCounters = TrafficCounters::new();

/// Connections accepted and requests received since the process started.
pub struct TrafficCounters {
    connections_accepted: AtomicU64,
    requests: AtomicU64,
    connections_open: AtomicU64,
    connection_limit: AtomicU64,
    connection_limit_waits: AtomicU64,
    header_timeouts: AtomicU64,
}

/// Marks one connection as open until dropped.
pub struct OpenConnection(&'static TrafficCounters);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TrafficCounters {
    const fn new() -> TrafficCounters {
        TrafficCounters {
            connections_accepted: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connection_limit: AtomicU64::new(0),
            connection_limit_waits: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
        }
    }

    /// A connection is being served; it counts as open until the guard drops.
    pub fn connection_opened(&'static self) -> OpenConnection {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// The most connections the process serves at once (`--max-connections`, after
    /// the open-file limit).
    pub fn set_connection_limit(&self, limit: usize) {
        self.connection_limit.store(limit as u64, Ordering::Relaxed);
    }

    /// The accept loop found every connection slot taken and waits for one.
    pub fn connection_limit_wait(&self) {
        self.connection_limit_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed because its request head did not arrive in time.
    pub fn header_timeout(&self) {
        self.header_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections being served now.
    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// See [`TrafficCounters::set_connection_limit`]; 0 before serving starts.
    pub fn connection_limit(&self) -> u64 {
        self.connection_limit.load(Ordering::Relaxed)
    }

    /// Times the accept loop waited at the connection limit.
    pub fn connection_limit_waits(&self) -> u64 {
        self.connection_limit_waits.load(Ordering::Relaxed)
    }

    /// Connections closed by the header timeout.
    pub fn header_timeouts(&self) -> u64 {
        self.header_timeouts.load(Ordering::Relaxed)
    }

    /// The listener handed over a new connection.
    pub fn connection_accepted(&self) {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// The router received a request (any path, answered or not yet).
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.connections_accepted.load(Ordering::Relaxed)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// `listener`, counting every connection it accepts in [`TRAFFIC`].
pub fn counted<L>(listener: L) -> impl Listener<Io = L::Io, Addr = L::Addr>
where
    L: Listener,
{
    listener.tap_io(|_| TRAFFIC.connection_accepted())
}

/// Middleware (`axum::middleware::from_fn`) counting every request the router
/// receives in [`TRAFFIC`].
pub async fn count_request(request: Request, next: Next) -> Response {
    TRAFFIC.request();
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accepted_connections_at_the_listener() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut listener = counted(listener);
            let before = TRAFFIC.connections_accepted();
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = listener.accept().await;
            // Other tests of this binary may accept meanwhile; never fewer.
            assert!(TRAFFIC.connections_accepted() > before);
        });
    }
}
