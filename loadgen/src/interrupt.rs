//! Ctrl-C and SIGTERM as a value the run loop can watch: the run stops early, keeps
//! what it measured, and marks its report as interrupted.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Becomes "interrupted" once SIGINT or SIGTERM arrives (or never, for tests).
#[derive(Clone)]
pub struct Interrupt {
    flag: watch::Receiver<bool>,
    /// Keeps the channel open for [`Interrupt::never`].
    _keep: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl Interrupt {
    /// Listens for SIGINT and SIGTERM. Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Interrupt> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(Interrupt {
            flag: rx,
            _keep: None,
        })
    }

    /// An interrupt that never fires.
    pub fn never() -> Interrupt {
        let (tx, rx) = watch::channel(false);
        Interrupt {
            flag: rx,
            _keep: Some(std::sync::Arc::new(tx)),
        }
    }

    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        *self.flag.borrow()
    }

    /// Resolves when it fires.
    pub async fn wait(&self) {
        let mut flag = self.flag.clone();
        if flag.wait_for(|&f| f).await.is_err() {
            // The listener task is gone (runtime shutting down): never fires.
            std::future::pending::<()>().await;
        }
    }
}
