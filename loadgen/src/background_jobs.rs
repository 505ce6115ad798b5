//! Drives a background-job load: submissions released at `start + k / rate` by the
//! same open-loop driver as request streams ([`OpenLoop`]) to a few submitting
//! connections, and pollers that read each accepted job's status on connections of
//! their own, no job more often than every [`POLL_EVERY`], until it has finished or
//! the drain deadline passes. What it measures is [`JobsFigures`] plus two streams,
//! submit latency and end-to-end time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode};
use servers::background::{JobView, Status};

use crate::client::{Failure, PreparedRequest, Slot};
use crate::engine::{StreamLabel, StreamOutcome};
use crate::interrupt::Interrupt;
use crate::open_loop::{OpenLoop, START_DELAY};
use crate::pacer::Schedule;
use crate::plan::Load;
use crate::recorder::{Recorded, Sample};
use crate::report::JobsFigures;
use crate::stats::{new_histogram, Percentiles};

/// Shortest time between two status reads of one job.
pub const POLL_EVERY: Duration = Duration::from_millis(10);
/// Connections reading statuses.
const POLLERS: usize = 2;
/// Status reads of one job answered 404 in a row after which it is no longer read:
/// the process that answers does not know it (a multi-process server keeping jobs
/// per process), and reading it every [`POLL_EVERY`] until the drain deadline would
/// load the server with requests of loadgen's own making. It still counts as lost.
const GIVE_UP_AFTER_NOT_FOUND: u32 = 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct JobsPlan {
    pub addr: SocketAddr,
    /// Where jobs are submitted (`/jobs`); statuses are read at `path/ID`.
    pub path: String,
    /// The end-to-end stream's name; the submissions are `NAME.submit` (`submit`
    /// for the matrix's `jobs`).
    pub name: String,
    /// Jobs per second.
    pub rate: f64,
    /// The JSON body of every `POST /jobs`.
    pub body: String,
    /// How long submissions go on.
    pub duration: Duration,
    /// Connections submitting.
    pub connections: usize,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Longest wait for unfinished jobs once submissions end.
    pub drain: Duration,
}

/// What a jobs run measured.
pub struct JobsOutcome {
    /// From each submission's due time to its answer.
    pub submit: StreamOutcome,
    /// From each submission's due time to the job's end (server clock); lost jobs
    /// enter as lower bounds at the moment the run stopped waiting.
    pub end_to_end: StreamOutcome,
    pub figures: JobsFigures,
}

/// An accepted job being watched.
struct Pending {
    /// `GET path/ID`, the job's status.
    status_request: PreparedRequest,
    due: Instant,
    /// The same moment on the wall clock, to compare with the server's timestamps.
    due_wall: SystemTime,
    sent: Instant,
    last_polled: Option<Instant>,
    /// The status code of the last status read.
    last_status: Option<u16>,
    /// Status reads answered 404 in a row.
    not_found_in_a_row: u32,
}

