//! Counter backends for Portico's limits, behind
//! [`portico_model::limits::Counters`]: [`LocalCounters`] in the node's
//! memory and [`RedisCounters`] shared by every node that uses the same
//! Redis. The gateway sees only the trait; the node (`portico-app`) picks
//! the backend from `redis:` with [`NodeCounters::start`]. See
//! `docs/adr/0004-counters.md`.

pub mod cache;
mod local;
mod redis;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portico_model::limits::Counters;
use portico_model::node::RedisSettings;

pub use crate::local::LocalCounters;
pub use crate::redis::{ACQUIRE, CONCURRENCY_LEASE, RELEASE, RedisCounters};

/// Idle in-process keys are swept this often.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
/// In-process quota periods are saved this often (and at shutdown).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(60);
/// The file under the data directory that holds in-process quota periods.
pub const QUOTA_FILE: &str = "quotas.json";

/// The counters of one node and the background work they need.
#[derive(Debug)]
pub struct NodeCounters {
    counters: Arc<dyn Counters>,
    local: LocalCounters,
    /// Where in-process quota periods are kept across restarts; `None` with
    /// Redis (which keeps them itself) or without a data directory.
    quota_file: Option<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Why the counters could not start.
#[derive(Debug)]
pub struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl NodeCounters {
    /// Redis when `redis` is set, in-process counters otherwise. In-process
    /// quota periods are read from `data_dir/quotas.json` now and written
    /// back every [`SAVE_INTERVAL`] and by [`NodeCounters::save`]. Must run
    /// inside a Tokio runtime (it spawns the sweeper).
    pub async fn start(
        redis: Option<&RedisSettings>,
        data_dir: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        let local = LocalCounters::new();
        let mut tasks = vec![local.spawn_sweeper(SWEEP_INTERVAL)];
        let (counters, quota_file): (Arc<dyn Counters>, _) = match redis {
            Some(settings) => {
                let r = RedisCounters::connect(settings, local.clone())
                    .await
                    .map_err(|e| StartError(format!("invalid Redis settings: {e}")))?;
                (Arc::new(r), None)
            }
            None => {
                let file = data_dir.map(|d| d.join(QUOTA_FILE));
                if let Some(f) = &file {
                    match local.load(f) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(counters = n, file = %f.display(), "Quota counters restored.")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, file = %f.display(), "Quota counters could not be restored; quotas start from zero.")
                        }
                    }
                }
                (Arc::new(local.clone()), file)
            }
        };
        if let Some(file) = quota_file.clone() {
            let local = local.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(SAVE_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let (l, f) = (local.clone(), file.clone());
                    let saved = tokio::task::spawn_blocking(move || l.save(&f)).await;
                    if let Ok(Err(e)) = saved {
                        tracing::warn!(error = %e, file = %file.display(), "Quota counters could not be saved.");
                    }
                }
            }));
        }
        Ok(Self {
            counters,
            local,
            quota_file,
            tasks,
        })
    }

    /// The backend the gateway counts with.
    pub fn counters(&self) -> &Arc<dyn Counters> {
        &self.counters
    }

    /// The in-process counters (the backend itself, or Redis' fallback).
    pub fn local(&self) -> &LocalCounters {
        &self.local
    }

    /// Saves in-process quota periods now (at shutdown). Blocking file I/O.
    pub fn save(&self) {
        if let Some(file) = &self.quota_file {
            match self.local.save(file) {
                Ok(n) => {
                    tracing::debug!(counters = n, file = %file.display(), "Quota counters saved.")
                }
                Err(e) => {
                    tracing::warn!(error = %e, file = %file.display(), "Quota counters could not be saved.")
                }
            }
        }
    }
}

impl Drop for NodeCounters {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
