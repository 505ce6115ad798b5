//! Command-line interface of `loadgen`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::parse_duration;
use crate::report::Scenario;

const EXAMPLES: &str = "\
Without a subcommand, loadgen runs `run`: every server variant through the
responsiveness scenario, results under results/runs/.

Examples:
  loadgen                      # the whole matrix (about 3 minutes on 2 cores)
  loadgen --quick              # the whole matrix in about 90 seconds
  loadgen run --variant spawn-blocking,rayon --loaded 30s
  loadgen bench --url http://127.0.0.1:8080/health --rate 1000 --duration 30s
  loadgen bench --url http://127.0.0.1:8080/ --connections 64
  loadgen bench --scenario scenarios/responsiveness.toml --url http://127.0.0.1:8080 \\
      --json out.json --hlog out.hlog --hgrm out.hgrm";

/// An open-loop, coordinated-omission-correct HTTP/1.1 and HTTP/2 load generator.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of `run`, which is what loadgen does without a subcommand.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every server variant through the responsiveness scenario (idle, loaded,
    /// recovery) and write the comparison to results/runs/<timestamp>/.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Check thresholds against a saved run report: exit 0 if all hold, 99 if any
    /// fails, 1 if they cannot be checked.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Compare two runs (or two folders of repeated runs), variant by variant, or
    /// two bench reports (or folders of them), stream by stream.
    Compare(CompareArgs),
    /// Add up the `bench --json` reports of agents that loaded one server together
    /// (started with the same --start-at): histograms added overall and interval
    /// by interval, never percentiles averaged.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
    /// Measure built-in servers whose behaviour is known exactly and show expected
    /// against measured (about 30 s): exit 0 if every check passes, 99 otherwise.
    Selftest(SelftestArgs),
    /// Render the charts, report.html and summary.md of a saved run folder (from
    /// `run`) again, without running anything; for a `run --repeat` folder, its
    /// summary.md and repeat.json.
    Plot(PlotArgs),
    /// Run one of the reference servers (what `run` starts as child processes).
    #[command(hide = true)]
    Serve(servers::cli::Cli),
    /// Run an external server's command under a supervisor that stops its whole
    /// process tree (what `run` starts external servers with).
    #[command(hide = true)]
    Guard(crate::guard::GuardArgs),
    /// Load one URL, or several named streams from a scenario file, and report
    /// latency percentiles (corrected for coordinated omission) per stream.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
}

const BENCH_EXAMPLES: &str = "\
Open loop (--rate): request k is due at start + k/rate and its latency counts from
then, even if every connection was busy: coordinated-omission corrected, like wrk2.
Closed loop (--connections alone): each connection sends as soon as the last
response arrives, like wrk or oha, for maximum throughput.

Examples:
  loadgen bench --url http://127.0.0.1:8080/health --rate 500 --connections 8
  loadgen bench --url http://127.0.0.1:8080/work/cpu?units=1000 --connections 4 -d 30s
  loadgen bench --unix /tmp/server.sock --url http://localhost/health --rate 500
  loadgen bench --url http://127.0.0.1:8080/health --rate 50000 --release-tick 1ms
  loadgen bench --url http://127.0.0.1:8080/health --stages 30s:100,1m:1000,30s:0
  loadgen bench --url https://127.0.0.1:8443/health --insecure --rate 500
  loadgen bench --url http://127.0.0.1:8080/health --http2 -c 4 --h2-streams 16
  loadgen bench --url http://127.0.0.1:8080/health --rate 500 -d 1m --live   # open the printed URL
  loadgen bench --url http://10.0.0.5:8080/health --rate 5000 --start-at 2026-12-03T15:00:00Z \
      --json agent-1.json     # one of several load hosts; then: loadgen merge agent-*.json
  loadgen bench --url http://127.0.0.1:8080/echo -m POST --body-file req.json \
      -H 'Content-Type: application/json' --auth user:secret --rate 200
  loadgen bench --url http://127.0.0.1:8080/health --rate 500 \
      --scrape http://127.0.0.1:8080/metrics.json --server-pid 4242 --plot charts/
  loadgen bench --scenario scenarios/responsiveness.toml --url http://127.0.0.1:8080 --json r.json

Exit status: 0 when the run completed, 1 on an error (e.g. server unreachable),
2 on bad arguments, 130 when interrupted (results so far are still written).";

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    parse_duration("", s).map_err(|e| e.0.trim_start().to_owned())
}

