//! `loadgen guard` (hidden): the small supervisor every external server runs under,
//! so that no process of it outlives loadgen.
//!
//! An external server is a command line, and a command line may start a tree of
//! processes (uvicorn's `--workers`, a process pool, a shell script starting Redis
//! and queue workers). `PR_SET_PDEATHSIG` only reaches the direct child, and only
//! with a signal that cannot be caught. The guard closes the gap:
//! - loadgen starts it with `PR_SET_PDEATHSIG = SIGTERM`, a signal it can catch,
//!   so it hears of loadgen's death even by SIGKILL;
//! - it runs the server in a process group of its own and as a child subreaper, so
//!   every process the server starts stays its descendant, even one whose parent
//!   died;
//! - on SIGTERM, SIGINT or SIGHUP, or when the server's main process exits, it
//!   sends the server's stop signal to the group, waits the grace period, then
//!   kills the group and every descendant left, and exits with the server's
//!   status.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

/// Options of `loadgen guard`.
#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    /// Signal that asks the server to stop: TERM, INT, QUIT, HUP or KILL.
    #[arg(long, default_value = "TERM", value_parser = parse_signal)]
    pub signal: i32,

    /// How long the server may take to stop before it is killed.
    #[arg(long, default_value = "5s", value_parser = crate::cli::duration)]
    pub grace: Duration,

    /// The server's command line.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// Signals that may ask a server to stop.
const STOP_SIGNALS: [(&str, i32); 5] = [
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("HUP", libc::SIGHUP),
    ("KILL", libc::SIGKILL),
];

/// A stop signal by name (with or without `SIG`) or number.
pub fn parse_signal(name: &str) -> Result<i32, String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    match STOP_SIGNALS
        .iter()
        .find(|(n, number)| *n == bare || number.to_string() == bare)
    {
        Some(&(_, number)) => Ok(number),
        None => Err(format!(
            "unknown stop signal {name:?}; choose TERM, INT, QUIT, HUP or KILL"
        )),
    }
}

/// How often the guard looks again while it waits for the group to go.
const POLL: Duration = Duration::from_millis(20);

/// Runs `loadgen guard`: the server's exit status (128 + signal when a signal
/// ended it), 1 when it could not be started.
pub fn run(args: &GuardArgs) -> ExitCode {
    match supervise(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("loadgen guard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Signals that stop the server.
const STOP: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// Signals the guard takes in turn instead of dying of them (or, for the
/// terminal's stop signals, being stopped while its server runs on); the
/// server gets the default handling back.
const TAKEN: [i32; 11] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGCHLD,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGPIPE,
    libc::SIGTSTP,
    libc::SIGTTOU,
];

fn supervise(args: &GuardArgs) -> anyhow::Result<u8> {
    let signals = signal_set(&TAKEN);
    // SAFETY: plain system calls on this single-threaded process's own state.
    unsafe {
        // Blocked before the child exists, so no signal is lost in between; they
        // are taken with sigtimedwait below.
        libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    let (program, rest) = args.command.split_first().context("no command given")?;
    let mut command = std::process::Command::new(program);
    command.args(rest).process_group(0);
    let guard = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let empty = signal_set(&[]);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Should the guard itself be killed outright, its server goes too
            // (and if it already was, the server does not start).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() as u32 != guard {
                return Err(std::io::Error::other("the guard exited"));
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
    let main = child.id() as libc::pid_t;
    let mut status = None;
    loop {
        let signal = wait_signal(&signals, Duration::from_secs(1));
        status = status.or(reap(main));
        if status.is_some() || signal.is_some_and(|s| STOP.contains(&s)) {
            break;
        }
    }
    stop_group(main, args.signal, args.grace, &mut status);
    kill_descendants(&mut status, main);
    Ok(status.unwrap_or(128 + libc::SIGKILL as u8))
}

/// A signal set holding `signals`.
fn signal_set(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The next of the blocked `signals`, or `None` after `timeout`.
fn wait_signal(signals: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the set and timespec outlive the call; info may be null.
    let signal = unsafe { libc::sigtimedwait(signals, std::ptr::null_mut(), &timeout) };
    (signal > 0).then_some(signal)
}

/// Reaps every exited descendant (the guard is their subreaper); returns the
/// exit code of `main` if it was among them.
fn reap(main: libc::pid_t) -> Option<u8> {
    let mut main_status = None;
    loop {
        let mut raw = 0;
        // SAFETY: waitpid writes the status it is given.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid <= 0 {
            return main_status;
        }
        if pid == main {
            main_status = Some(if libc::WIFEXITED(raw) {
                libc::WEXITSTATUS(raw) as u8
            } else {
                128u8.wrapping_add(libc::WTERMSIG(raw) as u8)
            });
        }
    }
}

/// Whether any process is left in the group `group`.
fn group_alive(group: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(-group, 0) == 0 }
}

/// Sends `signal` to the server's group, waits up to `grace` for it to go (reaping
/// as it goes), then kills what is left of it.
fn stop_group(group: libc::pid_t, signal: i32, grace: Duration, status: &mut Option<u8>) {
    // SAFETY: signals to the group this guard created.
    unsafe { libc::kill(-group, signal) };
    let deadline = Instant::now() + grace;
    while group_alive(group) && Instant::now() < deadline {
        std::thread::sleep(POLL);
        *status = status.or(reap(group));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Kills every descendant still alive (those that left the group, or were
/// reparented here when their parent died) and reaps them all, for five
/// seconds at most.
fn kill_descendants(status: &mut Option<u8>, main: libc::pid_t) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        *status = status.or(reap(main));
        let left = crate::cpu::descendants(std::process::id());
        if left.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in left {
            // SAFETY: a descendant of this guard, found just now.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_are_read_by_name() {
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("sigint"), Ok(libc::SIGINT));
        assert_eq!(parse_signal(" KILL "), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("15"), Ok(libc::SIGTERM));
        assert!(parse_signal("USR1").unwrap_err().contains("TERM, INT"));
    }
}
