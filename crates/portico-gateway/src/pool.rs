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
//! What it keeps from the legacy client: connect errors (and the connect
//! timeout) are told apart from failures after the request was sent, for
//! the retry rules and the circuit breaker; idle connections are closed
//! after 90 to 120 seconds (the legacy pool's 90, swept coarsely so that a
//! request never reads the clock for it).
//!
//! The exchange itself is Portico's own (`h1.rs`), in the request's task:
//! a connection is a socket and its buffers, lent to one exchange and
//! handed back by the answer's body when it ends. Upgrade requests
//! (`Connection: upgrade`) are the exception: each gets a connection of
//! its own driven by hyper's client, which hands the socket over to
//! `upgrade.rs` after a `101`, and is never pooled.
//!
//! An idle connection is checked before it is lent: one that the target
//! closed (or sent anything to) while idle is dropped, and the next one
//! tried, before any of the request is written. The check asks the
//! runtime's readiness, so it costs no system call when nothing arrived.
//! (Before the sixth session a task per connection drove hyper's client
//! here; docs/benchmarks.md has what that cost.)

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderValue, Request, Response, Uri, header};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::{RequestBody, UpstreamBody};
use crate::h1::{self, Conn, H1Error};
use crate::headers::Forwarding;

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
    conn: Box<Conn>,
    since: u64,
}

/// Where a lent connection goes back to: its target's idle list.
pub(crate) struct Home {
    pool: Arc<Inner>,
    target: usize,
}

impl Home {
    pub(crate) fn put_back(self, conn: Box<Conn>) {
        self.pool.put_back(self.target, conn);
    }
}

/// Why an upstream request through the pool failed.
#[derive(Debug)]
pub(crate) enum PoolError {
    /// No connection could be made (refused, unreachable, timed out).
    Connect(io::Error),
    /// The HTTP/1.1 handshake of an upgrade connection failed.
    Handshake(hyper::Error),
    /// An upgrade request failed after it was sent.
    Send(hyper::Error),
    /// The exchange failed once the request was being sent.
    Exchange(H1Error),
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
            Self::Exchange(e) => write!(f, "request failed: {e}"),
            Self::Target => f.write_str("the request is not for a target of this API"),
        }
    }
}

impl StdError for PoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Connect(e) => Some(e),
            Self::Handshake(e) | Self::Send(e) => Some(e),
            Self::Exchange(e) => Some(e),
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

    /// [`Self::send_boxed`] for a request not yet boxed (the tests').
    #[cfg(test)]
    pub async fn send(
        &self,
        req: Request<RequestBody>,
        forwarding: Option<&Forwarding<'_>>,
    ) -> Result<Response<UpstreamBody>, PoolError> {
        let (head, body) = req.into_parts();
        self.send_boxed(Box::new(head), body, forwarding, false)
            .await
    }

    /// Sends `req` (absolute URI of one of the pool's targets), with the
    /// `forwarding` fields of a proxied request, on an idle connection to
    /// its target, or on a new one. The head comes boxed (see
    /// `UpstreamClient::send`); `raw` as `h1::exchange` takes it.
    pub(crate) async fn send_boxed(
        &self,
        mut head: Box<Parts>,
        body: RequestBody,
        forwarding: Option<&Forwarding<'_>>,
        raw: bool,
    ) -> Result<Response<UpstreamBody>, PoolError> {
        let inner = &self.inner;
        let index = head
            .uri
            .authority()
            .and_then(|a| inner.targets.iter().position(|t| t.authority == *a))
            .ok_or(PoolError::Target)?;
        let target = &inner.targets[index];
        // Origin form on the wire; the target is addressed by `Host`.
        let pq = head
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        head.uri = Uri::from(pq);
        // The rarer paths are boxed: their futures would otherwise make
        // this one, which every request moves, several times larger.
        if asks_to_upgrade(&head.headers) {
            if let Some(f) = forwarding {
                f.apply(&mut head.headers);
            }
            head.headers.insert(header::HOST, target.host.clone());
            return Box::pin(inner.upgrade(target, Request::from_parts(*head, body))).await;
        }
        let conn = match inner.checkout(target) {
            Some(conn) => conn,
            None => Box::pin(inner.connect(target)).await?,
        };
        let home = Home {
            pool: inner.clone(),
            target: index,
        };
        let added = h1::Added {
            host: &target.host,
            forwarding,
        };
        h1::exchange(conn, head, body, added, home, raw)
            .await
            .map(|resp| resp.map(UpstreamBody::H1))
            .map_err(PoolError::Exchange)
    }
}

/// `Connection: upgrade` with an `Upgrade` field: the request may switch
/// protocols, so hyper's client, which can hand the socket over, sends it.
fn asks_to_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && crate::upgrade::connection_has_upgrade(headers)
}

impl Inner {
    /// A usable idle connection to `target` (the longest idle first), if
    /// any.
    fn checkout(&self, target: &TargetPool) -> Option<Box<Conn>> {
        let now = self.tick.load(Ordering::Relaxed);
        while let Some(mut idle) = target.idle.pop() {
            if now.saturating_sub(idle.since) < IDLE_TICKS && idle.conn.is_reusable() {
                return Some(idle.conn);
            }
            // Closed by the target, or idle too long: dropping it closes it.
        }
        None
    }

    async fn connect(self: &Arc<Self>, target: &TargetPool) -> Result<Box<Conn>, PoolError> {
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
        Ok(Conn::new(stream))
    }

    /// An upgrade request, on a new connection of its own driven by hyper's
    /// client (with upgrades enabled, so `upgrade.rs` can take over a
    /// `101`). The connection closes after the exchange, or serves the
    /// switched protocol.
    async fn upgrade(
        self: &Arc<Self>,
        target: &TargetPool,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, PoolError> {
        let stream = self.connect(target).await?.into_stream();
        let (mut sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "Upstream connection ended with an error.");
            }
        });
        let resp = sender.send_request(req).await.map_err(PoolError::Send)?;
        Ok(resp.map(UpstreamBody::Hyper))
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
                        let Some(mut idle) = target.idle.pop() else {
                            break;
                        };
                        if now.saturating_sub(idle.since) < IDLE_TICKS && idle.conn.is_reusable() {
                            target.idle.push(idle);
                        }
                    }
                }
            }
        });
    }

    fn put_back(&self, target: usize, conn: Box<Conn>) {
        let idle = Idle {
            conn,
            since: self.tick.load(Ordering::Relaxed),
        };
        // A full list closes the connection (the idle one is dropped).
        let list = &self.targets[target].idle;
        if list.len() < MAX_IDLE {
            list.push(idle);
        }
    }
}
