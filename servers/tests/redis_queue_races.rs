//! The redis-queue's scripts under the races a reviewer found, driven step by step
//! through the library API with fake workers and reapers (each its own connection,
//! each pause injected, so every interleaving is exact and nothing depends on
//! timing): a late finish, retry or heartbeat of a worker whose job was taken over
//! changes nothing, a stale reaper leaves a live lease alone, two reapers re-queue a
//! lost job once, and a finish never recreates an expired record. Then, end to end:
//! `/work/cpu` with no worker answers 504 at its deadline without polling Redis, a
//! worker refuses a job over its API server's caps, `--visibility-timeout` is
//! checked, and an append-only Redis keeps every acknowledged job across a SIGKILL.
//!
//! Needs `redis-server` (SKIPPED without it, failing under REQUIRE_REDIS as in CI).

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use servers::background::redis_queue::{Finish, Handback, QueueSettings, RedisQueue};
use servers::background::{JobSpec, Status};
use servers::limits::Limits;
use support::redis::{worker, Persistence, ThrowawayRedis};
use support::Server;

/// A lease far longer than any test: its expiry is injected by deleting the key (as
/// `PX` expiry would), never waited for.
const LEASE: Duration = Duration::from_secs(300);

fn settings() -> QueueSettings {
    QueueSettings {
        capacity: 10_000,
        ttl: Duration::from_secs(60),
        max_attempts: 3,
    }
}

async fn queue(redis: &ThrowawayRedis) -> RedisQueue {
    RedisQueue::connect(&redis.url(), settings()).await.unwrap()
}

/// A plain connection, for looking at (and tampering with) the keys directly.
async fn raw(redis: &ThrowawayRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn lease_key(id: &str) -> String {
    format!("bb:job:{id}:lease")
}

/// Makes the lease on `id` lapse now, as its expiry would.
async fn expire_lease(raw: &mut redis::aio::MultiplexedConnection, id: &str) {
    let deleted: u32 = raw.del(lease_key(id)).await.unwrap();
    assert_eq!(deleted, 1, "{id} had no lease to expire");
}

async fn list(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    raw.lrange(key, 0, -1).await.unwrap()
}

/// How far behind the acknowledged writes the disk may be under `appendfsync
/// everysec`.
const FSYNC_WINDOW: Duration = Duration::from_secs(1);

const IO: JobSpec = JobSpec::Io { ms: 10 };

#[tokio::test]
async fn a_late_finish_retry_or_heartbeat_of_a_taken_over_job_changes_nothing() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let api = queue(&redis).await;
    let (worker_a, worker_b) = (queue(&redis).await, queue(&redis).await);
    let (reaper_1, reaper_2) = (queue(&redis).await, queue(&redis).await);
    let mut raw = raw(&redis).await;

    let id = api.submit(IO).await.unwrap();
    let a = worker_a.take("A-1", LEASE).await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.attempt), (id.as_str(), 1));
    // Reaper 1 reads `processing` (the first half of a reap) ...
    let seen_by_reaper_1 = list(&mut raw, "bb:processing").await;
    assert_eq!(seen_by_reaper_1, std::slice::from_ref(&id));
    // ... A stalls past its lease, reaper 2 re-queues the job, B takes it ...
    expire_lease(&mut raw, &id).await;
    assert_eq!(reaper_2.reap().await.unwrap(), 1);
    let b = worker_b.take("B-1", LEASE).await.unwrap().unwrap();
    assert_eq!((b.id.as_str(), b.attempt), (id.as_str(), 2));
    // ... and reaper 1 acts on what it saw: B's live lease is left alone.
    assert_eq!(
        reaper_1.reap_one(&seen_by_reaper_1[0]).await.unwrap(),
        Handback::Refused
    );
    let lease: Option<String> = raw.get(lease_key(&id)).await.unwrap();
    assert_eq!(lease.as_deref(), Some("B-1"));

    // A wakes up: its heartbeat, its job-timeout retry and its finish are refused.
    assert!(!worker_a.renew(&id, "A-1", LEASE).await.unwrap());
    assert_eq!(
        worker_a.retry(&id, "A-1", "timed out").await.unwrap(),
        Handback::Refused
    );
    assert_eq!(
        worker_a
            .finish(&id, "A-1", Ok(json!({"by": "A"})))
            .await
            .unwrap(),
        Finish::Refused
    );
    let view = api.view(&id).await.unwrap().unwrap();
    assert_eq!((view.status, view.attempts), (Status::Running, 2));
    assert_eq!(
        list(&mut raw, "bb:processing").await,
        std::slice::from_ref(&id)
    );
    assert!(list(&mut raw, "bb:queue").await.is_empty());
    let lease: Option<String> = raw.get(lease_key(&id)).await.unwrap();
    assert_eq!(
        lease.as_deref(),
        Some("B-1"),
        "A's refusals touched B's lease"
    );

    // B's finish lands, once; nobody's later finish overwrites it.
    assert!(worker_b.renew(&id, "B-1", LEASE).await.unwrap());
    assert_eq!(
        worker_b
            .finish(&id, "B-1", Ok(json!({"by": "B"})))
            .await
            .unwrap(),
        Finish::Recorded
    );
    for (worker, token) in [(&worker_a, "A-1"), (&worker_b, "B-1")] {
        assert_eq!(
            worker
                .finish(&id, token, Ok(json!({"by": "late"})))
                .await
                .unwrap(),
            Finish::Refused
        );
    }
    let view = api.view(&id).await.unwrap().unwrap();
    assert_eq!(view.status, Status::Done);
    assert_eq!(view.result, Some(json!({"by": "B"})));
    assert_eq!(view.attempts, 2);
    assert!(list(&mut raw, "bb:processing").await.is_empty());
    let leased: bool = raw.exists(lease_key(&id)).await.unwrap();
    assert!(!leased);
    let ttl_ms: i64 = raw.pttl(format!("bb:job:{id}")).await.unwrap();
    assert!(
        ttl_ms > 0,
        "a finished job keeps its ttl, got PTTL {ttl_ms}"
    );
}

