//! `loadgen selftest` passes on this machine: the harness measures servers whose
//! behaviour is known (a fixed delay, a one-second stall, pacing, memory) within the
//! tolerances it prints. Its own file, so nothing else in this test binary competes
//! for the CPU while it measures.

use std::process::Command;

#[test]
fn selftest_passes_and_prints_every_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("selftest")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "floor",
        "fixed delay",
        "stall 1s at 100/s: corrected count",
        "stall: corrected max",
        "stall: uncorrected count",
        "pacing at 1000/s",
        "memory",
    ] {
        assert!(table.contains(check), "no {check:?} line");
    }
    assert!(table.contains(" 0 failed"));
}
