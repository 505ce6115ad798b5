//! Built-in reference servers whose behaviour is known exactly, for the self-test:
//! `/health` answers at once, `/delay` after an async sleep of the configured length
//! (no CPU used), and every request waits while a stall is in force.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;

/// A reference server on 127.0.0.1, on a runtime thread of its own so the client's
/// runtime does not share its scheduler; stopped when dropped.
pub struct ReferenceServer {
    pub addr: SocketAddr,
    stall_until: Arc<Mutex<Option<Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReferenceServer {
    /// Starts a server whose `/delay` answers after `delay`.
    pub fn start(delay: Duration) -> anyhow::Result<ReferenceServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stall_until = Arc::new(Mutex::new(None::<Instant>));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stall = Arc::clone(&stall_until);
        let thread = std::thread::Builder::new()
            .name("selftest-server".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let wait = move || {
                        let stall = Arc::clone(&stall);
                        async move {
                            let until = *stall.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(until) = until {
                                tokio::time::sleep_until(until.into()).await;
                            }
                        }
                    };
                    let (w1, w2) = (wait.clone(), wait);
                    let app = Router::new()
                        .route(
                            "/health",
                            get(move || async move {
                                w1().await;
                                "ok"
                            }),
                        )
                        .route(
                            "/delay",
                            get(move || async move {
                                w2().await;
                                tokio::time::sleep(delay).await;
                                "ok"
                            }),
                        );
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(ReferenceServer {
            addr,
            stall_until,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// From `after` from now, answer nothing for `length`.
    pub fn stall_later(&self, after: Duration, length: Duration) {
        let stall = Arc::clone(&self.stall_until);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            *stall.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + length);
        });
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
