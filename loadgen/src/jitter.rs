//! The machine's own timer jitter: how late a thread that asks to sleep 1 ms
//! actually wakes (a small cyclictest), measured on a thread set up like the
//! pacer's (1 ns timer slack). No client can send on time more precisely than this
//! machine wakes it, so every run report records it beside the tool's own
//! lateness, and the self-test judges the pacer against it rather than against a
//! fixed number.

use std::time::{Duration, Instant};

use crate::stats::{new_histogram, Percentiles};

/// The sleep asked for each time.
pub const PERIOD: Duration = Duration::from_millis(1);

/// How late `samples` sleeps of [`PERIOD`] woke, on a thread of their own.
pub fn measure(samples: usize) -> std::io::Result<Percentiles> {
    std::thread::Builder::new()
        .name("loadgen-jitter".into())
        .spawn(move || {
            // SAFETY: prctl with integer arguments, on this thread only.
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
            }
            let mut late = new_histogram();
            for _ in 0..samples {
                let asked = Instant::now() + PERIOD;
                std::thread::sleep(PERIOD);
                let overshoot = Instant::now().saturating_duration_since(asked);
                late.saturating_record(overshoot.as_nanos() as u64);
            }
            Percentiles::of(&late)
        })?
        .join()
        .map_err(|_| std::io::Error::other("the jitter thread panicked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sleep_is_measured() {
        let jitter = measure(50).unwrap();
        assert_eq!(jitter.count, 50);
        assert!(jitter.min_us >= 0.0 && jitter.max_us >= jitter.p50_us);
    }
}
