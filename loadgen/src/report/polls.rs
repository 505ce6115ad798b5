//! Which code blocked, as the report shows it: the route or task with the longest
//! poll of a phase (from the servers' poll timings), in the comparison table and
//! in a table per variant and phase.
//!
//! A long poll does not always stall the event loop: `block_in_place` hands its
//! worker's other work to another thread before it blocks, and on a multi-thread
//! runtime one blocked worker leaves the others running. So each figure says
//! whether the server's own lag probe saw the loop stop for a good part of it.

use super::format::format_us;
use super::run::{PhaseReport, RunReport};
use super::table::Cell;
use crate::telemetry::{ServerTelemetry, SourcePhasePolls};

/// A long poll counts as having stalled the loop when the lag probe saw at least
/// this share of it.
const STALL_SHARE: f64 = 0.25;

/// `/work/cpu` for a route (routes are paths), `task cpu` for a task.
pub fn source_name(kind: &str, name: &str) -> String {
    if kind == "route" {
        name.to_owned()
    } else {
        format!("{kind} {name}")
    }
}

/// The longest poll of a phase, if it was long (at or over the threshold).
pub fn longest_long_poll(t: &ServerTelemetry) -> Option<&SourcePhasePolls> {
    let polls = t.polls.as_ref()?;
    polls
        .longest()
        .filter(|s| s.longest_us >= polls.threshold_us && s.long_polls > 0)
}

/// Whether the phase's longest poll went by without the loop stalling for a
/// good part of it (`None` without lag figures, without a long poll, or when
/// the poll's length is only a bucket's upper bound).
pub fn loop_kept_running(t: &ServerTelemetry) -> Option<bool> {
    let longest = longest_long_poll(t).filter(|s| s.longest_exact)?;
    let lag = t.lag_max_us?;
    Some(lag < longest.longest_us * STALL_SHARE)
}

/// What to show when the phase's polls cannot be told (fewer than two
/// snapshots bracketed it): not "nothing was long".
const NOT_COMPARED: &str = "? (one scrape)";

/// The comparison table's cell: `/work/cpu 20.1ms` (`, loop ran` when the lag
/// probe did not stall with it), `< 1ms` when no poll was long, `–` without
/// poll timings.
pub fn longest_poll_cell(phase: Option<&PhaseReport>) -> Cell {
    let Some(t) = phase.and_then(|p| p.server_telemetry.as_ref()) else {
        return Cell::plain("–");
    };
    let Some(polls) = &t.polls else {
        return Cell::plain("–");
    };
    if !polls.compared {
        return Cell::plain(NOT_COMPARED);
    }
    let Some(longest) = longest_long_poll(t) else {
        return Cell::plain(format!("< {}", format_us(polls.threshold_us)));
    };
    let ran = if loop_kept_running(t) == Some(true) {
        ", loop ran"
    } else {
        ""
    };
    Cell::plain(format!(
        "{} {}{ran}",
        source_name(&longest.kind, &longest.name),
        format_us(longest.longest_us)
    ))
}

/// One phase's cell of the polls table: the longest poll, the count of long
/// polls of that source, and whether the loop kept running.
fn phase_cell(phase: &PhaseReport) -> Cell {
    let Some(t) = &phase.server_telemetry else {
        return Cell::plain("–");
    };
    let Some(polls) = &t.polls else {
        return Cell::plain("–");
    };
    if !polls.compared {
        return Cell::plain(NOT_COMPARED);
    }
    let Some(longest) = longest_long_poll(t) else {
        return Cell::plain(format!("none ≥ {}", format_us(polls.threshold_us)));
    };
    let others = polls
        .sources
        .iter()
        .skip(1)
        .filter(|s| s.long_polls > 0)
        .count();
    Cell::plain(format!(
        "{} {} ({} of {} polls long{}{})",
        source_name(&longest.kind, &longest.name),
        format_us(longest.longest_us),
        longest.long_polls,
        longest.polls,
        match others {
            0 => String::new(),
            n => format!("; {n} other source{} long", if n == 1 { "" } else { "s" }),
        },
        if loop_kept_running(t) == Some(true) {
            "; loop ran"
        } else {
            ""
        }
    ))
}

