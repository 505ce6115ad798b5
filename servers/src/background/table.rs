//! The in-process job table: ids to jobs, bounded by count. At most `capacity` jobs
//! may be queued or running (more are refused, 503); a finished job is kept for
//! `ttl` so its status can be read, then forgotten. The ttl alone would bound the
//! table only by throughput × ttl (20k tiny jobs a second for a minute is over a
//! million entries), so at most `kept` finished jobs are held too: with that many,
//! new jobs are refused (503, Retry-After: until the oldest expires) rather than
//! finished statuses dropped before their time. Everything is lost on restart,
//! which is the point of comparing it with a real broker.
//!
//! `GET /backlog` reads the active jobs only (an index of them is kept), so its
//! cost under the table's lock is O(queued + running), not O(everything kept).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::{timestamp, Backlog, JobSpec, JobView, Refusal, Status};
use crate::workload::Started;

/// One job's record.
struct Entry {
    spec: JobSpec,
    queued_at: SystemTime,
    started: Arc<Started>,
    /// When it finished and how.
    finished: Option<(SystemTime, Result<serde_json::Value, String>)>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Finished jobs in the order they finished, for expiry.
    expiry: VecDeque<(Instant, String)>,
    /// The ids of the jobs queued or running.
    active: HashSet<String>,
}

/// The bounded table of background jobs of one server process.
pub struct JobTable {
    inner: Mutex<Inner>,
    capacity: usize,
    kept: usize,
    ttl: Duration,
}

impl JobTable {
    /// A table for at most `capacity` active jobs and `kept` finished ones, each
    /// finished one kept for `ttl`.
    pub fn new(capacity: usize, kept: usize, ttl: Duration) -> JobTable {
        JobTable {
            inner: Mutex::new(Inner::default()),
            capacity,
            kept,
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget finished jobs older than the ttl.
        let now = Instant::now();
        while let Some((finished, _)) = inner.expiry.front() {
            if now.duration_since(*finished) < self.ttl {
                break;
            }
            let (_, id) = inner.expiry.pop_front().expect("front exists");
            inner.entries.remove(&id);
        }
        inner
    }

    /// Records a new job; returns its id and the flag its work sets when it begins.
    pub fn admit(&self, spec: JobSpec) -> Result<(String, Arc<Started>), Refusal> {
        let mut inner = self.lock();
        if inner.active.len() >= self.capacity {
            return Err(Refusal::Full {
                capacity: self.capacity,
            });
        }
        if inner.expiry.len() >= self.kept {
            let (oldest, _) = inner.expiry.front().expect("kept is at least one");
            return Err(Refusal::Kept {
                kept: self.kept,
                retry_after: self.ttl.saturating_sub(oldest.elapsed()),
            });
        }
        // 122 random bits: unguessable, so one client cannot read another's jobs.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let started = Arc::new(Started::default());
        inner.entries.insert(
            id.clone(),
            Entry {
                spec,
                queued_at: SystemTime::now(),
                started: Arc::clone(&started),
                finished: None,
            },
        );
        inner.active.insert(id.clone());
        Ok((id, started))
    }

    /// Forgets job `id`, admitted a moment ago, that the strategy refused before
    /// its 202 went out (the client never learns its id).
    pub fn withdraw(&self, id: &str) {
        let mut inner = self.lock();
        if inner.entries.remove(id).is_some() {
            inner.active.remove(id);
        }
    }

    /// Records how job `id` ended.
    pub fn finish(&self, id: &str, outcome: Result<serde_json::Value, String>) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(id) else {
            return;
        };
        if entry.finished.is_some() {
            return;
        }
        entry.finished = Some((SystemTime::now(), outcome));
        inner.active.remove(id);
        inner.expiry.push_back((Instant::now(), id.to_owned()));
    }

