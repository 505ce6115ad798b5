//! `--http2` against a local h2 server (h2c with prior knowledge, and over TLS with
//! ALPN): connections × streams in flight as asked, headers, body and auth
//! delivered, a server's RST_STREAM and GOAWAY counted by kind, and a server that
//! speaks only HTTP/1.1 named before the run.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use support::processes::{bench_report as report, loadgen, loadgen_ok, temp_dir};
use support::{self_signed_acceptor, serve_in_background};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// What the test server does with each request.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// 200 after `delay`, so that a connection's streams overlap.
    Answer { delay: Duration },
    /// RST_STREAM (REFUSED_STREAM) instead of a response.
    Reset,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    /// Connections that completed the HTTP/2 handshake.
    connections: AtomicU64,
    requests: AtomicU64,
    /// The most streams open at once on any one connection.
    most_concurrent: AtomicU64,
    /// The first few requests.
    samples: Mutex<Vec<Received>>,
}

/// What one request carried.
struct Received {
    method: String,
    authority: String,
    path: String,
    authorization: String,
    x_test: String,
    body: Bytes,
}

struct Http2Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
    _thread: std::thread::JoinHandle<()>,
}

impl Http2Server {
    fn start(behaviour: Behaviour) -> Http2Server {
        Http2Server::start_with(behaviour, None)
    }

    fn start_with(behaviour: Behaviour, tls: Option<tokio_rustls::TlsAcceptor>) -> Http2Server {
        let seen = Arc::new(Seen::default());
        let shared = Arc::clone(&seen);
        let (addr, thread) = serve_in_background(move |listener| async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (seen, tls) = (Arc::clone(&shared), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, behaviour, seen).await;
                            }
                        }
                        None => serve(tcp, behaviour, seen).await,
                    }
                });
            }
        });
        Http2Server {
            addr,
            seen,
            _thread: thread,
        }
    }
}

