//! CPU placement and accounting: pinning processes to CPU lists, and how much CPU
//! time a process (and its children) has used, so a report can say whether the
//! client itself was short of CPU.

use std::time::Duration;

/// Parses a CPU list like `0`, `0-1` or `0,2-3`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let low: usize = low
            .parse()
            .map_err(|_| format!("{part:?} is not a CPU number or range"))?;
        let high: usize = high
            .parse()
            .map_err(|_| format!("{part:?} is not a CPU number or range"))?;
        if low > high {
            return Err(format!("CPU range {part:?} runs backwards"));
        }
        cpus.extend(low..=high);
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.is_empty() {
        return Err(format!(
            "{text:?} names no CPU; write it like 0 or 0-1 or 0,2"
        ));
    }
    let online = online_cpus();
    if let Some(bad) = cpus.iter().find(|c| !online.contains(c)) {
        return Err(format!(
            "CPU {bad} is not available here (available: {online:?})"
        ));
    }
    Ok(cpus)
}

/// CPUs this process may run on.
pub fn online_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Restricts the calling thread (and every thread or process it creates from now
/// on) to `cpus`. Async-signal-safe, so it can run between fork and exec.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: as above; CPU_SET only writes inside the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPU time (user + system) this process has used so far, all threads.
pub fn own_cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time used so far by process `pid` and every live descendant (the workers
/// of a multi-worker server, an external server's tree under its guard), from
/// /proc. Zero for a process that is gone.
pub fn process_tree_cpu_time(pid: u32) -> Duration {
    std::iter::once(pid)
        .chain(descendants(pid))
        .map(|p| process_cpu_time(p).unwrap_or_default())
        .sum()
}

/// Every live descendant of `pid`, parents before their children, from the
/// parent of each process in /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(process) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(parent) = parent_of(process) {
                parents.push((process, parent));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree.remove(0);
    tree
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Parent of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn process_cpu_time(pid: u32) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    // Fields 14 to 17 of stat (utime, stime, and cutime, cstime: what its
    // children used before it reaped them, so a tree's total only grows when a
    // short-lived child ends) are at 11 to 14 after the name.
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += fields.get(i)?.parse::<u64>().ok()?;
    }
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), [0]);
        let all = online_cpus();
        if all.len() >= 2 {
            let list = format!("{}-{}", all[0], all[1]);
            assert_eq!(parse_cpu_list(&list).unwrap().len(), 2);
        }
        for bad in ["", "a", "3-1", "99999"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn measures_cpu_time() {
        let before = own_cpu_time();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(own_cpu_time() > before);
        assert!(process_tree_cpu_time(std::process::id()) > Duration::ZERO);
        assert_eq!(
            parent_of(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }
}
