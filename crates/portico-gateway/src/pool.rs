//! Portico's own connection pool for plain `http://` HTTP/1.1 targets.
//!
//! hyper-util's legacy client serves every kind of target, and pays for it
//! on each request: a pool lock, a SipHash of the pool key, a race between
//! a checkout and a lazy connect, URI clones, a boxed response future and a
//! spawned task that waits for the connection to be idle again. Under
//! callgrind that came to about 12,000 instructions a request, a fifth of
//! the proxy's user-space work. This pool does what a plain HTTP/1.1 target
//! needs and no more: an idle list per target (a lock-free queue, so a
//! request never waits on a lock), a connection taken back when the
//! response body ends, and a connect only when no idle connection is left.
//!
//! TLS and HTTP/2 targets stay on the legacy client (`client.rs`).
//!
//! What it keeps from the legacy client: a request that a reused connection
//! could not start (the target closed it while idle) is sent again on
//! another connection; a fresh connection is never retried that way, as
//! the failure then says something about the target. Connect errors (and
//! the connect timeout) are told apart from failures after the request was
//! sent, for the retry rules and the circuit breaker. Idle connections are
//! closed after 90 to 120 seconds (the legacy pool's 90, swept coarsely so
//! that a request never reads the clock for it). Connections are made with
//! upgrades enabled, so `upgrade.rs` can take over a `101` answer.
//!
//! Each connection keeps a task of its own for hyper's connection future.
//! Polling that future from the request's task instead was measured and
//! dropped (docs/benchmarks.md, fifth session): hyper's dispatcher needs
//! three polls per exchange whichever task makes them, at 800 to 950
//! instructions each, and the task it saves costs about 150 a poll.

use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::RequestBody;

/// How often idle connections are swept; one is closed once it has been
/// idle for [`IDLE_TICKS`] sweeps, so after 90 to 120 seconds.
const IDLE_TICK: Duration = Duration::from_secs(30);
const IDLE_TICKS: u64 = 3;
/// Idle connections kept per target; more are closed when they finish.
const MAX_IDLE: usize = 1024;

/// The pool of one API's plain HTTP/1.1 targets. Cloning shares it.
#[derive(Clone)]
pub(crate) struct H1Pool {
    inner: Arc<Inner>,
}

struct Inner {
    targets: Box<[TargetPool]>,
    connect_timeout: Duration,
    keepalive: Duration,
    /// Sweeps so far; an idle connection remembers the tick it went idle at.
    tick: AtomicU64,
    sweeping: AtomicBool,
}

struct TargetPool {
    authority: Authority,
    /// The `Host` field for requests to this target (port left out when it
    /// is 80, as the legacy client does).
    host: HeaderValue,
    /// Unbounded, but capped at [`MAX_IDLE`] by `put_back`. Not an
    /// `ArrayQueue`: that would allocate all its slots up front, 1,024 per
    /// target of every API, used or not.
    idle: SegQueue<Idle>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: u64,
}

/// A connection lent to one exchange: back to its pool when dropped (once
/// the response body has ended or been dropped).
pub(crate) struct Lease {
    sender: Option<SendRequest<RequestBody>>,
    pool: Arc<Inner>,
    target: usize,
}

/// Why an upstream request through the pool failed.
#[derive(Debug)]
pub(crate) enum PoolError {
    /// No connection could be made (refused, unreachable, timed out).
    Connect(io::Error),
    /// The HTTP/1.1 handshake on a fresh connection failed.
    Handshake(hyper::Error),
    /// The connection failed while the request was sent or answered.
    Send(hyper::Error),
    /// The request's URI names no target of this pool, or has no path.
    Target,
}

impl PoolError {
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Handshake(_))
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "tcp connect error: {e}"),
            Self::Handshake(e) => write!(f, "http/1.1 handshake failed: {e}"),
            Self::Send(e) => write!(f, "request failed: {e}"),
            Self::Target => f.write_str("the request is not for a target of this API"),
        }
    }
}

impl StdError for PoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Handshake(e) | Self::Send(e) => Some(e),
            Self::Target => None,
        }
    }
}

