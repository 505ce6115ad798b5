//! What to send: one or more named streams of requests, each open-loop (a fixed
//! rate) or closed-loop (a fixed number of connections sending back to back), plus
//! the run's timing. Built from `bench` flags or read from a TOML scenario file, and
//! validated before anything is sent.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;

use crate::client::{PreparedRequest, RequestError};
use crate::jobs::driver::json_request;
use crate::target::Target;

/// A configuration mistake, with a message that says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
}

impl StreamSpec {
    /// The stream's request as it goes on the wire to `authority` (the `Host`).
    pub fn request(&self, authority: &str) -> Result<PreparedRequest, RequestError> {
        PreparedRequest::new(
            &self.method,
            &self.path,
            authority,
            &self.headers,
            self.body.as_deref().unwrap_or_default(),
        )
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
        if self.streams.is_empty() {
            return Err(ConfigError("the scenario has no [[stream]]".into()));
        }
        let mut names = HashSet::new();
        for s in &self.streams {
            if s.name.is_empty() || s.name.contains(|c: char| c.is_whitespace() || c == ',') {
                return Err(ConfigError(format!(
                    "stream name {:?} must be non-empty, without spaces or commas",
                    s.name
                )));
            }
            if !names.insert(s.name.as_str()) {
                return Err(ConfigError(format!("two streams are named {:?}", s.name)));
            }
            s.request(&self.target.authority)
                .map_err(|e| ConfigError(format!("stream {:?}: {e}", s.name)))?;
            if s.load.connections() == 0 {
                return Err(ConfigError(format!(
                    "stream {:?}: connections must be at least 1",
                    s.name
                )));
            }
            if let Load::Open { rate, .. } = s.load {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(ConfigError(format!(
                        "stream {:?}: rate must be a positive number of requests per second, got {rate}",
                        s.name
                    )));
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

/// A scenario file. Durations are strings like `"500ms"`, `"10s"`, `"2m"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Base URL the stream paths are appended to; `--url` overrides it.
    pub base_url: Option<String>,
    pub duration: Option<String>,
    pub warmup: Option<String>,
    pub timeout: Option<String>,
    pub interval: Option<String>,
    #[serde(rename = "stream", default)]
    pub streams: Vec<StreamFile>,
}

/// One `[[stream]]` table of a scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    pub name: String,
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    pub body: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Requests per second: makes the stream open-loop.
    pub rate: Option<f64>,
    /// Connections for an open-loop stream.
    pub connections: Option<usize>,
    /// Connections sending back to back: makes the stream closed-loop.
    pub concurrency: Option<usize>,
    /// `request` (the default) or `job`: background jobs submitted to `path`
    /// (a `POST /jobs` API) at `rate`, each polled at `path/ID` until done.
    pub kind: Option<String>,
}

/// A stream of background jobs from a scenario file (`kind = "job"`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobStreamSpec {
    pub name: String,
    /// Where jobs are submitted; their statuses are read at `path/ID`.
    pub path: String,
    /// The JSON body of every submission.
    pub body: String,
    pub rate: f64,
    pub connections: usize,
}

fn default_method() -> String {
    "GET".into()
}

/// Parses a duration like `500ms`, `10s` or `2m`, naming the setting on error.
pub fn parse_duration(what: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError(format!(
            "{what} {text:?} is not a duration ({e}); write it like 500ms, 10s or 2m"
        ))
    })
}

/// Parses `Name: value` header text.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| ConfigError(format!("header {text:?} must look like 'Name: value'")))?;
    header(name.trim(), value.trim())
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let name = HeaderName::try_from(name)
        .map_err(|_| ConfigError(format!("{name:?} is not a valid header name")))?;
    let value = HeaderValue::try_from(value)
        .map_err(|_| ConfigError(format!("header {name}: {value:?} is not a valid value")))?;
    Ok((name, value))
}

/// Parses an HTTP method name.
pub fn parse_method(text: &str) -> Result<Method, ConfigError> {
    Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ConfigError(format!("{text:?} is not an HTTP method")))
}

impl ScenarioFile {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<ScenarioFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// The file's timing, each setting falling back to `defaults`.
    pub fn timing(&self, defaults: Timing) -> Result<Timing, ConfigError> {
        let pick = |what: &str, value: &Option<String>, default: Duration| match value {
            Some(text) => parse_duration(what, text),
            None => Ok(default),
        };
        Ok(Timing {
            duration: pick("duration", &self.duration, defaults.duration)?,
            warmup: pick("warmup", &self.warmup, defaults.warmup)?,
            timeout: pick("timeout", &self.timeout, defaults.timeout)?,
            interval: pick("interval", &self.interval, defaults.interval)?,
            drain: defaults.drain,
        })
    }

    /// The request streams, with paths joined onto `target`'s base path.
    pub fn stream_specs(&self, target: &Target) -> Result<Vec<StreamSpec>, ConfigError> {
        self.streams
            .iter()
            .filter(|s| !s.is_job())
            .map(|s| s.spec(target))
            .collect()
    }