/// An RFC 3339 instant still ahead (a past one would start every agent at a
/// different moment).
fn start_at(s: &str) -> Result<std::time::SystemTime, String> {
    let at = humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{e}; give an RFC 3339 time such as 2026-12-03T15:00:00Z"))?;
    let now = std::time::SystemTime::now();
    match at.duration_since(now) {
        Err(past) => Err(format!(
            "{s} is {} in the past; give a moment still ahead when every agent starts",
            humantime::format_duration(Duration::from_secs(past.duration().as_secs()))
        )),
        Ok(ahead) if ahead > Duration::from_secs(86_400) => {
            Err(format!("{s} is more than a day ahead; is the date right?"))
        }
        Ok(_) => Ok(at),
    }
}

fn scenario(s: &str) -> Result<Scenario, String> {
    Scenario::from_str(s.trim(), true)
        .map_err(|_| format!("unknown scenario {s:?}; choose responsiveness, jobs or upstream"))
}

const RUN_EXAMPLES: &str = "\
Per variant: start it as a child process on port 0, read /info, size a heavy job of
about 20 ms of CPU, then: idle (probe only); a load sweep, one step per load (probe
plus heavy jobs offered at 0.25x ... 1.5x what the cores can finish; a step is
skipped once the probe went unanswered for a whole step); recovery (probe only).
Its responsive capacity is the highest load up to which every step kept the probe
within the objective and answered at least 90 % of the heavy work offered.

A variant is responsive when the 95 % interval of its probe p99 under load lies
within --objective (50 ms).

Examples:
  loadgen run
  loadgen run --quick --variant blocking-in-async,spawn-blocking
  loadgen run --repeat 5          # five rounds, order rotated, medians and ranges
  loadgen run --live              # watch it in a browser: open the printed URL
  loadgen run --loads 0.5,0.9,1.1 --loaded 10s
  loadgen run --server-cpus 1 --client-cpus 0
  loadgen run --scenario upstream   # blocking network I/O: calls to a slow HTTP service
  loadgen run --ablation            # bounded-pool with each ingredient taken away
  loadgen run --servers examples/fastapi/servers.toml   # external servers (FastAPI)
  loadgen run --servers examples/fastapi/servers.toml --variant rayon,fastapi-process-pool

Exit status: 0 when every variant ran, 1 when one failed (the others still run),
2 on bad arguments, 130 when interrupted (finished variants are still written).";