impl H1Pool {
    pub fn new(
        authorities: impl IntoIterator<Item = Authority>,
        connect_timeout: Duration,
        keepalive: Duration,
    ) -> Self {
        let mut targets: Vec<TargetPool> = Vec::new();
        for authority in authorities {
            if targets.iter().any(|t| t.authority == authority) {
                continue;
            }
            let host = match authority.port_u16() {
                Some(80) | None => authority.host().to_owned(),
                Some(_) => authority.as_str().to_owned(),
            };
            let Ok(host) = HeaderValue::try_from(host) else {
                continue;
            };
            targets.push(TargetPool {
                authority,
                host,
                idle: SegQueue::new(),
            });
        }
        Self {
            inner: Arc::new(Inner {
                targets: targets.into_boxed_slice(),
                connect_timeout,
                keepalive,
                tick: AtomicU64::new(0),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` (absolute URI of one of the pool's targets) on an idle
    /// connection to its target, or on a new one.
    pub async fn send(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        let inner = &self.inner;
        let index = req
            .uri()
            .authority()
            .and_then(|a| inner.targets.iter().position(|t| t.authority == *a))
            .ok_or(PoolError::Target)?;
        let target = &inner.targets[index];
        // Origin form on the wire; the target is addressed by `Host`.
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
        req.headers_mut()
            .entry(header::HOST)
            .or_insert_with(|| target.host.clone());
        loop {
            let (mut sender, reused) = match inner.checkout(target) {
                Some(sender) => (sender, true),
                None => (inner.connect(target).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease {
                        sender: Some(sender),
                        pool: inner.clone(),
                        target: index,
                    };
                    return Ok((resp, lease));
                }
                Err(mut e) => match e.take_message() {
                    // The connection closed before the request started:
                    // nothing reached the target, so it may go again.
                    Some(again) if reused => {
                        tracing::trace!(error = %e.error(), "Idle upstream connection was closed; sending on another.");
                        req = again;
                    }
                    _ => return Err(PoolError::Send(e.into_error())),
                },
            }
        }
    }
}

impl Inner {
    /// A usable idle connection to `target` (the longest idle first), if
    /// any.
    fn checkout(&self, target: &TargetPool) -> Option<SendRequest<RequestBody>> {
        let now = self.tick.load(Ordering::Relaxed);
        while let Some(idle) = target.idle.pop() {
            if now.saturating_sub(idle.since) < IDLE_TICKS && idle.sender.is_ready() {
                return Some(idle.sender);
            }
            // Closed by the target, or idle too long: dropping the sender
            // ends its connection.
        }
        None
    }

    async fn connect(
        self: &Arc<Self>,
        target: &TargetPool,
    ) -> Result<SendRequest<RequestBody>, PoolError> {
        self.start_sweeps();
        let host = target.authority.host();
        // An IPv6 literal comes with its brackets.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = target.authority.port_u16().unwrap_or(80);
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((host, port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(PoolError::Connect(e)),
            Err(_) => {
                return Err(PoolError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(self.keepalive);
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(PoolError::Connect)?;
        // One buffer and one `write` per request, as on the server side.
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "Upstream connection ended with an error.");
            }
        });
        Ok(sender)
    }

    /// Starts the task that closes connections idle for too long, once per
    /// pool, from the first connect (which runs inside the runtime). It
    /// ends with the pool.
    fn start_sweeps(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(IDLE_TICK);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                let now = pool.tick.fetch_add(1, Ordering::Relaxed) + 1;
                for target in &pool.targets {
                    // One pass over what is idle now; the ones to keep go
                    // back behind any that requests returned meanwhile.
                    for _ in 0..target.idle.len() {
                        let Some(idle) = target.idle.pop() else { break };
                        if now.saturating_sub(idle.since) < IDLE_TICKS && !idle.sender.is_closed() {
                            target.idle.push(idle);
                        }
                    }
                }
            }
        });
    }

    fn put_back(&self, target: usize, sender: SendRequest<RequestBody>) {
        let idle = Idle {
            sender,
            since: self.tick.load(Ordering::Relaxed),
        };
        // A full list closes the connection (the idle one is dropped).
        let list = &self.targets[target].idle;
        if list.len() < MAX_IDLE {
            list.push(idle);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut sender) = self.sender.take() else {
            return;
        };
        if sender.is_ready() {
            // The usual case: the connection read the whole response
            // before its body reached the end here.
            self.pool.put_back(self.target, sender);
            return;
        }
        if sender.is_closed() {
            return;
        }
        // Still busy (the body was dropped before its end, or the answer
        // is streaming): it rejoins the pool once it is idle, if it
        // survives.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let target = self.target;
        runtime.spawn(async move {
            if poll_fn(|cx| sender.poll_ready(cx)).await.is_ok() {
                pool.put_back(target, sender);
            }
        });
    }
}
