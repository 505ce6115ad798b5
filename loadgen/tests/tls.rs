//! `https://` against a local rustls server with a self-signed certificate: refused
//! without `--insecure` (before any request is sent), answered with it, and the
//! connections' set-up (connect plus handshake) reported apart from latency.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use support::processes::{bench_report as report, loadgen, temp_dir};
use support::{self_signed_acceptor, serve_in_background};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS server on 127.0.0.1 whose certificate no one signed; it answers every
/// request with 200 and counts handshakes (full and resumed) and requests.
struct SelfSignedServer {
    addr: SocketAddr,
    handshakes: Arc<AtomicU64>,
    /// Handshakes that resumed an earlier session instead of a full one.
    resumed: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    _thread: std::thread::JoinHandle<()>,
}

impl SelfSignedServer {
    fn start() -> SelfSignedServer {
        let acceptor = self_signed_acceptor(&[]);
        let handshakes = Arc::new(AtomicU64::new(0));
        let resumed = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (shook, resumes, answered) = (
            Arc::clone(&handshakes),
            Arc::clone(&resumed),
            Arc::clone(&requests),
        );
        let (addr, thread) = serve_in_background(move |listener| async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, shook, resumes, answered) = (
                    acceptor.clone(),
                    Arc::clone(&shook),
                    Arc::clone(&resumes),
                    Arc::clone(&answered),
                );
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return; // a client that refused the certificate
                    };
                    shook.fetch_add(1, Ordering::Relaxed);
                    if tls.get_ref().1.handshake_kind() != Some(rustls::HandshakeKind::Full) {
                        resumes.fetch_add(1, Ordering::Relaxed);
                    }
                    serve(&mut tls, &answered).await;
                });
            }
        });
        SelfSignedServer {
            addr,
            handshakes,
            resumed,
            requests,
            _thread: thread,
        }
    }
}

/// Answers each request head (no bodies are sent here) with a small 200.
async fn serve<S: AsyncReadExt + AsyncWriteExt + Unpin>(stream: &mut S, answered: &AtomicU64) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            pending.drain(..end + 4);
            answered.fetch_add(1, Ordering::Relaxed);
            let close = head.contains("connection: close");
            let response: &[u8] = if close {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            if stream.write_all(response).await.is_err() || stream.flush().await.is_err() {
                return;
            }
            if close {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

#[test]
fn a_self_signed_certificate_is_refused_without_insecure_and_used_with_it() {
    let server = SelfSignedServer::start();
    let url = format!("https://{}/health", server.addr);
    let refused = loadgen(&[
        "bench", "--url", &url, "--rate", "50", "-d", "1s", "-w", "0s",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert_eq!(
        server.requests.load(Ordering::Relaxed),
        0,
        "nothing was sent"
    );
    assert_eq!(
        server.handshakes.load(Ordering::Relaxed),
        0,
        "no handshake completed"
    );

    let dir = temp_dir("tls-insecure");
    let json = dir.join("r.json");
    let accepted = loadgen(&[
        "bench",
        "--url",
        &url,
        "--insecure",
        "--rate",
        "100",
        "-c",
        "4",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let r = report(&json);
    let s = &r.streams[0];
    assert_eq!(s.counts.status_2xx, 100, "100/s for 1 s, all answered");
    assert_eq!(server.requests.load(Ordering::Relaxed), 100);
    // One handshake for the check before the run, one per kept-alive connection.
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 1 + 4);
    let setup = s
        .setup
        .as_ref()
        .expect("the connections' set-up is reported");
    assert!(setup.max_us > 0.0 && setup.p50_us > 0.0, "{setup:?}");
    assert!(stdout.contains("set-up"), "{stdout}");
}

#[test]
fn new_clients_over_tls_each_pay_a_handshake_timed_as_their_connect() {
    let server = SelfSignedServer::start();
    let dir = temp_dir("tls-fresh");
    let json = dir.join("r.json");
    let out = loadgen(&[
        "bench",
        "--url",
        &format!("https://localhost:{}/", server.addr.port()),
        "-k",
        "--fresh-connections",
        "--rate",
        "20",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = &report(&json).streams[0];
    assert_eq!(s.counts.status_2xx, 20);
    // Each request came on a handshake of its own (plus the check before the run).
    assert_eq!(server.handshakes.load(Ordering::Relaxed), 1 + 20);
    assert_eq!(
        server.resumed.load(Ordering::Relaxed),
        0,
        "every connection paid a full handshake, none resumed a session"
    );
    let connect = s.connect.as_ref().expect("new connections' connect times");
    assert!(connect.p50_us > 0.0, "{connect:?}");
}
