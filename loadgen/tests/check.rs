//! Thresholds against a synthetic report with known figures: every statistic, `*`,
//! relative expressions, errors, exit codes 0/99/1, JUnit that parses as XML; and
//! `compare` on synthetic pairs with and without a regression.

mod support;

use std::path::PathBuf;
use std::process::Command;

use loadgen::check::compare::{compare, Noise, Verdict};
use loadgen::check::{evaluate_all, junit};
use loadgen::report::Report;
use support::processes::loadgen;
use support::synthetic::{scale_p99, synthetic_jobs_report, synthetic_report, well_sampled_report};
use support::{Behaviour, TestServer};

fn run_report() -> Report {
    Report::Run(synthetic_report())
}

fn check(expressions: &[&str]) -> Vec<bool> {
    let expressions: Vec<String> = expressions.iter().map(|e| e.to_string()).collect();
    evaluate_all(&run_report(), &expressions)
        .unwrap()
        .iter()
        .map(|o| o.passed)
        .collect()
}

#[test]
fn every_statistic_evaluates() {
    // Loaded probe latency: 1 ms base for spawn-blocking, 11 for rayon, 21 for
    // current-thread, each with a tail to about twice the base.
    assert_eq!(check(&["spawn-blocking.probe.loaded.p50 < 2ms"]), [true]);
    assert_eq!(check(&["spawn-blocking.probe.loaded.p50 > 1ms"]), [true]);
    assert_eq!(check(&["spawn-blocking.probe.loaded.p90 < 2ms"]), [true]);
    assert_eq!(check(&["spawn-blocking.probe.loaded.p99 < 1ms"]), [false]);
    assert_eq!(
        check(&["spawn-blocking.probe.loaded.p99 < 2.5"]),
        [true],
        "bare numbers are ms"
    );
    assert_eq!(check(&["rayon.probe.loaded.p99.9 >= 20ms"]), [true]);
    assert_eq!(
        check(&["rayon.probe.loaded.p99.99 <= rayon.probe.loaded.max"]),
        [true]
    );
    assert_eq!(check(&["rayon.probe.loaded.max < 0.03s"]), [true]);
    assert_eq!(check(&["rayon.probe.loaded.mean > 11000us"]), [true]);
    assert_eq!(check(&["rayon.probe.loaded.count == 200"]), [true]);
    assert_eq!(
        check(&["rayon.probe.count == 600"]),
        [true],
        "no phase: every phase"
    );
    assert_eq!(check(&["rayon.probe.loaded.rate == 100"]), [true]);
    assert_eq!(check(&["rayon.probe.errors == 0"]), [true]);
    assert_eq!(check(&["rayon.heavy.efficiency > 0.9"]), [true]);
    assert_eq!(check(&["rayon.heavy.efficiency < 0.5"]), [false]);
    assert_eq!(check(&["current-thread.probe.inflation > 10"]), [true]);
    // Its synthetic loaded probe is exactly as fast as its idle one.
    assert_eq!(check(&["spawn-blocking.probe.inflation == 1"]), [true]);
    assert_eq!(check(&["spawn-blocking.probe.inflation != 1"]), [false]);

    // The server's own lag: 21 ms p99 (max 42) under load for current-thread.
    assert_eq!(check(&["current-thread.server.loaded.p99 > 20ms"]), [true]);
    assert_eq!(check(&["current-thread.server.loaded.max == 42ms"]), [true]);
    assert_eq!(
        check(&["current-thread.server.loaded.max > 10 * spawn-blocking.server.loaded.max"]),
        [true]
    );
    assert_eq!(check(&["rayon.server.idle.p99 < 2ms"]), [true]);
    assert_eq!(
        check(&["rayon.server.errors == 1"]),
        [true],
        "failed scrapes"
    );
    assert_eq!(check(&["rayon.server.loaded.count == 100"]), [true]);
}

