//! Live publication: the node follows the store. A change committed by any
//! node (or by `portico apply`) is compiled into a new snapshot here and
//! published, so every node serves it within about a second.
//!
//! Three things wake the loop: a `NOTIFY portico_config` from PostgreSQL
//! (sent in the committing transaction, so it arrives only after the
//! commit), a nudge from this node's own admin API, and a poll of the
//! version every `poll` (the fallback for notifications missed while the
//! listening connection was down, and the only source on SQLite). The
//! earliest expiry of an API key in the snapshot also wakes it: the
//! snapshot lets a key in until it is rebuilt without it.
//!
//! When the store cannot be reached the node keeps serving its last
//! snapshot and catches up when the store returns.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portico_store::{Backend, ConfigListener, now_millis};
use tokio::sync::watch;

use crate::reload::{NodeControl, ReloadError};

/// How often the version is polled when nothing else woke the loop.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// How often an unreachable store is tried again, at most.
const RETRY: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    control: Arc<NodeControl>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener: Option<ConfigListener> = None;
    // Whether the store was reachable at the last look, to log an outage
    // once rather than every poll.
    let mut reachable = true;
    loop {
        // A new listener hears only what is committed from now on: look at
        // the version once before waiting on it.
        let mut fresh = false;
        if listener.is_none() && control.store.backend() == Backend::Postgres {
            match control.store.listen().await {
                Ok(l) => {
                    listener = Some(l);
                    fresh = true;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Cannot listen for configuration changes; polling.")
                }
            }
        }
        // Without a working listener (or a reachable store), look more often
        // than the poll, so a node that missed notifications catches up
        // soon after the database returns.
        let wait =
            if reachable && (listener.is_some() || control.store.backend() != Backend::Postgres) {
                poll
            } else {
                poll.min(RETRY)
            };
        let expiry = control.next_expiry.load(Ordering::Relaxed);
        let until_expiry = u64::try_from(expiry.saturating_sub(now_millis()))
            .map_or(Duration::ZERO, Duration::from_millis);
        let mut expired = false;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = std::future::ready(()), if fresh => {}
            () = control.nudge.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = tokio::time::sleep(until_expiry), if expiry != i64::MAX => expired = true,
            n = next(&mut listener) => match n {
                Ok(Some(_)) => {}
                // Lost, and notifications with it: look at the version now;
                // the next call reconnects.
                Ok(None) => tracing::debug!("The configuration listener lost its connection."),
                Err(e) => {
                    tracing::debug!(error = %e, "The configuration listener dropped; polling until it is back.");
                    listener = None;
                }
            }
        }
        let behind = match control.behind().await {
            Ok(behind) => {
                if !reachable {
                    tracing::info!("The store is reachable again.");
                    reachable = true;
                }
                behind
            }
            Err(e) => {
                if reachable {
                    tracing::warn!(error = %e, "The store cannot be reached; serving the last configuration until it returns.");
                    reachable = false;
                }
                listener = None;
                pause(poll.min(RETRY), &mut stop).await;
                continue;
            }
        };
        if !behind && !expired {
            continue;
        }
        let published = match control.rebuild().await {
            Ok(done) => {
                tracing::info!(
                    version = control.published_version(),
                    apis = done.apis,
                    "Published the store's configuration."
                );
                true
            }
            Err(ReloadError::Invalid { path, diagnostics }) => {
                for d in diagnostics.iter() {
                    tracing::error!(source = %path.display(), "{d}");
                }
                tracing::error!(
                    "The store's configuration does not compile; still serving the previous one."
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot publish the store's configuration yet.");
                false
            }
        };
        if !published {
            // A failed rebuild: do not retry faster than the poll.
            pause(poll, &mut stop).await;
        }
    }
}

async fn pause(poll: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        () = tokio::time::sleep(poll) => {}
    }
}

async fn next(listener: &mut Option<ConfigListener>) -> Result<Option<i64>, portico_store::Error> {
    match listener {
        Some(l) => l.next_or_gap().await,
        None => std::future::pending().await,
    }
}