#[tokio::test]
async fn two_reapers_on_one_expired_lease_requeue_it_once() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let api = queue(&redis).await;
    let worker = queue(&redis).await;
    let (reaper_1, reaper_2) = (queue(&redis).await, queue(&redis).await);
    let mut raw = raw(&redis).await;

    // One job, both reapers at the same instant.
    let id = api.submit(IO).await.unwrap();
    worker.take("A-1", LEASE).await.unwrap().unwrap();
    expire_lease(&mut raw, &id).await;
    let (one, two) = tokio::join!(reaper_1.reap_one(&id), reaper_2.reap_one(&id));
    let mut verdicts = [one.unwrap(), two.unwrap()];
    verdicts.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(verdicts, [Handback::Refused, Handback::Requeued]);
    assert_eq!(list(&mut raw, "bb:queue").await, std::slice::from_ref(&id));
    let again = worker.take("A-2", LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2, "re-queued once, taken once more");

    // Many, two whole reaps racing over the same `processing` list.
    worker.finish(&id, "A-2", Ok(json!({}))).await.unwrap();
    let mut ids = HashSet::new();
    for n in 0..40 {
        let id = api.submit(IO).await.unwrap();
        worker
            .take(&format!("T-{n}"), LEASE)
            .await
            .unwrap()
            .unwrap();
        expire_lease(&mut raw, &id).await;
        ids.insert(id);
    }
    let (one, two) = tokio::join!(reaper_1.reap(), reaper_2.reap());
    assert_eq!(one.unwrap() + two.unwrap(), 40);
    let queued = list(&mut raw, "bb:queue").await;
    assert_eq!(queued.len(), 40, "each lost job queued exactly once");
    assert_eq!(queued.into_iter().collect::<HashSet<_>>(), ids);
    assert!(list(&mut raw, "bb:processing").await.is_empty());
}

