//! The proxy listener: accepts connections and serves HTTP/1.1 and h2c
//! (prior knowledge) on each, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::Version;
use http::request::Parts;
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portico_model::policy::ClientCert;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::ClientBody;
use crate::h1_server::{self, Ended, Rewind};
use crate::headers::Hop;
use crate::proxy::Answer;
use crate::shutdown::{OpenConnection, Shutdown, Stage};
use crate::state::Gateway;
use crate::tls::{TlsTerminator, client_cert};

/// A client that sends no complete request head within this time is
/// disconnected (slowloris).
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Facts about the connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The forwarding headers' view of this client, made once.
    pub(crate) hop: Hop,
    /// The verified client certificate, on TLS connections that sent one.
    pub client_cert: Option<ClientCert>,
    /// What an upgraded connection taken over from this one must honour.
    pub(crate) scope: ConnectionScope,
}

/// The connection's slot in `server.max_connections` and the shutdown
/// signal, for the tasks that outlive its HTTP exchange (upgrades).
#[derive(Clone, Debug)]
pub(crate) struct ConnectionScope {
    pub slot: Option<Arc<OwnedSemaphorePermit>>,
    /// The server's shutdown, whose closing stage ends upgraded connections.
    pub shutdown: Shutdown,
}

impl Default for ConnectionScope {
    fn default() -> Self {
        // Never closes: for connections served outside a `ProxyServer`.
        static NEVER: std::sync::OnceLock<Shutdown> = std::sync::OnceLock::new();
        Self {
            slot: None,
            shutdown: NEVER.get_or_init(Shutdown::default).clone(),
        }
    }
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, scheme: &'static str) -> Self {
        Self {
            peer,
            scheme,
            hop: Hop::new(peer, scheme),
            client_cert: None,
            scope: ConnectionScope::default(),
        }
    }
}

/// Serves the gateway on a bound listener.
pub struct ProxyServer {
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<Arc<TlsTerminator>>,
    drain: Duration,
    /// Shared by every proxy listener of the node.
    connections: Arc<Semaphore>,
    header_timeout: Duration,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Idle HTTP/2 connections are pinged this often…
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// …and closed when a ping is not answered within this time.
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that does not finish the TLS handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl ProxyServer {
    pub fn new(listener: TcpListener, gateway: Arc<Gateway>) -> Self {
        Self {
            listener,
            gateway,
            tls: None,
            drain: Duration::from_secs(30),
            connections: Arc::new(Semaphore::new(10_000)),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }

    /// Time a client has to send its first byte and each complete request
    /// head (default 30 s).
    pub fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// The node-wide limit of open client connections.
    pub fn with_connection_limit(mut self, limit: Arc<Semaphore>) -> Self {
        self.connections = limit;
        self
    }

    /// How long shutdown waits for in-flight exchanges (default 30 s).
    pub fn with_drain_timeout(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Serves HTTPS (HTTP/1.1 and h2 by ALPN). Each connection takes the
    /// terminator's configuration of the moment it is accepted, so a reload
    /// reaches new handshakes without rebinding.
    pub fn with_tls(mut self, terminator: Arc<TlsTerminator>) -> Self {
        self.tls = Some(terminator);
        self
    }

    /// Accepts until `shutdown` completes, then stops accepting and waits up
    /// to the drain timeout for open exchanges to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // The header timeout is the connection's own watch (see
            // `Activity`): hyper's arms a timer for every request.
            .header_read_timeout(None)
            .keep_alive(true)
            // Each response written from one buffer (head and body copied
            // together) and one `write`: cheaper than hyper's queue of
            // buffers for `writev` at the sizes APIs answer with
            // (docs/benchmarks.md, user-space instructions).
            .writev(false);
        // Idle h2 connections are pinged; one that does not answer is closed.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEP_ALIVE))
            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
        let builder = Arc::new(builder);
        let stages = Shutdown::default();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // rather than spin.
                        tracing::warn!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                // At the limit: close at once rather than queue.
                self.gateway
                    .metrics
                    .connections_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.gateway.clone();
            match &self.tls {
                None => {
                    // Counted from here: a drain waits for connections
                    // still in protocol detection or a handshake too.
                    let open = stages.open();
                    let stages = stages.clone();
                    let builder = builder.clone();
                    let header_timeout = self.header_timeout;
                    tokio::spawn(async move {
                        // Protocol detection reads without a deadline: a
                        // connection that never sends a byte is dropped here.
                        let mut first = [0u8; 1];
                        if tokio::time::timeout(header_timeout, stream.peek(&mut first))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let info = ConnectionInfo::new(peer, "http");
                        let watch = Some(header_timeout);
                        serve(
                            &builder, &stages, open, gateway, info, stream, permit, watch, true,
                        );
                    });
                }
                Some(terminator) => {
                    let acceptor = terminator.acceptor();
                    let builder = builder.clone();
                    let header_timeout = self.header_timeout;
                    let open = stages.open();
                    let stages = stages.clone();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        let tls = match handshake {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, peer = %peer, "TLS handshake failed.");
                                return;
                            }
                            Err(_) => return,
                        };
                        let mut info = ConnectionInfo::new(peer, "https");
                        info.client_cert = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(client_cert);
                        // HTTP/2 connections are watched by hyper's pings.
                        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                        let watch = (!h2).then_some(header_timeout);
                        serve(
                            &builder, &stages, open, gateway, info, tls, permit, watch, !h2,
                        );
                    });
                }
            }
        }
        drop(self.listener);
        drop(self.tls);
        stages.advance(Stage::Draining);
        if tokio::time::timeout(self.drain, stages.all_closed())
            .await
            .is_err()
        {
            tracing::warn!("Shutdown drain timed out; closing the remaining connections.");
        }
        stages.advance(Stage::Closing);
    }
}

