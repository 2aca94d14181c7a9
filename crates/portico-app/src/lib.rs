//! One node: compiled configuration in, listeners bound, requests served.
//! The binary and the test harness both start nodes through [`App::start`],
//! so what the tests run is what ships.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use portico_config::Compiled;
use portico_gateway::{AccessLogSink, Gateway, Metrics, ProxyServer};
use portico_model::AccessLog;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({listener} listener): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("cannot open the access log: {0}")]
    AccessLog(io::Error),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] portico_gateway::tls::TlsError),
}

/// Overrides applied on top of the configuration file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub proxy_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
}

/// A running node.
#[derive(Debug)]
pub struct App {
    gateway: Arc<Gateway>,
    /// The node settings the listeners were started with.
    node: portico_model::NodeSettings,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Binds the proxy and admin listeners, installs the snapshot and starts
    /// serving on the current Tokio runtime.
    pub async fn start(config: Compiled, overrides: Overrides) -> Result<App, StartError> {
        let Compiled { node, snapshot } = config;
        let metrics = Arc::new(Metrics::new());
        let access_log = match &node.access_log {
            AccessLog::Off => None,
            AccessLog::Stdout => {
                Some(AccessLogSink::stdout(metrics.clone()).map_err(StartError::AccessLog)?)
            }
            AccessLog::File(path) => {
                Some(AccessLogSink::file(path, metrics.clone()).map_err(StartError::AccessLog)?)
            }
        };
        let gateway = Arc::new(Gateway::new(metrics, access_log));

        let admin_addr = overrides.admin_listen.unwrap_or(node.admin_listen);
        let admin = bind("admin", admin_addr).await?;
        let proxy_addr = overrides.proxy_listen.unwrap_or(node.proxy_listen);
        let proxy = bind("proxy", proxy_addr).await?;
        let proxy_addr = proxy.local_addr().unwrap_or(proxy_addr);
        let admin_addr = admin.local_addr().unwrap_or(admin_addr);
        let tls = match &node.proxy_tls {
            Some(settings) => {
                let acceptor = portico_gateway::tls::acceptor(settings)?;
                let listener = bind("proxy TLS", settings.listen).await?;
                Some((listener, acceptor))
            }
            None => None,
        };
        let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());

        let (stop, stopped) = watch::channel(false);
        let admin_router = portico_control::router(gateway.clone());
        let mut admin_stop = stopped.clone();
        let admin_task = tokio::spawn(async move {
            let serve = axum::serve(admin, admin_router).with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "Admin listener failed.");
            }
        });

        gateway.install(Arc::new(snapshot));
        let mut tasks = vec![admin_task];
        let connections = Arc::new(tokio::sync::Semaphore::new(node.max_connections));
        if let Some((listener, acceptor)) = tls {
            let mut tls_stop = stopped.clone();
            let server = ProxyServer::new(listener, gateway.clone())
                .with_tls(acceptor)
                .with_drain_timeout(node.shutdown_timeout)
                .with_connection_limit(connections.clone())
                .with_header_timeout(node.header_timeout);
            tasks.push(tokio::spawn(server.run(async move {
                let _ = tls_stop.wait_for(|s| *s).await;
            })));
        }
        let mut proxy_stop = stopped;
        let server = ProxyServer::new(proxy, gateway.clone())
            .with_drain_timeout(node.shutdown_timeout)
            .with_connection_limit(connections)
            .with_header_timeout(node.header_timeout);
        tasks.push(tokio::spawn(server.run(async move {
            let _ = proxy_stop.wait_for(|s| *s).await;
        })));
        match tls_addr {
            Some(tls) => {
                tracing::info!(proxy = %proxy_addr, tls = %tls, admin = %admin_addr, "Portico is serving.")
            }
            None => tracing::info!(proxy = %proxy_addr, admin = %admin_addr, "Portico is serving."),
        }
        Ok(App {
            gateway,
            node,
            proxy_addr,
            admin_addr,
            tls_addr,
            stop,
            tasks,
        })
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The TLS proxy listener's address, when one is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Publishes the entities of a newly compiled configuration in one swap;
    /// requests in flight finish on the snapshot they started with, and
    /// connection pools and counters of unchanged APIs carry over. Node
    /// settings (listeners, storage, logging) need a restart: the ones that
    /// differ are returned so the caller can say so.
    pub fn reload(&self, config: Compiled) -> Vec<&'static str> {
        let Compiled { node, snapshot } = config;
        let mut restart = Vec::new();
        if node.proxy_listen != self.node.proxy_listen || node.proxy_tls != self.node.proxy_tls {
            restart.push("server.proxy");
        }
        if node.admin_listen != self.node.admin_listen {
            restart.push("server.admin");
        }
        if node.access_log != self.node.access_log {
            restart.push("server.access_log");
        }
        if node.workers != self.node.workers {
            restart.push("server.workers");
        }
        if node.storage != self.node.storage || node.redis != self.node.redis {
            restart.push("storage");
        }
        self.gateway.install(Arc::new(snapshot));
        restart
    }

    /// Stops accepting, drains in-flight exchanges (up to 30 s), and returns
    /// when the listeners are closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}
