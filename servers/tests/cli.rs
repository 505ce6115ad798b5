//! The command line: `--list`, and clear errors with exit code 2 for bad flags.

use std::process::{Command, Output};

fn servers(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_servers"))
        .args(args)
        .output()
        .expect("cannot run servers")
}

#[test]
fn list_prints_every_variant_with_an_explanation() {
    let out = servers(&["--list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "blocking-in-async",
            "current-thread",
            "spawn-blocking",
            "block-in-place",
            "rayon",
            "bounded-pool",
            "multi-worker",
            "multi-worker-reuseport",
            "cooperative",
            "sequential-queue",
            "async-io",
            "redis-queue"
        ]
    );
    assert!(text.lines().all(|l| l.split_whitespace().count() > 3));
    // The summaries start in one column.
    let columns: std::collections::BTreeSet<usize> = text
        .lines()
        .map(|l| {
            let name = l.split_whitespace().next().unwrap();
            name.len() + l[name.len()..].len() - l[name.len()..].trim_start().len()
        })
        .collect();
    assert_eq!(columns.len(), 1, "{text}");
}

#[test]
fn a_listen_fd_that_is_no_listening_socket_fails_without_announcing() {
    // Standard input (here /dev/null) stands for a descriptor that is not the
    // supervisor's socket: the process must say so and exit, not serve.
    let out = servers(&[
        "--variant",
        "multi-worker",
        "--process-index",
        "0",
        "--ns-per-unit",
        "10",
        "--no-telemetry",
        "--listen-fd",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "it announced an address");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_flags_exit_2_without_starting() {
    for args in [
        &["--variant", "no-such-variant"][..],
        &["--variant", "rayon", "--bind", "0.0.0.0"],
        &["--variant", "rayon", "--workers", "0"],
        &["--variant", "rayon", "--port", "http"],
        &["--variant", "rayon", "--max-units", "-1"],
        &["--variant", "cooperative", "--slice", "0s"],
        &["--variant", "rayon", "--no-such-flag"],
        &["--variant", "redis-queue"],
        &["--variant", "rayon", "--redis", "redis://127.0.0.1:1"],
        &["--variant", "rayon", "--jobs-capacity", "0"],
        &[
            "--variant",
            "rayon",
            "--bind",
            "0.0.0.0",
            "--allow-remote",
            "--inject-delay",
            "5ms",
        ],
        &["--variant", "rayon", "--process-index", "0"],
        &["--variant", "multi-worker", "--listen-fd", "3"],
        &["--variant", "multi-worker", "--process-index", "0"],
        &[
            "--variant",
            "multi-worker-reuseport",
            "--process-index",
            "0",
            "--listen-fd",
            "3",
        ],
        &["--variant", "rayon", "--telemetry-dir", "/tmp"],
        &["--variant", "rayon", "--queue-budget", "1s"],
        &["--variant", "rayon", "--unbounded-queue"],
        &["--variant", "bounded-pool", "--queue-budget", "0s"],
        &["--variant", "bounded-pool", "--pool-priority", "high"],
        &["--variant", "async-io", "--upstream", "http://192.0.2.1:80"],
        &[
            "--variant",
            "async-io",
            "--upstream",
            "https://127.0.0.1:80",
        ],
        &["upstream", "--bind", "0.0.0.0"],
        &["upstream", "--delay", "2m"],
        &[
            "worker",
            "--redis",
            "redis://127.0.0.1:1",
            "--upstream",
            "x",
        ],
        &["worker"],
        &[
            "worker",
            "--redis",
            "redis://127.0.0.1:1",
            "--concurrency",
            "0",
        ],
        &[],
    ] {
        let out = servers(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error"),
            "{args:?}"
        );
    }
}
