//! The live dashboard (`--live`): a page served by loadgen itself that draws each
//! interval as it closes, over Server-Sent Events.
//!
//! The measuring side only [`LiveFeed::publish`]es small JSON frames: one per
//! stream per interval, one per telemetry sample of the server (from the
//! scraper's task, [`SamplePublisher`]), one per phase and per finished
//! variant of a `run`. Each is a push onto a bounded history and a send on a
//! bounded broadcast channel, microseconds (it can wait for a browser joining
//! just then while the history is copied for it, a few ms at most when the
//! history is full).
//! Everything else (accepting browsers,
//! writing to them) runs on a thread and runtime of its own, so the page cannot
//! slow the run. A browser that joins late gets the history first. One that
//! reads too slowly skips the frames it fell behind by (the channel drops them
//! for it) instead of making loadgen queue them. One that leaves costs nothing.

pub mod frame;
pub mod page;
pub mod replay;
mod samples;
mod server;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

pub use frame::{Frame, Kind, Outcome};
pub use samples::SamplePublisher;
pub use server::LiveServer;

/// Frames kept for browsers that join late (about 30 MB): a day of 1 s
/// intervals of one stream. Past it the oldest intervals go.
const HISTORY: usize = 100_000;

/// Frames a browser may fall behind by before it skips some.
const BACKLOG: usize = 1_024;

/// Where the run's frames go: the history and the browsers connected now.
#[derive(Clone)]
pub struct LiveFeed {
    shared: Arc<Shared>,
}

struct Shared {
    history: Mutex<VecDeque<Arc<str>>>,
    sender: Mutex<Option<broadcast::Sender<Arc<str>>>>,
    /// When the current phase's measurement started, and where that is on the
    /// section's axis (`None` before it starts): the telemetry scraper's frames
    /// are placed by it.
    axis: Mutex<Option<(SystemTime, f64)>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(BACKLOG);
        LiveFeed {
            shared: Arc::new(Shared {
                history: Mutex::new(VecDeque::new()),
                sender: Mutex::new(Some(sender)),
                axis: Mutex::new(None),
            }),
        }
    }
}

impl LiveFeed {
    /// Sends `frame` to every browser connected and keeps it for later ones.
    pub fn publish(&self, frame: &Frame) {
        let Ok(text) = serde_json::to_string(frame) else {
            return;
        };
        let text: Arc<str> = text.into();
        // Kept and sent under the history's lock, as `subscribe` takes both: a
        // browser joining now gets each frame once, from the history or the
        // channel.
        let mut history = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY {
            // The run's description stays first.
            history.remove(1);
        }
        history.push_back(Arc::clone(&text));
        if let Some(sender) = &*self.shared.sender.lock().unwrap_or_else(|e| e.into_inner()) {
            // No browser connected is not an error.
            let _ = sender.send(text);
        }
    }

    /// Sets where the section's axis is: measurement started at `since`, which
    /// is `offset_s` along it (`None`: not measuring, as between phases).
    pub fn set_axis(&self, axis: Option<(SystemTime, f64)>) {
        *self.shared.axis.lock().unwrap_or_else(|e| e.into_inner()) = axis;
    }

    /// When measurement started and where that is on the axis, if it has.
    pub fn axis(&self) -> Option<(SystemTime, f64)> {
        *self.shared.axis.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every browser's stream (after the frames already sent).
    pub fn close(&self) {
        self.shared
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    /// The frames so far and a receiver of the ones to come (`None` once closed):
    /// taken under one lock, so no frame is missed or sent twice.
    fn subscribe(&self) -> (Vec<Arc<str>>, Option<broadcast::Receiver<Arc<str>>>) {
        let history = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let receiver = self
            .shared
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(broadcast::Sender::subscribe);
        (history.iter().cloned().collect(), receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame told apart by `n`: the second says `interrupted`.
    fn frame(n: u64) -> Frame {
        Frame::End {
            outcome: if n == 1 {
                Outcome::Interrupted
            } else {
                Outcome::Finished
            },
            error: None,
        }
    }

    #[test]
    fn a_late_subscriber_gets_the_history_then_what_follows() {
        let feed = LiveFeed::default();
        feed.publish(&frame(0));
        let (history, receiver) = feed.subscribe();
        assert_eq!(history.len(), 1);
        let mut receiver = receiver.unwrap();
        feed.publish(&frame(1));
        assert!(receiver.try_recv().unwrap().contains("interrupted"));
        feed.close();
        assert!(receiver.try_recv().is_err());
        let (history, receiver) = feed.subscribe();
        assert_eq!(history.len(), 2);
        assert!(receiver.is_none());
    }

    #[test]
    fn a_slow_subscriber_skips_frames_instead_of_holding_them() {
        let feed = LiveFeed::default();
        let (_, receiver) = feed.subscribe();
        let mut receiver = receiver.unwrap();
        for n in 0..(BACKLOG as u64 + 10) {
            feed.publish(&frame(n));
        }
        assert!(matches!(
            receiver.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(10))
        ));
    }
}
