//! The two multi-worker designs, side by side, with ratios instead of absolute
//! times. Both run `--workers` processes under one supervisor; they differ in where
//! a new connection waits while one process is stuck in a job:
//!
//! - `multi-worker` (one listening socket shared by every process, one accept
//!   queue): a stuck process does not call `accept`, so every new connection goes to
//!   a free process and is answered in well under a tenth of the job;
//! - `multi-worker-reuseport` (a socket per process with `SO_REUSEPORT`, one accept
//!   queue each): the kernel hashes new connections to the stuck process too, and
//!   those wait for its job (at least half of it).
//!
//! On both, a kept-alive connection the stuck process already holds waits for it.
//! Shutdown is the same on both: SIGTERM reaches every process, none outlives the
//! supervisor, and the port is free afterwards.
//!
//! The tests share a lock so that only one of them loads the machine at a time.

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{parent_of, process_alive, timed_fresh_get, KeepAlive, Server, Timing};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Both designs.
const VARIANTS: [&str; 2] = ["multi-worker", "multi-worker-reuseport"];
/// How long the stuck process's job (a blocking call) takes.
const JOB: Duration = Duration::from_millis(1000);
/// When the probes start, after the job.
const PROBES_AFTER: Duration = Duration::from_millis(100);
/// New connections opened while the job runs.
const NEW_CONNECTIONS: usize = 20;
/// Every wait in these tests ends by this, whatever happens.
const LIMIT: Duration = Duration::from_secs(60);

/// The inodes of the TCP sockets listening on `port` (from /proc/net/tcp{,6}).
fn listening_sockets(port: u16) -> BTreeSet<u64> {
    let mut found = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1].rsplit_once(':').map(|(_, p)| p);
            // State 0A is LISTEN.
            if local_port == Some(&format!("{port:04X}")) && fields[3] == "0A" {
                found.insert(fields[9].parse().unwrap());
            }
        }
    }
    found
}

/// The inodes of the sockets process `pid` holds.
fn sockets_of(pid: u32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether every descriptor of process `pid` on socket `inode` is close-on-exec.
fn close_on_exec(pid: u32, inode: u64) -> bool {
    let target = format!("socket:[{inode}]");
    let mut seen = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let is_it = std::fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy() == target);
        if !is_it {
            continue;
        }
        seen += 1;
        let fd = entry.file_name();
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.to_string_lossy()))
            .unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        if flags & libc::O_CLOEXEC as u32 == 0 {
            return false;
        }
    }
    seen > 0
}

/// Waits until every process in `pids` is gone.
fn all_gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pids.iter().all(|&p| !process_alive(p))
}

/// Whether nothing listens on the server's port any more, waiting a moment for
/// the kernel to finish closing what the dead processes held. (Binding it again is
/// not the test: connections the killed processes held can linger in FIN_WAIT
/// on the port for a moment, bound with `SO_REUSEPORT`, after every listener is
/// gone.)
fn port_is_free(server: &Server) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listening_sockets(server.addr.port()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    listening_sockets(server.addr.port()).is_empty()
}

#[test]
fn one_socket_shared_or_one_socket_per_process() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for variant in VARIANTS {
        let server = Server::start(variant, &["--workers", "3"]);
        let pids = server.group_pids(3);
        let listening = listening_sockets(server.addr.port());
        let supervisor = sockets_of(server.pid());
        match variant {
            "multi-worker" => {
                assert_eq!(listening.len(), 1, "{variant}: {listening:?}");
                // The supervisor let go of its copy once every process had one, so
                // a group whose processes are gone refuses new clients.
                assert!(listening.is_disjoint(&supervisor), "{variant}: supervisor");
                // The processes pass it to nobody.
                let &inode = listening.first().unwrap();
                for &pid in &pids {
                    assert!(listening.is_subset(&sockets_of(pid)), "{variant}: {pid}");
                    assert!(close_on_exec(pid, inode), "{variant}: {pid}");
                }
            }
            _ => {
                assert_eq!(listening.len(), 3, "{variant}: {listening:?}");
                assert!(listening.is_disjoint(&supervisor), "{variant}: supervisor");
                for &pid in &pids {
                    let own = sockets_of(pid);
                    assert_eq!(own.intersection(&listening).count(), 1, "{variant}: {pid}");
                }
            }
        }
        eprintln!(
            "{variant}: {} listening socket(s) for 3 processes",
            listening.len()
        );
    }
}

