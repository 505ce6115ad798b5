//! The load sweep: responsive capacity from the steps, selectors for steps and
//! capacity, the table sorted by capacity, the sweep's charts, skipped steps, and
//! `compare` on capacity; on a synthetic run with known curves.

mod support;

use loadgen::check::compare::{compare, Noise, Verdict};
use loadgen::check::evaluate_all;
use loadgen::report::Report;
use support::synthetic::{synthetic_sweep_report, VARIANTS};

fn capacity(report: &loadgen::report::RunReport, name: &str) -> f64 {
    report
        .variants
        .iter()
        .find(|v| v.name == name)
        .unwrap()
        .sweep
        .as_ref()
        .unwrap()
        .capacity
}

fn check(expressions: &[&str]) -> Vec<bool> {
    let expressions: Vec<String> = expressions.iter().map(|e| e.to_string()).collect();
    evaluate_all(&Report::Run(synthetic_sweep_report()), &expressions)
        .unwrap()
        .iter()
        .map(|o| o.passed)
        .collect()
}

#[test]
fn capacity_is_where_each_variant_breaks() {
    let report = synthetic_sweep_report();
    assert_eq!(
        capacity(&report, "rayon"),
        1.0,
        "keeps up to 1x, queues at 1.5x"
    );
    assert_eq!(
        capacity(&report, "spawn-blocking"),
        0.5,
        "misses the objective at 1x"
    );
    assert_eq!(capacity(&report, "current-thread"), 0.0, "never responsive");
    let rayon = report.variants.iter().find(|v| v.name == "rayon").unwrap();
    let sweep = rayon.sweep.as_ref().unwrap();
    assert_eq!(sweep.capacity_per_s, 100.0);
    // Counted over the part of each 2 s step whose 20 ms jobs could finish in it.
    let reachable = 2.0 / 1.98;
    let shares: Vec<f64> = sweep.steps.iter().map(|s| s.answered_share).collect();
    assert_eq!(shares.len(), 3);
    for (share, expected) in shares.iter().zip([1.0, 0.95, 0.6]) {
        assert!((share - expected * reachable).abs() < 1e-9, "{shares:?}");
    }
}

#[test]
fn steps_and_capacity_have_selectors() {
    assert_eq!(check(&["rayon.probe.load-100.p99 < 20ms"]), [true]);
    assert_eq!(check(&["spawn-blocking.probe.load-100.p99 > 50ms"]), [true]);
    assert_eq!(check(&["rayon.capacity >= 1"]), [true]);
    assert_eq!(check(&["spawn-blocking.capacity < rayon.capacity"]), [true]);
    assert_eq!(check(&["*.capacity > 0"]), [true, true, false]);
    // `loaded` still names the overload point: the sweep's highest step.
    assert_eq!(check(&["current-thread.probe.loaded.p99 > 1s"]), [true]);
    let error = evaluate_all(
        &Report::Run(synthetic_sweep_report()),
        &["rayon.probe.load-999.p99 < 1s".to_owned()],
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("load-50, load-100, load-150"), "{error}");
}

#[test]
fn a_skipped_step_has_no_measurement_and_fails_its_thresholds() {
    let mut report = synthetic_sweep_report();
    let settings = report.settings.clone();
    let frozen = report
        .variants
        .iter_mut()
        .find(|v| v.name == "current-thread")
        .unwrap();
    frozen.phases.retain(|p| p.name != "load-150");
    frozen.skipped_steps = vec!["load-150".into()];
    frozen.sweep = loadgen::report::Sweep::derive(frozen, &settings);
    let last = frozen.sweep.as_ref().unwrap().steps.last().unwrap();
    assert!(last.skipped && last.probe.is_none());
    let outcomes = evaluate_all(
        &Report::Run(report.clone()),
        &["current-thread.probe.load-150.p99 < 1s".to_owned()],
    )
    .unwrap();
    assert!(!outcomes[0].passed && outcomes[0].detail.contains("no measurement"));
    let sweep = report.sweep_markdown().unwrap();
    assert!(sweep.contains("skipped (frozen)"), "{sweep}");
}