#[test]
fn star_and_relative_expressions() {
    assert_eq!(check(&["*.probe.idle.errors == 0"]), [true, true, true]);
    assert_eq!(check(&["*.probe.loaded.p99 < 5ms"]), [true, false, false]);
    assert_eq!(
        check(&["current-thread.probe.loaded.p99 > 10 * spawn-blocking.probe.loaded.p99"]),
        [true]
    );
    assert_eq!(
        check(&["rayon.probe.loaded.p99 > 20 * spawn-blocking.probe.loaded.p99"]),
        [false]
    );
    assert_eq!(
        check(&["current-thread.probe.loaded.p99 > rayon.probe.loaded.p99"]),
        [true]
    );
    // `*` on both sides pairs each variant with itself.
    assert_eq!(
        check(&["*.probe.loaded.p99 >= 1 * *.probe.idle.p99"]),
        [true, true, true]
    );
}

#[test]
fn uncheckable_thresholds_are_errors() {
    let report = run_report();
    for (text, message) in [
        ("nosuch.probe.loaded.p99 < 1s", "unknown variant"),
        ("rayon.probe.busy.p99 < 1s", "unknown phase"),
        ("rayon.nosuch.loaded.p99 < 1s", "no stream"),
        ("rayon.probe.efficiency > 0.5", "heavy stream"),
        ("rayon.probe.p99 < 1s", "needs a phase"),
        ("rayon.probe.loaded.p99 <", "expected a number"),
        ("probe.p99 < 1s", "needs VARIANT"),
    ] {
        let error = evaluate_all(&report, &[text.to_owned()])
            .unwrap_err()
            .to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}

fn temp_report() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "loadgen-check-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec(&synthetic_report()).unwrap(),
    )
    .unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn exit_codes_follow_k6() {
    let dir = temp_report();
    let d = dir.to_str().unwrap();
    let pass = loadgen(&["check", d, "--threshold", "rayon.heavy.efficiency > 0.5"]);
    assert_eq!(
        pass.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&pass.stderr)
    );
    assert!(String::from_utf8_lossy(&pass.stdout).contains("PASS"));
    let fail = loadgen(&["check", d, "--threshold", "rayon.probe.loaded.p99 < 1ms"]);
    assert_eq!(fail.status.code(), Some(99));
    assert!(String::from_utf8_lossy(&fail.stdout).contains("FAIL"));
    let malformed = loadgen(&["check", d, "--threshold", "rayon.probe.loaded.p99 ~ 1ms"]);
    assert_eq!(malformed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("column 24"));
    let unreadable = loadgen(&["check", "/no/such/report", "--threshold", "a.b.c.p99 < 1"]);
    assert_eq!(unreadable.status.code(), Some(1));
    let file = dir.join("t.toml");
    std::fs::write(
        &file,
        "thresholds = ['*.probe.idle.errors == 0', 'rayon.probe.loaded.p99 < 1s']\n",
    )
    .unwrap();
    let (xml, md) = (dir.join("j.xml"), dir.join("s.md"));
    let from_file = loadgen(&[
        "check",
        d,
        "--thresholds",
        file.to_str().unwrap(),
        "--junit",
        xml.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert_eq!(from_file.status.code(), Some(0));
    let xml = std::fs::read_to_string(xml).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit output is not XML");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(cases, 4);
    assert!(std::fs::read_to_string(md)
        .unwrap()
        .starts_with("| result | threshold | measured |"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn junit_escapes_and_marks_failures() {
    let outcomes =
        evaluate_all(&run_report(), &["rayon.probe.loaded.p99 < 1ms".to_owned()]).unwrap();
    let doc_text = junit(&outcomes);
    let doc = roxmltree::Document::parse(&doc_text).unwrap();
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("1"));
    assert!(doc.descendants().any(|n| n.has_tag_name("failure")));
}

/// The verdict on rayon's probe p99 under load.
fn rayon_p99(rows: &[loadgen::check::compare::Row]) -> Verdict {
    rows.iter()
        .find(|r| r.variant == "rayon" && r.figure == "probe loaded p99")
        .unwrap()
        .verdict
}

#[test]
fn compare_flags_only_real_regressions() {
    let base = well_sampled_report();
    let noise = Noise {
        latency: 3.0,
        throughput: 1.3,
    };
    let same = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&base),
        noise,
    );
    assert!(!same.is_empty());
    for r in &same {
        assert!(
            matches!(r.verdict, Verdict::Same | Verdict::TooFewSamples),
            "{} {:?}",
            r.figure,
            r.verdict
        );
    }
    // 5,000 probe samples bound the p99: judged, and the same.
    assert!(same
        .iter()
        .filter(|r| r.figure == "probe loaded p99")
        .all(|r| r.verdict == Verdict::Same));
    // 200 heavy samples cannot bound a p99: not judged.
    let heavy = same.iter().find(|r| r.figure == "heavy p99").unwrap();
    assert_eq!(heavy.verdict, Verdict::TooFewSamples);

    let probe_p99 = |report: &mut loadgen::report::RunReport, factor| {
        let figures = report.variants[1].figures.as_mut().unwrap();
        scale_p99(&mut figures.probe_loaded, factor);
    };
    let mut slower = base.clone();
    probe_p99(&mut slower, 10.0);
    let rows = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&slower),
        noise,
    );
    let worse: Vec<_> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Worse)
        .collect();
    assert_eq!(worse.len(), 1);
    assert_eq!(
        (worse[0].variant.as_str(), worse[0].figure),
        ("rayon", "probe loaded p99")
    );

    // Twice as slow: the intervals are not three times apart.
    let mut a_bit = base.clone();
    probe_p99(&mut a_bit, 2.0);
    let rows = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&a_bit),
        noise,
    );
    assert!(rows.iter().all(|r| r.verdict != Verdict::Worse));

    // Repeated runs: one odd run (base x, x, 20x) moves neither end of the median
    // run's interval, so it does not hide a tenfold regression.
    let mut odd_base = base.clone();
    probe_p99(&mut odd_base, 20.0);
    let rows = compare(
        &[base.clone(), base.clone(), odd_base.clone()],
        &[slower.clone(), slower.clone()],
        noise,
    );
    assert_eq!(rayon_p99(&rows), Verdict::Worse);
    // ...nor make a regression of a run that is not one (current x, x, 20x).
    let rows = compare(
        &[base.clone(), base.clone()],
        &[base.clone(), base.clone(), odd_base],
        noise,
    );
    assert_eq!(rayon_p99(&rows), Verdict::Same);
    // A p99 ten times worse whose interval reaches down to twice the base: worse,
    // but within noise.
    let mut unsure = base.clone();
    {
        let p = &mut unsure.variants[1].figures.as_mut().unwrap().probe_loaded;
        let ci = p.p99_ci.as_mut().unwrap();
        (p.p99_us, ci.low_us, ci.high_us) = (p.p99_us * 10.0, ci.low_us * 2.0, ci.high_us * 10.0);
    }
    let rows = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&unsure),
        noise,
    );
    assert_eq!(rayon_p99(&rows), Verdict::WorseWithinNoise);
    let rows = compare(
        &[base.clone(), base.clone()],
        &[slower.clone(), slower],
        noise,
    );
    assert_eq!(rayon_p99(&rows), Verdict::Worse);

    // A throughput drop beyond its factor is a regression too.
    let mut weaker = base.clone();
    weaker.variants[0]
        .figures
        .as_mut()
        .unwrap()
        .heavy_completions_per_s /= 2.0;
    let rows = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&weaker),
        noise,
    );
    assert!(rows
        .iter()
        .any(|r| r.verdict == Verdict::Worse && r.figure == "heavy done/s"));
    // ...and a rise beyond it, and a probe ten times faster, are improvements.
    let rows = compare(
        std::slice::from_ref(&weaker),
        std::slice::from_ref(&base),
        noise,
    );
    assert!(rows
        .iter()
        .any(|r| r.verdict == Verdict::Better && r.figure == "heavy done/s"));
    let rows = compare(
        std::slice::from_ref(&slower_than_base()),
        std::slice::from_ref(&base),
        noise,
    );
    assert_eq!(rayon_p99(&rows), Verdict::Better);
}

