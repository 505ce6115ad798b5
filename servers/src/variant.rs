//! The catalogue of server variants: their names (part of the command-line
//! interface), what each does, and which FastAPI answer it mirrors.

use clap::ValueEnum;

/// One way of running heavy work next to the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum Variant {
    BlockingInAsync,
    CurrentThread,
    SpawnBlocking,
    BlockInPlace,
    Rayon,
    /// A low-priority CPU-sized pool behind a latency budget (admission control).
    BoundedPool,
    /// N processes sharing one listening socket (one accept queue).
    MultiWorker,
    /// N processes, each with its own `SO_REUSEPORT` socket (one accept queue each).
    MultiWorkerReuseport,
    Cooperative,
    SequentialQueue,
    /// I/O awaited on the event loop with an async client; CPU work inline.
    AsyncIo,
    RedisQueue,
}

/// Which tokio runtime a variant's process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFlavor {
    /// `new_multi_thread` with `--workers` worker threads.
    MultiThread,
    /// `new_current_thread`: one thread does all the I/O and all the work.
    CurrentThread,
}

impl Variant {
    /// Every variant, in the order `servers --list` prints them.
    pub const ALL: [Variant; 12] = [
        Variant::BlockingInAsync,
        Variant::CurrentThread,
        Variant::SpawnBlocking,
        Variant::BlockInPlace,
        Variant::Rayon,
        Variant::BoundedPool,
        Variant::MultiWorker,
        Variant::MultiWorkerReuseport,
        Variant::Cooperative,
        Variant::SequentialQueue,
        Variant::AsyncIo,
        Variant::RedisQueue,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Variant::BlockingInAsync => "blocking-in-async",
            Variant::CurrentThread => "current-thread",
            Variant::SpawnBlocking => "spawn-blocking",
            Variant::BlockInPlace => "block-in-place",
            Variant::Rayon => "rayon",
            Variant::BoundedPool => "bounded-pool",
            Variant::MultiWorker => "multi-worker",
            Variant::MultiWorkerReuseport => "multi-worker-reuseport",
            Variant::Cooperative => "cooperative",
            Variant::SequentialQueue => "sequential-queue",
            Variant::AsyncIo => "async-io",
            Variant::RedisQueue => "redis-queue",
        }
    }

    /// Looks a variant up by its command-line name.
    pub fn from_name(name: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == name)
    }

    /// One line on what the variant does.
    pub fn summary(self) -> &'static str {
        match self {
            Variant::BlockingInAsync => {
                "CPU work inline in an async handler on the multi-thread runtime"
            }
            Variant::CurrentThread => "one current_thread runtime; work inline on its only thread",
            Variant::SpawnBlocking => "work sent to tokio's blocking pool with spawn_blocking",
            Variant::BlockInPlace => {
                "work run with block_in_place; the worker hands its other tasks off first"
            }
            Variant::Rayon => "work sent to a rayon pool (one thread per core), result via oneshot",
            Variant::BoundedPool => {
                "low-priority pool (one thread per core) behind a latency budget; 503 + Retry-After beyond it"
            }
            Variant::MultiWorker => {
                "N processes, each a current_thread runtime, sharing one listening socket (one accept queue)"
            }
            Variant::MultiWorkerReuseport => {
                "N processes, each a current_thread runtime with its own SO_REUSEPORT socket (one accept queue each)"
            }
            Variant::Cooperative => "work cut into ~50 µs slices with yield_now between them",
            Variant::SequentialQueue => {
                "bounded queue run one job at a time by a dedicated thread; 503 when full"
            }
            Variant::AsyncIo => {
                "I/O awaited on the event loop (async reqwest, tokio sleep); CPU work inline"
            }
            Variant::RedisQueue => {
                "jobs go to a Redis queue run by separate `servers worker` processes (needs --redis)"
            }
        }
    }

    /// The FastAPI/Python answer to "my background task blocks the server" that this
    /// variant corresponds to.
    pub fn mirrors(self) -> &'static str {
        match self {
            Variant::BlockingInAsync => "the question itself: CPU work in an `async def`",
            Variant::CurrentThread => "one asyncio event loop",
            Variant::SpawnBlocking => "a plain `def` endpoint / `run_in_threadpool`",
            Variant::BlockInPlace => "none (tokio-specific)",
            Variant::Rayon => "`ProcessPoolExecutor` (a CPU-sized pool)",
            Variant::BoundedPool => "a bounded `ProcessPoolExecutor` that answers 503 when full",
            Variant::MultiWorker => "`uvicorn --workers N` / gunicorn",
            Variant::MultiWorkerReuseport => "nginx `listen … reuseport`, many Rust servers",
            Variant::Cooperative => "chunked work with `await asyncio.sleep(0)`",
            Variant::SequentialQueue => "\"buffer the jobs and process them one by one\"",
            Variant::AsyncIo => "`httpx.AsyncClient` / `aiohttp` awaited in an `async def`",
            Variant::RedisQueue => "Celery / RQ on Redis with separate workers",
        }
    }

    /// Whether the variant needs a Redis (`--redis`) and queue workers to do any work.
    pub fn needs_redis(self) -> bool {
        self == Variant::RedisQueue
    }

    /// Whether the variant runs as a supervisor and `--workers` processes.
    pub fn is_multi_process(self) -> bool {
        matches!(self, Variant::MultiWorker | Variant::MultiWorkerReuseport)
    }

    /// The runtime each of the variant's processes runs.
    pub fn runtime_flavor(self) -> RuntimeFlavor {
        match self {
            Variant::CurrentThread | Variant::MultiWorker | Variant::MultiWorkerReuseport => {
                RuntimeFlavor::CurrentThread
            }
            Variant::BlockingInAsync
            | Variant::SpawnBlocking
            | Variant::BlockInPlace
            | Variant::Rayon
            | Variant::BoundedPool
            | Variant::Cooperative
            | Variant::SequentialQueue
            | Variant::AsyncIo
            | Variant::RedisQueue => RuntimeFlavor::MultiThread,
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a command-line name, as [`Variant::from_name`]; the error names the
/// unknown variant and lists the valid names.
impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Variant::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
            format!("unknown variant {name:?}; choose from {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_clap_and_round_trip() {
        for v in Variant::ALL {
            let clap_name = v.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(clap_name, v.name());
            assert_eq!(Variant::from_name(v.name()), Some(v));
        }
        assert_eq!(Variant::from_name("nope"), None);
    }

    #[test]
    fn parses_with_from_str_and_lists_the_names_on_error() {
        for v in Variant::ALL {
            assert_eq!(v.name().parse::<Variant>(), Ok(v));
        }
        let error = "x".parse::<Variant>().unwrap_err();
        assert!(
            error.starts_with("unknown variant \"x\"; choose from blocking-in-async, "),
            "{error}"
        );
        assert!(error.ends_with(", redis-queue"), "{error}");
    }

    #[test]
    fn the_two_multi_worker_designs_sit_side_by_side() {
        assert_eq!(Variant::ALL.len(), 12);
        let at = Variant::ALL
            .iter()
            .position(|&v| v == Variant::MultiWorker)
            .unwrap();
        assert_eq!(Variant::ALL[at + 1], Variant::MultiWorkerReuseport);
        assert_eq!(
            Variant::from_name("multi-worker-reuseport"),
            Some(Variant::MultiWorkerReuseport)
        );
        for v in [Variant::MultiWorker, Variant::MultiWorkerReuseport] {
            assert!(v.is_multi_process());
            assert_eq!(v.runtime_flavor(), RuntimeFlavor::CurrentThread);
            assert!(!v.needs_redis());
        }
        assert!(Variant::MultiWorker.summary().contains("one accept queue"));
        assert!(Variant::MultiWorker
            .mirrors()
            .contains("uvicorn --workers N"));
        assert!(Variant::MultiWorkerReuseport
            .summary()
            .contains("SO_REUSEPORT"));
        assert!(Variant::MultiWorkerReuseport
            .mirrors()
            .contains("reuseport"));
        let multi: Vec<Variant> = Variant::ALL
            .into_iter()
            .filter(|v| v.is_multi_process())
            .collect();
        assert_eq!(multi.len(), 2);
    }

    #[test]
    fn every_variant_has_its_own_summary() {
        let summaries: std::collections::HashSet<&str> =
            Variant::ALL.iter().map(|v| v.summary()).collect();
        assert_eq!(summaries.len(), Variant::ALL.len());
    }
}
