//! Headless Chromium for the tests that render pages: found where installed
//! (`.ci/run` installs Debian's `chromium`), started with a profile of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the program `name` is on the PATH, if it is.
pub fn which(name: &str) -> Option<PathBuf> {
    let out = Command::new("which").arg(name).output().ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Headless Chromium, where installed (`.ci/run` installs Debian's `chromium`).
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| which(name))
}

/// Chromium's flags for a test: headless, and none of its own network traffic
/// (this machine's network is closed; its attempts only slow it down).
pub const HEADLESS_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

pub fn headless(browser: &Path, profile: &Path) -> Command {
    let mut command = Command::new(browser);
    command.args(HEADLESS_FLAGS);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}
