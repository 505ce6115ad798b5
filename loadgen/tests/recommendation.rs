//! "Which strategy to use" comes from the figures: synthetic runs in which
//! different variants win get different recommendations.

mod support;

use loadgen::report::{markdown, Figures, Recommendation, Sweep};
use support::synthetic::{stream_with, synthetic_sweep_report};

fn names(list: &[loadgen::report::recommendation::Assessment]) -> Vec<&str> {
    list.iter().map(|a| a.variant.as_str()).collect()
}

#[test]
fn the_variant_that_met_every_criterion_is_recommended_with_its_figures() {
    // rayon keeps the probe fast and finishes 90 of the ideal 100 jobs/s at the
    // overload point; spawn-blocking's probe p99 is 600 ms there; current-thread's
    // 2 s.
    let report = synthetic_sweep_report();
    let r = Recommendation::derive(&report);
    assert_eq!(names(&r.recommended), ["rayon"]);
    assert!(
        r.recommended[0].figures.contains("efficiency 91 %"),
        "{r:?}"
    );
    assert!(r.recommended[0].missed.is_empty());
    let spawn = r
        .not_recommended
        .iter()
        .find(|a| a.variant == "spawn-blocking")
        .unwrap();
    assert!(
        spawn.missed.iter().any(|m| m.contains("beyond 50 ms")),
        "{spawn:?}"
    );
    assert!(r.criteria.contains("at least 90 %"));
}

#[test]
fn when_another_variant_does_better_it_is_recommended_first() {
    let mut report = synthetic_sweep_report();
    // spawn-blocking now keeps its probe at 2 ms at 1.5x while finishing 140
    // jobs/s: more work done than rayon's 90, so it ranks first.
    let objective = report.settings.objective_ms;
    let v = &mut report.variants[0];
    assert_eq!(v.name, "spawn-blocking");
    let top = v.phases.len() - 2;
    v.phases[top].streams[0] = stream_with("probe", 2, 2, 500);
    v.figures = Figures::derive(&v.phases, v.heavy.as_ref().unwrap());
    v.verdict = v.judge(objective);
    v.sweep = Sweep::derive(v, &report.settings);
    let r = Recommendation::derive(&report);
    assert_eq!(names(&r.recommended), ["spawn-blocking", "rayon"]);
    assert!(
        !r.recommended[1].tied_with_previous,
        "140 and 90 jobs/s differ"
    );
    // And once rayon lets heavy requests time out, it drops out.
    report.variants[1].figures.as_mut().unwrap().heavy_failed = 512;
    let r = Recommendation::derive(&report);
    assert_eq!(names(&r.recommended), ["spawn-blocking"]);
    let rayon = r
        .not_recommended
        .iter()
        .find(|a| a.variant == "rayon")
        .unwrap();
    assert_eq!(rayon.missed, ["512 heavy requests failed"]);
}

#[test]
fn a_run_where_nothing_qualifies_says_so_in_the_summary() {
    let mut report = synthetic_sweep_report();
    report.variants[1]
        .figures
        .as_mut()
        .unwrap()
        .heavy_efficiency = 0.5;
    report.recommendation = Some(Recommendation::derive(&report));
    let r = report.recommendation.as_ref().unwrap();
    assert!(r.recommended.is_empty());
    // Closest first: rayon kept the server responsive and missed one criterion;
    // spawn-blocking missed one too but not that one; current-thread two.
    assert_eq!(
        names(&r.not_recommended),
        ["rayon", "spawn-blocking", "current-thread"]
    );
    assert!(r.not_recommended[0].responsive && !r.not_recommended[1].responsive);
    let summary = markdown::summary(&report);
    assert!(summary.contains("## Which strategy to use"), "{summary}");
    assert!(summary.contains("No variant met every criterion in this run."));
    assert!(
        summary.contains("**rayon**: efficiency under 90 %"),
        "{summary}"
    );
}
