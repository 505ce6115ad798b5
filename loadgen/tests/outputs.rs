//! `loadgen bench` end to end: the summary, and every output file parses back with
//! the tools made for it (the JSON report, the interval log through the hdrhistogram
//! crate's reader, the classic percentile table).

mod support;

use std::path::{Path, PathBuf};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use loadgen::report::load::load_bench;
use loadgen::report::StreamMode;
use support::processes::loadgen;
use support::{Behaviour, TestServer};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sums the interval histograms of `tag` in an interval log.
fn hlog_total(path: &Path, tag: &str) -> (usize, Histogram<u64>) {
    let bytes = std::fs::read(path).unwrap();
    let mut deserializer = Deserializer::new();
    let mut total: Option<Histogram<u64>> = None;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(h) = entry.expect("the log parses") {
            if h.tag().map(|t| t.as_str()) != Some(tag) {
                continue;
            }
            let decoded = base64_decode(h.encoded_histogram());
            let histogram: Histogram<u64> =
                deserializer.deserialize(&mut decoded.as_slice()).unwrap();
            intervals += 1;
            match &mut total {
                Some(t) => t.add(&histogram).unwrap(),
                None => total = Some(histogram),
            }
        }
    }
    (intervals, total.expect("no interval with that tag"))
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn single_url_run_writes_json_hlog_and_hgrm() {
    let server = TestServer::start(Behaviour::Fast);
    let dir = temp_dir("single");
    let (json_path, hlog, hgrm) = (dir.join("r.json"), dir.join("r.hlog"), dir.join("r.hgrm"));
    let out = loadgen(&[
        "bench",
        "--url",
        &server.url("/health"),
        "--rate",
        "100",
        "-c",
        "2",
        "-d",
        "2s",
        "-w",
        "500ms",
        "--json",
        json_path.to_str().unwrap(),
        "--hlog",
        hlog.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("corrected") && stdout.contains("uncorrected") && stdout.contains("p99.9")
    );

    let report = load_bench(&json_path).unwrap();
    assert_eq!(report.schema_version, loadgen::report::SCHEMA_VERSION);
    assert!(report.environment.cores >= 1);
    let stream = &report.streams[0];
    assert_eq!(stream.counts.sent, 200);
    assert_eq!(stream.target_rate, Some(100.0));
    assert!((stream.achieved_rate - 100.0).abs() < 1.0);
    assert!(stream.latency.corrected.max_us >= stream.latency.corrected.p99_us);
    let from_json = loadgen::stats::decode(&stream.histograms.corrected).unwrap();
    assert_eq!(from_json.len(), 200);

    // The interval log holds the same requests, split into intervals.
    let (intervals, total) = hlog_total(&hlog, "main");
    assert!(intervals >= 2);
    assert_eq!(total.len(), from_json.len());
    assert_eq!(total.max(), from_json.max());
    let text = std::fs::read_to_string(&hlog).unwrap();
    assert!(text.contains("#[Histogram log format version 1.3]"));
    assert!(text.contains("#[BaseTime: "));

    let table = std::fs::read_to_string(&hgrm).unwrap();
    assert!(table.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(table.contains("Total count    =          200]"));
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scenario_run_records_each_stream_separately() {
    let server = TestServer::start(Behaviour::Fast);
    let dir = temp_dir("scenario");
    let scenario = dir.join("s.toml");
    std::fs::write(
        &scenario,
        format!(
            "base_url = '{}'\nduration = '1s'\nwarmup = '200ms'\n\
             [[stream]]\nname = 'probe'\npath = '/health'\nrate = 50\nconnections = 2\n\
             [[stream]]\nname = 'heavy'\npath = '/work'\nconcurrency = 2\n",
            server.url("")
        ),
    )
    .unwrap();
    let (json_path, hlog, hgrm) = (dir.join("r.json"), dir.join("r.hlog"), dir.join("r.hgrm"));
    let out = loadgen(&[
        "bench",
        "--scenario",
        scenario.to_str().unwrap(),
        "--json",
        json_path.to_str().unwrap(),
        "--hlog",
        hlog.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = load_bench(&json_path).unwrap();
    let names: Vec<&str> = report.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["probe", "heavy"]);
    assert_eq!(report.streams[0].counts.sent, 50);
    assert_eq!(report.streams[1].mode, StreamMode::Closed);
    assert!(
        report.streams[1].counts.sent > 50,
        "closed loop runs flat out"
    );
    assert_eq!(hlog_total(&hlog, "probe").1.len(), 50);
    assert!(hlog_total(&hlog, "heavy-uncorrected").1.len() > 50);
    assert!(dir.join("r.probe.hgrm").exists() && dir.join("r.heavy.hgrm").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_committed_example_scenario_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/responsiveness.toml");
    let file = loadgen::scenario_file::ScenarioFile::load(&path).unwrap();
    let target = loadgen::target::Target::parse(file.base_url.as_deref().unwrap()).unwrap();
    let plan = loadgen::plan::Plan {
        streams: file.stream_specs(&target).unwrap(),
        timing: file.timing(Default::default()),
        target,
    };
    plan.validate().unwrap();
    assert_eq!(plan.streams.len(), 2);
}
