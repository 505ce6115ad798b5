//! The load sweep of one variant: per step, the probe's p99 with its verdict, and
//! how much of the heavy work offered was answered; and the **responsive
//! capacity** they show: the highest offered load up to which every step kept the
//! probe within the objective (by its p99's interval) while at least 90 % of the
//! heavy work offered in the step was answered inside it, done (2xx) or refused on
//! purpose (503). A server that queues without bound fails the second condition
//! as soon as its queue grows; one that stops answering fails the first.

use serde::{Deserialize, Serialize};

use super::run::{PhaseReport, VariantReport};
use super::settings::{HeavySize, Scenario, Settings};
use super::verdict::{is_lower_bound, Verdict};
use crate::stats::Percentiles;

/// Share of the heavy work offered in a step that must be answered (done or
/// refused with 503) inside the step for the server to count as keeping up.
pub const KEEPS_UP: f64 = 0.9;

/// One step of the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepFigures {
    /// The phase's name (`load-100`).
    pub phase: String,
    /// Heavy work offered, as a multiple of what the cores can finish.
    pub load: f64,
    /// Not run: the probe had gone unanswered for a whole earlier step.
    pub skipped: bool,
    /// Heavy requests (or jobs) offered per second.
    pub offered_per_s: f64,
    /// The probe's corrected latency in the step.
    pub probe: Option<Percentiles>,
    /// Whether the probe's p99 is only a lower bound (probes given up on).
    pub probe_lower_bound: bool,
    pub verdict: Option<Verdict>,
    /// Heavy work done (2xx) per second inside the step.
    pub goodput_per_s: f64,
    /// Heavy work answered inside the step (done, or refused with 503) over what
    /// was offered.
    pub answered_share: f64,
    /// The heavy requests' (or jobs' end-to-end) corrected latency.
    pub heavy: Option<Percentiles>,
    /// The server's largest event-loop lag in the step, in µs.
    pub server_lag_max_us: Option<f64>,
}

impl StepFigures {
    /// Whether the step kept the server responsive and keeping up.
    pub fn passes(&self) -> bool {
        !self.skipped
            && self.verdict == Some(Verdict::Responsive)
            && self.answered_share >= KEEPS_UP
    }
}

/// A variant's sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sweep {
    pub steps: Vec<StepFigures>,
    /// The responsive capacity, as a multiple of what the cores can finish: the
    /// highest load up to which every step passed; 0 when the lowest step failed.
    pub capacity: f64,
    /// The same in heavy jobs per second.
    pub capacity_per_s: f64,
}

impl Sweep {
    /// The sweep of `v` under `settings`; `None` without a sized heavy job or steps.
    pub fn derive(v: &VariantReport, settings: &Settings) -> Option<Sweep> {
        let heavy = v.heavy.as_ref()?;
        let steps: Vec<StepFigures> = settings
            .steps()
            .map(|spec| {
                let load = spec.load.unwrap_or_default();
                match v.phases.iter().find(|p| p.name == spec.name) {
                    Some(phase) => step(phase, load, heavy, settings),
                    None => StepFigures {
                        phase: spec.name.clone(),
                        load,
                        skipped: v.skipped_steps.contains(&spec.name),
                        offered_per_s: load * heavy.ideal_per_s,
                        probe: None,
                        probe_lower_bound: false,
                        verdict: None,
                        goodput_per_s: 0.0,
                        answered_share: 0.0,
                        heavy: None,
                        server_lag_max_us: None,
                    },
                }
            })
            .collect();
        if steps.is_empty() {
            return None;
        }
        let capacity = capacity(&steps);
        Some(Sweep {
            capacity,
            capacity_per_s: capacity * heavy.ideal_per_s,
            steps,
        })
    }
}

/// The highest load of the leading run of passing steps; 0 when the first fails.
pub fn capacity(steps: &[StepFigures]) -> f64 {
    steps
        .iter()
        .take_while(|s| s.passes())
        .last()
        .map_or(0.0, |s| s.load)
}

