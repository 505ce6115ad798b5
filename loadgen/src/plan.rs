//! What to send: one or more named streams of requests, each open-loop (a fixed
//! rate) or closed-loop (a fixed number of connections sending back to back), plus
//! the run's timing. Built from `bench` flags, a scenario file
//! ([`crate::scenario_file`]) or the run matrix, and validated before anything is
//! sent.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use crate::client::{PreparedRequest, RequestError};
use crate::config::ConfigError;
use crate::pacer::Schedule;
use crate::stages::{check_stages, RateProfile, Stage};
use crate::target::Protocol;
use crate::target::Target;

/// Connections an open-loop stream gets when none are given.
pub const DEFAULT_OPEN_LOOP_CONNECTIONS: usize = 16;

/// How a stream decides when to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Request k is due at `start + k / rate`, whatever the server does (wrk2's
    /// model); it is sent on the first free one of `connections`.
    Open { rate: f64, connections: usize },
    /// Each connection sends its next request as soon as the last one completes.
    Closed { connections: usize },
}

impl Load {
    pub fn connections(&self) -> usize {
        match *self {
            Load::Open { connections, .. } | Load::Closed { connections } => connections,
        }
    }

    /// The target rate of an open-loop stream.
    pub fn rate(&self) -> Option<f64> {
        match *self {
            Load::Open { rate, .. } => Some(rate),
            Load::Closed { .. } => None,
        }
    }
}

/// One named stream of identical requests, recorded separately from the others.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub method: Method,
    /// Path and query sent in the request line.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Bytes>,
    pub load: Load,
    /// Open a new connection for every request (and ask the server to close it),
    /// as a new client would, with connect times recorded; otherwise connections
    /// are opened before the clock starts and kept alive.
    pub fresh_connections: bool,
    /// Open loop: the rate changes over the measured time, ramping from the load's
    /// rate (held through the warm-up) through these; empty: the rate is constant.
    pub stages: Vec<Stage>,
    /// Several requests sent in a fixed weighted rotation, all recorded as this
    /// stream, in place of its own method, path and body (its headers go with
    /// each); empty: the stream sends its one request.
    pub mix: Vec<MixEntry>,
}

/// One request of a stream's mix.
#[derive(Debug, Clone)]
pub struct MixEntry {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Bytes>,
    /// Its share of the stream's requests, against the others' weights.
    pub weight: u32,
}

/// A stream's requests, ready to write: one, or a weighted rotation.
#[derive(Debug, Clone)]
pub struct RequestMix {
    requests: Vec<PreparedRequest>,
    /// Running totals of the weights: request `i` takes the turns from
    /// `ends[i - 1]` to `ends[i]` of every cycle of `ends.last()` turns.
    ends: Vec<u64>,
}

impl RequestMix {
    /// Whether there is more than one request to choose from.
    pub fn is_mixed(&self) -> bool {
        self.requests.len() > 1
    }

    /// The request of turn `n`: over each cycle, every request its weight's
    /// share of turns, in a fixed order.
    pub fn pick(&self, n: u64) -> &PreparedRequest {
        if !self.is_mixed() {
            return &self.requests[0];
        }
        let turn = n % self.ends.last().copied().unwrap_or(1);
        let i = self.ends.partition_point(|&end| end <= turn);
        &self.requests[i.min(self.requests.len() - 1)]
    }

    /// Every request of the mix, once each.
    pub fn all(&self) -> &[PreparedRequest] {
        &self.requests
    }
}

impl StreamSpec {
    /// An open-loop stream's due times, from `start` (the warm-up, `warmup` long,
    /// at the load's rate, then any stages); `None` for a closed loop.
    pub fn schedule(&self, start: Instant, warmup: Duration) -> Option<Schedule> {
        let rate = self.load.rate()?;
        Some(if self.stages.is_empty() {
            Schedule::new(start, rate)
        } else {
            Schedule::with_profile(start, RateProfile::staged(rate, warmup, &self.stages))
        })
    }

