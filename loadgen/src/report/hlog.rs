//! The HdrHistogram interval log (`--hlog`), written while the run goes on.
//!
//! One histogram per stream per interval, V2 + DEFLATE, values in nanoseconds, tagged
//! with the stream's name (its uncorrected twin tagged `NAME-uncorrected`, its
//! connect and first-byte times, where it has them, `NAME-connect` and
//! `NAME-ttfb`), readable
//! by HdrHistogram's `HistogramLogProcessor` (`-tag NAME`) and the hdrhistogram
//! crate's `IntervalLogIterator`. Writing happens on a thread of its own so the run
//! loop never waits on the disk. What waits for that thread is bounded: histograms
//! queued for writing may hold at most [`QUEUE_BUDGET_BYTES`]; one that would go
//! past it is dropped, counted, and the count is written at the end of the log
//! and reported (a disk that slow would otherwise either grow loadgen without
//! bound or, if the run loop waited for it, delay the sends being measured). The
//! file appears under its final name only once complete.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::engine::IntervalRecord;
use crate::files::PendingFile;

/// Interval maxima are written in milliseconds, as HdrHistogram's own tools do.
const MAX_VALUE_DIVISOR: f64 = 1_000_000.0;

/// Most memory the histograms waiting for the writer thread may hold.
pub const QUEUE_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Memory a queued histogram holds: its counts array.
fn held_bytes(histogram: &Histogram<u64>) -> usize {
    histogram.distinct_values() * std::mem::size_of::<u64>()
}

enum Message {
    /// Measurement started at this time: write the header.
    Begin(SystemTime),
    /// A comment line.
    Comment(String),
    /// One interval histogram.
    Interval {
        tag: String,
        start: Duration,
        length: Duration,
        histogram: Histogram<u64>,
    },
}

/// An interval log being written.
pub struct HlogWriter {
    messages: Option<mpsc::Sender<Message>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    /// Bytes of histograms sent and not yet written.
    queued: Arc<AtomicUsize>,
    /// Histograms dropped because the queue was at its budget.
    dropped: AtomicUsize,
    budget: usize,
}

impl HlogWriter {
    /// Creates the log file at `path` (under a temporary name until
    /// [`HlogWriter::finish`]); nothing is written before [`HlogWriter::begin`].
    pub fn create(path: &Path, description: &str) -> anyhow::Result<HlogWriter> {
        let mut file = PendingFile::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        let description = description.to_owned();
        let (messages, received) = mpsc::channel::<Message>();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::clone(&queued);
        let thread = std::thread::Builder::new()
            .name("loadgen-hlog".into())
            .spawn(move || -> anyhow::Result<()> {
                let Ok(Message::Begin(base_time)) = received.recv() else {
                    anyhow::bail!("the run ended before measurement started");
                };
                write_header(&mut file, base_time, &description)?;
                let mut serializer = V2DeflateSerializer::new();
                {
                    let mut log = IntervalLogWriterBuilder::new()
                        .with_max_value_divisor(MAX_VALUE_DIVISOR)
                        .begin_log_with(&mut file, &mut serializer)?;
                    for message in received {
                        match message {
                            Message::Interval {
                                tag,
                                start,
                                length,
                                histogram,
                            } => {
                                log.write_histogram(&histogram, start, length, Tag::new(&tag))
                                    .map_err(|e| {
                                        anyhow::anyhow!("writing the interval log: {e}")
                                    })?;
                                written.fetch_sub(held_bytes(&histogram), Ordering::Relaxed);
                            }
                            Message::Comment(text) => log.write_comment(&text)?,
                            Message::Begin(_) => {}
                        }
                    }
                }
                file.commit()?;
                Ok(())
            })?;
        Ok(HlogWriter {
            messages: Some(messages),
            thread: Some(thread),
            queued,
            dropped: AtomicUsize::new(0),
            budget: QUEUE_BUDGET_BYTES,
        })
    }

    /// The same writer with a smaller queue budget (for tests of the bound).
    #[doc(hidden)]
    pub fn with_queue_budget(mut self, bytes: usize) -> HlogWriter {
        self.budget = bytes;
        self
    }

    /// Histograms dropped so far because the writer fell behind.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Measurement started at `base_time`: interval timestamps count from it.
    pub fn begin(&self, base_time: SystemTime) {
        if let Some(messages) = &self.messages {
            let _ = messages.send(Message::Begin(base_time));
        }
    }

    /// Queues a comment line.
    pub fn comment(&self, text: String) {
        if let Some(messages) = &self.messages {
            let _ = messages.send(Message::Comment(text));
        }
    }

