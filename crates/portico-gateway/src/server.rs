//! The proxy listener: accepts connections and serves HTTP/1.1 and h2c
//! (prior knowledge) on each, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use portico_model::policy::ClientCert;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::headers::Hop;
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
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
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
                        serve(&builder, &stages, open, gateway, info, stream, permit);
                    });
                }
                Some(terminator) => {
                    let acceptor = terminator.acceptor();
                    let builder = builder.clone();
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
                        serve(&builder, &stages, open, gateway, info, tls, permit);
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

/// Serves one connection (plain or TLS) until it closes or shutdown drains it.
fn serve<I>(
    builder: &Arc<auto::Builder<TokioExecutor>>,
    stages: &Shutdown,
    open: OpenConnection,
    gateway: Arc<Gateway>,
    info: ConnectionInfo,
    io: I,
    permit: OwnedSemaphorePermit,
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
    let info = Arc::new(info);
    let service = service_fn(move |req| {
        let gateway = gateway.clone();
        let info = info.clone();
        async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, &info).await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let listener = stages.listener();
    tokio::spawn(async move {
        // Held for the connection's life: it counts against the limit and
        // towards the drain.
        let _permit = permit;
        let _open = open;
        let mut conn = std::pin::pin!(conn);
        let mut next = Stage::Draining;
        loop {
            tokio::select! {
                biased;
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, peer = %peer, "Connection ended with an error.");
                    }
                    break;
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
