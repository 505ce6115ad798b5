//! loadgen's HTTP client (HTTP/1.1 of its own; HTTP/2 on the `h2` crate). It decides exactly how many connections exist (no pool
//! opening extra ones behind its back), sends prepared request bytes and reads
//! responses in place, and names the ways a request can fail.
//!
//! It is written for this job rather than taken from hyper: hyper's client
//! connection (a dispatcher task fed through a channel, a request and header map
//! built per request) cost about 5 µs of CPU per request on these machines against
//! wrk's 1.3 µs in user space, and the load generator must not be the bottleneck.
//! Parsing is `httparse`'s, the same parser hyper uses.

mod connection;
mod endpoint;
mod http2;
mod request;
mod response;
mod slot;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

pub use connection::{Connection, SendError};
pub use endpoint::Endpoint;
pub use http2::{Http2Connection, Http2Lane};
pub use request::{PreparedRequest, RequestError, USER_AGENT_VALUE};
pub use response::{ProtocolError, MAX_KEPT_BODY_BYTES};
pub use slot::Slot;
pub use tls::TlsSettings;

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No connection could be made (refused, unreachable, handshake failed).
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// The connection broke while the request was in flight (reset, closed early,
    /// unparsable response).
    Io,
    /// Still unanswered when the run stopped waiting for it.
    Abandoned,
    /// A body loadgen keeps (a job submission's or status poll's answer) was
    /// larger than [`MAX_KEPT_BODY_BYTES`].
    TooLarge,
    /// HTTP/2: the server reset the request's stream (RST_STREAM).
    Reset,
    /// HTTP/2: the server sent GOAWAY while the request was in flight.
    GoAway,
}

/// One GET on a fresh connection, returning status and body: for control-plane
/// calls such as reading a server's `/info`, never for measurement.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let request = PreparedRequest::get(path, &addr.to_string())?;
    let exchange = async {
        let mut connection = Connection::open(addr).await?;
        let mut body = Vec::new();
        // The SendError stays in the chain, so a caller can tell "too large".
        let status = connection
            .send(&request, Some(&mut body))
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("GET {path} on {addr}")))?;
        anyhow::Ok((status, Bytes::from(body)))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("GET {path} on {addr}: no answer within {timeout:?}"))?
}