/// The well-sampled report with rayon's probe p99 under load ten times worse.
fn slower_than_base() -> loadgen::report::RunReport {
    let mut report = well_sampled_report();
    scale_p99(
        &mut report.variants[1].figures.as_mut().unwrap().probe_loaded,
        10.0,
    );
    report
}

#[test]
fn reports_from_before_intervals_are_judged_too() {
    // A report written before percentiles carried intervals: none in its streams
    // or figures. Loading it reads them again from the histograms.
    let strip = |p: &mut loadgen::stats::Percentiles| {
        (p.p50_ci, p.p90_ci, p.p99_ci, p.p99_9_ci) = (None, None, None, None);
    };
    let mut old = well_sampled_report();
    for v in &mut old.variants {
        v.verdict = None;
        for s in v.phases.iter_mut().flat_map(|p| &mut p.streams) {
            strip(&mut s.latency.corrected);
            strip(&mut s.latency.uncorrected);
        }
        let f = v.figures.as_mut().unwrap();
        for p in [
            &mut f.probe_idle,
            &mut f.probe_loaded,
            &mut f.probe_recovery,
        ] {
            strip(p);
        }
    }
    let dir = std::env::temp_dir().join(format!("loadgen-old-report-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("report.json"), serde_json::to_vec(&old).unwrap()).unwrap();
    let loaded = loadgen::report::load::load_runs(&dir).unwrap();
    let rayon = &loaded[0].variants[1];
    assert!(rayon
        .figures
        .as_ref()
        .unwrap()
        .probe_loaded
        .p99_ci
        .is_some());
    assert_eq!(rayon.verdict, Some(loadgen::report::Verdict::Responsive));
    let rows = compare(
        &loaded,
        std::slice::from_ref(&slower_than_base()),
        Noise {
            latency: 3.0,
            throughput: 1.3,
        },
    );
    assert_eq!(rayon_p99(&rows), Verdict::Worse);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_runs_check_stream_thresholds() {
    let server = TestServer::start(Behaviour::Fast);
    let dir = std::env::temp_dir().join(format!("loadgen-bench-check-{}", rand_suffix()));
    let json = dir.join("r.json");
    let url = server.url("/");
    let args = |threshold: &str| {
        vec![
            "bench".to_owned(),
            "--url".into(),
            url.clone(),
            "--rate".into(),
            "50".into(),
            "-d".into(),
            "1s".into(),
            "-w".into(),
            "0s".into(),
            "--json".into(),
            json.to_str().unwrap().into(),
            "--threshold".into(),
            threshold.into(),
        ]
    };
    let ok = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args("main.p99 < 5s"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let fail = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args("main.p50 < 1us"))
        .output()
        .unwrap();
    assert_eq!(fail.status.code(), Some(99));
    // The saved bench report can be checked again later, with STREAM.STAT selectors.
    let again = loadgen(&[
        "check",
        json.to_str().unwrap(),
        "--threshold",
        "main.errors == 0",
        "--threshold",
        "main.count == 50",
    ]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compare_reads_the_figures_of_a_jobs_run() {
    let base = synthetic_jobs_report();
    let noise = Noise {
        latency: 3.0,
        throughput: 1.3,
    };
    let rows = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&base),
        noise,
    );
    let figures: Vec<&str> = rows
        .iter()
        .filter(|r| r.variant == "rayon")
        .map(|r| r.figure)
        .collect();
    assert_eq!(
        figures,
        [
            "probe loaded p99",
            "probe loaded p99.9",
            "probe idle p99",
            "jobs done/s",
            "jobs end-to-end p50",
            "jobs end-to-end p99"
        ]
    );
    assert!(rows
        .iter()
        .all(|r| matches!(r.verdict, Verdict::Same | Verdict::TooFewSamples)));

    // Jobs that take ten times longer end to end are a regression.
    let mut slower = base.clone();
    let loaded = &mut slower.variants[1].phases[1];
    let jobs = loaded
        .streams
        .iter_mut()
        .find(|s| s.name == "jobs")
        .unwrap();
    scale_p99(&mut jobs.latency.corrected, 10.0);
    let worse: Vec<_> = compare(
        std::slice::from_ref(&base),
        std::slice::from_ref(&slower),
        noise,
    )
    .into_iter()
    .filter(|r| r.verdict == Verdict::Worse)
    .map(|r| (r.variant, r.figure))
    .collect();
    assert_eq!(worse, [("rayon".to_owned(), "jobs end-to-end p99")]);
}

#[test]
fn compare_refuses_runs_of_different_scenarios() {
    let dir = temp_report();
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(
        jobs.join("report.json"),
        serde_json::to_vec(&synthetic_jobs_report()).unwrap(),
    )
    .unwrap();
    let out = loadgen(&["compare", dir.to_str().unwrap(), jobs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scenario"));
    let same = loadgen(&["compare", jobs.to_str().unwrap(), jobs.to_str().unwrap()]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(String::from_utf8_lossy(&same.stdout).contains("jobs end-to-end p99"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `loadgen bench` against `server` for 2 s at 50/s, its report written to `json`.
fn bench_json(server: &TestServer, json: &std::path::Path) {
    let out = loadgen(&[
        "bench",
        "--url",
        &server.url("/"),
        "--rate",
        "50",
        "-d",
        "2s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compare_judges_bench_reports_stream_by_stream() {
    // Answers that take 20 ms, measured twice (A/A), then answers that take
    // 100 ms: five times the latency, far beyond any noise factor.
    let dir = std::env::temp_dir().join(format!("loadgen-bench-compare-{}", rand_suffix()));
    std::fs::create_dir_all(dir.join("base")).unwrap();
    let same = TestServer::start(Behaviour::Delay(std::time::Duration::from_millis(20)));
    let slower = TestServer::start(Behaviour::Delay(std::time::Duration::from_millis(100)));
    let (a, b, c) = (
        dir.join("base/a.json"),
        dir.join("b.json"),
        dir.join("c.json"),
    );
    bench_json(&same, &a);
    bench_json(&same, &b);
    bench_json(&slower, &c);

    let aa = loadgen(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&aa.stdout);
    assert_eq!(aa.status.code(), Some(0), "A/A: {text}");
    assert!(text.starts_with("base: 1 bench report(s)"), "{text}");
    assert!(
        text.contains("stream") && text.contains("main") && text.contains("p99"),
        "{text}"
    );

    // A folder of bench reports is a side too.
    let regressed = loadgen(&[
        "compare",
        dir.join("base").to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&regressed.stdout);
    assert_eq!(regressed.status.code(), Some(99), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("main") && l.contains(" p50 ") && l.contains("REGRESSION")),
        "{text}"
    );

    // Reports of another load are refused rather than judged.
    let other = dir.join("other.json");
    let out = loadgen(&[
        "bench",
        "--url",
        &same.url("/"),
        "--rate",
        "25",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let refused = loadgen(&["compare", a.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("different loads"));

    let mixed = loadgen(&[
        "compare",
        a.to_str().unwrap(),
        temp_report().to_str().unwrap(),
    ]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("like with like"));
    std::fs::remove_dir_all(&dir).unwrap();
}
