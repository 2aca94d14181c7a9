//! The access log: one JSON line per exchange.
//!
//! A request's line is written straight into a buffer that its thread
//! shares with few or no others (one of [`SHARDS`], picked once per
//! thread), under a lock that only the background writer ever contends
//! for. The writer swaps each buffer for an empty one every
//! [`BATCH_WINDOW`] and writes it out whole, so a slow terminal or disk
//! never holds up a request, and a line costs no allocation, no hand-off
//! through a queue and no copy besides its own writing. Lines of one
//! thread keep their order; lines of different threads interleave by
//! batch, not by time (each line carries its own `time`).
//!
//! When the writer falls behind by more than [`PENDING`] bytes in a
//! shard, new lines there are dropped and counted
//! (`portico_access_log_dropped_total`) rather than held without bound.

use std::cell::Cell;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
// The shards' locks, off the data path's rules for the reason at `Shard`.
#[allow(clippy::disallowed_types)]
use std::sync::Mutex;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crate::metrics::Metrics;

/// How many buffers lines are spread over; threads are assigned to them
/// in turn, so up to this many threads never share one.
const SHARDS: usize = 64;
/// Bytes a shard may hold for the writer before its new lines are
/// dropped: at 300-byte lines, some 28,000 lines.
const PENDING: usize = 8 << 20;
/// A buffer grown past this by a backlog is given back once written.
const KEEP_CAPACITY: usize = 1 << 20;
/// How long the writer lets lines gather before writing them: the most a
/// line waits.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// The writing side of the access log; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLogSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    writer: WriterThread,
    metrics: Arc<Metrics>,
    pending: usize,
}

#[derive(Debug)]
struct Shared {
    shards: [Shard; SHARDS],
    /// Set by the writer before it sleeps without a deadline; the first
    /// line after that wakes it.
    idle: AtomicBool,
    /// Set when the last sink is gone: write what is left and stop.
    stop: AtomicBool,
}

/// One buffer of lines, on a cache line pair of its own so that threads
/// writing to neighbouring shards do not contend for the line.
///
/// Its lock is taken by the threads assigned to it (one, up to [`SHARDS`]
/// threads) and by the writer, which holds it only to swap two `Vec`s,
/// once per [`BATCH_WINDOW`]: a request never waits on another request,
/// nor on the writer's I/O.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    #[allow(clippy::disallowed_types)]
    lines: Mutex<Vec<u8>>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while a line was written leaves at worst a partial line;
        // the log goes on.
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread and what it shares with the sinks.
#[derive(Debug)]
struct WriterThread {
    shared: Arc<Shared>,
    /// To wake the writer when it has gone idle.
    thread: Thread,
    handle: Option<JoinHandle<()>>,
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        // The last sink is gone: the writer writes what is left and stops;
        // joining makes sure the last lines are out before the process
        // exits.
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl AccessLogSink {
    /// Writes to standard output.
    pub fn stdout(metrics: Arc<Metrics>) -> io::Result<Self> {
        #[allow(clippy::disallowed_methods)] // This is the background writer the rule points to.
        let out = io::stdout();
        Self::spawn(Box::new(out), metrics, PENDING)
    }

    /// Appends to `path`, creating it if needed.
    pub fn file(path: &Path, metrics: Arc<Metrics>) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Self::spawn(Box::new(file), metrics, PENDING)
    }

    fn spawn(
        out: Box<dyn Write + Send>,
        metrics: Arc<Metrics>,
        pending: usize,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            shards: std::array::from_fn(|_| Shard::default()),
            idle: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let for_writer = shared.clone();
        let handle = std::thread::Builder::new()
            .name("portico-access-log".into())
            .spawn(move || write_out(&for_writer, out))?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: WriterThread {
                    shared,
                    thread: handle.thread().clone(),
                    handle: Some(handle),
                },
                metrics,
                pending,
            }),
        })
    }

    /// Adds one line: `write` appends its text (UTF-8, without the
    /// newline) to the buffer it is given. Never blocks on the writer.
    pub fn write_line(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let inner = &*self.inner;
        let shared = &inner.writer.shared;
        let shard = &shared.shards[shard_of_this_thread()];
        {
            let mut lines = shard.lock();
            if lines.len() >= inner.pending {
                drop(lines);
                inner
                    .metrics
                    .access_log_dropped
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            write(&mut lines);
            lines.push(b'\n');
        }
        // The writer sets `idle` before it looks at the shards one last
        // time, under their locks: either it saw this line, or this load
        // comes after that look and sees `idle`.
        if shared.idle.load(Ordering::Relaxed) && shared.idle.swap(false, Ordering::AcqRel) {
            inner.writer.thread.unpark();
        }
    }
}

/// The shard of the calling thread, assigned on its first line.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|shard| {
        let mut i = shard.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(i);
        }
        i
    })
}

