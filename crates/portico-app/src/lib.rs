//! One node: compiled configuration in, listeners bound, requests served.
//! The binary and the test harness both start nodes through [`App::start`],
//! so what the tests run is what ships.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use portico_config::Compiled;
use portico_counters::NodeCounters;
use portico_gateway::tls::TlsTerminator;
use portico_gateway::{AccessLogSink, Gateway, Metrics, ProxyServer};
use portico_model::AccessLog;
use portico_model::node::Storage;
use portico_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod demo;
mod publish;
mod reload;

pub use publish::DEFAULT_POLL;
use reload::{AdminReload, NodeControl, NodePlane};
pub use reload::{ConfigSource, ReloadError, Reloaded, check_files};

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
    #[error("cannot set the admin token: {0}")]
    AdminToken(#[source] portico_store::Error),
    #[error("cannot set up the counters for limits: {0}")]
    Counters(#[from] portico_counters::StartError),
    #[error("cannot open the store: {0}")]
    Store(#[source] portico_store::Error),
    #[error("{0}")]
    Config(#[source] ReloadError),
}

/// Overrides applied on top of the configuration file, and what the node
/// needs to know besides it.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub proxy_listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// The file the configuration was read from; SIGHUP and `POST
    /// /admin/v1/reload` re-read it. `None`: the node cannot reload.
    pub config_file: Option<PathBuf>,
    /// An admin token to import for the user `admin`, instead of
    /// `PORTICO_ADMIN_TOKEN`. With neither, a node whose store has no
    /// usable admin token issues one and prints it once on standard error.
    pub admin_token: Option<String>,
    /// Where the access log goes, instead of the file's `server.access_log`.
    pub access_log: Option<AccessLog>,
    /// Where the store is, instead of the file's `storage`.
    pub storage: Option<Storage>,
    /// How often the store's configuration version is polled (default
    /// [`DEFAULT_POLL`]); PostgreSQL's notifications arrive sooner.
    pub poll_interval: Option<std::time::Duration>,
    /// Also serve the built-in demo API ([`demo`]), backed by the mock
    /// upstream. A start without it removes the demo's entities again.
    pub demo: bool,
}

/// A running node.
#[derive(Debug)]
pub struct App {
    gateway: Arc<Gateway>,
    proxy_addr: SocketAddr,
    admin_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    control: Arc<NodeControl>,
    counters: NodeCounters,
}

impl App {
    /// Opens the store, seeds it with the entities of `source` (the file
    /// `config` was compiled from), binds the proxy and admin listeners,
    /// publishes the snapshot built from the store and starts serving on
    /// the current Tokio runtime.
    pub async fn start(
        config: Compiled,
        source: ConfigSource,
        overrides: Overrides,
    ) -> Result<App, StartError> {
        let Compiled { node, snapshot: _ } = config;
        let storage = overrides
            .storage
            .clone()
            .unwrap_or_else(|| node.storage.clone());
        let store = Store::open(&storage_url(&storage))
            .await
            .map_err(StartError::Store)?;
        let metrics = Arc::new(Metrics::new());
        let access_log = match overrides.access_log.as_ref().unwrap_or(&node.access_log) {
            AccessLog::Off => None,
            AccessLog::Stdout => {
                Some(AccessLogSink::stdout(metrics.clone()).map_err(StartError::AccessLog)?)
            }
            AccessLog::File(path) => {
                Some(AccessLogSink::file(path, metrics.clone()).map_err(StartError::AccessLog)?)
            }
        };
        // Node-wide, not per snapshot: counts survive reloads.
        let counters = NodeCounters::start(node.redis.as_ref(), storage.data_dir()).await?;
        // Node-wide too: cached responses survive reloads.
        let cache =
            portico_counters::cache::cache_stores(node.redis.as_ref(), node.cache_max_size)?;
        let gateway = Arc::new(
            Gateway::new(metrics, access_log)
                .with_counters(counters.counters().clone())
                .with_cache(cache),
        );

        let admin_addr = overrides.admin_listen.unwrap_or(node.admin_listen);
        let admin = bind("admin", admin_addr).await?;
        let proxy_addr = overrides.proxy_listen.unwrap_or(node.proxy_listen);
        let proxy = bind("proxy", proxy_addr).await?;
        let proxy_addr = proxy.local_addr().unwrap_or(proxy_addr);
        let admin_addr = admin.local_addr().unwrap_or(admin_addr);
        let tls = match &node.proxy_tls {
            Some(settings) => {
                let terminator = Arc::new(TlsTerminator::new(settings)?);
                let listener = bind("proxy TLS", settings.listen).await?;
                Some((listener, terminator))
            }
            None => None,
        };
        let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let control = Arc::new(NodeControl::new(
            gateway.clone(),
            node.clone(),
            tls.as_ref().map(|(_, t)| t.clone()),
            overrides.config_file,
            store,
            source.clone(),
        ));
        control
            .seed_demo(overrides.demo)
            .await
            .map_err(StartError::Config)?;
        control.seed(&source).await.map_err(StartError::Config)?;
        control.rebuild().await.map_err(StartError::Config)?;
        // An empty variable is an unset one (`PORTICO_ADMIN_TOKEN= portico serve`).
        let env_token = std::env::var(portico_control::TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty());
        let token = overrides.admin_token.as_deref().or(env_token.as_deref());
        let generated = portico_control::bootstrap_admin_token(&control.store, token)
            .await
            .map_err(StartError::AdminToken)?;
        if let Some(token) = generated {
            // Shown once, on stderr and not through the log, which may be
            // shipped elsewhere; the store keeps only its digest.
            eprintln!(
                "Admin API token for user `admin` (shown once; set {} to choose it): {token}",
                portico_control::TOKEN_ENV
            );
        }

        let (stop, stopped) = watch::channel(false);
        let admin_router = portico_control::router(
            gateway.clone(),
            portico_control::Control {
                store: control.store.clone(),
                plane: Arc::new(NodePlane(control.clone())),
            },
            Arc::new(AdminReload(control.clone())),
        );
        let mut admin_stop = stopped.clone();
        let admin_task = tokio::spawn(async move {
            let serve = axum::serve(admin, admin_router).with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "Admin listener failed.");
            }
        });

        let mut tasks = vec![admin_task];
        tasks.push(tokio::spawn(publish::run(
            control.clone(),
            overrides.poll_interval.unwrap_or(DEFAULT_POLL),
            stopped.clone(),
        )));
        let connections = Arc::new(tokio::sync::Semaphore::new(node.max_connections));
        if let Some((listener, terminator)) = tls {
            let mut watch_stop = stopped.clone();
            tasks.push(tokio::spawn(terminator.clone().watch(async move {
                let _ = watch_stop.wait_for(|s| *s).await;
            })));
            let mut tls_stop = stopped.clone();
            let server = ProxyServer::new(listener, gateway.clone())
                .with_tls(terminator)
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
            proxy_addr,
            admin_addr,
            tls_addr,
            stop,
            tasks,
            control,
            counters,
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

    /// Publishes a new configuration text as a reload of the node's file
    /// does: its entities seed the store (what an earlier version of the
    /// text put there and this one drops is deleted), then the snapshot is
    /// rebuilt from the store and published in one step with the TLS
    /// certificates and trust store (whose files are read now). If anything
    /// is refused nothing is published. Requests in flight finish on the
    /// snapshot they started with, and connection pools and counters of
    /// unchanged APIs carry over. Other node settings (listeners, storage,
    /// logging) need a restart: the ones that differ are listed.
    pub async fn reload(&self, source: ConfigSource) -> Result<Reloaded, ReloadError> {
        self.control.reload_source(source).await
    }

    /// The store the node publishes from.
    pub fn store(&self) -> &Store {
        &self.control.store
    }

    /// The configuration version the live snapshot was built from.
    pub fn config_version(&self) -> i64 {
        self.control.published_version()
    }

    /// Re-reads the file the node was started from, compiles it off the
    /// request path and publishes it as [`App::reload`] does; the outcome
    /// is logged. SIGHUP and `POST /admin/v1/reload` both come here.
    pub async fn reload_file(&self) -> Result<Reloaded, ReloadError> {
        self.control.reload_file().await
    }

    /// Stops accepting, drains in-flight exchanges (up to 30 s), and returns
    /// when the listeners are closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // After the drain, so the last requests are in the saved quotas.
        let counters = self.counters;
        let _ = tokio::task::spawn_blocking(move || counters.save()).await;
    }
}

/// The store URL of a `storage` setting.
fn storage_url(storage: &Storage) -> String {
    match storage {
        Storage::Sqlite(path) => format!("sqlite://{}", path.display()),
        Storage::Postgres(url) => url.clone(),
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
