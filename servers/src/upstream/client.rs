//! The two clients a server process uses to call its upstream (`--upstream URL`),
//! built once at start-up and shared by every request.
//!
//! The synchronous one is `ureq`: it does its socket I/O on the calling thread and
//! blocks it for the whole call, which is exactly what `requests.post` does in a
//! Python worker thread. `reqwest::blocking` was not used because it is not
//! synchronous underneath: it hands every call to a hidden tokio runtime on a
//! thread of its own and parks the caller, and it panics when its client is dropped
//! (or, in builds with debug assertions, used) on a thread that runs an async
//! runtime, which is exactly where the inline variants would call it.
//!
//! The async one is `reqwest`'s client, awaited by the `async-io` variant: a call
//! holds no thread while it waits. Its calls in flight are capped by a semaphore
//! ([`MAX_ASYNC_CALLS`]), so a flood of requests queues at the cap instead of
//! opening unbounded connections to the upstream.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;

/// Longest one upstream call may take, connect included, with either client.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Most calls the async client has in flight at once: eight times tokio's default
/// cap on blocking threads (512), because a waiting call costs a socket and a
/// timer here, not a thread with its stack. Still a bound: a flood waits for a
/// slot instead of opening connections without end.
pub const MAX_ASYNC_CALLS: usize = 4096;

/// Idle keep-alive connections the synchronous client keeps for reuse; as many
/// as calls can be in flight on the largest thread pool a variant runs, so a
/// call rarely pays for a new connection (and loopback does not fill with
/// TIME_WAIT sockets).
const MAX_IDLE_CONNECTIONS: usize = 512;

/// The upstream of this process and the clients that call it.
struct Upstream {
    /// `http://HOST:PORT`, without a trailing slash.
    base: String,
    blocking: ureq::Agent,
    async_client: reqwest::Client,
    async_permits: Semaphore,
}

static UPSTREAM: OnceLock<Upstream> = OnceLock::new();

/// Sets this process's upstream (`--upstream URL`); only loopback unless
/// `allow_remote`. Called once, before serving.
pub fn configure(url: &str, allow_remote: bool) -> anyhow::Result<()> {
    let base = parse_base(url, allow_remote)?;
    let blocking = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .timeout_global(Some(CALL_TIMEOUT))
            .max_idle_connections(MAX_IDLE_CONNECTIONS)
            .max_idle_connections_per_host(MAX_IDLE_CONNECTIONS)
            .build(),
    );
    let async_client = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .context("cannot build the async upstream client")?;
    UPSTREAM
        .set(Upstream {
            base,
            blocking,
            async_client,
            async_permits: Semaphore::new(MAX_ASYNC_CALLS),
        })
        .map_err(|_| anyhow::anyhow!("the upstream is already set"))
}

/// Whether this process has an upstream to call.
pub fn configured() -> bool {
    UPSTREAM.get().is_some()
}

/// `URL` checked and reduced to `http://HOST:PORT`: plain HTTP (the upstream is a
/// test subject), a literal IP address, loopback unless `allow_remote`.
fn parse_base(url: &str, allow_remote: bool) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--upstream {url:?} must start with http://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let addr: std::net::SocketAddr = authority.parse().with_context(|| {
        format!("--upstream {url:?} must name an IP address and port, e.g. http://127.0.0.1:9000")
    })?;
    if !addr.ip().is_loopback() && !allow_remote {
        anyhow::bail!(
            "--upstream {url:?} is not a loopback address; add --allow-remote to call other machines"
        );
    }
    Ok(format!("http://{addr}"))
}

fn upstream() -> Result<&'static Upstream, String> {
    UPSTREAM
        .get()
        .ok_or_else(|| "this server has no upstream (start it with --upstream URL)".to_owned())
}

fn delay_path(base: &str, delay: Duration) -> String {
    format!("{base}/delay?ms={}", delay.as_millis())
}

/// One call that waits `delay` at the upstream, made with the synchronous client:
/// the calling thread is blocked until the answer (or the timeout).
pub fn call_blocking(delay: Duration) -> Result<(), String> {
    let upstream = upstream()?;
    let mut response = upstream
        .blocking
        .get(&delay_path(&upstream.base, delay))
        .call()
        .map_err(|e| format!("upstream call failed: {e}"))?;
    // Read the body so the connection goes back to the pool.
    response
        .body_mut()
        .read_to_string()
        .map(drop)
        .map_err(|e| format!("upstream answer unreadable: {e}"))
}

/// One of the async client's [`MAX_ASYNC_CALLS`] slots, held for one call; a
/// caller waits here while every slot is taken (time it spends queued, not
/// calling).
pub async fn async_slot() -> Result<tokio::sync::SemaphorePermit<'static>, String> {
    upstream()?
        .async_permits
        .acquire()
        .await
        .map_err(|_| "the upstream client is closed".to_owned())
}

/// The same call made with the async client, by a caller that holds a slot
/// ([`async_slot`]): the task waits, no thread does.
pub async fn call_async(delay: Duration) -> Result<(), String> {
    let upstream = upstream()?;
    let response = upstream
        .async_client
        .get(delay_path(&upstream.base, delay))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("upstream call failed: {e}"))?;
    response
        .bytes()
        .await
        .map(drop)
        .map_err(|e| format!("upstream answer unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_must_be_a_loopback_http_address_unless_allowed() {
        assert_eq!(
            parse_base("http://127.0.0.1:9000", false).unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            parse_base("http://[::1]:9000/anything", false).unwrap(),
            "http://[::1]:9000"
        );
        assert!(parse_base("https://127.0.0.1:9000", false).is_err());
        assert!(parse_base("http://localhost:9000", false).is_err());
        assert!(parse_base("http://127.0.0.1", false).is_err());
        let remote = parse_base("http://192.0.2.1:80", false).unwrap_err();
        assert!(remote.to_string().contains("--allow-remote"), "{remote}");
        assert!(parse_base("http://192.0.2.1:80", true).is_ok());
    }
}
