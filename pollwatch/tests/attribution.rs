//! What blocked is named: the route whose request future blocked, or the task.
//! Ratios only: a blocked poll is at least the block's length, an await is
//! under half of it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::Request;
use pollwatch::{PollWatch, Snapshot, SourceKind};
use tower::ServiceExt;

const BLOCK: Duration = Duration::from_millis(50);

fn longest(snapshot: &Snapshot, kind: SourceKind, name: &str) -> Duration {
    snapshot
        .sources
        .iter()
        .find(|s| s.kind == kind && s.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {name} in {snapshot:?}"))
        .max
}

async fn get_path(app: &Router, path: &str) -> http::StatusCode {
    let request = Request::get(path).body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn a_route_that_blocks_has_a_long_poll_and_one_that_awaits_has_none() {
    // Long means half the block: a poll the kernel preempts for a millisecond or
    // two on a busy machine is not one.
    let watch = PollWatch::with_threshold(BLOCK / 2);
    let app = Router::new()
        .route(
            "/blocks/{n}",
            get(|| async {
                std::thread::sleep(BLOCK);
                "done"
            }),
        )
        .route(
            "/awaits",
            get(|| async {
                tokio::time::sleep(BLOCK).await;
                "done"
            }),
        )
        .layer(watch.layer());
    assert_eq!(get_path(&app, "/blocks/7").await, 200);
    assert_eq!(get_path(&app, "/awaits").await, 200);
    assert_eq!(get_path(&app, "/nowhere").await, 404);

    let s = watch.snapshot();
    // Keyed by the pattern, not the path.
    assert!(longest(&s, SourceKind::Route, "/blocks/{n}") >= BLOCK);
    assert!(longest(&s, SourceKind::Route, "/awaits") < BLOCK / 2);
    assert!(s.sources.iter().any(|x| x.name == pollwatch::UNMATCHED));
    let long: Vec<&str> = s.long_polls.iter().map(|p| &*p.name).collect();
    assert_eq!(long, ["/blocks/{n}"]);
    assert!(s.long_polls[0].duration >= BLOCK);
    // The sleeping route was polled at least twice: once to start the timer, once
    // when it fired.
    let awaits = s.sources.iter().find(|x| x.name == "/awaits").unwrap();
    assert!(awaits.histogram.len() >= 2, "{}", awaits.histogram.len());
}

#[tokio::test]
async fn a_background_task_that_blocks_is_named_not_the_route_that_spawned_it() {
    // The seeds' case: `POST /profile` answers at once, and the work it left
    // behind blocks the loop afterwards.
    let watch = PollWatch::with_threshold(BLOCK / 2);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let app = {
        let spawner = Arc::clone(&watch);
        Router::new()
            .route(
                "/profile",
                get(move || {
                    let watch = Arc::clone(&spawner);
                    let done_tx = Arc::clone(&done_tx);
                    async move {
                        watch.spawn("profile", async move {
                            std::thread::sleep(BLOCK);
                            if let Some(tx) = done_tx.lock().unwrap().take() {
                                let _ = tx.send(());
                            }
                        });
                        "accepted"
                    }
                }),
            )
            .layer(watch.layer())
    };
    assert_eq!(get_path(&app, "/profile").await, 200);
    done_rx.await.unwrap();

    let s = watch.snapshot();
    assert!(longest(&s, SourceKind::Task, "profile") >= BLOCK);
    assert!(longest(&s, SourceKind::Route, "/profile") < BLOCK / 2);
    let long: Vec<(SourceKind, &str)> = s.long_polls.iter().map(|p| (p.kind, &*p.name)).collect();
    assert_eq!(long, [(SourceKind::Task, "profile")]);
}
