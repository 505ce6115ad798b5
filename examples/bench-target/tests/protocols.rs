//! The bench target answers every protocol the comparison loads it with: HTTP/1.1
//! and h2c on one plaintext port, and HTTP/1.1 and h2 (by ALPN) over TLS, driven
//! by loadgen's own engine.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loadgen::engine::{self, NoObserver};
use loadgen::interrupt::Interrupt;
use loadgen::plan::{Load, Plan, Timing};

/// The bench target, killed when dropped.
struct Target {
    child: Child,
    url: String,
}

impl Target {
    fn start(args: &[&str]) -> Target {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bench-target"))
            .args(args)
            .arg("--threads")
            .arg("1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Target { child, url }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 2xx responses and errors of a short closed loop against `url`/health.
fn load(url: &str, http2: bool) -> (u64, u64) {
    let timing = Timing {
        duration: Duration::from_millis(300),
        warmup: Duration::ZERO,
        ..Timing::default()
    }
    .with_full_drain();
    let mut plan = Plan::get(
        &format!("{url}/health"),
        "main",
        Load::Closed { connections: 2 },
        timing,
    )
    .unwrap();
    if plan.target.tls.is_some() {
        plan.target.accept_any_certificate().unwrap();
    }
    if http2 {
        plan.target.use_http2(4).unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime
        .block_on(engine::run(&plan, &mut NoObserver, &Interrupt::never()))
        .unwrap();
    let counts = outcome.streams[0].total.counts;
    (counts.status_2xx, counts.errors())
}

#[test]
fn answers_http1_and_h2c_on_one_plaintext_port() {
    let target = Target::start(&[]);
    assert!(target.url.starts_with("http://"), "{}", target.url);
    for http2 in [false, true] {
        let (ok, errors) = load(&target.url, http2);
        assert!(
            ok > 100 && errors == 0,
            "http2 {http2}: {ok} ok, {errors} errors"
        );
    }
}

#[test]
fn answers_http1_and_h2_over_tls() {
    let target = Target::start(&["--tls"]);
    assert!(target.url.starts_with("https://"), "{}", target.url);
    for http2 in [false, true] {
        let (ok, errors) = load(&target.url, http2);
        assert!(
            ok > 100 && errors == 0,
            "http2 {http2}: {ok} ok, {errors} errors"
        );
    }
}
