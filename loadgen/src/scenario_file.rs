//! Scenario files for `loadgen bench`: several named streams in TOML, request
//! streams and background-job streams, turned into a [`Plan`] and job streams.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde::Deserialize;

use crate::client::PreparedRequest;
use crate::config::{header, parse_method, ConfigError};
use crate::plan::{Load, StreamSpec, Timing, DEFAULT_OPEN_LOOP_CONNECTIONS};
use crate::target::Target;

/// A scenario file. Durations are strings like `"500ms"`, `"10s"`, `"2m"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Base URL the stream paths are appended to; `--url` overrides it.
    pub base_url: Option<String>,
    /// A Unix domain socket to send to instead of the URL's host and port (the
    /// URL still names the `Host` header and the paths); `--unix` overrides it.
    pub unix: Option<std::path::PathBuf>,
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub warmup: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(rename = "stream", default)]
    pub streams: Vec<StreamFile>,
}

/// What a `[[stream]]` sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Requests, recorded one by one.
    #[default]
    Request,
    /// Background jobs submitted to `path` (a `POST /jobs` API) at `rate`, each
    /// polled at `path/ID` until done.
    Job,
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
    pub headers: BTreeMap<String, String>,
    /// Requests per second: makes the stream open-loop.
    pub rate: Option<f64>,
    /// Connections for an open-loop stream.
    pub connections: Option<usize>,
    /// Connections sending back to back: makes the stream closed-loop.
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub kind: StreamKind,
    /// A new connection for every request (as new clients arrive), with connect
    /// times recorded; `keepalive = false` says the same.
    #[serde(default)]
    pub fresh_connections: bool,
    /// `false`: as `fresh_connections = true`.
    pub keepalive: Option<bool>,
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

impl ScenarioFile {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<ScenarioFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// The file's timing, each setting falling back to `defaults`.
    pub fn timing(&self, defaults: Timing) -> Timing {
        Timing {
            duration: self.duration.unwrap_or(defaults.duration),
            warmup: self.warmup.unwrap_or(defaults.warmup),
            timeout: self.timeout.unwrap_or(defaults.timeout),
            interval: self.interval.unwrap_or(defaults.interval),
            drain: defaults.drain,
            release_tick: defaults.release_tick,
        }
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
        self.streams
            .iter()
            .filter(|s| s.is_job())
            .map(|s| s.job_spec(target))
            .collect()
    }
}

impl StreamFile {
    fn is_job(&self) -> bool {
        self.kind == StreamKind::Job
    }

    fn job_spec(&self, target: &Target) -> Result<JobStreamSpec, ConfigError> {
        let name = &self.name;
        crate::plan::check_stream_name(name)?;
        let rate = match (self.rate, self.concurrency) {
            (Some(rate), None) if rate.is_finite() && rate > 0.0 => rate,
            _ => {
                return Err(ConfigError(format!(
                    "job stream {name:?}: give a positive rate (jobs per second); jobs are submitted open loop"
                )))
            }
        };
        if self.fresh_connections || self.keepalive == Some(false) {
            return Err(ConfigError(format!(
                "job stream {name:?}: fresh_connections is for request streams; a job stream keeps its connections"
            )));
        }
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
        PreparedRequest::json(&Method::POST, &path, &target.authority, body.as_bytes())
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
            fresh_connections: self.fresh_connections || self.keepalive == Some(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            [[stream]]
            name = "new-clients"
            path = "/health"
            rate = 10
            keepalive = false
            "#,
        )
        .unwrap();
        let target = Target::parse(file.base_url.as_deref().unwrap()).unwrap();
        let specs = file.stream_specs(&target).unwrap();
        assert_eq!(specs[0].path, "/api/health");
        assert!(!specs[0].fresh_connections && specs[2].fresh_connections);
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
        let timing = file.timing(Timing::default());
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
        let fresh_job = "[[stream]]\nname='j'\nkind='job'\npath='/jobs'\nrate=1\nbody='{}'\nfresh_connections=true\n";
        let file: ScenarioFile = toml::from_str(fresh_job).unwrap();
        let error = file.job_specs(&target).unwrap_err();
        assert!(error.0.contains("fresh_connections"), "{}", error.0);
    }
}
