//! Scenario files for `loadgen bench`: several named streams in TOML, request
//! streams and background-job streams, turned into a [`Plan`] and job streams.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde::Deserialize;

use crate::client::PreparedRequest;
use crate::config::{header, parse_method, read_body_file, ConfigError};
use crate::plan::{Load, MixEntry, StreamSpec, Timing, DEFAULT_OPEN_LOOP_CONNECTIONS};
use crate::stages::{check_stages, stages_length, Stage};
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
    /// The folder the file is in: relative `body_file`s are read from there.
    #[serde(skip)]
    pub dir: std::path::PathBuf,
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
    /// What the stream requests; without it, its `[[stream.request]]` list.
    pub path: Option<String>,
    pub body: Option<String>,
    /// The body read from this file (relative to the scenario file), as is.
    pub body_file: Option<std::path::PathBuf>,
    /// Sent with every request of the stream, its mix's too.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Several requests sent in a fixed rotation by weight, all recorded as this
    /// stream, in place of its own path.
    #[serde(default, rename = "request")]
    pub requests: Vec<RequestFile>,
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
    /// Open loop whose rate changes: `[{ duration = "30s", target = 100 }, …]`,
    /// each a linear ramp from the rate before it (`rate`, default 0) to `target`.
    pub stages: Option<Vec<Stage>>,
}

/// One `[[stream.request]]` of a stream's mix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    pub body: Option<String>,
    pub body_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Its share of the stream's requests [default: 1].
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A body given inline or as a file (relative to `dir`), not both.
fn body(
    what: &str,
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
    dir: &Path,
) -> Result<Option<Bytes>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "{what}: give body or body_file, not both"
        ))),
        (Some(text), None) => Ok(Some(Bytes::from(text.clone()))),
        (None, Some(path)) => read_body_file(&dir.join(path)).map(Some),
        (None, None) => Ok(None),
    }
}