/// Options of `loadgen run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Variants to run, comma-separated: built-in variants and the names of
    /// --servers entries [default: all built-in variants, or with --servers all
    /// of its entries].
    #[arg(long, value_delimiter = ',')]
    pub variant: Vec<String>,

    /// A servers file (TOML) describing external servers to run through the same
    /// phases: command line with {port}, readiness, probe and heavy paths, how to
    /// stop (see examples/fastapi/servers.toml).
    #[arg(long)]
    pub servers: Option<PathBuf>,

    /// Run bounded-pool five ways instead of the variants: as it ships (pool at
    /// SCHED_IDLE), with the pool at nice 19 or at normal priority, with an
    /// unbounded queue, and with neither ingredient.
    #[arg(long, conflicts_with = "variant")]
    pub ablation: bool,

    /// Short phases: the whole matrix in about 90 seconds (for CI).
    #[arg(long)]
    pub quick: bool,

    /// Measured length of the idle phase [default: 3s, quick 750ms].
    #[arg(long, value_parser = duration)]
    pub idle: Option<Duration>,

    /// Measured length of each step of the load sweep [default: 3s, quick 750ms;
    /// jobs scenario 10s, quick 3s].
    #[arg(long, value_parser = duration)]
    pub loaded: Option<Duration>,

    /// Measured length of the recovery phase [default: 3s, quick 750ms].
    #[arg(long, value_parser = duration)]
    pub recovery: Option<Duration>,

    /// CPU time of one heavy job; in the upstream scenario, how long each call
    /// waits at the upstream [default: 20ms; upstream 200ms].
    #[arg(long, value_parser = duration)]
    pub job: Option<Duration>,

    /// Replaced by --loads (kept to say so).
    #[arg(long, hide = true)]
    pub overload: Option<f64>,

    /// The load sweep: heavy work offered in each step, as multiples of what the
    /// server's cores can finish, comma-separated, run in increasing order
    /// [default: 0.25,0.5,0.75,1,1.25,1.5; quick 0.5,1,1.5; jobs scenario: --job-load].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub loads: Vec<f64>,

    /// `responsiveness` (heavy GET /work/cpu requests beside the probe), `jobs`
    /// (background jobs: POST /jobs open loop, each polled until done) or
    /// `upstream` (GET /work/upstream: calls to a slow HTTP service that loadgen
    /// starts beside each server; loads are multiples of what one blocking thread
    /// per core finishes, default 0.5,2,20,300).
    #[arg(long, default_value = "responsiveness", value_parser = scenario)]
    pub scenario: Scenario,

    /// jobs scenario: jobs offered, as a multiple of what the cores can finish
    /// (below 1, so every job can finish and a lost one means something); one step
    /// (--loads, if given, replaces it).
    #[arg(long, default_value_t = 0.8)]
    pub job_load: f64,

    /// Probe requests per second (open loop).
    #[arg(long, default_value_t = crate::report::settings::DEFAULT_PROBE_RATE)]
    pub probe_rate: f64,

    /// The responsiveness objective: a variant is responsive when its probe p99
    /// under load is at most this (judged by the p99's 95 % interval).
    #[arg(long, value_parser = duration, default_value = "50ms")]
    pub objective: Duration,

    /// Connections of the probe stream.
    #[arg(long, default_value_t = 8)]
    pub probe_connections: usize,

    /// New-connection probes per second: `GET /health` on a new connection each, as
    /// new clients arrive, with connect times (0: none).
    #[arg(long, default_value_t = crate::report::settings::DEFAULT_FRESH_RATE)]
    pub fresh_rate: f64,

    /// Connections of the heavy stream.
    #[arg(long, default_value_t = 96)]
    pub heavy_connections: usize,

    /// Pin the servers to these CPUs (e.g. 1 or 2-3).
    #[arg(long)]
    pub server_cpus: Option<String>,

    /// Pin loadgen itself to these CPUs (e.g. 0).
    #[arg(long)]
    pub client_cpus: Option<String>,

    /// `--workers` for the servers [default: their cores].
    #[arg(long)]
    pub workers: Option<usize>,

    /// Run the servers without telemetry and do not scrape them (to measure what
    /// the telemetry costs); client and server CPU are still sampled.
    #[arg(long)]
    pub no_telemetry: bool,

    /// Run the servers without timing every poll of their routes and tasks
    /// (which code blocked), to measure what that costs; the rest of the
    /// telemetry stays.
    #[arg(long)]
    pub no_poll_timing: bool,

    /// A known regression, for measuring `compare`: every server's /health waits
    /// this long before answering (scripts/compare-power.sh uses it).
    #[arg(long, value_parser = duration)]
    pub inject_delay: Option<Duration>,

    /// Run the whole matrix N times, rotating the order of the variants each
    /// round; report each round and the medians and ranges over the rounds.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,

    /// Check these thresholds (a TOML file) after the run: exit 99 if any fails
    /// (with --repeat, if it fails in more than half of the rounds).
    #[arg(long)]
    pub check: Option<PathBuf>,

    /// Directory the run's folder is created in.
    #[arg(long, default_value = "results/runs")]
    pub out: PathBuf,

    /// Serve a live dashboard of the run at ADDR (default 127.0.0.1:0, a free
    /// loopback port; the address is printed at the start): which variant and
    /// phase is running, the probe's latency and the server's event-loop lag per
    /// second, and the comparison filling in as variants finish.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub live: Option<std::net::SocketAddr>,
}

const CHECK_HELP: &str = "\
Expressions: VARIANT.STREAM[.PHASE].STAT OP VALUE, or OP [FACTOR *] another selector.
VARIANT may be * (every variant). STAT: p50 p90 p99 p99.9 p99.99 max mean (latency,
corrected; units us, ms, s; a bare number is ms), count, errors, rate, efficiency
(heavy), inflation (probe). OP: < <= > >= == !=. In run reports the stream `server`
is the server's own event-loop lag (percentiles, max, mean; count; errors = failed
scrapes); a step of the load sweep is a phase (load-100 for 1x), `loaded` the
highest step that ran; VARIANT.capacity is the responsive capacity.

Examples:
  loadgen check results/runs/latest --threshold 'rayon.probe.loaded.p99 < 50ms'
  loadgen check results/runs/latest --threshold '*.probe.idle.errors == 0'
  loadgen check results/runs/latest --threshold 'rayon.server.loaded.max < 100ms'
  loadgen check results/runs/latest --threshold 'spawn-blocking.capacity < rayon.capacity'
  loadgen check results/runs/latest --threshold 'rayon.probe.load-100.p99 < 20ms'
  loadgen check results/runs/latest \\
      --threshold 'blocking-in-async.probe.loaded.p99 > 10 * rayon.probe.loaded.p99'
  loadgen check results/runs/latest --thresholds ci/thresholds.toml --junit junit.xml";

