//! In-process counters: a sharded hash map (dashmap: one small lock per
//! shard, held for a few arithmetic operations, never across an await), so
//! requests for different keys rarely meet and no request waits on a
//! global lock. Idle keys are swept away; quota periods are saved to a file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use portico_model::limits::{
    Acquire, Algorithm, BackendStats, Counters, Decision, Limits, Outcome, Outcomes, Permit,
};
use serde::{Deserialize, Serialize};

/// The state of one key. Times are microseconds on the node's monotonic
/// clock ([`LocalCounters::now_us`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// A window or period: `count` requests until `expires`. `period` cells
    /// are quota periods, saved across restarts.
    Window {
        count: u64,
        expires: u64,
        period: bool,
    },
    /// GCRA: the theoretical arrival time of the next request.
    Gcra { tat: u64 },
    /// Requests in flight.
    Concurrency { in_flight: u64 },
}

impl Cell {
    fn idle(&self, now: u64) -> bool {
        match *self {
            Cell::Window { expires, .. } => expires <= now,
            Cell::Gcra { tat } => tat <= now,
            Cell::Concurrency { in_flight } => in_flight == 0,
        }
    }
}

struct Inner {
    /// Keyed by the bytes of [`Limits`]' keys (always UTF-8, compared as
    /// bytes).
    cells: DashMap<Box<[u8]>, Cell, ahash::RandomState>,
    /// The monotonic clock's zero, and the wall-clock time it stands for.
    base: Instant,
    base_unix_us: u64,
    evicted: AtomicU64,
}