/// The figures of one step that ran.
fn step(phase: &PhaseReport, load: f64, heavy: &HeavySize, settings: &Settings) -> StepFigures {
    let offered_per_s = load * heavy.ideal_per_s;
    let probe = phase.stream("probe");
    let (goodput_per_s, answered_share, latency) = match settings.scenario {
        Scenario::Responsiveness | Scenario::Upstream => match phase.stream("heavy") {
            Some(h) => {
                let seconds = h.measured_s.max(f64::MIN_POSITIVE);
                let reachable = heavy.reachable_s(seconds);
                // Done or refused inside the step (older reports: 503s of the whole
                // stream, which are answered at once anyway), per second: jobs done
                // over the part of the step whose jobs could finish in it, refusals
                // (answered at once) over the whole step.
                let (done, refused) = match &h.in_window {
                    Some(w) => (w.status_2xx as f64, w.status_503 as f64),
                    None => (h.ok_throughput * seconds, h.counts.status_503 as f64),
                };
                let answered_per_s = done / reachable + refused / seconds;
                (
                    h.ok_throughput * seconds / reachable,
                    answered_per_s / offered_per_s.max(f64::MIN_POSITIVE),
                    Some(h.latency.corrected),
                )
            }
            None => (0.0, 0.0, None),
        },
        // Jobs: those done or refused of those submitted in the step, counting the
        // drain after it (a job is only over when it has finished).
        Scenario::Jobs => match (&phase.jobs, phase.stream("jobs")) {
            (Some(jobs), Some(end_to_end)) => (
                jobs.done as f64 / end_to_end.measured_s.max(f64::MIN_POSITIVE),
                (jobs.done + jobs.rejected) as f64 / jobs.submitted.max(1) as f64,
                Some(end_to_end.latency.corrected),
            ),
            _ => (0.0, 0.0, None),
        },
    };
    StepFigures {
        phase: phase.name.clone(),
        load,
        skipped: false,
        offered_per_s,
        probe: probe.map(|p| p.latency.corrected),
        probe_lower_bound: probe.is_some_and(|p| is_lower_bound(p, 0.99)),
        verdict: probe.map(|p| Verdict::of(&p.latency.corrected, settings.objective_ms * 1e3)),
        goodput_per_s,
        answered_share,
        heavy: latency,
        server_lag_max_us: phase.server_telemetry.as_ref().and_then(|t| t.lag_max_us),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(load: f64, verdict: Verdict, answered_share: f64) -> StepFigures {
        StepFigures {
            phase: super::super::settings::step_name(load),
            load,
            skipped: false,
            offered_per_s: load * 100.0,
            probe: None,
            probe_lower_bound: false,
            verdict: Some(verdict),
            goodput_per_s: load * 100.0 * answered_share,
            answered_share,
            heavy: None,
            server_lag_max_us: None,
        }
    }

    use Verdict::{Responsive as Yes, Unresponsive as No};

    #[test]
    fn capacity_is_the_last_step_of_the_leading_run_that_passes() {
        // Responsive and keeping up to 1.0, queueing beyond.
        let steps = [
            step(0.25, Yes, 1.0),
            step(0.5, Yes, 0.99),
            step(1.0, Yes, 0.93),
            step(1.5, Yes, 0.6),
        ];
        assert_eq!(capacity(&steps), 1.0);
        // A variant that always passes reaches the top of the sweep.
        let always = [
            step(0.5, Yes, 1.0),
            step(1.0, Yes, 0.95),
            step(1.5, Yes, 0.97),
        ];
        assert_eq!(capacity(&always), 1.5);
        // One that never meets the objective has no capacity at all.
        let never = [step(0.25, No, 1.0), step(0.5, No, 1.0)];
        assert_eq!(capacity(&never), 0.0);
        // A pass after a failure does not count: the curve broke at 0.5.
        let broken = [
            step(0.25, Yes, 1.0),
            step(0.5, No, 1.0),
            step(0.75, Yes, 1.0),
        ];
        assert_eq!(capacity(&broken), 0.25);
        // Undecided is not a pass, nor is a skipped step.
        let undecided = [step(0.25, Yes, 1.0), step(0.5, Verdict::Undecided, 1.0)];
        assert_eq!(capacity(&undecided), 0.25);
        let mut skipped = step(0.5, Yes, 1.0);
        skipped.skipped = true;
        assert_eq!(capacity(&[step(0.25, Yes, 1.0), skipped]), 0.25);
    }
}
