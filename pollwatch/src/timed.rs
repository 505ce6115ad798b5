//! A future whose every poll is timed and recorded under its route or task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;

use crate::registry::Source;

pin_project! {
    /// `inner`, with the wall time of each of its polls recorded under `source`.
    /// Wall time, not CPU time: a poll that sleeps the thread blocks it as surely
    /// as one that computes.
    pub struct Timed<F> {
        #[pin]
        inner: F,
        source: &'static Source,
    }
}

impl<F> Timed<F> {
    pub(crate) fn new(inner: F, source: &'static Source) -> Timed<F> {
        Timed { inner, source }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let started = Instant::now();
        let outcome = this.inner.poll(cx);
        this.source.record(started, Instant::now());
        outcome
    }
}