#[test]
fn sigterm_reaches_every_process_and_frees_the_port() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for variant in VARIANTS {
        let mut server = Server::start(variant, &["--workers", "3"]);
        let pids = server.group_pids(3);
        let distinct: BTreeSet<u32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "{variant}: {pids:?}");
        for &pid in &pids {
            assert_ne!(pid, server.pid());
            assert_eq!(
                parent_of(pid),
                Some(server.pid()),
                "{variant}: worker {pid} is not a child"
            );
        }
        assert!(
            !listening_sockets(server.addr.port()).is_empty(),
            "{variant}: nothing listens"
        );
        server.signal(libc::SIGTERM);
        let status = server
            .wait_exit(LIMIT)
            .expect("parent did not exit on SIGTERM");
        assert!(status.success(), "{variant}: {status}");
        assert!(
            pids.iter().all(|&p| !process_alive(p)),
            "{variant}: a worker outlived the supervisor"
        );
        assert!(port_is_free(&server), "{variant}: port still taken");
    }
}

#[test]
fn a_process_that_ignores_sigterm_is_killed_and_the_supervisor_says_so() {
    // A stopped process cannot act on SIGTERM; after the grace the supervisor kills
    // it (SIGKILL works on a stopped process) and exits 1 instead of 0.
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Server::start(
        "multi-worker",
        &["--workers", "2", "--shutdown-grace", "100ms"],
    );
    let pids = server.group_pids(2);
    // SAFETY: kill with a pid of this test's own child's child.
    unsafe {
        libc::kill(pids[1] as libc::pid_t, libc::SIGSTOP);
    }
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(LIMIT)
        .expect("parent did not exit on SIGTERM");
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(all_gone(&pids), "a worker outlived the supervisor");
    assert!(port_is_free(&server), "port still taken");
}

#[test]
fn processes_die_with_their_parent() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for variant in VARIANTS {
        let mut server = Server::start(variant, &["--workers", "2"]);
        let pids = server.group_pids(2);
        server.signal(libc::SIGKILL);
        server.wait_exit(LIMIT).expect("parent survived SIGKILL");
        assert!(all_gone(&pids), "{variant}: orphaned workers {pids:?}");
        assert!(port_is_free(&server), "{variant}: port still taken");
    }
}

/// Kept-alive connections sorted by the process holding them: two held by one
/// process (`stuck`: one for the job, one for a probe) and one by another (`free`).
struct Held {
    job: KeepAlive,
    on_stuck: KeepAlive,
    on_free: KeepAlive,
    stuck: u64,
    free: u64,
}

