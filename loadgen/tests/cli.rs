//! Bad arguments are refused before anything is sent (exit 2, a message that says
//! what to change); an unreachable server is a clear error (exit 1), not a hang.

mod support;

use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{Behaviour, TestServer};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("cannot run loadgen")
}

#[test]
fn invalid_combinations_are_refused_before_sending() {
    let server = TestServer::start(Behaviour::Fast);
    let url = server.url("/");
    let cases: &[(&[&str], &str)] = &[
        (&["bench", "--url", &url, "--rate", "0"], "rate"),
        (&["bench", "--url", &url, "--rate", "-5"], "rate"),
        (
            &["bench", "--url", &url, "--connections", "0"],
            "connections",
        ),
        (
            &["bench", "--url", &url, "--rate", "0.01", "-d", "10s"],
            "at least 0.100/s",
        ),
        (&["bench", "--url", &url, "-d", "0s"], "duration"),
        (&["bench", "--url", &url, "-d", "ten"], "duration"),
        (&["bench", "--url", "https://127.0.0.1/"], "https"),
        (&["bench", "--url", "ftp://127.0.0.1/"], "http://"),
        (&["bench", "--url", "127.0.0.1:80/"], "scheme"),
        (&["bench", "--url", &url, "-H", "no colon"], "Name: value"),
        (
            &["bench", "--url", &url, "-H", "Content-Length: 9"],
            "set by loadgen from the body",
        ),
        (
            &["bench", "--scenario", "/no/such/file.toml"],
            "cannot read",
        ),
        (
            &["bench", "--scenario", "x.toml", "--rate", "5"],
            "cannot be used with",
        ),
        (&["bench"], "--url"),
        (
            &["run", "--scenario", "nope"],
            "responsiveness, jobs or upstream",
        ),
        (
            &["run", "--ablation", "--variant", "rayon"],
            "cannot be used with",
        ),
        (
            &["run", "--scenario", "upstream", "--loads", "2000"],
            "each from 0.01 to 1000",
        ),
        (
            &["run", "--scenario", "jobs", "--job-load", "0"],
            "--job-load",
        ),
        (&["run", "--variant", "no-such-variant"], "unknown variant"),
        (&["run", "--loads", "0.5,0"], "--loads"),
        (&["run", "--loads", "0.5,x"], "--loads"),
        (&["run", "--loads", "nan"], "--loads"),
        (&["run", "--loads", "inf"], "--loads"),
        (&["run", "--loads", "0.25,0.251"], "the same step"),
        (&["run", "--overload", "1.5"], "--loads 1.5"),
        (&["run", "--loaded", "0s"], "--loaded"),
    ];
    for (args, hint) in cases {
        let out = loadgen(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(hint),
            "{args:?}: expected {hint:?} in {stderr}"
        );
    }
    assert_eq!(
        server.requests.load(Ordering::Relaxed),
        0,
        "a refused run sent requests"
    );
}

#[test]
fn an_unreachable_server_exits_1_quickly() {
    let port = support::free_port();
    let started = Instant::now();
    let out = loadgen(&[
        "bench",
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "--rate",
        "10",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn help_shows_examples() {
    let out = loadgen(&["bench", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("Examples:")
            && text.contains("--rate")
            && text.contains("coordinated-omission")
    );
}
