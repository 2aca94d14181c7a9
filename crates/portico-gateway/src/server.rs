//! The proxy listener: accepts connections and serves HTTP/1.1 and h2c
//! (prior knowledge) on each, with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::headers::Hop;
use crate::state::Gateway;

/// A client that sends no complete request head within this time is
/// disconnected (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight exchanges before closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Facts about the connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The forwarding headers' view of this client, made once.
    pub(crate) hop: Hop,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, scheme: &'static str) -> Self {
        Self {
            peer,
            scheme,
            hop: Hop::new(peer, scheme),
        }
    }
}

/// Serves the gateway on a bound listener.
#[derive(Debug)]
pub struct ProxyServer {
    listener: TcpListener,
    gateway: Arc<Gateway>,
}

impl ProxyServer {
    pub fn new(listener: TcpListener, gateway: Arc<Gateway>) -> Self {
        Self { listener, gateway }
    }

    /// Accepts until `shutdown` completes, then stops accepting and waits up
    /// to 30 s for open exchanges to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let graceful = GracefulShutdown::new();
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
            let _ = stream.set_nodelay(true);
            let gateway = self.gateway.clone();
            let info = Arc::new(ConnectionInfo::new(peer, "http"));
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                let info = info.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, &info).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, peer = %peer, "Connection ended with an error.");
                }
            });
        }
        drop(self.listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("Shutdown drain timed out; closing the remaining connections.");
        }
    }
}
