//! The access log: one JSON line per exchange, written by a background
//! thread so a slow terminal or disk never holds up a request. When the
//! writer falls behind by more than [`QUEUE`] lines, lines are dropped and
//! counted (`portico_access_log_dropped_total`) rather than queued without
//! bound.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::metrics::Metrics;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;
/// How long the writer lets lines gather after the first of a batch: the
/// most a line waits before it is written.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

/// The sending side of the access log; cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLogSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: SyncSender<Vec<u8>>,
    metrics: Arc<Metrics>,
    _writer: WriterThread,
}

#[derive(Debug)]
struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        // The channel is closed once every sink is gone; joining here makes
        // sure the last lines reach the file before the process exits.
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

impl AccessLogSink {
    /// Writes to standard output.
    pub fn stdout(metrics: Arc<Metrics>) -> io::Result<Self> {
        #[allow(clippy::disallowed_methods)] // This is the background writer the rule points to.
        let out = io::stdout();
        Self::spawn(Box::new(out), metrics)
    }

    /// Appends to `path`, creating it if needed.
    pub fn file(path: &Path, metrics: Arc<Metrics>) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Self::spawn(Box::new(file), metrics)
    }

    fn spawn(out: Box<dyn Write + Send>, metrics: Arc<Metrics>) -> io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let handle = std::thread::Builder::new()
            .name("portico-access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                metrics,
                _writer: WriterThread(Some(handle)),
            }),
        })
    }

    /// Queues one line (UTF-8, without its newline). Never blocks.
    pub fn send(&self, line: Vec<u8>) {
        match self.inner.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner
                    .metrics
                    .access_log_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_lines(rx: Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let mut ok = write_line(&mut out, &line);
        // Let a batch gather before writing it. While the writer sleeps,
        // senders find no one waiting and queue without a wake-up call, so
        // a busy node pays one wake-up and one write per window instead of
        // one per line (the writer often shares the proxy's core).
        #[allow(clippy::disallowed_methods)] // A thread of its own, not a runtime worker.
        std::thread::sleep(BATCH_WINDOW);
        while let Ok(line) = rx.try_recv() {
            ok &= write_line(&mut out, &line);
        }
        if !ok || out.flush().is_err() {
            tracing::warn!("Access log write failed; lines may be lost.");
        }
    }
    let _ = out.flush();
}

fn write_line(out: &mut impl Write, line: &[u8]) -> bool {
    out.write_all(line).is_ok() && out.write_all(b"\n").is_ok()
}
