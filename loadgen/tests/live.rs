//! The live dashboard (`bench --live`, `run --live`): frames arrive while the run goes on, say
//! what the report says, reach a browser that joins late, and bad requests to
//! the dashboard get a 4xx while the run goes on.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::browser::{chromium, headless};
use support::live::live_bench;
use support::processes::{bench_report, temp_dir};
use support::{Behaviour, TestServer};

/// Reads the frames of `/events` at `addr` until the run's end (or 30 s), each
/// with when it arrived.
fn read_events(addr: SocketAddr) -> Vec<(Instant, serde_json::Value)> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: dashboard\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let mut frames = Vec::new();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(data).unwrap();
        let end = frame["type"] == "end";
        frames.push((Instant::now(), frame));
        if end {
            break;
        }
    }
    frames
}

/// The status line and body of one raw request to `addr`.
fn raw_request(addr: SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or("").to_owned();
    (status, answer)
}

fn intervals(frames: &[(Instant, serde_json::Value)]) -> Vec<&serde_json::Value> {
    frames
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f["type"] == "interval")
        .collect()
}

#[test]
fn the_dashboard_shows_each_interval_as_it_closes_and_as_the_report_has_it() {
    let server = TestServer::start(Behaviour::Fast);
    let dir = temp_dir("live");
    let json = dir.join("report.json");
    let (mut child, addr) = live_bench(&server, &json, "3s");
    let started = Instant::now();

    let first = std::thread::spawn(move || read_events(addr));
    // Bad requests get a 4xx, and the run goes on.
    let (status, body) = raw_request(
        addr,
        b"GET /nowhere HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    );
    assert!(status.contains(" 404 "), "{status}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, _) = raw_request(addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert!(status.contains(" 400 "), "{status}");
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: d\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (status, _) = raw_request(addr, huge.as_bytes());
    assert!(
        status.is_empty() || status.contains(" 431 ") || status.contains(" 400 "),
        "{status}"
    );
    let (status, page) = raw_request(
        addr,
        b"GET / HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
    );
    assert!(
        status.contains(" 200 ") && page.contains("new EventSource(\"/events\")"),
        "{status}"
    );

    // A browser that joins half-way through.
    std::thread::sleep(Duration::from_millis(1_800).saturating_sub(started.elapsed()));
    let joined = Instant::now();
    let late = read_events(addr);
    let first = first.join().unwrap();
    assert!(child.wait().unwrap().success());

    // Updates arrived while the run went on, not all at the end.
    let seen = intervals(&first);
    assert!(seen.len() >= 6, "{} interval frames", seen.len());
    let arrivals: Vec<Instant> = first
        .iter()
        .filter(|(_, f)| f["type"] == "interval")
        .map(|(at, _)| *at)
        .collect();
    assert!(
        arrivals[arrivals.len() - 1] - arrivals[0] >= Duration::from_millis(1_500),
        "the frames came in a burst"
    );
    assert_eq!(first[0].1["type"], "run");
    assert_eq!(first.last().unwrap().1["outcome"], "finished");
    // It got the intervals closed before it joined at once, from the history.
    let at_once = late
        .iter()
        .filter(|(at, f)| f["type"] == "interval" && *at - joined < Duration::from_millis(200))
        .count();
    assert!(at_once >= 1, "no history for the late browser");
    // The late browser got the same frames: the history, then the rest.
    assert_eq!(intervals(&late), seen, "the late browser saw other frames");

    // Each frame says what the report says of its interval.
    let report = bench_report(&json);
    let stream = &report.streams[0];
    for frame in &seen {
        let start = frame["start_s"].as_f64().unwrap();
        let interval = stream
            .intervals
            .iter()
            .find(|i| i.start_s == start)
            .unwrap_or_else(|| panic!("no interval at {start} s in the report"));
        assert_eq!(frame["p99_us"].as_f64().unwrap(), interval.corrected.p99_us);
        assert_eq!(frame["max_us"].as_f64().unwrap(), interval.corrected.max_us);
        assert_eq!(frame["throughput"].as_f64().unwrap(), interval.throughput);
    }
    assert_eq!(seen.len(), stream.intervals.len());
}

/// The value of the first `name="…"` attribute in `dom`.
fn attribute<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("{name}=\""))? + name.len() + 2;
    dom[start..].split('"').next()
}