    /// Queues one interval of one stream (both its histograms) for writing;
    /// `offset` is added to its start (runs appended to a log begun earlier).
    pub fn record(&self, record: &IntervalRecord<'_>, offset: Duration) {
        let Some(messages) = &self.messages else {
            return;
        };
        let recorded = record.recorded;
        let extra = [
            ("connect", recorded.connect.as_ref()),
            ("ttfb", recorded.first_byte.as_ref()),
        ];
        for (tag, histogram) in [
            (record.stream.to_owned(), &recorded.corrected),
            (
                format!("{}-uncorrected", record.stream),
                &recorded.uncorrected,
            ),
        ]
        .into_iter()
        .chain(
            extra
                .into_iter()
                .filter_map(|(kind, h)| Some((format!("{}-{kind}", record.stream), h?))),
        ) {
            let bytes = held_bytes(histogram);
            if self.queued.load(Ordering::Relaxed) + bytes > self.budget {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.queued.fetch_add(bytes, Ordering::Relaxed);
            // A send error means the writer thread failed; `finish` reports why,
            // and what was not sent is not queued.
            let sent = messages.send(Message::Interval {
                tag,
                start: offset + record.interval.start,
                length: record.interval.length,
                histogram: histogram.clone(),
            });
            if sent.is_err() {
                self.queued.fetch_sub(bytes, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Writes what is queued and puts the file in place. Histograms dropped
    /// because the writer fell behind are noted in the log and on stderr.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let dropped = self.dropped();
        if dropped > 0 {
            let note = format!(
                "{dropped} interval histograms were not written: the disk fell behind and the queue reached {} MiB",
                self.budget / (1024 * 1024)
            );
            eprintln!("loadgen: warning: {note}");
            self.comment(note);
        }
        drop(self.messages.take());
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the interval log writer panicked"),
            None => Ok(()),
        }
    }
}

/// The header HdrHistogram's own writer puts first: who wrote the log, the format
/// version, the start and base times, and the column legend.
fn write_header(
    file: &mut PendingFile,
    base_time: SystemTime,
    description: &str,
) -> std::io::Result<()> {
    let since_epoch = base_time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    writeln!(
        file,
        "#loadgen {}: {description}",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(file, "#[Histogram log format version 1.3]")?;
    writeln!(
        file,
        "#[StartTime: {since_epoch:.3} (seconds since epoch), {}]",
        humantime::format_rfc3339_millis(base_time)
    )?;
    writeln!(file, "#[BaseTime: {since_epoch:.3} (seconds since epoch)]")?;
    writeln!(
        file,
        "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::IntervalOutcome;
    use crate::recorder::Recorded;

    /// Writes second `second` of stream `main`, `recorded`, to `writer`.
    fn record(writer: &HlogWriter, recorded: &Recorded, second: u64) {
        let summary = IntervalOutcome::of(
            Duration::from_secs(second),
            Duration::from_secs(1),
            recorded,
        );
        let record = IntervalRecord {
            stream: "main",
            interval: &summary,
            recorded,
        };
        writer.record(&record, Duration::ZERO);
    }

    #[test]
    fn histograms_past_the_queue_budget_are_dropped_counted_and_noted() {
        let dir = std::env::temp_dir().join(format!("hlog-budget-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.hlog");
        let mut recorded = Recorded::default();
        recorded.corrected.record(1_000).unwrap();
        recorded.uncorrected.record(1_000).unwrap();
        // A budget smaller than one histogram: every one would pass it.
        let one = held_bytes(&recorded.corrected);
        let writer = HlogWriter::create(&path, "test")
            .unwrap()
            .with_queue_budget(one - 1);
        writer.begin(SystemTime::now());
        for second in 0..10 {
            record(&writer, &recorded, second);
        }
        // Both histograms (corrected and uncorrected) of each of ten intervals.
        assert_eq!(writer.dropped(), 20);
        writer.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("#20 interval histograms were not written"),
            "{text}"
        );
        let written = text.lines().filter(|l| !l.starts_with(['#', '"'])).count();
        assert_eq!(written, 0, "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn within_the_budget_nothing_is_dropped() {
        let dir = std::env::temp_dir().join(format!("hlog-nodrop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.hlog");
        let recorded = Recorded::default();
        let writer = HlogWriter::create(&path, "test").unwrap();
        writer.begin(SystemTime::now());
        for second in 0..10 {
            record(&writer, &recorded, second);
        }
        assert_eq!(writer.dropped(), 0);
        writer.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().filter(|l| !l.starts_with(['#', '"'])).count(),
            20
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