/// The in-process backend. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct LocalCounters {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCounters")
            .field("keys", &self.inner.cells.len())
            .finish()
    }
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl LocalCounters {
    pub fn new() -> Self {
        let base_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, micros);
        Self {
            inner: Arc::new(Inner {
                // The default shard count (4 × cores, a power of two).
                cells: DashMap::with_hasher(ahash::RandomState::new()),
                base: Instant::now(),
                base_unix_us,
                evicted: AtomicU64::new(0),
            }),
        }
    }

    /// Microseconds since this backend was made, on the monotonic clock.
    /// Starts at 1 s so that "zero" never means "now".
    pub fn now_us(&self) -> u64 {
        self.us_at(Instant::now())
    }

    /// The time `batch` is counted at, as [`Self::now_us`] gives it: when
    /// its request arrived if the gateway said so, else now.
    pub fn time_of(&self, batch: &Limits) -> u64 {
        self.us_at(batch.arrived.unwrap_or_else(Instant::now))
    }

    /// `at` on this backend's clock; an instant before the backend was
    /// made counts as its first.
    fn us_at(&self, at: Instant) -> u64 {
        micros(at.saturating_duration_since(self.inner.base)) + 1_000_000
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.inner.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.cells.is_empty()
    }

    /// Checks and counts `batch` at time `now` (µs, [`Self::now_us`]):
    /// every check is taken in order; if one has no room, those already
    /// taken are given back and the rest are only looked at, so a refused
    /// request counts against nothing.
    pub fn decide(&self, batch: &Limits, now: u64) -> Decision {
        let mut outcomes = Outcomes::with_capacity(batch.len());
        let mut refused = false;
        for (check, key) in batch.iter_bytes() {
            let o = self.take(key, check.algorithm, now, refused);
            refused |= !o.allowed;
            outcomes.push(o);
        }
        if refused {
            for ((check, key), o) in batch.iter_bytes().zip(outcomes.iter_mut()) {
                if o.allowed {
                    self.give_back(key, check.algorithm, now);
                    o.remaining = (o.remaining + 1).min(check.algorithm.quota());
                }
            }
            return Decision::Limited { outcomes };
        }
        let held: Vec<Box<[u8]>> = batch
            .iter_bytes()
            .filter(|(c, _)| matches!(c.algorithm, Algorithm::Concurrency { .. }))
            .map(|(_, key)| Box::from(key))
            .collect();
        let permit = (!held.is_empty()).then(|| {
            let this = self.clone();
            Permit::new(move || {
                for key in &held {
                    this.release(key);
                }
            })
        });
        Decision::Admitted { outcomes, permit }
    }

    /// Looks at (`dry`) or takes one request from `key`'s limit.
    fn take(&self, key: &[u8], algorithm: Algorithm, now: u64, dry: bool) -> Outcome {
        let fresh = |now: u64| match algorithm {
            Algorithm::Window { window, .. } => Cell::Window {
                count: 0,
                expires: now.saturating_add(micros(window)),
                period: false,
            },
            Algorithm::Period { ends_in, .. } => Cell::Window {
                count: 0,
                expires: now.saturating_add(micros(ends_in)),
                period: true,
            },
            Algorithm::Gcra { .. } => Cell::Gcra { tat: now },
            Algorithm::Concurrency { .. } => Cell::Concurrency { in_flight: 0 },
        };
        if dry {
            let cell = self
                .inner
                .cells
                .get(key)
                .map(|c| *c)
                .filter(|c| !c.idle(now) || matches!(c, Cell::Concurrency { .. }))
                .unwrap_or_else(|| fresh(now));
            let mut copy = cell;
            return step(&mut copy, algorithm, now, false);
        }
        match self.inner.cells.get_mut(key) {
            Some(mut cell) => {
                if cell.idle(now) && !matches!(*cell, Cell::Concurrency { .. }) {
                    *cell = fresh(now);
                }
                step(&mut cell, algorithm, now, true)
            }
            None => {
                let mut cell = self
                    .inner
                    .cells
                    .entry(Box::from(key))
                    .or_insert_with(|| fresh(now));
                step(&mut cell, algorithm, now, true)
            }
        }
    }

    /// Undoes one [`Self::take`] of a refused batch.
    fn give_back(&self, key: &[u8], algorithm: Algorithm, _now: u64) {
        if let Some(mut cell) = self.inner.cells.get_mut(key) {
            match (&mut *cell, algorithm) {
                (Cell::Window { count, .. }, _) => *count = count.saturating_sub(1),
                (Cell::Gcra { tat }, Algorithm::Gcra { interval, .. }) => {
                    *tat = tat.saturating_sub(micros(interval));
                }
                (Cell::Concurrency { in_flight }, _) => *in_flight = in_flight.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// Gives back a concurrency slot.
    fn release(&self, key: &[u8]) {
        if let Some(mut cell) = self.inner.cells.get_mut(key)
            && let Cell::Concurrency { in_flight } = &mut *cell
        {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    /// Removes keys that hold nothing any more: ended windows, GCRA cells
    /// back at rest, concurrency keys with nothing in flight. Returns how
    /// many were removed. Locks one shard at a time.
    pub fn sweep(&self) -> usize {
        let now = self.now_us();
        let before = self.inner.cells.len();
        self.inner.cells.retain(|_, cell| !cell.idle(now));
        let removed = before.saturating_sub(self.inner.cells.len());
        self.inner
            .evicted
            .fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// Sweeps every `every` until this backend is dropped everywhere else.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let removed = LocalCounters { inner }.sweep();
                if removed > 0 {
                    tracing::debug!(removed, "Idle limit counters evicted.");
                }
            }
        })
    }

    pub fn evicted(&self) -> u64 {
        self.inner.evicted.load(Ordering::Relaxed)
    }

    /// Writes the counts of the current quota periods to `path` (through a
    /// temporary file and a rename, so a crash never leaves half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<usize> {
        let now = self.now_us();
        let counters: Vec<Saved> = self
            .inner
            .cells
            .iter()
            .filter_map(|e| match *e.value() {
                Cell::Window {
                    count,
                    expires,
                    period: true,
                } if expires > now && count > 0 => Some(Saved {
                    key: String::from_utf8_lossy(e.key()).into_owned(),
                    count,
                    expires_unix_us: self.inner.base_unix_us + expires - 1_000_000,
                }),
                _ => None,
            })
            .collect();
        let n = counters.len();
        if n == 0 && !path.exists() {
            // Nothing to keep: no file appears where there were no quotas.
            return Ok(0);
        }
        let file = SavedFile {
            version: 1,
            counters,
        };
        let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)?;
        Ok(n)
    }

    /// Reads counts written by [`Self::save`]; periods that ended since are
    /// skipped. A missing file is not an error.
    pub fn load(&self, path: &Path) -> std::io::Result<usize> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let file: SavedFile = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, micros);
        let now = self.now_us();
        let mut n = 0;
        for s in file.counters {
            if s.expires_unix_us <= now_unix {
                continue;
            }
            let expires = now + (s.expires_unix_us - now_unix);
            self.inner.cells.insert(
                s.key.into_bytes().into_boxed_slice(),
                Cell::Window {
                    count: s.count,
                    expires,
                    period: true,
                },
            );
            n += 1;
        }
        Ok(n)
    }
}

