//! What each phase of a variant sends: the probe always, and in the loaded phase the
//! scenario's load: heavy `GET /work/cpu` requests sized for this server, or
//! background jobs (`POST /jobs`) driven beside the request streams.

use std::net::SocketAddr;
use std::time::Duration;

use super::Configuration;
use crate::background_jobs::JobsPlan;
use crate::plan::{Load, Plan, StreamSpec, Timing};
use crate::report::{HeavySize, PhaseSpec, Scenario, Settings};
use crate::target::Target;

/// Every phase's interval: one point per second on its timeline.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Connections submitting background jobs in the jobs scenario.
const JOB_CONNECTIONS: usize = 16;

/// New-connection probes in flight at once at most.
const FRESH_CONNECTIONS: usize = 16;

/// The request streams of `phase` against the server at `addr`.
pub fn phase_plan(
    phase: &PhaseSpec,
    addr: SocketAddr,
    settings: &Settings,
    heavy: &HeavySize,
    server: &Configuration,
) -> Plan {
    let target =
        Target::parse(&format!("http://{addr}/")).expect("a socket address makes a valid URL");
    let stream = |name: &str, path: String, load| StreamSpec {
        name: name.into(),
        method: http::Method::GET,
        path,
        headers: Vec::new(),
        body: None,
        load,
        fresh_connections: false,
        stages: Vec::new(),
        mix: Vec::new(),
    };
    let mut streams = vec![stream(
        "probe",
        server.probe_path().into(),
        Load::Open {
            rate: settings.probe_rate,
            connections: settings.probe_connections,
        },
    )];
    // New clients: what a blocked accept loop (or a stuck process's own accept
    // queue) does to them shows only on new connections.
    if settings.fresh_rate > 0.0 {
        let mut fresh = stream(
            "fresh",
            server.probe_path().into(),
            Load::Open {
                rate: settings.fresh_rate,
                connections: FRESH_CONNECTIONS,
            },
        );
        fresh.fresh_connections = true;
        streams.push(fresh);
    }
    // In the jobs scenario the load is background jobs, driven beside this plan.
    if let (Some(load), true) = (phase.load, settings.scenario.heavy_requests()) {
        let rate = load * heavy.ideal_per_s;
        let path = match server.as_external() {
            Some(external) => external.heavy_path(heavy.units),
            None => settings.scenario.heavy_path(heavy.units),
        };
        streams.push(stream(
            "heavy",
            path,
            Load::Open {
                rate,
                connections: heavy_connections(settings, rate, heavy),
            },
        ));
    }
    Plan {
        target,
        streams,
        timing: Timing {
            duration: Duration::from_secs_f64(phase.duration_s),
            warmup: Duration::from_secs_f64(phase.warmup_s),
            timeout: Duration::from_secs_f64(settings.timeout_s),
            interval: INTERVAL,
            drain: Duration::from_secs_f64(settings.drain_s),
            release_tick: Duration::ZERO,
            ..Timing::default()
        },
    }
}

/// Connections of the heavy stream: `--heavy-connections`, or in the upstream
/// scenario at least twice the calls a server that keeps up has in flight (rate ×
/// wait), so that the client never caps what an I/O answer can show.
fn heavy_connections(settings: &Settings, rate: f64, heavy: &HeavySize) -> usize {
    let mut connections = settings.heavy_connections;
    if settings.scenario == Scenario::Upstream {
        let in_flight = rate * heavy.cost_ms / 1e3;
        connections = connections.max((2.0 * in_flight).ceil() as usize);
    }
    connections
}

