//! The machine a run was measured on, recorded in every report: on shared, noisy
//! machines a number means little without it.

use serde::{Deserialize, Serialize};

/// Where and with what a run was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// CPUs this process may run on.
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub os: String,
    pub arch: String,
    pub build: Build,
    pub tool_version: String,
}

/// How the binaries were compiled: a debug build would measure the compiler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// Cargo's profile name as seen by build scripts: `debug` or `release`.
    pub profile: String,
    pub opt_level: String,
    pub debug_assertions: bool,
}

impl Environment {
    /// Reads the environment of this process.
    pub fn detect() -> Environment {
        let build = servers::config::build_profile();
        Environment {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            build: Build {
                profile: build.profile.into(),
                opt_level: build.opt_level.into(),
                debug_assertions: build.debug_assertions,
            },
            tool_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// One line for the top of a summary.
    pub fn one_line(&self) -> String {
        format!(
            "{} cores ({}), {} {} {}, {} build at opt-level {}",
            self.cores,
            self.cpu_model,
            self.os,
            self.kernel,
            self.arch,
            self.build.profile,
            self.build.opt_level
        )
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}