#[tokio::test]
async fn a_lapsed_lease_nobody_took_over_still_belongs_to_its_worker() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let (api, worker) = (queue(&redis).await, queue(&redis).await);
    let mut raw = raw(&redis).await;
    let id = api.submit(IO).await.unwrap();
    worker.take("A-1", LEASE).await.unwrap().unwrap();
    expire_lease(&mut raw, &id).await;
    // No reaper came: the heartbeat restores the lease, and the finish lands.
    assert!(worker.renew(&id, "A-1", LEASE).await.unwrap());
    let lease: Option<String> = raw.get(lease_key(&id)).await.unwrap();
    assert_eq!(lease.as_deref(), Some("A-1"));
    expire_lease(&mut raw, &id).await;
    assert_eq!(
        worker
            .finish(&id, "A-1", Ok(json!({"ok": 1})))
            .await
            .unwrap(),
        Finish::Recorded
    );
    // Once finished, a reaper finds nothing to do.
    assert_eq!(worker.reap().await.unwrap(), 0);
    assert_eq!(api.view(&id).await.unwrap().unwrap().status, Status::Done);
}

#[tokio::test]
async fn a_finish_or_retry_never_recreates_an_expired_record() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let (api, worker) = (queue(&redis).await, queue(&redis).await);
    let mut raw = raw(&redis).await;
    let exists = |raw: &mut redis::aio::MultiplexedConnection, id: &str| {
        let key = format!("bb:job:{id}");
        let mut raw = raw.clone();
        async move { raw.exists::<_, bool>(key).await.unwrap() }
    };

    for (n, end) in ["finish", "retry", "reap"].into_iter().enumerate() {
        let id = api.submit(IO).await.unwrap();
        let token = format!("A-{n}");
        worker.take(&token, LEASE).await.unwrap().unwrap();
        // The record expires (or is evicted, or deleted by hand) under the worker.
        let _: u32 = raw.del(format!("bb:job:{id}")).await.unwrap();
        match end {
            "finish" => assert_eq!(
                worker.finish(&id, &token, Ok(json!({}))).await.unwrap(),
                Finish::Gone
            ),
            "retry" => assert_eq!(
                worker.retry(&id, &token, "timed out").await.unwrap(),
                Handback::Gone
            ),
            _ => {
                expire_lease(&mut raw, &id).await;
                assert_eq!(worker.reap_one(&id).await.unwrap(), Handback::Gone);
            }
        }
        assert!(!exists(&mut raw, &id).await, "{end} recreated the record");
        assert!(list(&mut raw, "bb:processing").await.is_empty(), "{end}");
        let leased: bool = raw.exists(lease_key(&id)).await.unwrap();
        assert!(!leased, "{end} left the lease");
    }

    // A queued job whose record is gone is skipped by a take, not leased.
    let lost = api.submit(IO).await.unwrap();
    let kept = api.submit(IO).await.unwrap();
    let _: u32 = raw.del(format!("bb:job:{lost}")).await.unwrap();
    let taken = worker.take("B-1", LEASE).await.unwrap().unwrap();
    assert_eq!(taken.id, kept);
    assert!(!exists(&mut raw, &lost).await);
    assert_eq!(list(&mut raw, "bb:processing").await, [kept]);
}

#[tokio::test]
async fn the_take_records_the_owner_and_the_api_servers_caps() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let caps = Limits {
        max_units: 1_000,
        max_io_ms: 100,
    };
    let api = queue(&redis).await.with_limits(caps);
    let without = queue(&redis).await;
    let worker = queue(&redis).await;
    api.submit(JobSpec::Cpu { units: 5 }).await.unwrap();
    let taken = worker.take("A-1", LEASE).await.unwrap().unwrap();
    assert_eq!(taken.spec, Ok(JobSpec::Cpu { units: 5 }));
    let recorded = taken.caps.expect("the caps travel with the job");
    assert_eq!((recorded.max_units, recorded.max_io_ms), (1_000, 100));
    without.submit(IO).await.unwrap();
    assert!(worker
        .take("A-2", LEASE)
        .await
        .unwrap()
        .unwrap()
        .caps
        .is_none());
    // A lease under a millisecond is rounded up, never `PX 0`.
    without.submit(IO).await.unwrap();
    let short = worker.take("A-3", Duration::from_nanos(1)).await.unwrap();
    assert!(short.is_some());
}

