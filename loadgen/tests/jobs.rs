//! Job streams of a scenario file (`kind = "job"`) against a reference server run by
//! `loadgen serve`: every accepted job is followed to its end and nothing is lost;
//! a job stream without a body or with a path no request line can carry is refused
//! before anything is sent; a server whose job ids cannot make a status path gets
//! its submissions counted as errors, and the run still ends normally; jobs a
//! server does not know (404) count as lost and are read only a bounded number of
//! times.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use axum::http::StatusCode;
use serde_json::Value;
use support::{Behaviour, TestServer};

/// `loadgen serve --variant VARIANT`, killed when dropped.
struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(variant: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["serve", "--variant", variant, "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    Served(child, url)
}

fn scenario(dir: &std::path::Path, job_stream: &str) -> std::path::PathBuf {
    let path = dir.join("jobs.toml");
    std::fs::write(
        &path,
        format!(
            "duration = \"2s\"\nwarmup = \"0s\"\n\n[[stream]]\nname = \"probe\"\npath = \"/health\"\nrate = 50\n\n{job_stream}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_job_stream_follows_every_job_to_its_end() {
    let server = serve("spawn-blocking");
    let dir = tempfile_dir("follow");
    let file = scenario(
        &dir,
        "[[stream]]\nname = \"work\"\nkind = \"job\"\npath = \"/jobs\"\nrate = 20\nbody = '{\"kind\": \"io\", \"ms\": 50}'\n",
    );
    let json = dir.join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["bench", "--scenario"])
        .arg(&file)
        .args(["--url", &server.1, "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("jobs work:"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let names: Vec<&str> = report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["probe", "work.submit", "work"]);
    let f = &report["jobs"][0]["figures"];
    let accepted = f["accepted"].as_u64().unwrap();
    assert!(accepted >= 30, "{f}");
    assert_eq!(f["submitted"], accepted);
    assert_eq!(f["done"], accepted, "{f}");
    assert_eq!(f["lost"], 0, "{f}");
    // Each job slept 50 ms on the server, and its end-to-end time includes that.
    assert!(f["run"]["p50_us"].as_f64().unwrap() >= 50_000.0, "{f}");
    let work = &report["streams"][2];
    assert_eq!(work["latency"]["corrected"]["count"], accepted);
    assert!(work["latency"]["corrected"]["p50_us"].as_f64().unwrap() >= 50_000.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_job_stream_is_refused_before_sending() {
    for (name, stream, message) in [
        ("no-body", "path = \"/jobs\"\n", "give the job as a body"),
        (
            "bad-path",
            "path = \"/my jobs\"\nbody = '{}'\n",
            "is not a path",
        ),
    ] {
        let dir = tempfile_dir(name);
        let file = scenario(
            &dir,
            &format!("[[stream]]\nname = \"work\"\nkind = \"job\"\nrate = 20\n{stream}"),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["bench", "--scenario"])
            .arg(&file)
            .args(["--url", "http://127.0.0.1:9/"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `loadgen bench` with a probe and a job stream of `{}` bodies to `/jobs` of the
/// server at `url`, at 20 jobs/s for 2 s; the job figures of its JSON report. It
/// must not panic, whatever the server answers.
fn bench_empty_jobs(url: &str, name: &str) -> Value {
    let dir = tempfile_dir(name);
    let file = scenario(
        &dir,
        "[[stream]]\nname = \"work\"\nkind = \"job\"\npath = \"/jobs\"\nrate = 20\nbody = '{}'\n",
    );
    let json = dir.join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["bench", "--scenario"])
        .arg(&file)
        .args(["--url", url, "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    report["jobs"][0]["figures"].clone()
}

#[test]
fn job_ids_that_cannot_make_a_status_path_are_submit_errors() {
    // Every request accepted with an id no status path can hold (it has a space).
    let server = TestServer::start(Behaviour::Json(StatusCode::ACCEPTED, r#"{"id": "a b"}"#));
    let f = bench_empty_jobs(&server.url(""), "bad-ids");
    let submitted = f["submitted"].as_u64().unwrap();
    assert!(submitted >= 30, "{f}");
    assert_eq!(f["submit_errors"], submitted, "{f}");
    assert_eq!(f["accepted"], 0, "{f}");
}

#[test]
fn jobs_the_server_does_not_know_are_lost_and_no_longer_read() {
    // Every job is accepted and then unknown (404), as when status reads reach a
    // process that never saw the job: each counts as lost and not found, and is
    // read a bounded number of times instead of every 10 ms until the deadline.
    let server = TestServer::start(Behaviour::Forgetful);
    let f = bench_empty_jobs(&server.url(""), "forgetful");
    let accepted = f["accepted"].as_u64().unwrap();
    assert!(accepted >= 30, "{f}");
    assert_eq!(f["lost"], accepted, "{f}");
    assert_eq!(f["not_found"], accepted, "{f}");
    // The probe (50/s for 2 s) and the submissions, plus at most 20 reads a job:
    // reading each job every 10 ms until the drain deadline would be hundreds.
    let requests = server.requests.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        requests <= 100 + accepted * 21 + 10,
        "{requests} requests for {accepted} jobs"
    );
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-jobs-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
