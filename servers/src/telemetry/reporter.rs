//! The thread that builds the answers of `/metrics` and `/metrics.json`. Copying
//! and encoding the histograms takes about a millisecond: on the event loop it
//! would be a long poll of its own (the very thing the poll timings report), and
//! on tokio's blocking pool it would queue behind the jobs of a variant that
//! fills that pool. One thread of its own, with a short queue, does neither.

use std::sync::mpsc::{sync_channel, SyncSender};

/// Scrapes waiting at most; more at once are refused (503), not queued.
const QUEUE: usize = 16;

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the reporter thread; the thread ends when this is dropped.
pub struct Reporter {
    jobs: SyncSender<Job>,
}

impl Reporter {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Reporter> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("telemetry-reporter".into())
            .spawn(move || {
                for job in queue {
                    job();
                }
            })?;
        Ok(Reporter { jobs })
    }

    /// `work` run on the reporter thread, its result awaited; `None` when the
    /// queue is full (or the thread is gone).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _ = reply.send(work());
            }))
            .ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_off_the_calling_thread_and_refuses_past_its_queue() {
        let reporter = Reporter::start().unwrap();
        let caller = std::thread::current().id();
        let ran_on = reporter.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, caller);

        // Hold the thread, fill the queue: the next one is refused at once.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let busy = reporter.run(move || {
            started.send(()).unwrap();
            held.recv().ok()
        });
        let mut busy = Box::pin(busy);
        assert!(futures_poll_once(&mut busy).await.is_none());
        // Taken off the queue and running: the queue is empty again.
        has_started.recv().unwrap();
        let queued: Vec<_> = (0..QUEUE).map(|_| Box::pin(reporter.run(|| ()))).collect();
        let mut queued = queued;
        for q in &mut queued {
            assert!(futures_poll_once(q).await.is_none(), "queued, not refused");
        }
        assert!(
            reporter.run(|| ()).await.is_none(),
            "past the queue: refused"
        );
        release.send(()).unwrap();
        assert!(busy.await.is_some());
        for q in queued {
            assert!(q.await.is_some());
        }
    }

    /// Polls `f` once: `Some` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