/// Options of `loadgen check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// A run folder or its report.json.
    pub report: PathBuf,
    /// A threshold expression (repeatable).
    #[arg(long)]
    pub threshold: Vec<String>,
    /// A TOML file with `thresholds = ["...", ...]`.
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Also write the results as JUnit XML.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Also write the results as a Markdown table (for a CI job summary).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

const MERGE_EXAMPLES: &str = "\
Each agent runs the same bench with the same --start-at (a moment a little ahead,
so every agent has its connections open by then) and writes its JSON; merge adds
them. Intervals are matched by wall-clock time, so the agents' clocks must agree
(NTP): each report records how late its agent began and what its kernel says about
its clock, and merge lists them.

Examples:
  loadgen bench --url http://10.0.0.5:8080/health --rate 5000 -d 60s \\
      --start-at 2026-12-03T15:00:00Z --json agent-$(hostname).json
  loadgen merge agent-*.json --json all.json --threshold 'main.p99 < 20ms'
  loadgen check all.json --threshold 'main.p99_9 < 50ms'";

/// Options of `loadgen merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The agents' `bench --json` reports (one merges to itself).
    #[arg(required = true, num_args = 1..)]
    pub reports: Vec<PathBuf>,
    /// Write the merged report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the merged percentile distribution (.hgrm) here.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Draw the merged spectrum and time series here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Check a threshold on the merged report (repeatable): exit 99 if any fails.
    #[arg(long)]
    pub threshold: Vec<String>,
}

/// Options of `loadgen compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The base: a run folder, a report.json, or a folder of repeated run folders;
    /// or a `bench --json` file, or a folder of them.
    pub base: PathBuf,
    /// The current runs, in the same forms.
    pub current: PathBuf,
    /// How far apart the two sides' 95 % intervals of a latency must be before it
    /// is a regression [default: 1.5 with three or more runs a side, 2 otherwise;
    /// see scripts/compare-power.sh for the false-alarm and detection rates].
    #[arg(long)]
    pub noise: Option<f64>,
    /// How many times lower throughput or efficiency may get before it is one.
    #[arg(long, default_value_t = 1.5)]
    pub noise_throughput: f64,
}

/// Options of `loadgen selftest`.
#[derive(Debug, Clone, Args)]
pub struct SelftestArgs {
    /// Send-lateness p99 allowed at moderate rates (100/s and 1000/s) beyond this
    /// machine's own timer jitter p99 (measured first); raise it on a machine whose
    /// noise you want tolerated.
    #[arg(long, alias = "lateness-limit", value_parser = duration, default_value = "1ms")]
    pub lateness_allowance: Duration,
}

/// Options of `loadgen plot`.
#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// A run folder holding report.json, e.g. results/runs/latest, or the folder
    /// of a repeated run.
    pub dir: PathBuf,
}

