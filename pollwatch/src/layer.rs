//! The tower layer timing each request's future under the route axum matched.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::registry::{PollWatch, Source, SourceKind};
use crate::timed::Timed;

/// The route name of requests no route matched (the fallback's).
pub const UNMATCHED: &str = "(unmatched)";

/// Wraps a service so that every poll of its response futures is timed.
#[derive(Clone)]
pub struct PollTimingLayer {
    watch: Arc<PollWatch>,
}

impl PollTimingLayer {
    pub fn new(watch: Arc<PollWatch>) -> PollTimingLayer {
        PollTimingLayer { watch }
    }
}

impl<S> Layer<S> for PollTimingLayer {
    type Service = PollTiming<S>;

    fn layer(&self, inner: S) -> PollTiming<S> {
        PollTiming {
            inner,
            shared: Arc::new(Shared {
                watch: Arc::clone(&self.watch),
                first: OnceLock::new(),
            }),
        }
    }
}

/// The service [`PollTimingLayer`] makes.
#[derive(Clone)]
pub struct PollTiming<S> {
    inner: S,
    /// One reference count for what the clones share (axum clones a route's
    /// service for every request).
    shared: Arc<Shared>,
}

struct Shared {
    watch: Arc<PollWatch>,
    /// The first route this service saw, and its source. Added with
    /// `Router::layer` (or `route_layer`), the layer wraps each route on its
    /// own, so every request of this service matches that route and the
    /// registry is not asked again (a read of an initialised `OnceLock` writes
    /// nothing shared); wrapped around a whole router, it asks for the others.
    first: OnceLock<(Box<str>, &'static Source)>,
}

impl<S, B> Service<Request<B>> for PollTiming<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Keyed by the route's pattern (`/jobs/{id}`), never the raw path, so the
        // set of names is as small as the route table.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str);
        let shared = &self.shared;
        let source = match shared.first.get() {
            Some((name, source)) if **name == *route => *source,
            _ => {
                let source = shared.watch.source(SourceKind::Route, route);
                let _ = shared.first.set((route.into(), source));
                source
            }
        };
        Timed::new(self.inner.call(request), source)
    }
}