#[test]
fn the_live_page_draws_the_run_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: the_live_page_draws_the_run_in_headless_chromium: no chromium installed (.ci/run installs it)");
        return;
    };
    let server = TestServer::start(Behaviour::Fast);
    let dir = temp_dir("live-browser");
    let json = dir.join("report.json");
    // Long enough for the browser to start and connect well before the end.
    let (mut child, addr) = live_bench(&server, &json, "6s");
    // Headless Chromium dumps the page once no request is open. The event stream
    // stays open until the run ends, so the page dumped is the one drawn from
    // the frames that arrived while the run went on.
    let out = headless(&browser, &dir.join("profile"))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
        ])
        .args(["--dump-dom", &format!("http://{addr}/")])
        .output()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let dom = String::from_utf8_lossy(&out.stdout);
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{console}");
    assert!(
        !console.contains("Uncaught"),
        "errors on the page: {console}"
    );

    let report = bench_report(&json);
    let stream = &report.streams[0];
    let frames: usize = attribute(&dom, "data-frames").unwrap().parse().unwrap();
    let points: usize = attribute(&dom, "data-points").unwrap().parse().unwrap();
    let drawn: usize = attribute(&dom, "data-intervals").unwrap().parse().unwrap();
    // The run, every interval, the end.
    assert_eq!(points, stream.intervals.len());
    assert_eq!(frames, points + 2);
    let measured: Vec<_> = stream
        .intervals
        .iter()
        .filter(|i| i.is_in_window(stream.measured_s))
        .collect();
    assert_eq!(drawn, measured.len());
    assert!(drawn >= 6, "{drawn} intervals drawn");
    // The latest p99 shown is the report's last measured interval's.
    let shown: f64 = attribute(&dom, "data-p99-us").unwrap().parse().unwrap();
    assert_eq!(shown, measured.last().unwrap().corrected.p99_us);
    assert_eq!(attribute(&dom, "data-outcome"), Some("finished"));
    assert!(dom.matches("<canvas").count() >= 2, "no charts drawn");
}

/// The frames of one `type`, as JSON, with their places on the axis to the
/// µs (a sum taken in another order can differ in its last bit).
fn of_type(frames: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    frames
        .iter()
        .filter(|f| f["type"] == kind)
        .map(|f| {
            let mut f = f.clone();
            for key in ["start_s", "at_s"] {
                if let Some(v) = f[key].as_f64() {
                    f[key] = serde_json::json!((v * 1e6).round() / 1e6);
                }
            }
            f
        })
        .collect()
}

#[test]
fn run_live_streams_what_the_frozen_report_holds() {
    let out = temp_dir("live-run");
    let mut child = support::processes::spawn(
        &[
            "--variant",
            "blocking-in-async,rayon",
            "--idle",
            "1500ms",
            "--loaded",
            "2s",
            "--recovery",
            "1500ms",
            "--live",
        ],
        &out,
    );
    let addr = support::live::dashboard_address(&mut child);
    let live: Vec<serde_json::Value> = read_events(addr).into_iter().map(|(_, f)| f).collect();
    // `finish` kills it should it run past two minutes.
    let output = support::processes::finish(child, Duration::from_secs(120));
    assert!(output.status.success());
    let report = support::processes::report(&out);

    // What report.html draws is what the browser was sent while the run went on,
    // frame for frame (the server's samples come between the intervals live,
    // after them in the report: compared by kind).
    let frozen: Vec<serde_json::Value> = loadgen::live::replay::run_frames(&report)
        .iter()
        .map(|f| serde_json::to_value(f).unwrap())
        .collect();
    for kind in ["run", "phase", "interval", "server", "comparison", "end"] {
        let (mut a, mut b) = (of_type(&live, kind), of_type(&frozen, kind));
        let key = |f: &serde_json::Value| f.to_string();
        a.sort_by_key(key);
        b.sort_by_key(key);
        let only_live: Vec<_> = a.iter().filter(|f| !b.contains(f)).collect();
        let only_frozen: Vec<_> = b.iter().filter(|f| !a.contains(f)).collect();
        assert!(
            a == b,
            "the {kind} frames differ: live only {only_live:?}, report only {only_frozen:?}"
        );
    }
    assert_eq!(
        live[0]["variants"],
        serde_json::json!(["blocking-in-async", "rayon"])
    );
    // The run's story: every phase of each variant, its intervals, the server's
    // lag, and the comparison growing a row per finished variant.
    let phases = of_type(&live, "phase");
    assert_eq!(phases[0]["variant"], "blocking-in-async");
    assert_eq!(phases[0]["phase"], "idle");
    assert!(phases.iter().any(|p| p["loaded"] == true));
    assert!(of_type(&live, "interval").len() >= 10);
    assert!(
        of_type(&live, "server")
            .iter()
            .any(|s| s["lag_max_us"].as_f64().is_some_and(|lag| lag > 0.0)),
        "no server lag live"
    );
    let rows: Vec<usize> = of_type(&live, "comparison")
        .iter()
        .map(|c| c["rows"].as_array().unwrap().len())
        .collect();
    assert_eq!(rows, [1, 2]);
    assert_eq!(live.last().unwrap()["outcome"], "finished");
    // The blocked variant's probe waited under load; the other's did not.
    let bars = &of_type(&live, "comparison")[1]["bars"];
    let p99 = |name: &str| {
        bars.as_array()
            .unwrap()
            .iter()
            .find(|b| b[0] == name)
            .unwrap()[1]
            .as_f64()
            .unwrap()
    };
    assert!(p99("blocking-in-async") > 10.0 * p99("rayon"), "{bars}");
}
