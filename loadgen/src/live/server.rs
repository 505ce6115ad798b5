//! The dashboard's HTTP side: the page, its vendored chart library (uPlot, see
//! `loadgen/assets/uplot/`), and `/events`, the frames as Server-Sent Events. It
//! runs on a thread and a single-threaded runtime of its own, apart from the
//! runtime that measures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use super::page::{self, UPLOT_CSS, UPLOT_JS};
use super::{Frame, LiveFeed, Outcome};

/// How long stopping waits for the browsers to be told the run ended.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// The dashboard being served.
pub struct LiveServer {
    addr: SocketAddr,
    feed: LiveFeed,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveServer {
    /// Binds `addr` (port 0: any free one) and serves a new feed from there,
    /// printing the page's address once it is served (what the tests and the
    /// user read).
    pub fn start(addr: SocketAddr) -> anyhow::Result<LiveServer> {
        let feed = LiveFeed::default();
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("--live {addr}: cannot listen: {e}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let app = router(feed.clone());
        let thread = std::thread::Builder::new()
            .name("loadgen-live".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })?;
        // The address is printed only once it is served.
        started
            .recv()
            .map_err(|_| anyhow::anyhow!("the dashboard's thread ended before serving"))?
            .map_err(|e| anyhow::anyhow!("--live {addr}: {e}"))?;
        let server = LiveServer {
            addr,
            feed,
            shutdown: Some(shutdown),
            thread: Some(thread),
        };
        eprintln!("live dashboard: {}", server.url());
        Ok(server)
    }

    /// The page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Where the run's frames go.
    pub fn feed(&self) -> &LiveFeed {
        &self.feed
    }

    /// Tells every browser how the run ended, ends their streams and stops
    /// serving, waiting a little for the browsers to be told (a browser that
    /// reads nothing is not waited for).
    pub fn finish(mut self, outcome: Outcome, error: Option<String>) {
        self.end(outcome, error);
    }

    fn end(&mut self, outcome: Outcome, error: Option<String>) {
        if self.shutdown.is_none() {
            return;
        }
        self.feed.publish(&Frame::End { outcome, error });
        self.feed.close();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + STOP_WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for LiveServer {
    /// A dashboard dropped without [`LiveServer::finish`]: the run failed.
    fn drop(&mut self) {
        self.end(Outcome::Failed, None);
    }
}

fn router(feed: LiveFeed) -> Router {
    Router::new()
        .route("/", get(|| async { Html(page::served()) }))
        .route(
            "/uplot.js",
            get(|| async { asset("text/javascript; charset=utf-8", UPLOT_JS) }),
        )
        .route(
            "/uplot.css",
            get(|| async { asset("text/css; charset=utf-8", UPLOT_CSS) }),
        )
        .route("/events", get(events))
        .fallback(not_found)
        .with_state(feed)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": "not found: the dashboard serves /, /events, /uplot.js and /uplot.css"
        })),
    )
        .into_response()
}

/// The history so far, then every frame as it comes, until the run ends.
async fn events(
    State(feed): State<LiveFeed>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (history, receiver) = feed.subscribe();
    let coming = futures_util::stream::unfold(receiver, |receiver| async move {
        let mut receiver = receiver?;
        loop {
            match receiver.recv().await {
                Ok(frame) => return Some((frame, Some(receiver))),
                // Fell behind: skip what was dropped for it, go on from here.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let frames = futures_util::stream::iter(history).chain(coming);
    Sse::new(frames.map(|frame| Ok(Event::default().data(&*frame))))
        .keep_alive(KeepAlive::default())
}