/// What the submitters and pollers share.
struct Shared {
    pending: VecDeque<Pending>,
    /// Jobs no longer read: unknown to the server after
    /// [`GIVE_UP_AFTER_NOT_FOUND`] reads in a row.
    unknown: Vec<Pending>,
    submit: Recorded,
    end_to_end: Recorded,
    queue_wait: hdrhistogram::Histogram<u64>,
    run: hdrhistogram::Histogram<u64>,
    figures: JobsFigures,
    /// Submitting connections still at work; pollers stop once none is and nothing
    /// is pending.
    submitters_left: usize,
    /// When the pollers give up on unfinished jobs; set once submissions end.
    drain_deadline: Option<Instant>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `GET path/ID` for the job the server accepted as `id`; `None` when the id cannot
/// be part of a path.
fn status_request(plan: &JobsPlan, id: &str) -> Option<PreparedRequest> {
    let path = format!("{}/{id}", plan.path.trim_end_matches('/'));
    PreparedRequest::json(&Method::GET, &path, &plan.addr.to_string(), &[]).ok()
}

/// Runs `plan` until its submissions are done and every accepted job has finished
/// (or the drain deadline passed, or the run was interrupted).
pub async fn run(plan: &JobsPlan, interrupt: &Interrupt) -> anyhow::Result<JobsOutcome> {
    let host = plan.addr.to_string();
    let submit = PreparedRequest::json(&Method::POST, &plan.path, &host, plan.body.as_bytes())
        .map_err(|e| anyhow::anyhow!("job stream {}: {e}", plan.name))?;
    let shared = Arc::new(Mutex::new(Shared {
        pending: VecDeque::new(),
        unknown: Vec::new(),
        submit: Recorded::default(),
        end_to_end: Recorded::default(),
        queue_wait: new_histogram(),
        run: new_histogram(),
        figures: JobsFigures::default(),
        submitters_left: plan.connections,
        drain_deadline: None,
    }));
    let start = Instant::now() + START_DELAY;
    let schedule = Schedule::new(start, plan.rate);
    let total = schedule.due_before(plan.duration);
    let stop = Arc::new(AtomicBool::new(false));
    // Submissions are paced precisely (no tick): a few per second at most.
    let (open_loop, pacer) =
        OpenLoop::start(schedule, total, start, Duration::ZERO, Arc::clone(&stop))
            .map_err(|e| anyhow::anyhow!("cannot start the job pacer: {e}"))?;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections {
        let submitting = Submitting {
            plan: plan.clone(),
            submit: submit.clone(),
            shared: Arc::clone(&shared),
            open_loop: Arc::clone(&open_loop),
        };
        tasks.spawn(async move { submitting.run().await });
    }
    for _ in 0..POLLERS {
        let (plan, shared) = (plan.clone(), Arc::clone(&shared));
        tasks.spawn(async move { poller(&plan, &shared).await });
    }

    let joined = pacer.join();
    tokio::pin!(joined);
    let released = tokio::select! {
        (released, _) = &mut joined => released,
        () = interrupt.wait() => {
            stop.store(true, Ordering::Relaxed);
            (&mut joined).await.0
        }
    };
    // The submitters take what was released, then see the end.
    open_loop.end_after(released, plan.connections);
    let submissions_end = Instant::now();
    // Interrupted: stop waiting at once; what is still pending is reported lost.
    let drain = if interrupt.fired() {
        Duration::ZERO
    } else {
        plan.drain
    };
    lock(&shared).drain_deadline = Some(submissions_end + drain);
    while tasks.join_next().await.is_some() {}

    let mut shared = lock(&shared);
    let given_up = Instant::now();
    // Whatever is still pending is lost: in the end-to-end time as a lower bound.
    let mut lost: Vec<Pending> = shared.pending.drain(..).collect();
    lost.append(&mut shared.unknown);
    for p in &lost {
        shared.end_to_end.record(
            &Sample {
                due: p.due,
                sent: p.sent,
                done: given_up,
                result: Err(Failure::Abandoned),
            },
            true,
        );
    }
    shared.figures.lost = lost.len() as u64;
    shared.figures.not_found = lost.iter().filter(|p| p.last_status == Some(404)).count() as u64;
    shared.figures.rate = plan.rate;
    shared.figures.body = plan.body.clone();
    shared.figures.drain_s = given_up.duration_since(submissions_end).as_secs_f64();
    shared.figures.queue_wait = Percentiles::of(&shared.queue_wait);
    shared.figures.run = Percentiles::of(&shared.run);
    let load = Load::Open {
        rate: plan.rate,
        connections: plan.connections,
    };
    let outcome = |name: &str, method: Method, path: &str, recorded: &Recorded| StreamOutcome {
        stream: StreamLabel {
            name: name.into(),
            method,
            path: path.into(),
            load,
            stages: Vec::new(),
        },
        total: recorded.clone(),
        intervals: Vec::new(),
        unsent: 0,
        in_window: recorded.counts,
        pacer_lateness: None,
        due: None,
        setup: None,
    };
    let submit_name = if plan.name == "jobs" {
        "submit".to_owned()
    } else {
        format!("{}.submit", plan.name)
    };
    let status_path = format!("{}/{{id}}", plan.path);
    Ok(JobsOutcome {
        submit: outcome(&submit_name, Method::POST, &plan.path, &shared.submit),
        end_to_end: outcome(&plan.name, Method::GET, &status_path, &shared.end_to_end),
        figures: shared.figures.clone(),
    })
}

/// One submitting connection's share of the work.
struct Submitting {
    plan: JobsPlan,
    /// `POST path` with the job as its body.
    submit: PreparedRequest,
    shared: Arc<Mutex<Shared>>,
    open_loop: Arc<OpenLoop>,
}

impl Submitting {
    /// Sends submissions as the pacer releases them, each recorded from its due time.
    async fn run(self) {
        let plan = &self.plan;
        let mut slot = Slot::new(plan.addr, None);
        while let Some((_, due)) = self.open_loop.next().await {
            let due_wall = SystemTime::now() - Instant::now().saturating_duration_since(due);
            let sent = Instant::now();
            let mut answer = Vec::new();
            let result = slot
                .exchange(&self.submit, sent + plan.timeout, Some(&mut answer))
                .await;
            let done = Instant::now();
            let mut shared = lock(&self.shared);
            shared.figures.submitted += 1;
            shared.submit.record(
                &Sample {
                    due,
                    sent,
                    done,
                    result,
                },
                true,
            );
            // The job's id names its status path; an id that cannot make one (not a
            // string, or characters no request line may hold) is an unusable answer.
            let status_request = match result {
                Ok(StatusCode::ACCEPTED) => serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| status_request(plan, v["id"].as_str()?)),
                Ok(StatusCode::SERVICE_UNAVAILABLE) => {
                    shared.figures.rejected += 1;
                    continue;
                }
                _ => None,
            };
            match status_request {
                Some(status_request) => {
                    shared.figures.accepted += 1;
                    shared.pending.push_back(Pending {
                        status_request,
                        due,
                        due_wall,
                        sent,
                        last_polled: None,
                        last_status: None,
                        not_found_in_a_row: 0,
                    });
                }
                None => shared.figures.submit_errors += 1,
            }
        }
        lock(&self.shared).submitters_left -= 1;
    }
}

