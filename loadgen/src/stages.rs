//! Open-loop rates that change over time: stages, each a linear ramp from the rate
//! before it to its target over its length (k6's ramping-arrival-rate), and the
//! rate profile they make.
//!
//! Due times come from the integrated rate: request k is due at the moment `t`
//! where the number of requests the profile asks for by `t`, `N(t)`, reaches `k`.
//! On a ramp `N` is quadratic in `t`, so each due time is exact, fixed before the
//! run, and coordinated-omission correction works as with a constant rate.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{parse_duration, ConfigError};

/// One stage: from the rate at its start, ramp linearly to `target` requests per
/// second over `duration` (a zero duration jumps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    pub target: f64,
}

/// Parses `30s:100,1m:1000,30s:0`: comma-separated `DURATION:TARGET` stages.
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, ConfigError> {
    let stages = text
        .split(',')
        .map(|part| {
            let (duration, target) = part.trim().split_once(':').ok_or_else(|| {
                ConfigError(format!(
                    "stage {part:?} must look like DURATION:RATE, e.g. 30s:100"
                ))
            })?;
            let target: f64 = target.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "stage {part:?}: {target:?} is not a rate (requests per second)"
                ))
            })?;
            Ok(Stage {
                duration: parse_duration("stage", duration)?,
                target,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    check_stages(&stages)?;
    Ok(stages)
}

/// Checks that every target is a rate and that the stages take some time.
pub fn check_stages(stages: &[Stage]) -> Result<(), ConfigError> {
    if stages.is_empty() {
        return Err(ConfigError(
            "stages: give at least one DURATION:RATE".into(),
        ));
    }
    for s in stages {
        if !(s.target.is_finite() && s.target >= 0.0) {
            return Err(ConfigError(format!(
                "stage target {} must be zero or a positive number of requests per second",
                s.target
            )));
        }
    }
    if stages.iter().all(|s| s.duration.is_zero()) {
        return Err(ConfigError(
            "stages: at least one stage must last longer than zero".into(),
        ));
    }
    Ok(())
}

/// How long the stages take together.
pub fn stages_length(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// A stretch of time over which the rate moves linearly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Seconds from the profile's start.
    start: f64,
    /// Seconds; infinite for the last, which holds its rate for ever.
    length: f64,
    /// Rate at its start and its end, per second.
    from: f64,
    to: f64,
    /// Requests due before it, `N(start)`.
    before: f64,
}

impl Segment {
    /// Change of rate per second.
    fn slope(&self) -> f64 {
        if self.length.is_finite() && self.length > 0.0 {
            (self.to - self.from) / self.length
        } else {
            0.0
        }
    }

    /// Requests due in all of it (none in a last segment at rate zero).
    fn total(&self) -> f64 {
        match (self.length.is_infinite(), self.from > 0.0) {
            (true, true) => f64::INFINITY,
            (true, false) => 0.0,
            (false, _) => self.count(self.length),
        }
    }

    /// Requests due in its first `t` seconds.
    fn count(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.length);
        self.from * t + self.slope() * t * t / 2.0
    }

    /// Seconds into it at which `m` requests (at most its count) are due:
    /// the root of `from·t + slope·t²/2 = m`, in the form that stays accurate when
    /// the slope is small or the starting rate is zero.
    fn time_of(&self, m: f64) -> f64 {
        if m <= 0.0 {
            return 0.0;
        }
        let root = (self.from * self.from + 2.0 * self.slope() * m)
            .max(0.0)
            .sqrt();
        let t = 2.0 * m / (self.from + root);
        t.min(self.length)
    }
}

/// Requests per second over time: piecewise linear, the last rate held for ever.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    segments: Vec<Segment>,
}

impl RateProfile {
    /// A constant `rate`.
    pub fn constant(rate: f64) -> RateProfile {
        RateProfile {
            segments: vec![Segment {
                start: 0.0,
                length: f64::INFINITY,
                from: rate,
                to: rate,
                before: 0.0,
            }],
        }
    }

    /// `start_rate` for `hold` (the warm-up), then `stages`, then the last stage's
    /// target for ever.
    pub fn staged(start_rate: f64, hold: Duration, stages: &[Stage]) -> RateProfile {
        let mut segments = Vec::new();
        let (mut at, mut before, mut rate) = (0.0, 0.0, start_rate);
        let mut push = |length: f64, from: f64, to: f64| {
            let segment = Segment {
                start: at,
                length,
                from,
                to,
                before,
            };
            at += length;
            before += segment.count(length);
            segments.push(segment);
        };
        if !hold.is_zero() {
            push(hold.as_secs_f64(), start_rate, start_rate);
        }
        for stage in stages {
            if !stage.duration.is_zero() {
                push(stage.duration.as_secs_f64(), rate, stage.target);
            }
            rate = stage.target;
        }
        push(f64::INFINITY, rate, rate);
        RateProfile { segments }
    }

