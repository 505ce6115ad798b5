//! Several load hosts merged exactly: agents started with the same `--start-at`,
//! added up by `loadgen merge`, against one agent carrying the whole load (the same
//! run split in two), all against one local server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use loadgen::report::BenchReport;
use loadgen::stats::decode;
use support::processes::{bench_report, loadgen, loadgen_ok, temp_dir};
use support::{Behaviour, TestServer};

/// The reports every test here reads: made once.
struct Runs {
    dir: PathBuf,
    /// Two agents at 100/s each, started at the same instant.
    a: PathBuf,
    b: PathBuf,
    /// An agent like `b` started 1 s (two intervals) later.
    late: PathBuf,
    /// One agent at 200/s, started at the same instant as `a` and `b`.
    single: PathBuf,
    /// A run without --start-at.
    unsynced: PathBuf,
}

/// `loadgen bench` against `url` at `rate` for 2 s in 500 ms intervals, started
/// at `at`, writing `json`; not yet waited for.
fn agent(url: &str, rate: u32, at: SystemTime, json: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["bench", "--url", url, "--rate", &rate.to_string()])
        .args(["-c", "4", "-d", "2s", "-w", "0s", "--interval", "500ms"])
        .args([
            "--start-at",
            &humantime::format_rfc3339_millis(at).to_string(),
        ])
        .arg("--json")
        .arg(json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start loadgen")
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let server = TestServer::start(Behaviour::Fast);
        let url = server.url("/");
        let dir = temp_dir("merge");
        let file = |name: &str| dir.join(name);
        let at = SystemTime::now() + Duration::from_secs(3);
        let children = [
            agent(&url, 100, at, &file("a.json")),
            agent(&url, 100, at, &file("b.json")),
            agent(&url, 100, at + Duration::from_secs(1), &file("late.json")),
            agent(&url, 200, at, &file("single.json")),
        ];
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let unsynced = file("unsynced.json").display().to_string();
        loadgen_ok(&[
            "bench",
            "--url",
            &url,
            "--rate",
            "50",
            "-d",
            "1s",
            "-w",
            "0s",
            "--interval",
            "500ms",
            "--json",
            &unsynced,
        ]);
        Runs {
            a: file("a.json"),
            b: file("b.json"),
            late: file("late.json"),
            single: file("single.json"),
            unsynced: file("unsynced.json"),
            dir,
        }
    })
}