/// Opens kept-alive connections (a few at once, so that both processes accept some
/// even on one shared accept queue) and asks each `/info` which process holds it,
/// until one process holds two and the other one.
fn hold_connections(server: &Server) -> Held {
    let mut by_process: [Vec<KeepAlive>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..50 {
        let mut batch: Vec<KeepAlive> = (0..4).map(|_| KeepAlive::open(server.addr)).collect();
        for mut connection in batch.drain(..) {
            let info = connection.get("/info");
            assert_eq!(info.status, 200);
            let index = info.json()["worker_index"].as_u64().unwrap() as usize;
            by_process[index].push(connection);
        }
        for stuck in 0..2 {
            let free = 1 - stuck;
            if by_process[stuck].len() >= 2 && !by_process[free].is_empty() {
                let on_free = by_process[free].pop().unwrap();
                let on_stuck = by_process[stuck].pop().unwrap();
                let job = by_process[stuck].pop().unwrap();
                return Held {
                    job,
                    on_stuck,
                    on_free,
                    stuck: stuck as u64,
                    free: free as u64,
                };
            }
        }
    }
    panic!(
        "200 connections did not reach both processes: {} and {}",
        by_process[0].len(),
        by_process[1].len()
    );
}

/// What the clients saw while one process of two was stuck in a job.
struct Observed {
    /// The job's own length as the server measured it.
    job: Duration,
    /// A kept-alive connection of the stuck process.
    kept_on_stuck: Timing,
    /// A kept-alive connection of the free process.
    kept_on_free: Timing,
    /// The new connections, in the order they were started.
    new: Vec<Timing>,
}

impl Observed {
    fn new_sorted(&self) -> Vec<Duration> {
        let mut whole: Vec<Duration> = self.new.iter().map(|t| t.whole).collect();
        whole.sort();
        whole
    }

    fn print(&self, variant: &str) {
        let whole = self.new_sorted();
        let mut first: Vec<Duration> = self.new.iter().map(|t| t.first_byte).collect();
        first.sort();
        let slow = whole.iter().filter(|&&w| w > self.job / 2).count();
        eprintln!(
            "{variant}: job {:?}; kept-alive on the stuck process {:?} (first byte {:?}), \
             on the free one {:?}; {} new connections: first byte min {:?} median {:?} \
             max {:?}, whole max {:?}; {slow} waited over half the job",
            self.job,
            self.kept_on_stuck.whole,
            self.kept_on_stuck.first_byte,
            self.kept_on_free.whole,
            whole.len(),
            first[0],
            first[first.len() / 2],
            first[first.len() - 1],
            whole[whole.len() - 1],
        );
    }
}

/// Sticks one process of a two-process group in a [`JOB`]-long blocking call, then
/// sends `/health` on a kept-alive connection of each process and on
/// [`NEW_CONNECTIONS`] new connections at once.
fn stick_one_process(variant: &str) -> Observed {
    let server = Server::start(variant, &["--workers", "2"]);
    let Held {
        mut job,
        mut on_stuck,
        mut on_free,
        stuck,
        free,
    } = hold_connections(&server);
    let ms = JOB.as_millis();
    let heavy = std::thread::spawn(move || job.get(&format!("/work/io?ms={ms}")));
    std::thread::sleep(PROBES_AFTER);
    let addr = server.addr;
    let kept_on_stuck = std::thread::spawn(move || on_stuck.timed_get("/health"));
    let kept_on_free = std::thread::spawn(move || on_free.timed_get("/health"));
    let new: Vec<_> = (0..NEW_CONNECTIONS)
        .map(|_| std::thread::spawn(move || timed_fresh_get(addr, "/health")))
        .collect();
    let new: Vec<Timing> = new
        .into_iter()
        .map(|h| {
            let (response, timing) = h.join().unwrap();
            assert_eq!(response.status, 200, "{variant}: {}", response.body);
            timing
        })
        .collect();
    let (response, kept_on_stuck) = kept_on_stuck.join().unwrap();
    assert_eq!(response.status, 200);
    let (response, kept_on_free) = kept_on_free.join().unwrap();
    assert_eq!(response.status, 200);
    let response = heavy.join().unwrap();
    assert_eq!(response.status, 200, "{variant}: {}", response.body);
    let job = Duration::from_micros(response.json()["compute_us"].as_u64().unwrap());
    eprintln!("{variant}: process {stuck} stuck, process {free} free");
    Observed {
        job,
        kept_on_stuck,
        kept_on_free,
        new,
    }
}

/// On both designs the connections a stuck process holds wait for it, and those the
/// free one holds do not.
fn assert_kept_alive_connections_follow_their_process(variant: &str, seen: &Observed) {
    assert!(
        seen.kept_on_stuck.whole >= seen.job / 2,
        "{variant}: a kept-alive connection of the stuck process took {:?}, the job {:?}",
        seen.kept_on_stuck.whole,
        seen.job
    );
    assert!(
        seen.kept_on_free.whole < seen.job / 10,
        "{variant}: a kept-alive connection of the free process took {:?}, the job {:?}",
        seen.kept_on_free.whole,
        seen.job
    );
}

#[test]
fn shared_socket_sends_every_new_connection_to_the_free_process() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let variant = "multi-worker";
    let seen = stick_one_process(variant);
    seen.print(variant);
    assert_kept_alive_connections_follow_their_process(variant, &seen);
    let whole = seen.new_sorted();
    assert!(
        whole.iter().all(|&w| w < seen.job / 10),
        "{variant}: new connections waited {whole:?}, the job {:?}",
        seen.job
    );
}

#[test]
fn reuseport_hashes_new_connections_to_the_stuck_process_too() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let variant = "multi-worker-reuseport";
    let seen = stick_one_process(variant);
    seen.print(variant);
    assert_kept_alive_connections_follow_their_process(variant, &seen);
    // Each new connection reaches the stuck process with probability 1/2: all 20
    // missing it, about one chance in a million.
    let whole = seen.new_sorted();
    assert!(
        whole.iter().any(|&w| w > seen.job / 2),
        "{variant}: no new connection waited for the job: {whole:?}, the job {:?}",
        seen.job
    );
}