    /// The rate if it never changes.
    pub fn constant_rate(&self) -> Option<f64> {
        match self.segments.as_slice() {
            [only] => Some(only.from),
            _ => None,
        }
    }

    /// Requests due by `t` seconds from the start, `N(t)` (not rounded).
    pub fn count_by(&self, t: f64) -> f64 {
        let i = self
            .segments
            .partition_point(|s| s.start <= t)
            .saturating_sub(1);
        let s = &self.segments[i];
        s.before + s.count(t - s.start)
    }

    /// Seconds from the start at which request `k` (from 0) is due: the first
    /// moment the count passes it, `N(t) > k` (so a constant rate puts it at
    /// `k / rate`); `None` if the profile never gets there (it ends at rate zero).
    pub fn due_s(&self, k: u64) -> Option<f64> {
        let k = k as f64;
        // The first segment by whose end more than k are due.
        let i = self.segments.partition_point(|s| s.before + s.total() <= k);
        let s = self.segments.get(i)?;
        let within = k - s.before;
        if s.length.is_infinite() {
            return Some(s.start + within / s.from);
        }
        Some(s.start + s.time_of(within))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn parses_stages_and_refuses_nonsense() {
        let stages = parse_stages("30s:100, 1m:1000,500ms:0").unwrap();
        assert_eq!(
            stages,
            [
                Stage {
                    duration: Duration::from_secs(30),
                    target: 100.0
                },
                Stage {
                    duration: Duration::from_secs(60),
                    target: 1000.0
                },
                Stage {
                    duration: Duration::from_millis(500),
                    target: 0.0
                },
            ]
        );
        assert_eq!(stages_length(&stages), Duration::from_millis(90_500));
        for bad in ["", "30s", "30s:x", "x:100", "30s:-1", "0s:100", "1s:inf"] {
            assert!(parse_stages(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_constant_profile_is_k_over_rate() {
        let p = RateProfile::constant(250.0);
        assert_eq!(p.constant_rate(), Some(250.0));
        assert!(close(p.due_s(0).unwrap(), 0.0));
        assert!(close(p.due_s(1000).unwrap(), 4.0));
        assert!(close(p.count_by(2.0), 500.0));
    }

    #[test]
    fn a_ramp_integrates_the_rate() {
        // 0 → 100/s over 10 s: N(t) = 5 t², 500 requests in all; then 100/s.
        let p = RateProfile::staged(
            0.0,
            Duration::ZERO,
            &[Stage {
                duration: Duration::from_secs(10),
                target: 100.0,
            }],
        );
        assert!(close(p.count_by(4.0), 80.0));
        assert!(close(p.count_by(10.0), 500.0));
        assert!(close(p.count_by(12.0), 700.0));
        assert!(close(p.due_s(80).unwrap(), 4.0));
        assert!(close(p.due_s(500).unwrap(), 10.0));
        assert!(close(p.due_s(600).unwrap(), 11.0));
        // Every due time inverts the count.
        for k in [1, 7, 123, 499, 501, 650] {
            assert!(close(p.count_by(p.due_s(k).unwrap()), k as f64), "{k}");
        }
    }

    #[test]
    fn hold_ramp_down_and_jumps() {
        // 50/s for 2 s (the warm-up), jump to 200/s, hold 1 s, ramp to 0 over 2 s.
        let p = RateProfile::staged(
            50.0,
            Duration::from_secs(2),
            &[
                Stage {
                    duration: Duration::ZERO,
                    target: 200.0,
                },
                Stage {
                    duration: Duration::from_secs(1),
                    target: 200.0,
                },
                Stage {
                    duration: Duration::from_secs(2),
                    target: 0.0,
                },
            ],
        );
        assert!(close(p.count_by(2.0), 100.0));
        assert!(close(p.count_by(3.0), 300.0));
        assert!(close(p.count_by(5.0), 500.0));
        assert!(close(p.count_by(9.0), 500.0), "rate zero after the stages");
        assert!(close(p.due_s(300).unwrap(), 3.0));
        // Half-way down the ramp: 200 t - 50 t² = 150 at t = 1.
        assert!(close(p.due_s(450).unwrap(), 4.0));
        assert!(p.due_s(499).is_some_and(|t| t < 5.0));
        assert_eq!(p.due_s(500), None, "never due: the rate ends at zero");
        assert_eq!(p.due_s(501), None);
        let mut last = 0.0;
        for k in 0..500 {
            let t = p.due_s(k).unwrap();
            assert!(t >= last, "due times never go back");
            last = t;
        }
    }
}