/// Reads statuses of pending jobs, oldest read first, until none is pending and no
/// more will come, or the drain deadline has passed.
async fn poller(plan: &JobsPlan, shared: &Mutex<Shared>) {
    let mut slot = Slot::new(plan.addr, None);
    loop {
        let next = {
            let mut s = lock(shared);
            let past_deadline = s.drain_deadline.is_some_and(|d| Instant::now() >= d);
            if past_deadline || (s.submitters_left == 0 && s.pending.is_empty()) {
                return;
            }
            s.pending.pop_front()
        };
        let Some(mut job) = next else {
            tokio::time::sleep(POLL_EVERY).await;
            continue;
        };
        if let Some(last) = job.last_polled {
            tokio::time::sleep_until((last + POLL_EVERY).into()).await;
        }
        let asked = Instant::now();
        job.last_polled = Some(asked);
        let mut answer = Vec::new();
        let result = slot
            .exchange(&job.status_request, asked + plan.timeout, Some(&mut answer))
            .await;
        job.last_status = result.ok().map(|status| status.as_u16());
        if job.last_status == Some(404) {
            job.not_found_in_a_row += 1;
        } else {
            job.not_found_in_a_row = 0;
        }
        let view = match result {
            Ok(StatusCode::OK) => serde_json::from_slice::<JobView>(&answer).ok(),
            _ => None,
        };
        let mut s = lock(shared);
        match view {
            Some(v) if matches!(v.status, Status::Done | Status::Failed) => {
                record_finished(&mut s, &job, &v);
            }
            _ if job.not_found_in_a_row >= GIVE_UP_AFTER_NOT_FOUND => s.unknown.push(job),
            // Not finished yet, or the read failed: read it again later.
            _ => s.pending.push_back(job),
        }
    }
}

/// Records a finished job's times.
fn record_finished(s: &mut Shared, job: &Pending, view: &JobView) {
    let time = |t: &Option<String>| t.as_deref().and_then(|t| humantime::parse_rfc3339(t).ok());
    let queued = humantime::parse_rfc3339(&view.queued_at).ok();
    let (started, finished) = (time(&view.started_at), time(&view.finished_at));
    let between = |a: Option<SystemTime>, b: Option<SystemTime>| {
        b?.duration_since(a?).ok().map(|d| d.as_nanos() as u64)
    };
    if view.status == Status::Done {
        s.figures.done += 1;
        if let Some(ns) = between(queued, started) {
            s.queue_wait.saturating_record(ns);
        }
        if let Some(ns) = between(started, finished) {
            s.run.saturating_record(ns);
        }
    } else {
        s.figures.failed += 1;
    }
    // End to end: from the due time to the server's finish, on the wall clock.
    let took = between(Some(job.due_wall), finished).map(Duration::from_nanos);
    let done = job.due + took.unwrap_or_else(|| job.last_polled.unwrap_or(job.due) - job.due);
    s.end_to_end.record(
        &Sample {
            due: job.due,
            sent: job.sent,
            done,
            result: Ok(if view.status == Status::Done {
                StatusCode::OK
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        },
        true,
    );
}