/// The writer thread: every [`BATCH_WINDOW`], the shards' lines written
/// out; with none to write, asleep until a line comes.
fn write_out(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut spare = Vec::new();
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        let mut wrote = false;
        let mut ok = true;
        for shard in &shared.shards {
            {
                let mut lines = shard.lock();
                if lines.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *lines, &mut spare);
            }
            ok &= out.write_all(&spare).is_ok();
            wrote = true;
            spare.clear();
            if spare.capacity() > KEEP_CAPACITY {
                spare = Vec::new();
            }
        }
        if wrote && !(ok && out.flush().is_ok()) {
            tracing::warn!("Access log write failed; lines may be lost.");
        }
        if stopping {
            return;
        }
        if !wrote {
            shared.idle.store(true, Ordering::SeqCst);
            let waiting = shared.shards.iter().any(|s| !s.lock().is_empty());
            if waiting || shared.stop.load(Ordering::Acquire) {
                shared.idle.store(false, Ordering::Relaxed);
                continue;
            }
            // Woken by the first line (or by the end); a spurious wake-up
            // only means one more look.
            std::thread::park();
        }
        // Let a batch gather. While the writer waits, lines are added
        // without waking anyone, so a busy node pays one wake-up and one
        // write per window rather than per line (the writer often shares
        // the workers' cores).
        std::thread::park_timeout(BATCH_WINDOW);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types, clippy::disallowed_methods)] // Test threads, not runtime workers.
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::Instant;

    /// A `Write` into memory the test can read, which can be made to block.
    #[derive(Clone, Default)]
    struct Memory {
        text: Arc<Mutex<Vec<u8>>>,
        /// While true, writes wait.
        blocked: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Memory {
        fn text(&self) -> String {
            String::from_utf8(self.text.lock().unwrap().clone()).unwrap()
        }

        fn block(&self, on: bool) {
            let (lock, cv) = &*self.blocked;
            *lock.lock().unwrap() = on;
            cv.notify_all();
        }
    }

    impl Write for Memory {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (lock, cv) = &*self.blocked;
            let mut blocked = lock.lock().unwrap();
            while *blocked {
                blocked = cv.wait(blocked).unwrap();
            }
            self.text.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn every_line_of_every_thread_arrives_once_and_whole() {
        let memory = Memory::default();
        let sink = AccessLogSink::spawn(Box::new(memory.clone()), Arc::default(), PENDING).unwrap();
        // More threads than shards, so some share one.
        let threads: Vec<_> = (0..SHARDS + 4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        sink.write_line(|out| {
                            out.extend_from_slice(format!("{{\"t\":{t},\"i\":{i}}}").as_bytes())
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The last sink gone, everything is written before the drop returns.
        drop(sink);
        let text = memory.text();
        let mut next = vec![0; SHARDS + 4];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (t, i) = (v["t"].as_u64().unwrap() as usize, v["i"].as_u64().unwrap());
            // In order within a thread, none lost or repeated.
            assert_eq!(i, next[t], "thread {t}");
            next[t] += 1;
        }
        assert!(next.iter().all(|&n| n == 500), "{next:?}");
    }

    #[test]
    fn a_line_after_a_quiet_spell_wakes_the_writer() {
        let memory = Memory::default();
        let sink = AccessLogSink::spawn(Box::new(memory.clone()), Arc::default(), PENDING).unwrap();
        sink.write_line(|out| out.extend_from_slice(b"first"));
        wait_for("the first line", || memory.text() == "first\n");
        // Long enough for the writer to find nothing and sleep for good.
        std::thread::sleep(BATCH_WINDOW * 5);
        sink.write_line(|out| out.extend_from_slice(b"second"));
        wait_for("the second line", || memory.text() == "first\nsecond\n");
    }

    #[test]
    fn a_stuck_writer_costs_lines_not_waiting() {
        let memory = Memory::default();
        let metrics = Arc::new(Metrics::new());
        let sink = AccessLogSink::spawn(Box::new(memory.clone()), metrics.clone(), 1000).unwrap();
        memory.block(true);
        // The writer takes the first batch and blocks writing it.
        sink.write_line(|out| out.extend_from_slice(&[b'a'; 99]));
        wait_for("the writer to take the batch", || {
            sink.inner
                .writer
                .shared
                .shards
                .iter()
                .all(|s| s.lock().is_empty())
        });
        // Ten lines of 100 bytes fill the shard; the rest are dropped, and
        // none of this waits for the writer.
        let start = Instant::now();
        for _ in 0..15 {
            sink.write_line(|out| out.extend_from_slice(&[b'b'; 99]));
        }
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(metrics.access_log_dropped.load(Ordering::Relaxed), 5);
        memory.block(false);
        drop(sink);
        let text = memory.text();
        assert_eq!(text.lines().count(), 11, "{text}");
    }
}