/// The background jobs of `phase` in the jobs scenario (a step of its sweep), or
/// `None` when the phase has none.
pub fn jobs_plan(
    phase: &PhaseSpec,
    addr: SocketAddr,
    settings: &Settings,
    heavy: &HeavySize,
    server: &Configuration,
) -> Option<JobsPlan> {
    let load = phase.load.filter(|_| settings.scenario == Scenario::Jobs)?;
    let path = match server.as_external() {
        // The run refuses external servers without a jobs API in this scenario.
        Some(external) => external.jobs_path.clone()?,
        None => "/jobs".into(),
    };
    Some(JobsPlan {
        addr,
        path,
        name: "jobs".into(),
        rate: load * heavy.ideal_per_s,
        body: format!(r#"{{"kind": "cpu", "units": {}}}"#, heavy.units),
        duration: Duration::from_secs_f64(phase.warmup_s + phase.duration_s),
        connections: JOB_CONNECTIONS,
        timeout: Duration::from_secs_f64(settings.timeout_s),
        drain: Duration::from_secs_f64((2.0 * phase.duration_s).max(10.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rust() -> Configuration {
        Configuration::plain(servers::variant::Variant::SpawnBlocking)
    }

    fn sized(settings: &Settings) -> HeavySize {
        let info = serde_json::json!({ "ns_per_unit": 1000.0, "cores": 2 });
        HeavySize::from_info(&info, settings).unwrap()
    }

    #[test]
    fn the_loaded_phase_adds_the_heavy_stream() {
        let settings = Settings::new(false, Scenario::Responsiveness);
        let heavy = sized(&settings);
        let addr = "127.0.0.1:9".parse().unwrap();
        let loaded = phase_plan(&settings.phases[1], addr, &settings, &heavy, &rust());
        let names: Vec<&str> = loaded.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["probe", "fresh", "heavy"]);
        assert!(loaded.streams[1].fresh_connections && !loaded.streams[0].fresh_connections);
        assert_eq!(loaded.streams[2].path, "/work/cpu?units=20000");
        // Each step offers its own load: 0.25 and 1.5 times the ideal 100/s.
        assert_eq!(loaded.streams[2].load.rate(), Some(25.0));
        let last = settings.steps().last().unwrap();
        let top = phase_plan(last, addr, &settings, &heavy, &rust());
        assert_eq!(top.streams[2].load.rate(), Some(150.0));
        loaded.validate().unwrap();
        assert_eq!(
            phase_plan(&settings.phases[0], addr, &settings, &heavy, &rust())
                .streams
                .len(),
            2,
            "idle: the probe and the new-connection probe"
        );
        assert!(jobs_plan(&settings.phases[1], addr, &settings, &heavy, &rust()).is_none());
    }

    #[test]
    fn upstream_calls_get_connections_for_twice_what_is_in_flight() {
        let settings = Settings::new(false, Scenario::Upstream);
        let info = serde_json::json!({ "ns_per_unit": 1000.0, "cores": 16 });
        let heavy = HeavySize::from_info(&info, &settings).unwrap();
        let addr = "127.0.0.1:9".parse().unwrap();
        let top = phase_plan(
            settings.steps().last().unwrap(),
            addr,
            &settings,
            &heavy,
            &rust(),
        );
        // 16 cores, 200 ms: 80 calls/s a blocking pool finishes, 24,000/s at
        // 300x, 4,800 in flight when kept up.
        assert_eq!(top.streams[2].path, "/work/upstream?ms=200");
        assert_eq!(top.streams[2].load.rate(), Some(24_000.0));
        assert_eq!(top.streams[2].load.connections(), 9_600);
        let low = phase_plan(&settings.phases[1], addr, &settings, &heavy, &rust());
        assert_eq!(
            low.streams[2].load.connections(),
            settings.heavy_connections
        );
    }

    #[test]
    fn the_jobs_scenario_loads_with_jobs_instead() {
        let settings = Settings::new(true, Scenario::Jobs);
        let heavy = sized(&settings);
        let addr = "127.0.0.1:9".parse().unwrap();
        let loaded = phase_plan(&settings.phases[1], addr, &settings, &heavy, &rust());
        assert_eq!(loaded.streams.len(), 2, "the probes only");
        let jobs = jobs_plan(&settings.phases[1], addr, &settings, &heavy, &rust()).unwrap();
        assert!((jobs.rate - settings.job_load * 100.0).abs() < 1e-9);
        assert!(jobs.body.contains("20000"));
        assert!(jobs_plan(&settings.phases[0], addr, &settings, &heavy, &rust()).is_none());
    }
}