    /// The background-job streams (`kind = "job"`).
    pub fn job_specs(&self, target: &Target) -> Result<Vec<JobStreamSpec>, ConfigError> {
        for s in &self.streams {
            if let Some(kind) = &s.kind {
                if kind != "job" && kind != "request" {
                    return Err(ConfigError(format!(
                        "stream {:?}: kind {kind:?} is neither \"request\" nor \"job\"",
                        s.name
                    )));
                }
            }
        }
        self.streams
            .iter()
            .filter(|s| s.is_job())
            .map(|s| s.job_spec(target))
            .collect()
    }
}

impl StreamFile {
    fn is_job(&self) -> bool {
        self.kind.as_deref() == Some("job")
    }

    fn job_spec(&self, target: &Target) -> Result<JobStreamSpec, ConfigError> {
        let name = &self.name;
        let rate = match (self.rate, self.concurrency) {
            (Some(rate), None) if rate.is_finite() && rate > 0.0 => rate,
            _ => {
                return Err(ConfigError(format!(
                    "job stream {name:?}: give a positive rate (jobs per second); jobs are submitted open loop"
                )))
            }
        };
        let body = self.body.clone().ok_or_else(|| {
            ConfigError(format!(
                "job stream {name:?}: give the job as a body, e.g. body = '{{\"kind\": \"cpu\", \"units\": 20000}}'"
            ))
        })?;
        if !self.path.starts_with('/') {
            return Err(ConfigError(format!(
                "stream {name:?}: path {:?} must start with '/'",
                self.path
            )));
        }
        let path = target.join(&self.path);
        json_request(&Method::POST, &path, &target.authority, body.as_bytes())
            .map_err(|e| ConfigError(format!("job stream {name:?}: {e}")))?;
        Ok(JobStreamSpec {
            name: name.clone(),
            path,
            body,
            rate,
            connections: self.connections.unwrap_or(DEFAULT_OPEN_LOOP_CONNECTIONS),
        })
    }

    fn spec(&self, target: &Target) -> Result<StreamSpec, ConfigError> {
        let name = &self.name;
        let load = match (self.rate, self.concurrency) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "stream {name:?}: give either rate (open loop) or concurrency (closed loop), not both"
                )))
            }
            (None, None) => {
                return Err(ConfigError(format!(
                    "stream {name:?}: give a rate (requests per second, open loop) or a concurrency (closed loop)"
                )))
            }
            (Some(rate), None) => Load::Open {
                rate,
                connections: self.connections.unwrap_or(DEFAULT_OPEN_LOOP_CONNECTIONS),
            },
            (None, Some(concurrency)) => {
                if self.connections.is_some_and(|c| c != concurrency) {
                    return Err(ConfigError(format!(
                        "stream {name:?}: a closed-loop stream uses one connection per unit of concurrency; drop connections"
                    )));
                }
                Load::Closed {
                    connections: concurrency,
                }
            }
        };
        if !self.path.starts_with('/') {
            return Err(ConfigError(format!(
                "stream {name:?}: path {:?} must start with '/'",
                self.path
            )));
        }
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| header(k, v))
            .collect::<Result<_, _>>()?;
        Ok(StreamSpec {
            name: name.clone(),
            method: parse_method(&self.method)?,
            path: target.join(&self.path),
            headers,
            body: self.body.clone().map(Bytes::from),
            load,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            }],
            timing: Timing {
                duration,
                ..Timing::default()
            },
        }
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

    #[test]
    fn parses_a_scenario_file() {
        let file: ScenarioFile = toml::from_str(
            r#"
            base_url = "http://127.0.0.1:9/api"
            duration = "3s"
            [[stream]]
            name = "probe"
            path = "/health"
            rate = 50
            [[stream]]
            name = "heavy"
            method = "post"
            path = "/work"
            body = "{}"
            headers = { "content-type" = "application/json" }
            concurrency = 2
            "#,
        )
        .unwrap();
        let target = Target::parse(file.base_url.as_deref().unwrap()).unwrap();
        let specs = file.stream_specs(&target).unwrap();
        assert_eq!(specs[0].path, "/api/health");
        assert_eq!(
            specs[0].load,
            Load::Open {
                rate: 50.0,
                connections: DEFAULT_OPEN_LOOP_CONNECTIONS
            }
        );
        assert_eq!(specs[1].method, Method::POST);
        assert_eq!(specs[1].load, Load::Closed { connections: 2 });
        assert_eq!(specs[1].headers.len(), 1);
        let timing = file.timing(Timing::default()).unwrap();
        assert_eq!(timing.duration, Duration::from_secs(3));
        assert_eq!(timing.warmup, Timing::default().warmup);
    }

    #[test]
    fn refuses_ambiguous_or_unknown_stream_settings() {
        let both = "[[stream]]\nname='a'\npath='/'\nrate=1\nconcurrency=1\n";
        let neither = "[[stream]]\nname='a'\npath='/'\n";
        let target = Target::parse("http://h:1").unwrap();
        for text in [both, neither] {
            let file: ScenarioFile = toml::from_str(text).unwrap();
            assert!(file.stream_specs(&target).is_err(), "{text}");
        }
        assert!(toml::from_str::<ScenarioFile>("[[stream]]\nname='a'\npath='/'\nrat=1\n").is_err());
    }
}
