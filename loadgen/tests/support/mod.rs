//! Test servers for the load generator's tests, each on its own runtime thread and
//! loopback port: fast, slow, paused for a while, failing, closing connections
//! without answering, or never answering.

#![allow(dead_code)] // each test file uses a different part

pub mod browser;
pub mod live;
pub mod processes;
pub mod synthetic;
pub mod webdriver;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::serve::ListenerExt;
use axum::Router;
use loadgen::engine::{self, NoObserver, RunOutcome};
use loadgen::interrupt::Interrupt;
use loadgen::plan::{Load, Plan, Timing};
use tokio::io::AsyncReadExt;

/// How a test server answers.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 at once.
    Fast,
    /// 200 after this long (an async sleep: no CPU used).
    Delay(Duration),
    /// 500 at once.
    Fail,
    /// This status with this JSON body, at once.
    Json(StatusCode, &'static str),
    /// A job API that forgets its jobs: every POST gets 202 with a job id, every
    /// other request a 404 (as a process that never saw the job answers).
    Forgetful,
    /// Reads the request, then closes the connection without a response.
    Close,
    /// Reads the request and never answers.
    Silent,
}

/// A server on 127.0.0.1, stopped (every connection dropped) when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Requests that reached the server.
    pub requests: Arc<AtomicU64>,
    /// Connections it accepted.
    pub connections: Arc<AtomicU64>,
    /// When set, every request waits until this instant before it is answered.
    pub paused_until: Arc<Mutex<Option<Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> TestServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = Arc::clone(&connections);
        let paused_until = Arc::new(Mutex::new(None::<Instant>));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (count, pause) = (Arc::clone(&requests), Arc::clone(&paused_until));
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let serve = async move {
                    match behaviour {
                        Behaviour::Close | Behaviour::Silent => {
                            raw_server(listener, behaviour, count).await
                        }
                        _ => {
                            let app = Router::new().fallback(any(move |method: Method| {
                                let (count, pause, behaviour) =
                                    (count.clone(), pause.clone(), behaviour.clone());
                                async move { answer(method, count, pause, behaviour).await }
                            }));
                            let listener = listener.tap_io(move |_| {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            });
                            axum::serve(listener, app).await.unwrap();
                        }
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        TestServer {
            addr,
            requests,
            connections,
            paused_until,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server: the listener and every connection go away.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }

    /// From `after` from now, answer nothing for `length`.
    pub fn pause_later(&self, after: Duration, length: Duration) {
        let pause = Arc::clone(&self.paused_until);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            *pause.lock().unwrap() = Some(Instant::now() + length);
        });
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(
    method: Method,
    count: Arc<AtomicU64>,
    pause: Arc<Mutex<Option<Instant>>>,
    behaviour: Behaviour,
) -> Response {
    count.fetch_add(1, Ordering::Relaxed);
    let until = *pause.lock().unwrap();
    if let Some(until) = until {
        tokio::time::sleep_until(until.into()).await;
    }
    match behaviour {
        Behaviour::Delay(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
        Behaviour::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Behaviour::Json(status, body) => {
            (status, [(CONTENT_TYPE, "application/json")], body).into_response()
        }
        Behaviour::Forgetful if method == Method::POST => (
            StatusCode::ACCEPTED,
            [(CONTENT_TYPE, "application/json")],
            r#"{"id": "forgotten"}"#,
        )
            .into_response(),
        Behaviour::Forgetful => StatusCode::NOT_FOUND.into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

async fn raw_server(
    listener: tokio::net::TcpListener,
    behaviour: Behaviour,
    count: Arc<AtomicU64>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let count = Arc::clone(&count);
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                count.fetch_add(1, Ordering::Relaxed);
            }
            if let Behaviour::Silent = behaviour {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            // Dropping the stream closes the connection.
        });
    }
}

/// Binds 127.0.0.1 on a free port and runs `serve` with that listener on a
/// runtime of one worker in a thread of its own, for as long as the test runs;
/// returns the address and the thread.
pub fn serve_in_background<F, Fut>(serve: F) -> (SocketAddr, std::thread::JoinHandle<()>)
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            serve(tokio::net::TcpListener::from_std(listener).unwrap()).await
        });
    });
    (addr, thread)
}

/// A TLS acceptor with a certificate no one signed, for `localhost` and
/// `127.0.0.1`, offering `alpn` (none: no ALPN).
pub fn self_signed_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// A one-stream plan against `url`.
pub fn plan(url: &str, load: Load, duration: Duration, warmup: Duration) -> Plan {
    let timing = Timing {
        duration,
        warmup,
        drain: Duration::from_secs(6),
        ..Timing::default()
    };
    Plan::get(url, "main", load, timing).unwrap()
}

/// Runs `plan` on a fresh runtime.
pub fn run(plan: &Plan) -> anyhow::Result<RunOutcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(engine::run(plan, &mut NoObserver, &Interrupt::never()))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A loopback port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