/// A path that starts with '/', joined onto `target`'s base path.
fn joined(what: &str, path: &str, target: &Target) -> Result<String, ConfigError> {
    if !path.starts_with('/') {
        return Err(ConfigError(format!(
            "{what}: path {path:?} must start with '/'"
        )));
    }
    Ok(target.join(path))
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
        let mut file: ScenarioFile =
            toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        file.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(file)
    }

    /// The file's timing, each setting falling back to `defaults`; with staged
    /// streams, the duration falls back to the longest stages and the warm-up to
    /// none (a ramp is its own warm-up).
    pub fn timing(&self, defaults: Timing) -> Timing {
        let longest_stages = self
            .streams
            .iter()
            .filter(|s| !s.is_job())
            .filter_map(|s| s.stages.as_deref())
            .map(stages_length)
            .max();
        let (duration, warmup) = match longest_stages {
            Some(length) => (length, Duration::ZERO),
            None => (defaults.duration, defaults.warmup),
        };
        Timing {
            duration: self.duration.unwrap_or(duration),
            warmup: self.warmup.unwrap_or(warmup),
            timeout: self.timeout.unwrap_or(defaults.timeout),
            interval: self.interval.unwrap_or(defaults.interval),
            ..defaults
        }
    }

    /// The request streams, with paths joined onto `target`'s base path.
    pub fn stream_specs(&self, target: &Target) -> Result<Vec<StreamSpec>, ConfigError> {
        self.streams
            .iter()
            .filter(|s| !s.is_job())
            .map(|s| s.spec(target, &self.dir))
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
        if self.stages.is_some() {
            return Err(ConfigError(format!(
                "job stream {name:?}: jobs are submitted at a constant rate; stages are for request streams"
            )));
        }
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
        if !self.requests.is_empty() || self.body_file.is_some() {
            return Err(ConfigError(format!(
                "job stream {name:?}: a job stream submits one body to one path; drop request and body_file"
            )));
        }
        let path = self.path.as_deref().ok_or_else(|| {
            ConfigError(format!(
                "job stream {name:?}: give the path jobs are submitted to"
            ))
        })?;
        let path = joined(&format!("stream {name:?}"), path, target)?;
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

    fn spec(&self, target: &Target, dir: &Path) -> Result<StreamSpec, ConfigError> {
        let name = &self.name;
        if let Some(stages) = &self.stages {
            // `stages = []` is a mistake, not "no stages".
            check_stages(stages).map_err(|e| ConfigError(format!("stream {name:?}: {e}")))?;
        }
        let load = match (self.rate, self.concurrency) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "stream {name:?}: give either rate (open loop) or concurrency (closed loop), not both"
                )))
            }
            (None, None) if self.stages.is_some() => Load::Open {
                rate: 0.0,
                connections: self.connections.unwrap_or(DEFAULT_OPEN_LOOP_CONNECTIONS),
            },
            (None, None) => {
                return Err(ConfigError(format!(
                    "stream {name:?}: give a rate (requests per second, open loop), stages, or a concurrency (closed loop)"
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
        let what = format!("stream {name:?}");
        let headers = |map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(k, v)| header(k, v))
                .collect::<Result<Vec<_>, _>>()
        };
        let mix = self
            .requests
            .iter()
            .map(|r| {
                Ok(MixEntry {
                    method: parse_method(&r.method)?,
                    path: joined(&what, &r.path, target)?,
                    headers: headers(&r.headers)?,
                    body: body(&what, &r.body, &r.body_file, dir)?,
                    weight: r.weight,
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        // With a mix, the stream is named in reports by its first request (and
        // the paths of all of them).
        let (method, path, own_body) = match (&self.path, mix.first()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "{what}: give a path or a list of [[stream.request]], not both"
                )))
            }
            (Some(path), None) => (
                parse_method(&self.method)?,
                joined(&what, path, target)?,
                body(&what, &self.body, &self.body_file, dir)?,
            ),
            (None, Some(first)) => {
                if self.body.is_some() || self.body_file.is_some() {
                    return Err(ConfigError(format!(
                        "{what}: with a list of requests, give each its body"
                    )));
                }
                let paths: Vec<&str> = mix.iter().map(|m| m.path.as_str()).collect();
                (first.method.clone(), paths.join(" | "), None)
            }
            (None, None) => {
                return Err(ConfigError(format!(
                    "{what}: give a path, or a list of [[stream.request]] with a path each"
                )))
            }
        };
        Ok(StreamSpec {
            name: name.clone(),
            method,
            path,
            headers: headers(&self.headers)?,
            body: own_body,
            load,
            fresh_connections: self.fresh_connections || self.keepalive == Some(false),
            stages: self.stages.clone().unwrap_or_default(),
            mix,
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
    fn staged_streams_set_the_run_length_and_ramp_from_their_rate() {
        let file: ScenarioFile = toml::from_str(
            r#"
            [[stream]]
            name = "ramp"
            path = "/"
            stages = [{ duration = "30s", target = 100 }, { duration = "1m", target = 0 }]
            [[stream]]
            name = "short"
            path = "/"
            rate = 5
            stages = [{ duration = "10s", target = 50 }]
            "#,
        )
        .unwrap();
        let target = Target::parse("http://h:1").unwrap();
        let specs = file.stream_specs(&target).unwrap();
        assert_eq!(
            specs[0].load.rate(),
            Some(0.0),
            "a ramp starts from nothing"
        );
        assert_eq!(specs[1].load.rate(), Some(5.0));
        assert_eq!(specs[0].stages.len(), 2);
        let timing = file.timing(Timing::default());
        assert_eq!(
            timing.duration,
            Duration::from_secs(90),
            "the longest stages"
        );
        assert_eq!(timing.warmup, Duration::ZERO);
        let unknown = "[[stream]]\nname='a'\npath='/'\nstages=[{duration='1s', rate=5}]\n";
        assert!(toml::from_str::<ScenarioFile>(unknown).is_err());
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

    #[test]
    fn empty_stages_and_staged_jobs_are_refused() {
        let target = Target::parse("http://h:1").unwrap();
        let empty: ScenarioFile =
            toml::from_str("[[stream]]\nname='a'\npath='/'\nstages=[]\n").unwrap();
        let error = empty.stream_specs(&target).unwrap_err();
        assert!(error.0.contains("at least one"), "{}", error.0);

        let staged_job = "[[stream]]\nname='j'\nkind='job'\npath='/jobs'\nrate=1\nbody='{}'\nstages=[{duration='1m', target=5}]\n";
        let file: ScenarioFile = toml::from_str(staged_job).unwrap();
        let error = file.job_specs(&target).unwrap_err();
        assert!(error.0.contains("stages"), "{}", error.0);
        // Nor does a job stream's stages set the run's length.
        let timing = file.timing(Timing::default());
        assert_eq!(timing.duration, Timing::default().duration);
    }
}
