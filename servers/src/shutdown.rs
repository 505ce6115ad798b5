//! Graceful shutdown on SIGINT or SIGTERM, as one small type every part of the server
//! can wait on.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Becomes "requested" once SIGINT or SIGTERM arrives; cheap to clone and wait on.
#[derive(Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers. Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Shutdown> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!("{name} received: no longer accepting, finishing in-flight requests");
            let _ = tx.send(true);
        });
        Ok(Shutdown { requested: rx })
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(mut self) {
        // An error means the sender is gone, which only happens at exit.
        let _ = self.requested.wait_for(|&r| r).await;
    }

    /// Resolves `grace` after shutdown was requested: the deadline for in-flight work.
    pub async fn deadline(self, grace: Duration) {
        self.requested().await;
        tokio::time::sleep(grace).await;
    }
}
