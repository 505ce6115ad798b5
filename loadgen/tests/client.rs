//! loadgen's HTTP/1.1 client over real loopback sockets: connections are kept and
//! reused, replaced without an error when the server closed them while idle,
//! responses arrive in any split, and the timeout clock (kept across requests)
//! neither fires early for a later request nor fails to fire.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use loadgen::client::{Failure, PreparedRequest, Slot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server does with each request on a connection.
#[derive(Clone, Copy)]
enum Script {
    /// Answers every request with a small keep-alive response.
    KeepAlive,
    /// Answers, then closes the connection without saying so.
    CloseAfterAnswer,
    /// Answers with `Connection: close`, then closes.
    AnnouncedClose,
    /// Answers with a chunked body written a few bytes at a time.
    Trickle,
    /// Waits as many milliseconds as the request path's number, then answers.
    DelayFromPath,
}

struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

async fn serve(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(connection(stream, script, Arc::clone(&r)));
        }
    });
    Server {
        addr,
        connections,
        requests,
    }
}

async fn connection(mut stream: TcpStream, script: Script, requests: Arc<AtomicU64>) {
    let mut pending = Vec::new();
    loop {
        // One request head (the tests send no bodies).
        let head_end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut buf = [0u8; 1024];
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
        pending.drain(..head_end);
        requests.fetch_add(1, Ordering::Relaxed);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        match script {
            Script::KeepAlive => stream.write_all(ok).await.unwrap(),
            Script::CloseAfterAnswer => {
                stream.write_all(ok).await.unwrap();
                return;
            }
            Script::AnnouncedClose => {
                let wire = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
                stream.write_all(wire).await.unwrap();
                return;
            }
            Script::Trickle => {
                let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                    4\r\nslow\r\n5\r\n body\r\n0\r\n\r\n";
                for piece in wire.chunks(3) {
                    stream.write_all(piece).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Script::DelayFromPath => {
                let ms: u64 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|path| path.trim_start_matches('/').parse().ok())
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if stream.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn get(server: &Server, path: &str) -> PreparedRequest {
    PreparedRequest::get(path, &server.addr.to_string()).unwrap()
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn one_connection_carries_every_request() {
    let server = serve(Script::KeepAlive).await;
    let mut slot = Slot::new(server.addr, None);
    let request = get(&server, "/");
    for _ in 0..200 {
        let mut body = Vec::new();
        let status = slot
            .exchange(&request, Instant::now() + TIMEOUT, Some(&mut body))
            .await;
        assert_eq!(status, Ok(StatusCode::OK));
        assert_eq!(body, b"ok");
    }
    assert_eq!(server.requests.load(Ordering::Relaxed), 200);
    assert_eq!(server.connections.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn connections_closed_by_the_server_are_replaced_without_an_error() {
    for script in [Script::CloseAfterAnswer, Script::AnnouncedClose] {
        let server = serve(script).await;
        let mut slot = Slot::new(server.addr, None);
        let request = get(&server, "/");
        for _ in 0..20 {
            assert_eq!(
                slot.exchange(&request, Instant::now() + TIMEOUT, None)
                    .await,
                Ok(StatusCode::OK)
            );
            // Give an unannounced close time to arrive, as an idle keep-alive
            // timeout on a server would.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Each request on its own connection, none sent twice.
        assert_eq!(server.requests.load(Ordering::Relaxed), 20);
        assert_eq!(server.connections.load(Ordering::Relaxed), 20);
    }
}

#[tokio::test]
async fn a_response_trickling_in_is_read_whole() {
    let server = serve(Script::Trickle).await;
    let mut slot = Slot::new(server.addr, None);
    for _ in 0..3 {
        let mut body = Vec::new();
        let status = slot
            .exchange(
                &get(&server, "/"),
                Instant::now() + TIMEOUT,
                Some(&mut body),
            )
            .await;
        assert_eq!(status, Ok(StatusCode::OK));
        assert_eq!(body, b"slow body");
    }
    assert_eq!(server.connections.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_timeout_clock_kept_across_requests_is_exact_for_each() {
    let server = serve(Script::DelayFromPath).await;
    let timeout = Duration::from_millis(400);
    let mut slot = Slot::new(server.addr, None);
    // Arms the clock for this first request's deadline.
    assert_eq!(
        slot.exchange(&get(&server, "/0"), Instant::now() + timeout, None)
            .await,
        Ok(StatusCode::OK)
    );
    // A later request's deadline is later: the clock, still set for the first
    // one, fires during this wait and must not end a request that has time left
    // (it answers at ~1.6× the first deadline, within its own).
    tokio::time::sleep(timeout / 2).await;
    assert_eq!(
        slot.exchange(&get(&server, "/250"), Instant::now() + timeout, None)
            .await,
        Ok(StatusCode::OK)
    );
    // One that takes far longer than the timeout ends at the timeout.
    let asked = Instant::now();
    assert_eq!(
        slot.exchange(&get(&server, "/20000"), Instant::now() + timeout, None)
            .await,
        Err(Failure::Timeout)
    );
    let waited = asked.elapsed();
    assert!(waited >= timeout, "{waited:?}");
    assert!(waited < timeout * 10, "{waited:?}");
    // The timed-out connection is not reused.
    assert_eq!(
        slot.exchange(&get(&server, "/0"), Instant::now() + timeout, None)
            .await,
        Ok(StatusCode::OK)
    );
    assert_eq!(server.connections.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn head_requests_read_no_body() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        for _ in 0..2 {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HEAD /big HTTP/1.1\r\n"));
            // The length of the body a GET would get, and no body.
            let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n";
            stream.write_all(wire).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let request = PreparedRequest::new(&Method::HEAD, "/big", &addr.to_string(), &[], &[]).unwrap();
    let mut slot = Slot::new(addr, None);
    for _ in 0..2 {
        assert_eq!(
            slot.exchange(&request, Instant::now() + TIMEOUT, None)
                .await,
            Ok(StatusCode::OK)
        );
    }
}

#[tokio::test]
async fn a_malformed_response_is_an_io_failure_and_the_connection_is_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while stream.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    if stream
                        .write_all(b"HTTP/1.1 2xx Fine\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let request = PreparedRequest::get("/", &addr.to_string()).unwrap();
    let mut slot = Slot::new(addr, None);
    for _ in 0..3 {
        assert_eq!(
            slot.exchange(&request, Instant::now() + TIMEOUT, None)
                .await,
            Err(Failure::Io)
        );
    }
    assert_eq!(connections.load(Ordering::Relaxed), 3);
}
