//! What a run started at a wall-clock instant (`bench --start-at`) records about
//! that start: the agents of a multi-host run agree on when to begin only as well
//! as their clocks agree, so each report says how late it began by its own clock
//! and what its kernel says about that clock (synchronized or not, and the error
//! the time daemon estimates). `loadgen merge` lists both for every agent.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How one agent's start at `--start-at` went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartSync {
    /// The instant asked for, RFC 3339.
    pub start_at: String,
    /// This host's name, to tell the agents of a merge apart.
    pub host: String,
    /// How long after `start_at` the first request was due, by this host's clock
    /// (0 when its connections were open in time).
    pub late_ms: f64,
    /// What the kernel says about the clock; `None` where it cannot be read.
    pub clock: Option<ClockStatus>,
}

impl StartSync {
    /// The record of a run asked to start at `start_at` that started `late`
    /// after it, its clock as read at the start.
    pub fn new(start_at: SystemTime, late: Duration, clock: Option<ClockStatus>) -> StartSync {
        StartSync {
            start_at: humantime::format_rfc3339_micros(start_at).to_string(),
            host: host_name(),
            late_ms: late.as_secs_f64() * 1e3,
            clock,
        }
    }

    /// The clock assumption in words, for summaries.
    pub fn describe(&self) -> String {
        let clock = match &self.clock {
            // systemd-timesyncd, for one, sets no error estimate at all.
            Some(c) if c.synchronized && c.estimated_error_us == 0.0 => {
                "clock synchronized, error estimate not reported".into()
            }
            Some(c) if c.synchronized => format!(
                "clock synchronized, estimated error ±{} µs (at most {} µs)",
                c.estimated_error_us, c.max_error_us
            ),
            Some(_) => "clock NOT synchronized: its offset from other hosts is unknown".into(),
            None => "clock state unknown".into(),
        };
        format!(
            "started at {} on {} ({:.3} ms late by its clock; {clock}); hosts' clocks are assumed to agree",
            self.start_at, self.host, self.late_ms
        )
    }
}

/// The kernel's view of its clock (`adjtimex`, read only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClockStatus {
    /// Whether a time daemon (NTP, PTP) keeps the clock synchronized.
    pub synchronized: bool,
    /// The error the daemon estimates, in µs.
    pub estimated_error_us: f64,
    /// The most the error may be, in µs.
    pub max_error_us: f64,
}

impl ClockStatus {
    /// Reads the clock's state; `None` if the kernel refuses.
    pub fn read() -> Option<ClockStatus> {
        // SAFETY: a zeroed timex (modes 0) asks adjtimex only to read the state
        // into it; it is a plain C struct.
        let mut timex: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: `timex` is a valid, exclusively borrowed timex.
        let state = unsafe { libc::adjtimex(&mut timex) };
        if state < 0 {
            return None;
        }
        Some(ClockStatus {
            synchronized: state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0,
            estimated_error_us: timex.esterror as f64,
            max_error_us: timex.maxerror as f64,
        })
    }
}

/// This host's name, or `unknown`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_start_asked_for_and_how_late_it_was() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_300_000_250);
        let sync = StartSync::new(at, Duration::from_micros(1_500), ClockStatus::read());
        assert_eq!(sync.start_at, "2026-12-03T12:13:20.250000Z");
        assert!((sync.late_ms - 1.5).abs() < 1e-9);
        assert!(!sync.host.is_empty());
        let text = sync.describe();
        assert!(text.contains("1.500 ms late"), "{text}");
        assert!(text.contains("assumed to agree"), "{text}");
    }
}