async fn serve<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: T,
    behaviour: Behaviour,
    seen: Arc<Seen>,
) {
    let Ok(mut connection) = h2::server::handshake(io).await else {
        return;
    };
    seen.connections.fetch_add(1, Ordering::Relaxed);
    let open = Arc::new(AtomicU64::new(0));
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
        seen.most_concurrent.fetch_max(now_open, Ordering::SeqCst);
        let (seen, open) = (Arc::clone(&seen), Arc::clone(&open));
        tokio::spawn(async move {
            let (head, mut body) = request.into_parts();
            let mut received = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                received.extend_from_slice(&chunk);
            }
            seen.requests.fetch_add(1, Ordering::Relaxed);
            {
                let mut samples = seen.samples.lock().unwrap();
                if samples.len() < 5 {
                    let header = |name: &str| {
                        head.headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    samples.push(Received {
                        method: head.method.to_string(),
                        authority: head
                            .uri
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default(),
                        path: head.uri.path().to_owned(),
                        authorization: header("authorization"),
                        x_test: header("x-test"),
                        body: Bytes::from(received),
                    });
                }
            }
            match behaviour {
                Behaviour::Answer { delay } => {
                    tokio::time::sleep(delay).await;
                    let response = http::Response::builder().status(200).body(()).unwrap();
                    if let Ok(mut stream) = respond.send_response(response, false) {
                        let _ = stream.send_data(Bytes::from_static(b"ok"), true);
                    }
                }
                Behaviour::Reset => respond.send_reset(Reason::REFUSED_STREAM),
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// A server written at the frame level, because what it does is what an h2
/// server library will not: on each connection it waits for two requests (streams
/// 1 and 3), sends GOAWAY saying it processed only stream 1, answers that one, and
/// closes. Stream 3 was refused, as a server shutting down or recycling its
/// connections refuses the requests that crossed its GOAWAY.
fn refusing_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
    const HEADERS: u8 = 1;
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const GOAWAY: u8 = 7;
    const ACK: u8 = 1;
    const END_STREAM_AND_HEADERS: u8 = 0x1 | 0x4;
    serve_in_background(|listener| async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if tcp.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let _ = tcp.write_all(&frame(SETTINGS, 0, 0, &[])).await;
                let mut requests = Vec::new();
                loop {
                    let mut head = [0u8; 9];
                    if tcp.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                    let (kind, flags) = (head[3], head[4]);
                    let stream =
                        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & !(1 << 31);
                    let mut payload = vec![0u8; length];
                    if tcp.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let reply = match kind {
                        SETTINGS if flags & ACK == 0 => frame(SETTINGS, ACK, 0, &[]),
                        PING if flags & ACK == 0 => frame(PING, ACK, 0, &payload),
                        HEADERS => {
                            requests.push(stream);
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    if tcp.write_all(&reply).await.is_err() {
                        return;
                    }
                    if let [first, _] = requests[..] {
                        // GOAWAY: last stream processed = the first, NO_ERROR.
                        let mut goaway = first.to_be_bytes().to_vec();
                        goaway.extend_from_slice(&0u32.to_be_bytes());
                        let mut out = frame(GOAWAY, 0, 0, &goaway);
                        // :status 200 is entry 8 of HPACK's static table.
                        out.extend(frame(HEADERS, END_STREAM_AND_HEADERS, first, &[0x88]));
                        let _ = tcp.write_all(&out).await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                }
            });
        }
    })
}

#[test]
fn connections_carry_the_streams_asked_for_in_a_closed_loop() {
    let server = Http2Server::start(Behaviour::Answer {
        delay: Duration::from_millis(20),
    });
    let dir = temp_dir("h2-closed");
    let json = dir.join("r.json");
    let out = loadgen_ok(&[
        "bench",
        "--url",
        &format!("http://{}/", server.addr),
        "--http2",
        "-c",
        "2",
        "--h2-streams",
        "8",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("HTTP/2, 8 streams per connection"),
        "{stdout}"
    );
    let r = report(&json);
    assert_eq!(r.config.protocol, "HTTP/2");
    assert_eq!(r.config.streams_per_connection, 8);
    // The check before the run, then the two connections asked for.
    assert_eq!(server.seen.connections.load(Ordering::Relaxed), 1 + 2);
    // 16 in flight at 20 ms each: several hundred requests a second; with one
    // stream per connection it could not pass 100.
    let s = &r.streams[0];
    assert!(s.counts.status_2xx > 200, "{:?}", s.counts);
    assert_eq!(s.counts.errors(), 0, "{:?}", s.counts);
    assert_eq!(
        server.seen.most_concurrent.load(Ordering::SeqCst),
        8,
        "each connection had its 8 streams open at once, never more"
    );
    assert!(s.setup.is_some(), "the connections' set-up is reported");
}

#[test]
fn an_open_loop_delivers_method_headers_body_and_auth_over_h2c() {
    let server = Http2Server::start(Behaviour::Answer {
        delay: Duration::ZERO,
    });
    let dir = temp_dir("h2-open");
    let json = dir.join("r.json");
    loadgen_ok(&[
        "bench",
        "--url",
        &format!("http://{}/submit", server.addr),
        "--http2",
        "--h2-streams",
        "4",
        "-c",
        "2",
        "--rate",
        "200",
        "-m",
        "POST",
        "-H",
        "x-test: yes",
        "--auth",
        "Aladdin:open sesame",
        "--body",
        "{\"n\":1}",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let s = &report(&json).streams[0];
    assert_eq!(s.counts.status_2xx, 200, "{:?}", s.counts);
    assert_eq!(server.seen.requests.load(Ordering::Relaxed), 200);
    let samples = server.seen.samples.lock().unwrap();
    assert!(!samples.is_empty());
    for r in samples.iter() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.authority, server.addr.to_string());
        assert_eq!(r.path, "/submit");
        assert_eq!(r.authorization, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(r.x_test, "yes");
        assert_eq!(&r.body[..], b"{\"n\":1}");
    }
}

#[test]
fn resets_and_goaways_are_counted_by_kind() {
    let resetting = Http2Server::start(Behaviour::Reset);
    let dir = temp_dir("h2-failures");
    let json = dir.join("reset.json");
    loadgen(&[
        "bench",
        "--url",
        &format!("http://{}/", resetting.addr),
        "--http2",
        "--rate",
        "50",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let c = report(&json).streams[0].counts;
    assert_eq!(c.resets, 50, "{c:?}");
    assert_eq!(c.responses, 0, "{c:?}");
    assert_eq!(c.goaways + c.io_errors, 0, "{c:?}");

    let (refusing, _thread) = refusing_server();
    let json = dir.join("goaway.json");
    loadgen(&[
        "bench",
        "--url",
        &format!("http://{refusing}/"),
        "--http2",
        "-c",
        "1",
        "--h2-streams",
        "2",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let c = report(&json).streams[0].counts;
    // Each connection answers one request and refuses the other by GOAWAY;
    // loadgen opens the next connection itself and goes on.
    assert!(c.goaways >= 5, "{c:?}");
    assert!(c.status_2xx >= 5, "{c:?}");
    assert_eq!(c.resets + c.io_errors + c.connect_errors, 0, "{c:?}");
}

#[test]
fn a_server_without_http2_is_named_before_the_run() {
    // Speaks HTTP/1.1 only: answers whatever arrives with a 400 and closes.
    let requests = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&requests);
    let (addr, _thread) = serve_in_background(move |listener| async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let out = loadgen(&[
        "bench",
        "--url",
        &format!("http://{addr}/"),
        "--http2",
        "--rate",
        "10",
        "-d",
        "1s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot speak HTTP/2") && stderr.contains("h2c"),
        "{stderr}"
    );
    assert_eq!(
        requests.load(Ordering::Relaxed),
        1,
        "only the check connected"
    );
}

#[test]
fn https_negotiates_h2_by_alpn_and_refuses_a_server_that_does_not() {
    let server = Http2Server::start_with(
        Behaviour::Answer {
            delay: Duration::ZERO,
        },
        Some(self_signed_acceptor(&[b"h2"])),
    );
    let dir = temp_dir("h2-tls");
    let json = dir.join("r.json");
    loadgen_ok(&[
        "bench",
        "--url",
        &format!("https://localhost:{}/", server.addr.port()),
        "-k",
        "--http2",
        "--h2-streams",
        "2",
        "--rate",
        "50",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let s = &report(&json).streams[0];
    assert_eq!(s.counts.status_2xx, 50, "{:?}", s.counts);
    assert_eq!(server.seen.requests.load(Ordering::Relaxed), 50);

    let http1_only = Http2Server::start_with(
        Behaviour::Answer {
            delay: Duration::ZERO,
        },
        Some(self_signed_acceptor(&[b"http/1.1"])),
    );
    let out = loadgen(&[
        "bench",
        "--url",
        &format!("https://localhost:{}/", http1_only.addr.port()),
        "-k",
        "--http2",
        "--rate",
        "10",
        "-d",
        "1s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ALPN") && stderr.contains("h2"), "{stderr}");
    assert_eq!(http1_only.seen.requests.load(Ordering::Relaxed), 0);
}