/// Options of `loadgen bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// URL to load (http:// or https://); with --scenario, the base URL stream
    /// paths are appended to.
    #[arg(long, short = 'u', required_unless_present = "scenario")]
    pub url: Option<String>,

    /// https://: accept any certificate (a self-signed test server's), as curl's
    /// -k; the server must still prove it holds the certificate's key.
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Speak HTTP/2: h2c with prior knowledge on http://, ALPN h2 on https://.
    /// Each of the --connections then carries --h2-streams requests at once.
    #[arg(long)]
    pub http2: bool,

    /// With --http2: concurrent streams per connection (closed loop: requests
    /// in flight on each; open loop: at most this many in flight on each).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "http2")]
    pub h2_streams: usize,

    /// TOML file describing several named streams (see README).
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,

    /// Requests per second (open loop). Without it the run is closed-loop.
    #[arg(
        long,
        short = 'R',
        conflicts_with = "scenario",
        allow_negative_numbers = true
    )]
    pub rate: Option<f64>,

    /// Open loop whose rate changes: comma-separated DURATION:RATE stages, each a
    /// linear ramp from the rate before it (--rate, default 0, held through any
    /// warm-up) to RATE over DURATION, like k6's ramping-arrival-rate; due times
    /// follow the integrated rate, so the correction stays exact. --duration
    /// defaults to the stages' length (past the last, its rate holds), --warmup
    /// to 0.
    #[arg(long, conflicts_with = "scenario", value_name = "STAGES")]
    pub stages: Option<String>,

    /// Connections [default: 16].
    #[arg(long, short = 'c', conflicts_with = "scenario")]
    pub connections: Option<usize>,

    /// Scrape the server's own figures once per interval from this URL: a
    /// reference server's `/metrics.json`, or Prometheus text with the names the
    /// README lists (event-loop lag, worker busy time, …), drawn under the client's
    /// latency in the --plot timelines and checkable as `server.p99`, `server.max`.
    #[arg(long)]
    pub scrape: Option<String>,

    /// Sample this process's CPU (with all its descendants) from /proc once per
    /// interval, beside the client's own.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Connect to this Unix domain socket instead of the URL's host and port (the
    /// URL still gives the Host header and the path), as a proxy in front of
    /// `uvicorn --uds` or `servers --unix` would.
    #[arg(long)]
    pub unix: Option<PathBuf>,

    /// Measured time, after the warm-up [default: 10s].
    #[arg(long, short = 'd', value_parser = duration)]
    pub duration: Option<Duration>,

    /// Time at the start whose requests are sent but not recorded [default: 2s].
    #[arg(long, short = 'w', value_parser = duration)]
    pub warmup: Option<Duration>,

    /// Longest a request may take, connect included [default: 5s].
    #[arg(long, short = 't', value_parser = duration)]
    pub timeout: Option<Duration>,

    /// Length of one interval of the time series [default: 1s].
    #[arg(long, value_parser = duration)]
    pub interval: Option<Duration>,

    /// Open loop: release due requests at most once per TICK, all those due by
    /// then together (e.g. 1ms, as wrk2 does). Fewer wake-ups, so less client CPU
    /// at high rates, for up to a tick of send lateness; 0 (the default) sends
    /// each request at its own due time.
    #[arg(long, value_parser = duration, value_name = "TICK")]
    pub release_tick: Option<Duration>,

    /// HTTP method.
    #[arg(long, short = 'm', default_value = "GET", conflicts_with = "scenario")]
    pub method: String,

    /// Extra request header, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H', conflicts_with = "scenario")]
    pub headers: Vec<String>,

    /// Request body.
    #[arg(long, conflicts_with = "scenario")]
    pub body: Option<String>,

    /// Request body read from FILE, sent as is (any bytes, up to 64 MiB).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["scenario", "body"])]
    pub body_file: Option<PathBuf>,

    /// HTTP basic authentication: sends `Authorization: Basic …` for USER:PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD", conflicts_with = "scenario")]
    pub auth: Option<String>,

    /// Name of the single stream in reports.
    #[arg(long, default_value = "main", conflicts_with = "scenario")]
    pub name: String,

    /// Write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write an HdrHistogram interval log here (one tag per stream).
    #[arg(long)]
    pub hlog: Option<PathBuf>,

    /// Write the percentile distribution (.hgrm) here; with several streams,
    /// one file per stream named FILE-STEM.STREAM.hgrm.
    #[arg(long)]
    pub hgrm: Option<PathBuf>,

    /// Check a threshold after the run, e.g. 'main.p99 < 20ms' (STREAM.STAT;
    /// repeatable): exit 99 if any fails.
    #[arg(long)]
    pub threshold: Vec<String>,

    /// Draw the latency spectrum and per-stream time series (SVG and PNG) here.
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Start the schedule at this wall-clock instant (RFC 3339, e.g.
    /// 2026-12-03T15:00:00Z): agents on several hosts given the same instant load
    /// together, and `loadgen merge` adds their reports. Connections open 2 s
    /// before; each interval's histograms are kept in --json.
    #[arg(long, value_parser = start_at, value_name = "TIME")]
    pub start_at: Option<std::time::SystemTime>,

    /// Serve a live dashboard of the run at ADDR (default 127.0.0.1:0, a free
    /// loopback port; the address is printed at the start): each stream's
    /// latency and rates per interval, drawn as each interval closes.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub live: Option<std::net::SocketAddr>,

    /// Runtime threads driving the connections [default: 1 for an open loop
    /// (cheapest: no cross-thread wake-ups), cores for a closed loop].
    #[arg(long)]
    pub threads: Option<usize>,

    /// Open a new connection for every request (sending `Connection: close`), as
    /// new clients do, and report connect times; by default connections are opened
    /// before the clock starts and kept alive (`--no-keepalive` says the same, as
    /// in oha).
    #[arg(long, alias = "no-keepalive", conflicts_with = "scenario")]
    pub fresh_connections: bool,
}
