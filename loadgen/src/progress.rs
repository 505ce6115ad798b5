//! A progress bar on stderr while a run goes on. indicatif draws nothing when stderr
//! is not a terminal, so logs and CI output stay clean.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Live;

/// The bar of one run (or of one phase of a longer run).
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for a run of `planned` length, prefixed with `label`.
    pub fn new(label: &str, planned: Duration) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(planned.as_millis() as u64),
            ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}, ~{eta} left {msg}")
                .expect("constant template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        Progress { bar }
    }

    /// Shows the latest figures of a run that is the whole bar.
    pub fn update(&self, live: &Live) {
        self.update_at(live.elapsed, live);
    }

    /// Shows the latest figures of a run that started `position` into the bar.
    pub fn update_at(&self, position: Duration, live: &Live) {
        self.bar.set_position(position.as_millis() as u64);
        let mut msg = if live.warming_up {
            "warm-up".to_owned()
        } else {
            String::new()
        };
        for (name, responses, errors) in &live.streams {
            msg.push_str(&format!(" {name}: {responses} ok"));
            if *errors > 0 {
                msg.push_str(&format!(", {errors} err"));
            }
        }
        self.bar.set_message(msg);
    }

    /// Changes the label in front of the bar.
    pub fn set_label(&self, label: String) {
        self.bar.set_prefix(label);
    }

    /// Prints a line above the bar, or on its own when stderr is not a terminal
    /// (CI logs still show which variant and phase is running).
    pub fn note(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