    /// The stream's request (or requests, with a mix) as it goes on the wire to
    /// `authority` (the `Host`).
    pub fn requests(&self, authority: &str) -> Result<RequestMix, RequestError> {
        let headers = |own: &[(HeaderName, HeaderValue)]| {
            let mut headers = self.headers.clone();
            headers.retain(|(name, _)| !own.iter().any(|(o, _)| o == name));
            headers.extend(own.iter().cloned());
            if self.fresh_connections {
                // A new client's request closes its connection, whatever the
                // user's headers asked for.
                headers.retain(|(name, _)| name != http::header::CONNECTION);
                headers.push((http::header::CONNECTION, HeaderValue::from_static("close")));
            }
            headers
        };
        if self.mix.is_empty() {
            let request = PreparedRequest::new(
                &self.method,
                &self.path,
                authority,
                &headers(&[]),
                self.body.as_deref().unwrap_or_default(),
            )?;
            return Ok(RequestMix {
                requests: vec![request],
                ends: vec![1],
            });
        }
        let mut requests = Vec::new();
        let mut ends = Vec::new();
        let mut end = 0u64;
        for entry in &self.mix {
            requests.push(PreparedRequest::new(
                &entry.method,
                &entry.path,
                authority,
                &headers(&entry.headers),
                entry.body.as_deref().unwrap_or_default(),
            )?);
            end += u64::from(entry.weight);
            ends.push(end);
        }
        Ok(RequestMix { requests, ends })
    }
}

/// The run's clock settings, shared by every stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Time at the start whose requests are sent but not recorded.
    pub warmup: Duration,
    /// Longest a request may take, connect included.
    pub timeout: Duration,
    /// Length of one interval of the time series.
    pub interval: Duration,
    /// After the end, how long requests still in flight may take to complete;
    /// those still unanswered then are counted as abandoned.
    pub drain: Duration,
    /// Open loop's release granularity: the pacer wakes at most once per tick and
    /// releases everything due by then together. Zero (the default) releases each
    /// request at its own due time: the least lateness, one wake-up per request at
    /// moderate rates; a tick (wrk2 uses 1 ms) costs up to a tick of lateness and
    /// saves wake-ups.
    pub release_tick: Duration,
    /// Start the schedule (the first due request) at this wall-clock instant, so
    /// that agents on several hosts load together (`--start-at`); `None`: as soon
    /// as the connections are open.
    pub start_at: Option<SystemTime>,
    /// Keep every interval's histograms (encoded) in the outcome, so reports of
    /// several agents can be added interval by interval (`loadgen merge`).
    pub keep_interval_histograms: bool,
}

impl Timing {
    /// A drain long enough for every request in flight at the end to complete or
    /// time out.
    pub fn with_full_drain(mut self) -> Timing {
        self.drain = self.timeout + Duration::from_millis(100);
        self
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            drain: Duration::from_millis(5_100),
            release_tick: Duration::ZERO,
            start_at: None,
            keep_interval_histograms: false,
        }
    }
}

/// Everything one run needs: where, what, and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub streams: Vec<StreamSpec>,
    pub timing: Timing,
}

/// Longest stream name.
const MAX_NAME: usize = 64;

/// Most intervals a run may have per stream. A report keeps every interval's
/// figures in memory (and in `report.json`), so this bounds what a long run costs:
/// a day at `--interval 10ms` would be 8.6 million per stream. A finer time series
/// of a long run is the interval log's job (`--hlog`, written as the run goes).
pub const MAX_INTERVALS: u64 = 100_000;

/// A stream name names files (`NAME.hgrm`) and hlog tags: letters, digits, `-`,
/// `_` and `.`, not starting with `.`, at most 64 characters, so that no name
/// can point outside the output folder.
pub fn check_stream_name(name: &str) -> Result<(), ConfigError> {
    let safe = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "stream name {name:?}: use letters, digits, - _ and . (not first), at most {MAX_NAME} characters; it names files"
        )))
    }
}

impl Plan {
    /// A plan of one stream, named `name`, of GETs to `url`.
    pub fn get(url: &str, name: &str, load: Load, timing: Timing) -> Result<Plan, ConfigError> {
        let target = Target::parse(url)?;
        Ok(Plan {
            streams: vec![StreamSpec {
                name: name.into(),
                method: Method::GET,
                path: target.path_and_query.clone(),
                headers: Vec::new(),
                body: None,
                load,
                fresh_connections: false,
                stages: Vec::new(),
                mix: Vec::new(),
            }],
            target,
            timing,
        })
    }

