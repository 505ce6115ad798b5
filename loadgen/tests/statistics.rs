//! The statistics a run's table rests on: the sample count beside every headline
//! figure, percentiles the samples cannot bound marked as such, the verdict against
//! the objective from the p99's interval, and warnings that name a cause found in
//! the data (none on a quiet run).

mod support;

use loadgen::report::repeat::RepeatReport;
use loadgen::report::verdict::Verdict;
use loadgen::report::warnings::run_warnings;
use loadgen::stats::Percentiles;
use support::synthetic::{stream_with, synthetic_report, well_sampled_report};

#[test]
fn the_table_shows_sample_counts_and_marks_weak_percentiles() {
    // 200 probe samples a phase: enough for p50, too few to bound p99 or p99.9.
    let report = synthetic_report();
    let table = report.table();
    let header = table.lines().next().unwrap();
    assert!(header.contains("probe n") && header.contains("probe p99 [95% CI]"));
    let column = |name: &str| {
        header
            .split('|')
            .map(str::trim)
            .position(|c| c == name)
            .unwrap()
    };
    let (verdict, p99, n, p50) = (
        column("responsive"),
        column("probe p99 [95% CI]"),
        column("probe n"),
        column("probe p50"),
    );
    let rayon = table.lines().find(|l| l.starts_with("| rayon |")).unwrap();
    let cells: Vec<&str> = rayon.split('|').map(str::trim).collect();
    assert_eq!(
        cells[verdict], "undecided",
        "too few samples decide nothing"
    );
    assert!(
        cells[p99].ends_with('*'),
        "p99 of 200 is weak: {}",
        cells[p99]
    );
    assert_eq!(cells[n], "200");
    assert!(
        !cells[p50].ends_with('*'),
        "p50 of 200 is bounded: {}",
        cells[p50]
    );
    assert!(table.contains("too few samples for a 95 % upper bound"));

    // With 5,000 samples the p99 has its interval, and no mark.
    let mut report = synthetic_report();
    for v in &mut report.variants {
        v.phases[1].streams[0] = stream_with("probe", 2, 10, 500);
        v.verdict = v.judge(report.settings.objective_ms);
    }
    let table = report.table();
    let rayon = table.lines().find(|l| l.starts_with("| rayon |")).unwrap();
    let cells: Vec<&str> = rayon.split('|').map(str::trim).collect();
    assert_eq!(cells[verdict], "yes");
    assert!(
        cells[p99].contains('[') && cells[p99].contains('–') && !cells[p99].ends_with('*'),
        "{}",
        cells[p99]
    );
    assert_eq!(cells[n], "5000");
}

#[test]
fn the_verdict_comes_from_the_interval() {
    let objective_us = 50_000.0;
    let judge = |base_ms, per_second| {
        let s = stream_with("probe", base_ms, 10, per_second);
        Verdict::of(&s.latency.corrected, objective_us)
    };
    // p99 about 2 ms, 30 ms: within 50 ms with room.
    assert_eq!(judge(1, 500), Verdict::Responsive);
    assert_eq!(judge(15, 500), Verdict::Responsive);
    // A tail from 200 ms up: beyond it.
    assert_eq!(judge(200, 500), Verdict::Unresponsive);
    // Too few samples to bound the p99: undecided, whatever the point figure.
    assert_eq!(judge(200, 5), Verdict::Undecided);
    // An interval that straddles the objective: p99 near 50 ms.
    let p = Percentiles {
        p99_us: 50_000.0,
        p99_ci: Some(loadgen::stats::Interval {
            low_us: 45_000.0,
            high_us: 55_000.0,
        }),
        ..Percentiles::default()
    };
    assert_eq!(Verdict::of(&p, objective_us), Verdict::Undecided);
}

#[test]
fn a_quiet_run_has_no_warnings_and_a_late_pacer_is_named() {
    let report = synthetic_report();
    assert_eq!(run_warnings(&report), Vec::<String>::new());

    // Probes sent late because every connection was busy: the server's doing,
    // counted by the corrected latency; not a warning.
    let mut busy = synthetic_report();
    let probe = &mut busy.variants[2].phases[1].streams[0];
    probe.counts.late = probe.counts.sent;
    probe.pacer_lateness = Some(Percentiles {
        p99_us: 50.0,
        ..Percentiles::default()
    });
    assert_eq!(run_warnings(&busy), Vec::<String>::new());

    // The pacer itself releasing probes 5 ms late compromises a 2 ms p99.
    let mut late = synthetic_report();
    late.variants[0].phases[1].streams[0].pacer_lateness = Some(Percentiles {
        p99_us: 5_000.0,
        ..Percentiles::default()
    });
    let warnings = run_warnings(&late);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("spawn-blocking loaded") && warnings[0].contains("pacer"),
        "{}",
        warnings[0]
    );
}

#[test]
fn a_repeated_run_keeps_each_rounds_figures_in_their_round() {
    // rayon did not run in round 1 (it failed to start): its round-2 figure and
    // interval stay in round 2.
    let first = {
        let mut r = well_sampled_report();
        r.variants.retain(|v| v.name != "rayon");
        r
    };
    let second = well_sampled_report();
    let repeat = RepeatReport::of(&[first, second], vec!["round-1".into(), "round-2".into()]);
    let rayon = repeat.variants.iter().find(|v| v.name == "rayon").unwrap();
    assert_eq!(rayon.probe_p99_by_round[0], None);
    assert!(rayon.probe_p99_by_round[1].is_some());
    assert_eq!(rayon.probe_p99_ci[0], None);
    assert!(rayon.probe_p99_ci[1].is_some());
    assert_eq!(rayon.probe_p99_us.as_ref().unwrap().values.len(), 1);
    let line = repeat
        .summary()
        .lines()
        .find(|l| l.starts_with("| rayon |"))
        .unwrap()
        .to_owned();
    assert!(line.contains("yes 1/2") && line.contains("| –; "), "{line}");
    // What repeat.json holds reads back.
    let json = serde_json::to_string(&repeat).unwrap();
    let back: RepeatReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.variants.len(), repeat.variants.len());
}