/// Redis' count of commands it has run.
fn commands_processed(url: &str) -> u64 {
    let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut connection)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats has total_commands_processed")
}

#[test]
fn work_cpu_with_no_worker_answers_504_at_its_deadline_without_polling() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let wait = Duration::from_secs(1);
    let server = Server::start(
        "redis-queue",
        &["--redis", &redis.url(), "--wait-timeout", "1s"],
    );
    let waiting = 32;
    let before = commands_processed(&redis.url());
    let started = Instant::now();
    let answers: Vec<_> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..waiting)
            .map(|_| scope.spawn(|| (server.get("/work/cpu?units=100"), started.elapsed())))
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let commands = commands_processed(&redis.url()) - before;
    for (response, took) in &answers {
        assert_eq!(response.status, 504, "{}", response.body);
        let error = response.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains("no queue worker took the job") && error.contains("withdrawn"),
            "{error}"
        );
        // At the deadline: not before it, and not many deadlines after.
        assert!(
            *took >= wait,
            "answered after {took:?}, before the deadline"
        );
        assert!(*took < wait * 3, "answered after {took:?}");
    }
    // Polling every 2 ms cost ~500 reads per request per second of waiting; a
    // blocking wait costs a few calls per request however long it waits (counted
    // here with the commands its scripts run inside Redis): under a tenth.
    let polling = wait.as_secs_f64() / 0.002;
    let per_request = commands as f64 / waiting as f64;
    assert!(
        per_request < polling / 10.0,
        "{commands} Redis commands for {waiting} waits of {wait:?}"
    );
    // Every withdrawn job left the queue: no worker will run them later.
    let backlog = server.get("/backlog").json();
    assert_eq!(
        (backlog["queued"].as_u64(), backlog["running"].as_u64()),
        (Some(0), Some(0)),
        "{backlog}"
    );
}