    /// Checks the plan as a whole; every message says what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.timing;
        if t.duration.is_zero() {
            return Err(ConfigError("--duration must be longer than zero".into()));
        }
        if t.timeout.is_zero() {
            return Err(ConfigError("--timeout must be longer than zero".into()));
        }
        if t.interval < Duration::from_millis(10) {
            return Err(ConfigError("--interval must be at least 10ms".into()));
        }
        let intervals = (t.duration.as_secs_f64() / t.interval.as_secs_f64()).ceil();
        if intervals > MAX_INTERVALS as f64 {
            let shortest = Duration::from_millis(
                (t.duration.as_secs_f64() * 1e3 / MAX_INTERVALS as f64).ceil() as u64,
            );
            return Err(ConfigError(format!(
                "--duration {} at --interval {} is {intervals} intervals per stream, and a report keeps at most {MAX_INTERVALS}: use --interval {} or longer",
                humantime::format_duration(t.duration),
                humantime::format_duration(t.interval),
                humantime::format_duration(shortest),
            )));
        }
        if self.streams.is_empty() {
            return Err(ConfigError("the scenario has no [[stream]]".into()));
        }
        let mut names = HashSet::new();
        for s in &self.streams {
            check_stream_name(&s.name)?;
            if !names.insert(s.name.as_str()) {
                return Err(ConfigError(format!("two streams are named {:?}", s.name)));
            }
            s.requests(&self.target.authority)
                .map_err(|e| ConfigError(format!("stream {:?}: {e}", s.name)))?;
            if s.mix.iter().any(|m| m.weight == 0) {
                return Err(ConfigError(format!(
                    "stream {:?}: every request's weight must be at least 1",
                    s.name
                )));
            }
            if let Protocol::Http2 { .. } = self.target.protocol {
                if s.fresh_connections {
                    return Err(ConfigError(format!(
                        "stream {:?}: fresh connections are an HTTP/1.1 client's; drop --fresh-connections or --http2",
                        s.name
                    )));
                }
                let mix = s
                    .requests(&self.target.authority)
                    .map_err(|e| ConfigError(format!("stream {:?}: {e}", s.name)))?;
                for request in mix.all() {
                    request
                        .http2_ready()
                        .map_err(|e| ConfigError(format!("stream {:?}: {e}", s.name)))?;
                }
            }
            if s.load.connections() == 0 {
                return Err(ConfigError(format!(
                    "stream {:?}: connections must be at least 1",
                    s.name
                )));
            }
            if !s.stages.is_empty() {
                if s.load.rate().is_none() {
                    return Err(ConfigError(format!(
                        "stream {:?}: stages set an open loop's rate; give it a rate (the starting one), not a concurrency",
                        s.name
                    )));
                }
                check_stages(&s.stages)
                    .map_err(|e| ConfigError(format!("stream {:?}: {e}", s.name)))?;
            }
            if let Load::Open { rate, .. } = s.load {
                // With stages the rate is where the ramp starts, and may be zero.
                let lowest = if s.stages.is_empty() {
                    f64::MIN_POSITIVE
                } else {
                    0.0
                };
                if !(rate.is_finite() && rate >= lowest) {
                    let wanted = if s.stages.is_empty() {
                        "a positive number of requests per second"
                    } else {
                        "zero or a positive number of requests per second (where the stages start)"
                    };
                    return Err(ConfigError(format!(
                        "stream {:?}: rate must be {wanted}, got {rate}",
                        s.name
                    )));
                }
                if let (false, Some(schedule)) =
                    (s.stages.is_empty(), s.schedule(Instant::now(), t.warmup))
                {
                    let due =
                        schedule.due_before(t.warmup + t.duration) - schedule.due_before(t.warmup);
                    if due == 0 {
                        return Err(ConfigError(format!(
                            "stream {:?}: its stages send no request in the measured time; raise a target",
                            s.name
                        )));
                    }
                    continue;
                }
                let expected = rate * t.duration.as_secs_f64();
                if expected < 1.0 {
                    return Err(ConfigError(format!(
                        "stream {:?}: {rate}/s for {} sends no request; raise the rate to at least {:.3}/s or lengthen --duration",
                        s.name,
                        humantime::format_duration(t.duration),
                        1.0 / t.duration.as_secs_f64()
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_cannot_point_outside_the_output_folder() {
        for good in ["probe", "api.v2", "new-clients_1"] {
            assert!(check_stream_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/../../x",
            "..",
            ".hidden",
            "a b",
            "a,b",
            "é",
            &"x".repeat(65),
        ] {
            let error = check_stream_name(bad).unwrap_err();
            assert!(error.0.contains("names files"), "{bad:?}: {}", error.0);
        }
    }

    fn plan(load: Load, duration: Duration) -> Plan {
        Plan {
            target: Target::parse("http://127.0.0.1:1").unwrap(),
            streams: vec![StreamSpec {
                name: "s".into(),
                method: Method::GET,
                path: "/".into(),
                headers: vec![],
                body: None,
                load,
                fresh_connections: false,
                stages: Vec::new(),
                mix: Vec::new(),
            }],
            timing: Timing {
                duration,
                ..Timing::default()
            },
        }
    }

    #[test]
    fn a_run_has_at_most_max_intervals_per_stream() {
        let mut day = plan(Load::Closed { connections: 1 }, Duration::from_secs(86_400));
        day.timing.interval = Duration::from_millis(10);
        let error = day.validate().unwrap_err().0;
        assert!(error.contains("8640000 intervals"), "{error}");
        assert!(error.contains("use --interval 864ms or longer"), "{error}");
        day.timing.interval = Duration::from_millis(864);
        assert!(day.validate().is_ok());
        let outcome = std::mem::size_of::<crate::engine::IntervalOutcome>() as u64;
        // What the cap bounds: the figures kept per stream stay in tens of MB.
        assert!(
            outcome * MAX_INTERVALS < 64 << 20,
            "{outcome} bytes an interval"
        );
    }

    #[test]
    fn a_fresh_connection_request_asks_to_close_whatever_the_headers_say() {
        let mut spec =
            plan(Load::Closed { connections: 1 }, Duration::from_secs(1)).streams[0].clone();
        spec.headers = vec![(
            http::header::CONNECTION,
            HeaderValue::from_static("keep-alive"),
        )];
        let wire = |spec: &StreamSpec| {
            String::from_utf8(spec.requests("h:1").unwrap().pick(0).wire().to_vec())
                .unwrap()
                .to_ascii_lowercase()
        };
        assert!(wire(&spec).contains("connection: keep-alive"));
        spec.fresh_connections = true;
        let fresh = wire(&spec);
        assert!(fresh.contains("connection: close"), "{fresh}");
        assert!(!fresh.contains("keep-alive"), "{fresh}");
    }

    #[test]
    fn a_mix_rotates_by_weight_with_the_stream_headers_on_each() {
        let mut spec =
            plan(Load::Closed { connections: 1 }, Duration::from_secs(1)).streams[0].clone();
        spec.headers = vec![(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t"),
        )];
        let entry = |path: &str, weight| MixEntry {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            weight,
        };
        spec.mix = vec![entry("/a", 3), entry("/b", 1)];
        let mix = spec.requests("h:1").unwrap();
        assert!(mix.is_mixed());
        let paths: Vec<String> = (0..8)
            .map(|n| {
                let wire = String::from_utf8(mix.pick(n).wire().to_vec()).unwrap();
                assert!(wire.contains("authorization: Bearer t"), "{wire}");
                wire.split(' ').nth(1).unwrap().to_owned()
            })
            .collect();
        assert_eq!(paths, ["/a", "/a", "/a", "/b", "/a", "/a", "/a", "/b"]);
        spec.mix[1].weight = 0;
        let mut p = plan(Load::Closed { connections: 1 }, Duration::from_secs(1));
        p.streams[0] = spec;
        assert!(p.validate().unwrap_err().0.contains("weight"));
    }

    #[test]
    fn refuses_zero_rates_connections_and_empty_runs() {
        let ten = Duration::from_secs(10);
        assert!(plan(
            Load::Open {
                rate: 0.0,
                connections: 1
            },
            ten
        )
        .validate()
        .is_err());
        assert!(plan(
            Load::Open {
                rate: f64::NAN,
                connections: 1
            },
            ten
        )
        .validate()
        .is_err());
        assert!(plan(
            Load::Open {
                rate: 5.0,
                connections: 0
            },
            ten
        )
        .validate()
        .is_err());
        assert!(plan(Load::Closed { connections: 0 }, ten)
            .validate()
            .is_err());
        assert!(plan(Load::Closed { connections: 1 }, Duration::ZERO)
            .validate()
            .is_err());
        let too_slow = plan(
            Load::Open {
                rate: 0.05,
                connections: 1,
            },
            ten,
        )
        .validate();
        assert!(too_slow.unwrap_err().0.contains("at least 0.100/s"));
        assert!(plan(
            Load::Open {
                rate: 0.1,
                connections: 1
            },
            ten
        )
        .validate()
        .is_ok());
    }
}