    /// The status of job `id`; `None` if unknown or expired.
    pub fn view(&self, id: &str) -> Option<JobView> {
        let inner = self.lock();
        let entry = inner.entries.get(id)?;
        let started_at = entry.started.at();
        let (status, finished_at, result, error) = match &entry.finished {
            Some((at, Ok(result))) => (Status::Done, Some(*at), Some(result.clone()), None),
            Some((at, Err(error))) => (Status::Failed, Some(*at), None, Some(error.clone())),
            None if started_at.is_some() => (Status::Running, None, None, None),
            None => (Status::Queued, None, None, None),
        };
        Some(JobView {
            id: id.to_owned(),
            status,
            job: entry.spec,
            queued_at: timestamp(entry.queued_at),
            started_at: started_at.map(timestamp),
            finished_at: finished_at.map(timestamp),
            result,
            error,
            attempts: u32::from(started_at.is_some()),
        })
    }

    /// Queued, running and kept-finished counts.
    pub fn backlog(&self) -> Backlog {
        let inner = self.lock();
        let running = inner
            .active
            .iter()
            .filter(|id| inner.entries[*id].started.at().is_some())
            .count();
        Backlog {
            queued: (inner.active.len() - running) as u64,
            running: running as u64,
            finished: inner.expiry.len() as u64,
            capacity: self.capacity as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: JobSpec = JobSpec::Cpu { units: 1 };

    #[test]
    fn moves_through_its_states_and_expires() {
        let table = JobTable::new(2, 10, Duration::from_millis(50));
        let (id, started) = table.admit(CPU).unwrap();
        assert_eq!(table.view(&id).unwrap().status, Status::Queued);
        started.now();
        assert_eq!(table.view(&id).unwrap().status, Status::Running);
        assert_eq!(table.backlog().running, 1);
        table.finish(&id, Ok(serde_json::json!({"x": 1})));
        let done = table.view(&id).unwrap();
        assert_eq!(done.status, Status::Done);
        assert!(done.finished_at.is_some() && done.result.is_some());
        assert_eq!(table.backlog().finished, 1);
        std::thread::sleep(Duration::from_millis(80));
        assert!(table.view(&id).is_none(), "expired");
        assert_eq!(table.backlog().finished, 0);
    }

    #[test]
    fn refuses_past_capacity_and_frees_room_when_jobs_end() {
        let table = JobTable::new(2, 10, Duration::from_secs(60));
        let (a, _) = table.admit(CPU).unwrap();
        let (b, _) = table.admit(CPU).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(matches!(
            table.admit(CPU),
            Err(Refusal::Full { capacity: 2 })
        ));
        table.finish(&a, Err("boom".into()));
        assert_eq!(table.view(&a).unwrap().status, Status::Failed);
        assert!(table.admit(CPU).is_ok());
        assert_eq!(table.backlog().queued, 2);
    }

    #[test]
    fn refuses_when_as_many_finished_jobs_are_kept_until_the_oldest_expire() {
        let ttl = Duration::from_millis(300);
        let table = JobTable::new(10, 3, ttl);
        for _ in 0..3 {
            let (id, _) = table.admit(CPU).unwrap();
            table.finish(&id, Ok(serde_json::json!({})));
        }
        let Err(Refusal::Kept { kept, retry_after }) = table.admit(CPU) else {
            panic!("a fourth finished job fits in a table that keeps three");
        };
        assert_eq!(kept, 3);
        assert!(retry_after <= ttl, "{retry_after:?}");
        assert_eq!(table.backlog().finished, 3);

        std::thread::sleep(ttl + Duration::from_millis(50));
        assert!(table.admit(CPU).is_ok(), "room once the oldest expired");
        assert_eq!(table.backlog().finished, 0);
        assert_eq!(table.backlog().queued, 1);
    }

    #[test]
    fn the_backlog_counts_only_active_jobs_among_many_finished() {
        let table = JobTable::new(4, 10_000, Duration::from_secs(60));
        for _ in 0..5_000 {
            let (id, _) = table.admit(CPU).unwrap();
            table.finish(&id, Ok(serde_json::json!({})));
        }
        let (_queued, _) = table.admit(CPU).unwrap();
        let (running, started) = table.admit(CPU).unwrap();
        started.now();
        assert_eq!(table.view(&running).unwrap().status, Status::Running);
        let backlog = table.backlog();
        assert_eq!(
            (backlog.queued, backlog.running, backlog.finished),
            (1, 1, 5_000)
        );
        table.withdraw(&running);
        assert_eq!(table.backlog().running, 0);
    }
}
