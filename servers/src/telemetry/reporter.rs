//! The thread that builds the answers of `/metrics` and `/metrics.json`. Copying
//! and encoding the histograms takes about a millisecond: on the event loop it
//! would be a long poll of its own (the very thing the poll timings report), and
//! on tokio's blocking pool it would queue behind the jobs of a variant that
//! fills that pool. One thread of its own, with a short queue, does neither.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

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
                    // A job that panics costs its own answer, not the thread.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Reporter { jobs })
    }

    /// `work` run on the reporter thread, its result awaited.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Busy,
            TrySendError::Disconnected(_) => Refused::Failed,
        })?;
        answer.await.map_err(|_| Refused::Failed)
    }
}

/// Why the reporter gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its queue was full: too many scrapes at once.
    Busy,
    /// The work panicked (or the thread is gone).
    Failed,
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
        // A job that panics fails alone; the thread goes on.
        assert_eq!(
            reporter.run(|| panic!("on purpose")).await,
            Err::<(), _>(Refused::Failed)
        );
        assert_eq!(reporter.run(|| 7).await, Ok(7));

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
        assert_eq!(
            reporter.run(|| ()).await,
            Err(Refused::Busy),
            "past the queue"
        );
        release.send(()).unwrap();
        assert!(busy.await.is_ok());
        for q in queued {
            assert!(q.await.is_ok());
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