impl RunReport {
    /// Which code blocked, per variant (best first) and phase: the route or task
    /// with the longest poll. `None` when no server timed its polls.
    pub fn polls_table(&self) -> Option<Vec<Vec<Cell>>> {
        let timed = |p: &PhaseReport| {
            p.server_telemetry
                .as_ref()
                .is_some_and(|t| t.polls.is_some())
        };
        if !self.variants.iter().flat_map(|v| &v.phases).any(timed) {
            return None;
        }
        // Phases in the order they ran: idle first, recovery last (a variant
        // that skipped the top step would otherwise put recovery before it).
        let mut names: Vec<&str> = Vec::new();
        for v in &self.variants {
            for p in &v.phases {
                if !names.contains(&p.name.as_str()) {
                    names.push(&p.name);
                }
            }
        }
        names.sort_by_key(|n| match *n {
            "idle" => 0,
            "recovery" => 2,
            _ => 1,
        });
        let mut header = vec![Cell::plain("variant")];
        header.extend(names.iter().map(|n| Cell::plain(*n)));
        let mut rows = vec![header];
        for v in self.ranked() {
            let mut row = vec![Cell::plain(v.name.clone())];
            row.extend(names.iter().map(|name| {
                v.phases
                    .iter()
                    .find(|p| p.name == *name)
                    .map_or_else(|| Cell::plain("–"), phase_cell)
            }));
            rows.push(row);
        }
        Some(rows)
    }

    /// What [`RunReport::polls_table`] shows, under its title in every rendering.
    pub const POLLS_CAPTION: &'static str = "Per phase, the route or background task with the longest single poll (one uninterrupted run of its future on a worker thread: nothing else on that thread ran meanwhile), as the server timed it, and how many of its polls reached the server's long-poll threshold (1 ms on the reference servers); \"?\": the server answered fewer than two scrapes around the phase, so its polls cannot be told. A poll is timed by the wall clock, so one the kernel took off the CPU (other threads wanting the cores) reads long too: code that blocks makes nearly every poll of its route long, preemption only a few. \"loop ran\": the server's lag probe saw less than a quarter of that poll, so other work kept running (block_in_place hands the worker's queue to another thread; a multi-thread runtime's other workers go on).";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::PhasePolls;

    fn telemetry(longest_us: f64, long_polls: u64, lag_max_us: Option<f64>) -> ServerTelemetry {
        ServerTelemetry {
            lag_max_us,
            polls: Some(PhasePolls {
                threshold_us: 1_000.0,
                compared: true,
                sources: vec![SourcePhasePolls {
                    kind: "task".into(),
                    name: "cpu".into(),
                    polls: 10,
                    long_polls,
                    longest_us,
                    longest_exact: true,
                }],
                marks: Vec::new(),
                marks_left_out: 0,
            }),
            ..ServerTelemetry::default()
        }
    }

    #[test]
    fn a_long_poll_the_lag_probe_also_saw_stalled_the_loop_and_one_it_did_not_ran_beside_it() {
        assert_eq!(
            loop_kept_running(&telemetry(100_000.0, 1, Some(90_000.0))),
            Some(false)
        );
        assert_eq!(
            loop_kept_running(&telemetry(100_000.0, 1, Some(2_000.0))),
            Some(true)
        );
        assert_eq!(loop_kept_running(&telemetry(100_000.0, 1, None)), None);
        // Under the threshold there is no long poll to speak of.
        assert!(longest_long_poll(&telemetry(200.0, 0, Some(50.0))).is_none());
    }

    #[test]
    fn names_read_as_paths_for_routes_and_with_their_kind_for_tasks() {
        assert_eq!(source_name("route", "/work/cpu"), "/work/cpu");
        assert_eq!(source_name("task", "cpu"), "task cpu");
    }
}
