//! Telemetry across the processes of a multi-worker server. A connection reaches
//! whichever process accepted it (shared socket) or the kernel hashed it to
//! (`SO_REUSEPORT`), so each process writes its snapshot to
//! a shared folder (made by the supervisor) every [`PUBLISH_EVERY`], from a plain
//! thread that keeps going while the process's event loop is blocked, and whichever
//! process answers `/metrics` reports its siblings from their files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ProcessSnapshot, Telemetry};

/// How often each process refreshes its file.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// This process's place in the group.
#[derive(Debug, Clone)]
pub struct Group {
    pub dir: PathBuf,
    pub index: usize,
}

impl Group {
    fn file(dir: &Path, index: usize) -> PathBuf {
        dir.join(format!("process-{index}.json"))
    }

    /// Starts the thread that publishes this process's snapshot; it lives as long as
    /// the process.
    pub fn start_publishing(&self, telemetry: Arc<Telemetry>) -> std::io::Result<()> {
        let file = Group::file(&self.dir, self.index);
        let partial = self.dir.join(format!(".process-{}.partial", self.index));
        std::thread::Builder::new()
            .name("telemetry-publisher".into())
            .spawn(move || loop {
                if let Ok(json) = serde_json::to_vec(&telemetry.own_snapshot()) {
                    // Written aside and renamed, so a reader never sees half a file.
                    // Failures (the folder removed at shutdown) only cost freshness.
                    let _ = std::fs::write(&partial, json)
                        .and_then(|()| std::fs::rename(&partial, &file));
                }
                std::thread::sleep(PUBLISH_EVERY);
            })?;
        Ok(())
    }

    /// The latest snapshots of the other processes, each with its age.
    pub fn siblings(&self) -> Vec<ProcessSnapshot> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let own = Group::file(&self.dir, self.index);
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path == own || !(name.starts_with("process-") && name.ends_with(".json")) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(mut snapshot) = serde_json::from_slice::<ProcessSnapshot>(&bytes) else {
                continue;
            };
            snapshot.age_s = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            found.push(snapshot);
        }
        found
    }
}
