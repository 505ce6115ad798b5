//! Caps on how much work one request may ask for, in one place for both ways of
//! asking: `GET /work/cpu?units=N` / `GET /work/io?ms=N`, and `POST /jobs` with
//! `{"kind": "cpu", "units": N}` / `{"kind": "io", "ms": N}`. Both check a size with
//! [`Limits::check`], so an oversized request gets the same message from either.

use std::time::Duration;

use crate::config::ServerConfig;
use crate::workload::Calibration;

/// CPU time the default `units` cap (no `--max-units`) stands for.
const DEFAULT_MAX_CPU: Duration = Duration::from_secs(1);

/// Which size a request gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// `units`: units of the CPU kernel.
    Units,
    /// `ms`: milliseconds of blocking I/O.
    Ms,
}

impl Size {
    /// The name of the query parameter and of the JSON field.
    pub fn name(self) -> &'static str {
        match self {
            Size::Units => "units",
            Size::Ms => "ms",
        }
    }

    /// The server flag that sets the cap.
    pub fn cap_flag(self) -> &'static str {
        match self {
            Size::Units => "--max-units",
            Size::Ms => "--max-io-ms",
        }
    }
}

/// Caps on what one request may ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_units: u64,
    pub max_io_ms: u64,
}

impl Limits {
    /// The caps `config` asks for; without `--max-units`, about one second of CPU
    /// work by `calibration`.
    pub fn new(config: &ServerConfig, calibration: Calibration) -> Self {
        Limits {
            max_units: config
                .max_units
                .unwrap_or_else(|| calibration.units_for(DEFAULT_MAX_CPU)),
            max_io_ms: config.max_io_ms,
        }
    }

    /// The largest `size` one request may ask for.
    pub fn cap(&self, size: Size) -> u64 {
        match size {
            Size::Units => self.max_units,
            Size::Ms => self.max_io_ms,
        }
    }

    /// Checks that `value` is in `1..=cap`; the message says what to send instead.
    pub fn check(&self, size: Size, value: u64) -> Result<u64, String> {
        let (name, cap) = (size.name(), self.cap(size));
        if value == 0 {
            return Err(format!("`{name}` must be at least 1, got 0"));
        }
        if value > cap {
            return Err(format!(
                "`{name}`={value} is over the cap of {cap}; start the server with {} to raise it",
                size.cap_flag()
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_units: 10,
        max_io_ms: 100,
    };

    #[test]
    fn accepts_one_to_the_cap() {
        assert_eq!(LIMITS.check(Size::Units, 1), Ok(1));
        assert_eq!(LIMITS.check(Size::Units, 10), Ok(10));
        assert_eq!(LIMITS.check(Size::Ms, 100), Ok(100));
    }

    #[test]
    fn refuses_zero_and_over_the_cap_naming_the_flag() {
        assert_eq!(
            LIMITS.check(Size::Units, 0),
            Err("`units` must be at least 1, got 0".to_owned())
        );
        assert_eq!(
            LIMITS.check(Size::Units, 11),
            Err(
                "`units`=11 is over the cap of 10; start the server with --max-units to raise it"
                    .to_owned()
            )
        );
        assert_eq!(
            LIMITS.check(Size::Ms, 101),
            Err(
                "`ms`=101 is over the cap of 100; start the server with --max-io-ms to raise it"
                    .to_owned()
            )
        );
    }
}
