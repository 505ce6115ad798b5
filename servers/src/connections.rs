//! The accept loop and each connection's HTTP/1.1 settings: what a server facing
//! real clients needs and `axum::serve` leaves out.
//!
//! - **A header timeout.** `axum::serve` builds hyper without a timer, which turns
//!   hyper's header-read timeout off: a client that sends half a request head
//!   (slowloris) holds its connection, task and descriptor for ever. Here hyper
//!   gets tokio's timer and `--header-timeout`. hyper runs that one timer from the
//!   moment it starts reading a request head: when the connection opens, and again
//!   when a response has gone out on a kept-alive connection. So the same limit is
//!   also the idle timeout between requests; hyper has no separate one, and a
//!   request in progress (a slow job) is never cut by it.
//! - **A connection cap.** At most `--max-connections` connections are served at
//!   once. At the cap the loop stops calling `accept`, so new clients wait in the
//!   kernel's accept queue (and, once it is full, their SYNs are dropped and
//!   retried) instead of the process running out of descriptors, where `accept`
//!   fails with `EMFILE` and nobody is answered. The cap is clamped below the
//!   open-file limit, which [`raise_open_file_limit`] first raises to its hard
//!   limit.
//!
//! Open connections, the cap, waits at the cap and header timeouts are counted in
//! [`TRAFFIC`] and reported by `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;
use crate::telemetry::TRAFFIC;

/// Descriptors kept back from the connection cap for everything else a process
/// opens: the listener, epoll, the runtime's pipes, Redis and upstream
/// connections, files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections served at once (before the open-file limit clamps it).
    pub max_connections: usize,
    /// How long a client has to send a complete request head, from its connection
    /// opening or its previous response ending; `None` waits for ever.
    pub header_timeout: Option<Duration>,
}

/// Raises this process's soft limit on open files to its hard limit and returns
/// the soft limit now in force (unchanged if raising fails: then it is what
/// there is).
pub fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit and setrlimit with a valid resource and a pointer to a
    // local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur as u64;
            }
        }
        limit.rlim_cur as u64
    }
}

/// The connection cap that fits under an open-file limit of `open_files`: the
/// asked-for cap, or fewer so that [`RESERVED_DESCRIPTORS`] stay free (at least
/// one connection, however low the limit).
pub fn effective_cap(asked: usize, open_files: u64) -> usize {
    let room = open_files.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    asked.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Serves `router` on `listener` within `limits` until a shutdown is requested and
/// every open connection has finished its request, or `grace` has passed since
/// the request.
pub async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: &Shutdown,
    grace: Duration,
) where
    L: Listener,
{
    let open_files = raise_open_file_limit();
    let cap = effective_cap(limits.max_connections, open_files);
    if cap < limits.max_connections {
        tracing::warn!(
            asked = limits.max_connections,
            cap,
            open_files,
            "--max-connections lowered to fit the open-file limit"
        );
    }
    TRAFFIC.set_connection_limit(cap);
    let slots = Arc::new(Semaphore::new(cap));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let requested = shutdown.clone().requested();
    tokio::pin!(requested);
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                TRAFFIC.connection_limit_wait();
                tracing::debug!(cap, "every connection slot is taken; not accepting");
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => {
                        slot.expect("the semaphore is never closed")
                    }
                    () = &mut requested => break,
                }
            }
        };
        // `Listener::accept` retries failed accepts itself (after a pause for
        // errors such as EMFILE), so it only ever hands over a connection.
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut requested => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            let _open = TRAFFIC.connection_opened();
            if let Err(error) = connection.await {
                if error.is_timeout() {
                    TRAFFIC.header_timeout();
                }
                tracing::trace!("connection ended: {error}");
            }
            drop(slot);
        });
    }
    // Stop accepting at once: new clients are refused while the open connections
    // finish.
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = shutdown.clone().deadline(grace) => {
            tracing::warn!(?grace, "in-flight requests did not finish in time; exiting anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_descriptors_for_everything_else() {
        assert_eq!(effective_cap(10_000, 1_048_576), 10_000);
        assert_eq!(effective_cap(10_000, 1_024), 1_024 - 128);
        assert_eq!(effective_cap(10_000, 100), 1);
        assert_eq!(effective_cap(5, 1_024), 5);
    }

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let soft = raise_open_file_limit();
        // SAFETY: getrlimit into a local struct.
        let hard = unsafe {
            let mut limit: libc::rlimit = std::mem::zeroed();
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            assert_eq!(limit.rlim_cur as u64, soft);
            limit.rlim_max as u64
        };
        assert_eq!(soft, hard);
    }
}