#[test]
fn a_job_whose_client_hangs_up_before_any_worker_takes_it_is_withdrawn() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    // A wait far longer than the test: only the hang-up can withdraw the jobs.
    let server = Server::start(
        "redis-queue",
        &["--redis", &redis.url(), "--wait-timeout", "60s"],
    );
    let mut clients: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
            std::io::Write::write_all(
                &mut stream,
                b"GET /work/cpu?units=100 HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .unwrap();
            stream
        })
        .collect();
    let queued = |server: &Server| server.get("/backlog").json()["queued"].as_u64();
    let deadline = Instant::now() + Duration::from_secs(20);
    while queued(&server) != Some(5) {
        assert!(Instant::now() < deadline, "the five jobs never queued");
        std::thread::sleep(Duration::from_millis(20));
    }
    clients.clear();
    while queued(&server) != Some(0) {
        assert!(
            Instant::now() < deadline,
            "jobs whose clients hung up stayed queued: {}",
            server.get("/backlog").body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_job_still_running_at_the_deadline_answers_504_and_runs_on() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let server = Server::start(
        "redis-queue",
        &[
            "--redis",
            &redis.url(),
            "--wait-timeout",
            "2s",
            "--max-io-ms",
            "5000",
        ],
    );
    let _worker = worker(&redis.url(), &["--concurrency", "1"]);
    // The worker has two seconds to take the job, which then runs two more.
    let response = server.get("/work/io?ms=4000");
    assert_eq!(response.status, 504, "{}", response.body);
    let error = response.json()["error"].as_str().unwrap().to_owned();
    let id = error
        .split("GET /jobs/")
        .nth(1)
        .unwrap_or_else(|| panic!("no job id in {error:?}"))
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = server.get(&format!("/jobs/{id}")).json();
        if job["status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline, "never done: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_refuses_a_job_over_its_api_servers_caps_without_running_it() {
    let Some(redis) = ThrowawayRedis::start(Persistence::None) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let caps = Limits {
        max_units: 1_000,
        max_io_ms: 100,
    };
    // Written straight into the queue, past the API's own check (as a bug or an
    // older API server could), with the caps the API server would record.
    let api = runtime.block_on(queue(&redis)).with_limits(caps);
    let asked = Duration::from_secs(20);
    let over = runtime
        .block_on(api.submit(JobSpec::Io {
            ms: asked.as_millis() as u64,
        }))
        .unwrap();
    let within = runtime
        .block_on(api.submit(JobSpec::Io { ms: 50 }))
        .unwrap();
    let started = Instant::now();
    let _worker = worker(&redis.url(), &["--concurrency", "1"]);
    let view = |id: &str| runtime.block_on(api.view(id)).unwrap().unwrap();
    let deadline = Instant::now() + asked;
    while !matches!(view(&within).status, Status::Done) {
        assert!(Instant::now() < deadline, "{:?}", view(&within));
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = view(&over);
    assert_eq!(refused.status, Status::Failed, "{refused:?}");
    let error = refused.error.unwrap();
    assert!(
        error.starts_with("not run: `ms`=20000 is over the cap of 100"),
        "{error}"
    );
    assert_eq!((refused.attempts, refused.result), (1, None));
    // The worker was free for the next job at once, not after the 20 s it asked for.
    assert!(started.elapsed() < asked / 4, "{:?}", started.elapsed());
}

#[test]
fn a_visibility_timeout_under_10ms_is_a_usage_error() {
    for too_short in ["9ms", "2ns", "0s"] {
        let output = Command::new(env!("CARGO_BIN_EXE_servers"))
            .args(["worker", "--redis", "redis://127.0.0.1:1"])
            .args(["--visibility-timeout", too_short])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{too_short}: {stderr}");
        assert!(
            stderr.contains("--visibility-timeout") && stderr.contains("at least 10ms"),
            "{too_short}: {stderr}"
        );
    }
    let output = Command::new(env!("CARGO_BIN_EXE_servers"))
        .args(["--variant", "rayon", "--wait-timeout", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--wait-timeout is only for the redis-queue variant"));
}

/// Enqueues jobs (some taken), waits past the fsync window, kills Redis with
/// SIGKILL, restarts it on the same folder and port, and counts what survived.
fn jobs_surviving_a_redis_kill(persistence: Persistence) -> Option<(usize, u64, u64)> {
    let mut redis = ThrowawayRedis::start(persistence)?;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<String> = runtime.block_on(async {
        let api = queue(&redis).await;
        let mut ids = Vec::new();
        for n in 0..50 {
            ids.push(api.submit(JobSpec::Cpu { units: 10 + n }).await.unwrap());
        }
        for n in 0..5 {
            api.take(&format!("A-{n}"), LEASE).await.unwrap().unwrap();
        }
        ids
    });
    // `appendfsync everysec`: what was acknowledged more than a second ago is on
    // disk, whatever happens to the machine; twice that, to be clear of it.
    std::thread::sleep(2 * FSYNC_WINDOW);
    redis.kill_hard();
    redis.restart();
    Some(runtime.block_on(async {
        let api = queue(&redis).await;
        let mut kept = 0;
        for id in &ids {
            if api.view(id).await.unwrap().is_some() {
                kept += 1;
            }
        }
        let backlog = api.backlog().await.unwrap();
        (kept, backlog.queued, backlog.running)
    }))
}

#[test]
fn a_durable_redis_keeps_every_acknowledged_job_across_a_sigkill() {
    let Some(kept) = jobs_surviving_a_redis_kill(Persistence::AppendOnly) else {
        return;
    };
    assert_eq!(
        kept,
        (50, 45, 5),
        "(records, queued, processing) after restart"
    );
    // The same without persistence loses everything: what makes the above a test.
    let lost = jobs_surviving_a_redis_kill(Persistence::None).unwrap();
    assert_eq!(lost, (0, 0, 0));
}
