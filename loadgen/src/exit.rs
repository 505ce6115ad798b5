//! How commands end: the exit statuses and the error type every command returns.

use crate::scenario::ConfigError;

/// Exit status when a threshold fails (k6 uses the same).
pub const EXIT_THRESHOLD_FAILED: u8 = 99;

/// Exit status when the run was cut short by Ctrl-C/SIGTERM (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// A failure of a command: bad usage (exit 2, nothing was sent) or a failure while
/// running (exit 1).
#[derive(Debug)]
pub enum CommandError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<ConfigError> for CommandError {
    fn from(e: ConfigError) -> Self {
        CommandError::Usage(e.0)
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(e: anyhow::Error) -> Self {
        CommandError::Failed(e)
    }
}