/// Serves one connection (plain or TLS) until it closes or shutdown drains
/// it. An HTTP/1 connection (`h1`: plain, or TLS without `h2`) is served by
/// Portico's own server (`h1_server.rs`) as long as its requests are of the
/// kind it serves, then by hyper's, which also detects h2c. With
/// `header_timeout`, an HTTP/1 connection is closed once it has had no
/// exchange in progress for that long: a client has that long to send each
/// request head, counted from the end of the exchange before it (or from
/// the connection's first byte).
#[allow(clippy::too_many_arguments)]
fn serve<I>(
    builder: &Arc<auto::Builder<TokioExecutor>>,
    stages: &Shutdown,
    open: OpenConnection,
    gateway: Arc<Gateway>,
    info: ConnectionInfo,
    io: I,
    permit: OwnedSemaphorePermit,
    header_timeout: Option<Duration>,
    h1: bool,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let permit = Arc::new(permit);
    let mut info = info;
    info.scope = ConnectionScope {
        slot: Some(permit.clone()),
        shutdown: stages.clone(),
    };
    let own = Own {
        gateway,
        info: Arc::new(info),
        activity: Arc::new(Activity::new()),
    };
    let builder = builder.clone();
    let listener = stages.listener();
    tokio::spawn(async move {
        // Held for the connection's life: it counts against the limit and
        // towards the drain.
        let _permit = permit;
        let _open = open;
        let activity = own.activity.clone();
        let mut next = Stage::Draining;
        let limit = header_timeout.unwrap_or(Duration::MAX);
        let mut watching = header_timeout.is_some();
        // One timer for the connection's life, moved only when it fires.
        let look = tokio::time::sleep_until(activity.deadline(limit));
        let mut look = std::pin::pin!(look);
        let io = if h1 {
            let draining = AtomicBool::new(false);
            let served = h1_server::serve(io, &own, &draining);
            let mut served = std::pin::pin!(served);
            loop {
                tokio::select! {
                    biased;
                    ended = served.as_mut() => match ended {
                        Ended::Closed => return,
                        Ended::HandOff(io) => break io,
                    },
                    () = look.as_mut(), if watching => {
                        if expired(&activity, limit, look.as_mut(), &mut watching, peer) {
                            return;
                        }
                    }
                    stage = listener.reached(next) => {
                        if stage == Stage::Closing || !activity.busy() {
                            // Between exchanges, or the drain is over:
                            // dropping the connection closes it.
                            return;
                        }
                        // The exchange in progress finishes, with
                        // `Connection: close`.
                        draining.store(true, Ordering::Relaxed);
                        next = Stage::Closing;
                    }
                }
            }
        } else {
            Rewind::new(io)
        };
        let Own {
            gateway,
            info,
            activity,
        } = own;
        let exchanges = activity.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let gateway = gateway.clone();
            let info = info.clone();
            let busy = exchanges.begin(req.version());
            async move {
                let response = gateway.handle(req.map(ClientBody::from), &info).await;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Watched { body, _busy: busy }),
                )
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let mut conn = std::pin::pin!(conn);
        loop {
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, peer = %peer, "Connection ended with an error.");
                    }
                    break;
                }
                () = look.as_mut(), if watching => {
                    if expired(&activity, limit, look.as_mut(), &mut watching, peer) {
                        break;
                    }
                }
                stage = listener.reached(next) => {
                    if stage == Stage::Closing {
                        // The drain is over: dropping the connection closes it.
                        break;
                    }
                    // The exchange in progress finishes, then the
                    // connection closes.
                    conn.as_mut().graceful_shutdown();
                    next = Stage::Closing;
                }
            }
        }
    });
}