/// One check against one cell: the arithmetic of each algorithm.
fn step(cell: &mut Cell, algorithm: Algorithm, now: u64, take: bool) -> Outcome {
    match (cell, algorithm) {
        (
            Cell::Window { count, expires, .. },
            Algorithm::Window { limit, .. } | Algorithm::Period { limit, .. },
        ) => {
            let reset = Duration::from_micros(expires.saturating_sub(now));
            if *count >= limit {
                return Outcome {
                    allowed: false,
                    remaining: 0,
                    reset,
                };
            }
            if take {
                *count += 1;
            }
            Outcome {
                allowed: true,
                remaining: limit - *count,
                reset,
            }
        }
        (
            Cell::Gcra { tat },
            Algorithm::Gcra {
                interval, burst, ..
            },
        ) => {
            let t = micros(interval).max(1);
            let tolerance = t.saturating_mul(burst);
            let start = (*tat).max(now);
            let next = start + t;
            if next - now > tolerance {
                return Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: Duration::from_micros(start - now),
                };
            }
            let after = if take {
                *tat = next;
                next
            } else {
                start
            };
            Outcome {
                allowed: true,
                remaining: (tolerance - (after - now)) / t,
                reset: Duration::from_micros(after - now),
            }
        }
        (Cell::Concurrency { in_flight }, Algorithm::Concurrency { limit }) => {
            if *in_flight >= limit {
                return Outcome {
                    allowed: false,
                    remaining: 0,
                    reset: Duration::ZERO,
                };
            }
            if take {
                *in_flight += 1;
            }
            Outcome {
                allowed: true,
                remaining: limit - *in_flight,
                reset: Duration::ZERO,
            }
        }
        // A key reused by another kind of limit (a configuration changed
        // a policy's algorithm under the same key): start it over.
        (cell, algorithm) => {
            *cell = match algorithm {
                Algorithm::Gcra { .. } => Cell::Gcra { tat: now },
                Algorithm::Concurrency { .. } => Cell::Concurrency { in_flight: 0 },
                Algorithm::Window { window, .. } => Cell::Window {
                    count: 0,
                    expires: now + micros(window),
                    period: false,
                },
                Algorithm::Period { ends_in, .. } => Cell::Window {
                    count: 0,
                    expires: now + micros(ends_in),
                    period: true,
                },
            };
            step(cell, algorithm, now, take)
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SavedFile {
    version: u32,
    counters: Vec<Saved>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    key: String,
    count: u64,
    expires_unix_us: u64,
}

impl Counters for LocalCounters {
    fn acquire(&self, batch: &Limits) -> Acquire {
        Acquire::Ready(self.decide(batch, self.time_of(batch)))
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            backend: "local",
            local_keys: self.len() as u64,
            evicted: self.evicted(),
            redis_up: true,
            ..BackendStats::default()
        }
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
