//! Shutdown as the connection tasks see it: serving, then draining (each
//! HTTP connection finishes the exchange in progress and closes), then
//! closing (whatever is still open is dropped).
//!
//! Every connection task waits for the next stage alongside its
//! connection, so the wait is polled each time the task is, which is at
//! least twice per request. A `tokio::sync::Notify` or `watch` takes its
//! waiter list's mutex on every such poll, one mutex shared by all the
//! connections of the node. Here a poll is an atomic load of the stage and
//! the registration of the task's waker in the task's own [`Listener`];
//! the shared list of listeners is locked only when a connection starts
//! and when the stage changes.

use std::future::Future;
use std::pin::Pin;
#[allow(clippy::disallowed_types)]
// Locked when a connection starts and when the stage changes, never per
// request.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use tokio::sync::Notify;

/// How far shutdown has gone; stages only advance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    Serving,
    /// Connections finish their exchange in progress, then close.
    Draining,
    /// The drain is over: what is still open is dropped.
    Closing,
}

impl Stage {
    fn from_u8(n: u8) -> Self {
        match n {
            0 => Self::Serving,
            1 => Self::Draining,
            _ => Self::Closing,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    /// A [`Stage`] as `u8`.
    stage: AtomicU8,
    /// The listener of every task that waits for a stage.
    #[allow(clippy::disallowed_types)]
    listeners: Mutex<Vec<Weak<Listener>>>,
    /// HTTP connections being served (upgraded connections not counted).
    open: AtomicUsize,
    /// Told when `open` falls to zero.
    all_closed: Notify,
}

/// The server's handle: advances the stage and counts connections.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shutdown {
    shared: Arc<Shared>,
}

/// One task's side: wakes that task when the stage advances.
#[derive(Debug)]
pub(crate) struct Listener {
    shared: Arc<Shared>,
    waker: AtomicWaker,
}

/// Counts one HTTP connection as open until it is dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    shared: Arc<Shared>,
}

impl Shutdown {
    /// A listener for one task (a connection's, or an upgrade's).
    pub(crate) fn listener(&self) -> Arc<Listener> {
        let listener = Arc::new(Listener {
            shared: self.shared.clone(),
            waker: AtomicWaker::new(),
        });
        let mut all = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if all.len() == all.capacity() {
            // Before the list grows, the listeners of ended tasks go: the
            // list stays within twice the tasks alive.
            all.retain(|l| l.strong_count() > 0);
        }
        all.push(Arc::downgrade(&listener));
        listener
    }

    /// Counts an HTTP connection as open until the value is dropped.
    pub(crate) fn open(&self) -> OpenConnection {
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        OpenConnection {
            shared: self.shared.clone(),
        }
    }

    /// Moves to `stage` (never back) and wakes every listening task.
    pub(crate) fn advance(&self, stage: Stage) {
        self.shared.stage.fetch_max(stage as u8, Ordering::SeqCst);
        let all = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for listener in all.iter().filter_map(Weak::upgrade) {
            listener.waker.wake();
        }
    }

    /// Completes once no HTTP connection is open.
    pub(crate) async fn all_closed(&self) {
        loop {
            let notified = self.shared.all_closed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the count is read: a close in between
            // still wakes this wait.
            notified.as_mut().enable();
            if self.shared.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.shared.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.all_closed.notify_waiters();
        }
    }
}

impl Listener {
    /// Completes once shutdown has reached `stage` (or gone past it), with
    /// the stage it is at.
    pub(crate) fn reached(&self, stage: Stage) -> Reached<'_> {
        Reached {
            listener: self,
            stage,
        }
    }

    fn stage(&self) -> Stage {
        Stage::from_u8(self.shared.stage.load(Ordering::SeqCst))
    }
}

/// See [`Listener::reached`].
#[derive(Debug)]
pub(crate) struct Reached<'a> {
    listener: &'a Listener,
    stage: Stage,
}

impl Future for Reached<'_> {
    type Output = Stage;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stage> {
        let now = self.listener.stage();
        if now >= self.stage {
            return Poll::Ready(now);
        }
        self.listener.waker.register(cx.waker());
        // Read again after registering: an advance in between has either
        // been seen here or will wake the registered waker.
        let now = self.listener.stage();
        if now >= self.stage {
            Poll::Ready(now)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn listeners_wake_at_each_stage_and_the_count_reaches_zero() {
        let shutdown = Shutdown::default();
        let open = shutdown.open();
        let task = {
            let listener = shutdown.listener();
            tokio::spawn(async move {
                let first = listener.reached(Stage::Draining).await;
                let second = listener.reached(Stage::Closing).await;
                (first, second)
            })
        };
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        shutdown.advance(Stage::Draining);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !task.is_finished(),
            "woke for the stage it did not wait for"
        );
        // A wait for the count ends only when the connection is gone.
        let waiting = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.all_closed().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(open);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        shutdown.advance(Stage::Closing);
        // Never back.
        shutdown.advance(Stage::Draining);
        let stages = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stages, (Stage::Draining, Stage::Closing));
        // A listener made after the fact sees the stage at once.
        assert_eq!(
            shutdown.listener().reached(Stage::Draining).await,
            Stage::Closing
        );
    }

    #[test]
    fn the_list_of_listeners_keeps_only_live_ones() {
        let shutdown = Shutdown::default();
        let kept: Vec<_> = (0..10).map(|_| shutdown.listener()).collect();
        for _ in 0..10_000 {
            drop(shutdown.listener());
        }
        let len = shutdown.shared.listeners.lock().unwrap().len();
        assert!(len <= 2 * kept.len() + 16, "{len}");
    }
}