/// The header-timeout watch fired: looks at the connection's exchanges and
/// moves the timer, stops watching (HTTP/2), or says the connection has
/// been idle for the whole timeout and is to be closed, with no answer (as
/// hyper's own header timeout does).
fn expired(
    activity: &Activity,
    limit: Duration,
    look: Pin<&mut tokio::time::Sleep>,
    watching: &mut bool,
    peer: SocketAddr,
) -> bool {
    match activity.look(limit) {
        Look::Again(at) => look.reset(at),
        Look::Stop => *watching = false,
        Look::Expired => {
            tracing::debug!(peer = %peer, "No request head within the header timeout; closing.");
            return true;
        }
    }
    false
}

/// What Portico's own HTTP/1.1 server calls on: the gateway, and the
/// connection's facts and watch.
struct Own {
    gateway: Arc<Gateway>,
    info: Arc<ConnectionInfo>,
    activity: Arc<Activity>,
}

impl h1_server::Exchanges for Own {
    type Busy = Busy;

    fn begin(&self) -> Busy {
        self.activity.begin(Version::HTTP_11)
    }

    fn handle(&self, head: Box<Parts>, body: ClientBody) -> impl Future<Output = Answer> + Send {
        self.gateway.answer(head, body, &self.info)
    }
}

/// What a connection's header-timeout watch knows of its exchanges. The
/// exchanges of an HTTP/1 connection run on the connection's own task, so
/// the counts are exact when the watch reads them; the atomics are for
/// HTTP/2, whose streams run as tasks of their own and stop the watch.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Exchanges between their request head and the end of their response.
    busy: AtomicU32,
    /// When the last exchange ended, in µs since `start`.
    idle_since: AtomicU64,
    /// The connection speaks HTTP/2: hyper's pings watch it instead.
    h2: AtomicBool,
}

/// What the watch does next.
#[derive(Debug, PartialEq)]
enum Look {
    /// Looks again at this instant.
    Again(tokio::time::Instant),
    /// The connection has been idle for the header timeout: close it.
    Expired,
    /// Stops watching (HTTP/2).
    Stop,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            busy: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
        }
    }

    /// An exchange began; it ends when the returned guard is dropped.
    fn begin(self: &Arc<Self>, version: Version) -> Busy {
        if version == Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Whether an exchange is in progress.
    fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// `limit` after the connection went idle.
    fn deadline(&self, limit: Duration) -> tokio::time::Instant {
        let idle = Duration::from_micros(self.idle_since.load(Ordering::Relaxed));
        let at = self.start.checked_add(idle.saturating_add(limit));
        // A limit too far to represent: a year is as good as never.
        tokio::time::Instant::from_std(
            at.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400)),
        )
    }

    fn look(&self, limit: Duration) -> Look {
        if self.h2.load(Ordering::Relaxed) {
            return Look::Stop;
        }
        if self.busy.load(Ordering::Acquire) > 0 {
            // An exchange is in progress: the earliest the connection can
            // expire is `limit` after now.
            return Look::Again(tokio::time::Instant::now() + limit);
        }
        let due = self.deadline(limit);
        if tokio::time::Instant::now() >= due {
            Look::Expired
        } else {
            Look::Again(due)
        }
    }
}

/// An exchange in progress on a connection; dropped with the response body
/// (written whole, or given up) or with the request's handler.
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.micros(), Ordering::Relaxed);
        a.busy.fetch_sub(1, Ordering::Release);
    }
}

/// A response body holding its exchange's [`Busy`].
struct Watched<B> {
    body: B,
    _busy: Busy,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_idle_connection_expires_after_the_limit() {
        let a = Arc::new(Activity::new());
        let limit = Duration::from_secs(30);
        let Look::Again(at) = a.look(limit) else {
            panic!("a fresh connection expired");
        };
        assert!(at >= tokio::time::Instant::from_std(a.start) + limit);
        // Busy: never expires, however long the exchange takes.
        let busy = a.begin(Version::HTTP_11);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(matches!(a.look(Duration::from_millis(5)), Look::Again(_)));
        drop(busy);
        // Idle again: the limit counts from the end of the exchange.
        assert!(matches!(a.look(Duration::from_secs(1)), Look::Again(_)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.look(Duration::from_millis(5)), Look::Expired);
    }

    #[tokio::test]
    async fn http2_stops_the_watch() {
        let a = Arc::new(Activity::new());
        drop(a.begin(Version::HTTP_2));
        assert_eq!(a.look(Duration::from_millis(1)), Look::Stop);
    }
}