fn merge(inputs: &[&Path], out: &Path) -> BenchReport {
    let mut args = vec!["merge".to_owned()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(["--json".to_owned(), out.display().to_string()]);
    loadgen_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    bench_report(out)
}

fn corrected_count(histogram: &str) -> u64 {
    decode(histogram).unwrap().len()
}

#[test]
fn two_agents_add_up_exactly_to_the_run_they_split() {
    let runs = runs();
    let (a, b, single) = (
        bench_report(&runs.a),
        bench_report(&runs.b),
        bench_report(&runs.single),
    );
    let merged = merge(&[&runs.a, &runs.b], &runs.dir.join("all.json"));
    let (m, sa, sb, ss) = (
        &merged.streams[0],
        &a.streams[0],
        &b.streams[0],
        &single.streams[0],
    );

    // The histograms are added, not their percentiles averaged.
    let mut sum = decode(&sa.histograms.corrected).unwrap();
    sum.add(decode(&sb.histograms.corrected).unwrap()).unwrap();
    assert_eq!(decode(&m.histograms.corrected).unwrap(), sum);
    assert_eq!(
        m.latency.corrected.max_us,
        sa.latency.corrected.max_us.max(sb.latency.corrected.max_us)
    );

    // Split in two, the load is the same load: every request due is counted once
    // (sent, or unsent if no connection was free before the end).
    assert_eq!(m.latency.corrected.count, ss.latency.corrected.count);
    assert_eq!(m.latency.corrected.count, 400);
    assert_eq!(m.counts.sent + m.unsent, ss.counts.sent + ss.unsent);
    assert_eq!(m.connections, 8);
    assert!(
        (m.target_rate.unwrap() - 200.0).abs() < 1.0,
        "{:?}",
        m.target_rate
    );

    // Interval by interval: each merged interval is the sum of the agents' own,
    // and the intervals together hold the whole histogram but for the unsent
    // requests (recorded in the total only).
    let mut total = 0;
    for (j, interval) in m.intervals.iter().enumerate() {
        let count = |s: &loadgen::report::StreamReport| {
            s.intervals.get(j).map_or(0, |i| {
                corrected_count(&i.histograms.as_ref().unwrap().corrected)
            })
        };
        let merged_count = corrected_count(&interval.histograms.as_ref().unwrap().corrected);
        assert_eq!(merged_count, count(sa) + count(sb), "interval {j}");
        assert_eq!(
            interval.responses,
            sa.intervals.get(j).map_or(0, |i| i.responses)
                + sb.intervals.get(j).map_or(0, |i| i.responses)
        );
        total += merged_count;
    }
    assert_eq!(total + m.unsent, m.latency.corrected.count);
    // The merged target per interval follows the single agent's (100 due per
    // measured interval; boundaries jitter by a timer's wake-up).
    for (merged, alone) in m.intervals.iter().zip(&ss.intervals).take(4) {
        let (merged, alone) = (merged.target_rate.unwrap(), alone.target_rate.unwrap());
        assert!(
            (merged - alone).abs() <= 0.05 * alone,
            "{merged} against {alone}"
        );
    }

    // Each agent is listed with its start and clock, and started at the instant.
    assert_eq!(merged.merged_from.len(), 2);
    for source in &merged.merged_from {
        assert_eq!(source.offset_intervals, 0);
        assert!(source.skew_ms.abs() < 50.0, "{}", source.skew_ms);
        assert!(source.start.is_some());
    }

    // `check` reads the merged report like any other.
    let all = runs.dir.join("all.json").display().to_string();
    loadgen_ok(&["check", &all, "--threshold", "main.count == 400"]);
    let failed = loadgen(&["check", &all, "--threshold", "main.count < 400"]);
    assert_eq!(failed.status.code(), Some(99));
}

#[test]
fn an_agent_started_later_lands_in_the_later_intervals() {
    let runs = runs();
    let (a, late) = (bench_report(&runs.a), bench_report(&runs.late));
    let merged = merge(&[&runs.late, &runs.a], &runs.dir.join("shifted.json"));
    let (m, sa, sl) = (&merged.streams[0], &a.streams[0], &late.streams[0]);
    let late_source = merged
        .merged_from
        .iter()
        .find(|s| s.file.ends_with("late.json"))
        .unwrap();
    assert_eq!(late_source.offset_intervals, 2);
    assert_eq!(
        m.intervals.len(),
        sa.intervals.len().max(2 + sl.intervals.len())
    );
    let count = |i: &loadgen::report::IntervalReport| {
        corrected_count(&i.histograms.as_ref().unwrap().corrected)
    };
    // The first second is the early agent's alone; then both.
    assert_eq!(count(&m.intervals[0]), count(&sa.intervals[0]));
    assert_eq!(count(&m.intervals[1]), count(&sa.intervals[1]));
    assert_eq!(
        count(&m.intervals[2]),
        count(&sa.intervals[2]) + count(&sl.intervals[0])
    );
    // Rates over the 3 s the two covered together.
    assert_eq!(m.measured_s, 3.0);
    assert_eq!(m.latency.corrected.count, 400);
}

#[test]
fn reports_that_cannot_be_added_are_refused() {
    let runs = runs();
    let refused = |inputs: &[&Path]| -> Output {
        let mut args = vec!["merge".to_owned()];
        args.extend(inputs.iter().map(|p| p.display().to_string()));
        let out = loadgen(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(1), "{inputs:?} was merged");
        out
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // Without --start-at there are no interval histograms to add.
    let out = refused(&[&runs.a, &runs.unsynced]);
    assert!(stderr(&out).contains("--start-at"), "{}", stderr(&out));

    // A start a quarter of an interval off would add different moments.
    let mut shifted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&runs.b).unwrap()).unwrap();
    let start = humantime::parse_rfc3339(shifted["measure_started_at"].as_str().unwrap()).unwrap();
    shifted["measure_started_at"] =
        humantime::format_rfc3339_micros(start + Duration::from_millis(125))
            .to_string()
            .into();
    let misaligned = runs.dir.join("misaligned.json");
    std::fs::write(&misaligned, shifted.to_string()).unwrap();
    let out = refused(&[&runs.a, &misaligned]);
    assert!(
        stderr(&out).contains("whole number of intervals"),
        "{}",
        stderr(&out)
    );

    // A report from another time, even one a whole number of intervals away.
    let mut later: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&runs.b).unwrap()).unwrap();
    later["measure_started_at"] =
        humantime::format_rfc3339_micros(start + Duration::from_secs(3_600))
            .to_string()
            .into();
    let another_time = runs.dir.join("another-time.json");
    std::fs::write(&another_time, later.to_string()).unwrap();
    let out = refused(&[&runs.a, &another_time]);
    assert!(
        stderr(&out).contains("never loaded the server together"),
        "{}",
        stderr(&out)
    );

    // Other streams.
    let mut renamed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&runs.b).unwrap()).unwrap();
    renamed["streams"][0]["name"] = "other".into();
    let other = runs.dir.join("other.json");
    std::fs::write(&other, renamed.to_string()).unwrap();
    let out = refused(&[&runs.a, &other]);
    assert!(
        stderr(&out).contains("different streams"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_start_in_the_past_is_refused_before_anything_is_sent() {
    let server = TestServer::start(Behaviour::Fast);
    let out = loadgen(&[
        "bench",
        "--url",
        &server.url("/"),
        "--rate",
        "10",
        "--start-at",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in the past"));
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn the_ssh_recipe_runs_every_agent_and_merges_their_reports() {
    let server = TestServer::start(Behaviour::Fast);
    let dir = temp_dir("ssh-agents");
    // ssh and scp that stay on this machine: run the command, copy the file.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, script) in [
        ("ssh", "#!/bin/sh\nshift\nexec sh -c \"$*\"\n"),
        ("scp", "#!/bin/sh\ncp \"${2#*:}\" \"$3\"\n"),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&path, executable).unwrap();
    }
    let out = dir.join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ssh-agents.sh");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let status = Command::new("bash")
        .arg(script)
        .arg(&out)
        .args(["agent-host-1", "agent-host-2", "--"])
        .args(["--url", &server.url("/"), "--rate", "50", "-c", "2"])
        .args(["-d", "1s", "-w", "0s", "--interval", "500ms"])
        .env("PATH", path)
        .env("LEAD_S", "5")
        .env("REMOTE_LOADGEN", env!("CARGO_BIN_EXE_loadgen"))
        .env("LOADGEN", env!("CARGO_BIN_EXE_loadgen"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let merged = bench_report(&out.join("all.json"));
    assert_eq!(merged.merged_from.len(), 2);
    assert_eq!(merged.streams[0].latency.corrected.count, 100);
    assert!(merged.merged_from.iter().all(|s| s.offset_intervals == 0));
}

/// The manifest's container script (the `- |` block) and its bench arguments
/// (the list items after the marker).
fn manifest_parts() -> (String, Vec<String>) {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/loadgen-agents.yaml");
    let text = std::fs::read_to_string(manifest).unwrap();
    assert!(text.contains("completionMode: Indexed"));
    assert!(text.contains("completions: ${AGENTS}") && text.contains("parallelism: ${AGENTS}"));
    let lines: Vec<&str> = text.lines().collect();
    let block = lines
        .iter()
        .position(|l| l.trim() == "- |")
        .expect("no script block");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let script: Vec<&str> = lines[block + 1..]
        .iter()
        .take_while(|l| indent(l) > indent(lines[block]))
        .map(|l| l.trim())
        .collect();
    let arguments = lines
        .iter()
        .skip_while(|l| !l.contains("# loadgen bench arguments"))
        .skip(1)
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("- "))
        .map(|l| l[2..].trim_matches('"').to_owned())
        .collect();
    (script.join("\n"), arguments)
}

#[test]
fn the_kubernetes_agent_prints_only_its_report_made_by_a_bench_this_loadgen_accepts() {
    use clap::Parser;
    let (script, arguments) = manifest_parts();
    assert!(arguments.len() >= 4, "{arguments:?}");

    // The container's script, with a stand-in loadgen that records its
    // arguments and writes a report where --json says.
    let dir = temp_dir("k8s-agent");
    let fake = dir.join("loadgen");
    let recorded = dir.join("arguments");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\nwhile [ $# -gt 1 ]; do [ \"$1\" = --json ] && echo '{{\"report\": 1}}' > \"$2\"; shift; done\n",
            recorded.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let start_at = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(60));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg("loadgen")
        .args(&arguments)
        .env("START_AT", start_at.to_string())
        .env(
            "PATH",
            format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The log is the report alone.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"report\": 1}\n");
    let called: Vec<String> = std::fs::read_to_string(&recorded)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(called[0], "bench");
    assert_eq!(called[1..=arguments.len()], arguments[..]);

    // What it called is a bench this loadgen plans.
    let mut command = vec!["loadgen".to_owned()];
    command.extend(called);
    let cli = loadgen::cli::Cli::try_parse_from(&command).unwrap_or_else(|e| panic!("{e}"));
    let Some(loadgen::cli::Command::Bench(args)) = cli.command else {
        panic!("not a bench command: {command:?}");
    };
    let plan =
        loadgen::commands::bench::plan_from_args(&args).unwrap_or_else(|e| panic!("{}", e.0));
    assert!(plan.timing.start_at.is_some() && plan.timing.keep_interval_histograms);
}

#[test]
fn one_report_merges_to_itself() {
    let runs = runs();
    let a = bench_report(&runs.a);
    let merged = merge(&[&runs.a], &runs.dir.join("alone.json"));
    assert_eq!(merged.merged_from.len(), 1);
    assert_eq!(
        decode(&merged.streams[0].histograms.corrected).unwrap(),
        decode(&a.streams[0].histograms.corrected).unwrap()
    );
    assert_eq!(merged.streams[0].counts.sent, a.streams[0].counts.sent);
}