#[test]
fn the_table_is_sorted_by_capacity_and_shows_the_sweep() {
    let report = synthetic_sweep_report();
    let table = report.table();
    let order: Vec<&str> = table
        .lines()
        .skip(2)
        .filter(|l| l.starts_with("| "))
        .map(|l| l.split('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(order, ["rayon", "spawn-blocking", "current-thread"]);
    assert!(table.contains("| 1.00× (100/s) |") && table.contains("| < 0.5× |"));
    let sweep = report.sweep_markdown().unwrap();
    let rayon = sweep.lines().find(|l| l.starts_with("| rayon |")).unwrap();
    assert_eq!(rayon.matches('✓').count(), 2, "{rayon}");
    assert_eq!(rayon.matches('✗').count(), 1, "{rayon}");
    assert!(rayon.contains("61%"), "{rayon}");
    let summary = loadgen::report::markdown::summary(&report);
    assert!(summary.contains("The load sweep") && summary.contains("0.5×, 1×, 1.5×"));
}

#[test]
fn the_sweep_is_drawn() {
    let dir = std::env::temp_dir().join(format!("loadgen-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    loadgen::charts::render_run(&synthetic_sweep_report(), &dir).unwrap();
    for chart in ["sweep-probe", "sweep-goodput"] {
        let svg = std::fs::read_to_string(dir.join(format!("charts/{chart}.svg"))).unwrap();
        assert!(svg.trim_end().ends_with("</svg>"));
        for name in VARIANTS {
            assert!(svg.contains(name), "{chart} does not name {name}");
        }
        let png = std::fs::read(dir.join(format!("charts/{chart}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }
    let probe = std::fs::read_to_string(dir.join("charts/sweep-probe.svg")).unwrap();
    assert!(probe.contains("objective 50ms"));
    let goodput = std::fs::read_to_string(dir.join("charts/sweep-goodput.svg")).unwrap();
    assert!(goodput.contains("ideal"));
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains("id=\"sweep\"") && page.contains("Probe p99 against offered heavy load"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_judges_capacity_by_whole_steps() {
    // rayon passes the first two steps (capacity 1.0x). Failing its 1x step puts
    // it one step lower (within noise); failing its first, two steps lower (a
    // regression). Steps count, not load values, so an uneven sweep is judged
    // alike.
    let base = synthetic_sweep_report();
    let failing_from = |first_failed: usize| {
        let mut r = base.clone();
        let rayon = r.variants.iter_mut().find(|v| v.name == "rayon").unwrap();
        let sweep = rayon.sweep.as_mut().unwrap();
        for step in &mut sweep.steps[first_failed..] {
            step.verdict = Some(loadgen::report::Verdict::Unresponsive);
        }
        sweep.capacity = loadgen::report::sweep::capacity(&sweep.steps);
        r
    };
    let noise = Noise {
        latency: 1.25,
        throughput: 1.5,
    };
    let verdict = |current: &loadgen::report::RunReport| {
        compare(
            std::slice::from_ref(&base),
            std::slice::from_ref(current),
            noise,
        )
        .into_iter()
        .find(|r| r.variant == "rayon" && r.figure == "capacity")
        .unwrap()
        .verdict
    };
    assert_eq!(verdict(&failing_from(1)), Verdict::Same);
    assert_eq!(verdict(&failing_from(0)), Verdict::Worse);
    assert_eq!(verdict(&base), Verdict::Same);
}

#[test]
fn a_failed_variant_has_no_overload_point() {
    let mut report = synthetic_sweep_report();
    let rayon = report
        .variants
        .iter_mut()
        .find(|v| v.name == "rayon")
        .unwrap();
    assert_eq!(rayon.overload_load(), Some(1.5));
    // Its server died in the 1.5x step: the steps that ran stay, but `loaded` no
    // longer names the highest of them.
    rayon.phases.retain(|p| p.name != "load-150");
    rayon.status = loadgen::report::VariantStatus::Failed;
    assert!(rayon.phase("loaded").is_none() && rayon.phase("load-100").is_some());
    let outcomes = evaluate_all(
        &Report::Run(report),
        &["rayon.probe.loaded.p99 < 1s".to_owned()],
    )
    .unwrap();
    assert!(!outcomes[0].passed && outcomes[0].detail.contains("no measurement"));
}

#[test]
fn new_connections_show_their_slow_share_per_step_and_processes_their_share() {
    use loadgen::telemetry::ProcessTraffic;
    use support::synthetic::{server_lag, stream_with};
    let mut report = synthetic_sweep_report();
    // Every variant's job costs 20 ms, so "slow" is over 10 ms. A fresh stream of
    // 6–12 ms responses has its slowest ~18 % over that; one of 1–2 ms none.
    for (i, v) in report.variants.iter_mut().enumerate() {
        for phase in &mut v.phases {
            let base_ms = if i == 0 && phase.load.is_some() { 6 } else { 1 };
            phase.streams.push(stream_with("fresh", base_ms, 2, 100));
        }
    }
    let table = report
        .fresh_markdown()
        .expect("a sweep with a fresh stream");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap()
            .to_owned()
    };
    let first = row(&report.variants[0].name);
    assert!(first.contains("18% slow (n 200)"), "{first}");
    let other = row(&report.variants[1].name);
    assert!(other.contains("0% slow (n 200)"), "{other}");
    assert!(!other.contains("18%"), "{other}");

    // Only a variant whose overload step saw several processes gets a line.
    assert!(loadgen::report::markdown::connection_shares(&report).is_empty());
    let v = &mut report.variants[1];
    let loaded = v.phases.iter().rposition(|p| p.load.is_some()).unwrap();
    let mut telemetry = server_lag(&v.phases[loaded].name, 5);
    telemetry.traffic = vec![
        ProcessTraffic {
            process: Some(0),
            connections_accepted: 90,
            requests: 900,
        },
        ProcessTraffic {
            process: Some(1),
            connections_accepted: 10,
            requests: 100,
        },
    ];
    v.phases[loaded].server_telemetry = Some(telemetry);
    let shares = loadgen::report::markdown::connection_shares(&report);
    assert_eq!(shares.len(), 1, "{shares:?}");
    assert!(
        shares[0].ends_with("process 0 90 / 900, process 1 10 / 100"),
        "{shares:?}"
    );
}
