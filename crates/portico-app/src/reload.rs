//! Reloading a running node: one code path for `App::reload`, SIGHUP and
//! `POST /admin/v1/reload`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use std::time::Duration;

use portico_config::{Compiled, Diagnostic, Diagnostics, compile_with, entity_documents};
use portico_control::{ConfigError, Reload, ReloadRefused, ReloadSummary};
use portico_gateway::Gateway;
use portico_gateway::tls::{self, TlsError, TlsTerminator};
use portico_model::NodeSettings;
use portico_store::{Actor, ApplyOptions, Diff, Prune, Store};
use serde_json::Value;
use tokio::sync::{Notify, watch};

/// What a reload published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// APIs in the new snapshot.
    pub apis: usize,
    /// Whether new TLS certificates or trust stores were installed.
    pub tls_changed: bool,
    /// Settings that changed but take effect at the next restart.
    pub restart: Vec<&'static str>,
}

/// Why a reload published nothing. The running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the node runs without a configuration file, so there is nothing to re-read")]
    NoFile,
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has {} error(s)", path.display(), diagnostics.len())]
    Invalid {
        path: PathBuf,
        diagnostics: Diagnostics,
    },
    #[error("the store refused the change or cannot be reached: {0}")]
    Store(#[source] portico_store::Error),
}

/// The configuration file a node runs with: its text supplies the node's
/// own settings, and its entities seed the store.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// The file's text; `None` on the embedded defaults (nothing to seed).
    pub text: Option<String>,
    /// The directory relative paths in the file are read from.
    pub dir: PathBuf,
}

impl ConfigSource {
    /// The text the node's settings are compiled from.
    fn base(&self) -> &str {
        self.text.as_deref().unwrap_or("")
    }
}

/// The parts of a running node that a reload or a publication changes,
/// shared with the admin listener.
#[derive(Debug)]
pub(crate) struct NodeControl {
    gateway: Arc<Gateway>,
    /// The settings the listeners were started with.
    node: NodeSettings,
    tls: Option<Arc<TlsTerminator>>,
    file: Option<PathBuf>,
    pub(crate) store: Store,
    /// The configuration the node's settings come from; replaced when the
    /// file is reloaded.
    source: ArcSwap<ConfigSource>,
    /// One rebuild at a time, so two cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
    /// The configuration version the live snapshot was built from.
    published: watch::Sender<i64>,
    /// Asks the publication loop to look at the store now.
    pub(crate) nudge: Notify,
    /// The version whose compile failed, so the loop does not retry it
    /// every poll.
    failed: AtomicI64,
    /// When the earliest key of the live snapshot expires (ms since the
    /// epoch; `i64::MAX` for none): the loop rebuilds then.
    pub(crate) next_expiry: AtomicI64,
}

/// The actor the audit log names for changes a node's file makes.
const FILE_ACTOR: &str = "file";
/// The seeding source of node configuration files ([`Prune::Source`]).
const FILE_SOURCE: &str = "file";

impl NodeControl {
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        node: NodeSettings,
        tls: Option<Arc<TlsTerminator>>,
        file: Option<PathBuf>,
        store: Store,
        source: ConfigSource,
    ) -> Self {
        Self {
            gateway,
            node,
            tls,
            file,
            store,
            source: ArcSwap::from_pointee(source),
            reloading: tokio::sync::Mutex::new(()),
            published: watch::channel(-1).0,
            nudge: Notify::new(),
            failed: AtomicI64::new(-1),
            next_expiry: AtomicI64::new(i64::MAX),
        }
    }

    fn source(&self) -> Arc<ConfigSource> {
        self.source.load_full()
    }

    /// The configuration version the live snapshot was built from.
    pub(crate) fn published_version(&self) -> i64 {
        *self.published.borrow()
    }

    /// Waits until the live snapshot reflects `version` or later, nudging
    /// the publication loop; gives up after `wait`.
    pub(crate) async fn wait_published(&self, version: i64, wait: Duration) -> bool {
        self.nudge.notify_one();
        let mut rx = self.published.subscribe();
        tokio::time::timeout(wait, rx.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Compiles `entities` with the node's settings, off the runtime's
    /// workers: what the admin API runs before it commits a change.
    pub(crate) async fn check_entities(&self, entities: Value) -> Result<(), Diagnostics> {
        let source = self.source();
        tokio::task::spawn_blocking(move || {
            compile_with(source.base(), &source.dir, &entities).map(drop)
        })
        .await
        .unwrap_or_else(|e| Err(join_failed(&e)))
    }

    /// Makes the store hold the entities of `source`'s file: creates and
    /// updates what differs, deletes what an earlier version of the file
    /// put there and this one no longer lists. Entities made through the
    /// admin API stay.
    pub(crate) async fn seed(&self, source: &ConfigSource) -> Result<Diff, ReloadError> {
        let Some(text) = source.text.clone() else {
            return Ok(Diff::default());
        };
        let dir = source.dir.clone();
        let documents = tokio::task::spawn_blocking(move || entity_documents(&text, &dir))
            .await
            .unwrap_or_else(|e| Err(join_failed(&e)))
            .map_err(|diagnostics| ReloadError::Invalid {
                path: self.file_path(),
                diagnostics,
            })?;
        let diff = self
            .seed_source(FILE_SOURCE, FILE_ACTOR, &documents)
            .await?;
        if !diff.is_empty() {
            tracing::info!(
                changes = diff.changes.len(),
                "The configuration file updated the store."
            );
        }
        Ok(diff)
    }

    /// Makes the store hold the built-in demo's entities (`on`), or none of
    /// them; the entities of other sources are left alone.
    pub(crate) async fn seed_demo(&self, on: bool) -> Result<Diff, ReloadError> {
        let documents = if on {
            entity_documents(&crate::demo::config(), std::path::Path::new(".")).map_err(
                |diagnostics| ReloadError::Invalid {
                    path: PathBuf::from("(the built-in demo)"),
                    diagnostics,
                },
            )?
        } else {
            Value::Object(
                portico_config::ENTITY_SECTIONS
                    .iter()
                    .map(|s| ((*s).to_owned(), Value::Array(Vec::new())))
                    .collect(),
            )
        };
        let diff = self
            .seed_source(crate::demo::SOURCE, crate::demo::SOURCE, &documents)
            .await?;
        if !diff.is_empty() {
            tracing::info!(
                changes = diff.changes.len(),
                demo = on,
                "The built-in demo updated the store."
            );
        }
        Ok(diff)
    }

    /// Makes the entities that seeding `source` put in the store match
    /// `documents` in one transaction, written as `actor`; entities of other
    /// sources and of the admin API stay.
    async fn seed_source(
        &self,
        source: &str,
        actor: &str,
        documents: &Value,
    ) -> Result<Diff, ReloadError> {
        let options = ApplyOptions {
            prune: Prune::Source(source.to_owned()),
            dry_run: false,
        };
        self.store
            .apply(&Actor::new(actor), documents, &options)
            .await
            .map_err(ReloadError::Store)
    }

    fn file_path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| PathBuf::from("(configuration)"))
    }

    /// Builds a snapshot from the store's entities and the node's settings
    /// and publishes it. The store's state is read in one transaction, so
    /// the snapshot reflects exactly one configuration version.
    pub(crate) async fn rebuild(&self) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        self.rebuild_locked().await
    }

    async fn rebuild_locked(&self) -> Result<Reloaded, ReloadError> {
        let export = self.store.export().await.map_err(ReloadError::Store)?;
        let version = export.version;
        let source = self.source();
        let compiled = tokio::task::spawn_blocking(move || {
            compile_with(source.base(), &source.dir, &export.document)
                .map(|c| (c, export.next_expiry))
        })
        .await
        .unwrap_or_else(|e| Err(join_failed(&e)));
        let (compiled, next_expiry) = match compiled {
            Ok(c) => c,
            Err(diagnostics) => {
                self.failed.store(version, Ordering::Relaxed);
                return Err(ReloadError::Invalid {
                    path: PathBuf::from(format!("the store (configuration version {version})")),
                    diagnostics,
                });
            }
        };
        let done = self
            .apply(compiled)
            .map_err(|diagnostics| ReloadError::Invalid {
                path: self.file_path(),
                diagnostics,
            })?;
        self.next_expiry
            .store(next_expiry.unwrap_or(i64::MAX), Ordering::Relaxed);
        self.published.send_replace(version);
        Ok(done)
    }

    /// Whether the store's version differs from the live one (and is not a
    /// version already found not to compile).
    pub(crate) async fn behind(&self) -> Result<bool, portico_store::Error> {
        let version = self.store.config_version().await?;
        Ok(version != self.published_version() && version != self.failed.load(Ordering::Relaxed))
    }

    /// Reads the TLS files, then publishes the snapshot and the TLS
    /// configuration; nothing is published if a TLS file is unusable.
    pub(crate) fn apply(&self, config: Compiled) -> Result<Reloaded, Diagnostics> {
        let Compiled { node, snapshot } = config;
        let mut restart = Vec::new();
        if node.proxy_listen != self.node.proxy_listen {
            restart.push("server.proxy.listen");
        }
        let prepared = match (&self.tls, &node.proxy_tls) {
            (Some(_), Some(settings)) => {
                let started = self.node.proxy_tls.as_ref().map(|t| t.listen);
                if started != Some(settings.listen) {
                    restart.push("server.proxy.tls.listen");
                }
                Some(tls::prepare(settings).map_err(diagnostics)?)
            }
            // Adding or removing the TLS listener binds or closes a socket.
            (None, Some(_)) | (Some(_), None) => {
                restart.push("server.proxy.tls");
                None
            }
            (None, None) => None,
        };
        if node.admin_listen != self.node.admin_listen {
            restart.push("server.admin");
        }
        if node.access_log != self.node.access_log {
            restart.push("server.access_log");
        }
        if node.workers != self.node.workers {
            restart.push("server.workers");
        }
        if node.header_timeout != self.node.header_timeout {
            restart.push("server.header_timeout");
        }
        if node.max_connections != self.node.max_connections {
            restart.push("server.max_connections");
        }
        if node.shutdown_timeout != self.node.shutdown_timeout {
            restart.push("server.shutdown_timeout");
        }
        if node.storage != self.node.storage || node.redis != self.node.redis {
            restart.push("storage");
        }
        let apis = snapshot.apis.len();
        self.gateway.install(Arc::new(snapshot));
        let tls_changed = match (&self.tls, prepared) {
            (Some(terminator), Some(prepared)) => terminator.install(prepared),
            _ => false,
        };
        Ok(Reloaded {
            apis,
            tls_changed,
            restart,
        })
    }

    /// Re-reads the node's file, seeds the store with its entities and
    /// publishes the result.
    pub(crate) async fn reload_file(self: &Arc<Self>) -> Result<Reloaded, ReloadError> {
        let Some(path) = self.file.clone() else {
            tracing::warn!(
                "Reload ignored: the node runs on the embedded defaults, with no file to re-read."
            );
            return Err(ReloadError::NoFile);
        };
        let read = path.clone();
        let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(&read))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| ReloadError::Unreadable {
                path: path.clone(),
                source,
            });
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        let result = match text {
            Ok(text) => {
                self.reload_source(ConfigSource {
                    text: Some(text),
                    dir,
                })
                .await
            }
            Err(e) => Err(e),
        };
        log_reload(&path.display().to_string(), &result);
        result
    }

    /// Publishes a new configuration text as a file reload does: the
    /// settings are checked, the entities seed the store, and the snapshot
    /// is rebuilt from the store.
    pub(crate) async fn reload_source(
        &self,
        source: ConfigSource,
    ) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        self.seed(&source).await?;
        let previous = self.source.swap(Arc::new(source));
        let result = self.rebuild_locked().await;
        if result.is_err() {
            self.source.store(previous);
        }
        result
    }
}

fn log_reload(file: &str, result: &Result<Reloaded, ReloadError>) {
    match result {
        Ok(done) => {
            tracing::info!(file = %file, apis = done.apis, tls_changed = done.tls_changed, "Configuration reloaded.");
            if !done.restart.is_empty() {
                tracing::warn!(keys = ?done.restart, "These settings changed and take effect at the next restart.");
            }
        }
        Err(ReloadError::Invalid { diagnostics, .. }) => {
            for d in diagnostics.iter() {
                tracing::error!(file = %file, "{d}");
            }
            tracing::error!(
                errors = diagnostics.len(),
                "Reload refused: the configuration has errors; still serving the previous one."
            );
        }
        Err(e) => {
            tracing::error!(file = %file, error = %e, "Reload refused; still serving the previous configuration.");
        }
    }
}

fn join_failed(e: &tokio::task::JoinError) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        path: String::new(),
        message: format!("the compiler stopped: {e}"),
        line: None,
        column: None,
    }])
}

/// Reads the files the configuration names (TLS certificates, keys and
/// trust stores) as a start or reload would, without binding anything: for
/// `portico check`. Problems come back placed like compiler diagnostics.
pub fn check_files(compiled: &Compiled) -> Result<(), Diagnostics> {
    match &compiled.node.proxy_tls {
        Some(settings) => tls::prepare(settings).map(drop).map_err(diagnostics),
        None => Ok(()),
    }
}

/// TLS file problems as diagnostics, placed where the files were named.
fn diagnostics(e: TlsError) -> Diagnostics {
    let mut list: Vec<Diagnostic> =
        e.0.into_iter()
            .map(|p| Diagnostic {
                path: p.origin.key,
                message: p.message,
                line: p.origin.line,
                column: p.origin.column,
            })
            .collect();
    list.sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0)));
    Diagnostics(list)
}

/// The node's reload, as the admin listener calls it.
pub(crate) struct AdminReload(pub(crate) Arc<NodeControl>);

impl Reload for AdminReload {
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ReloadSummary, ReloadRefused>> + Send + '_>> {
        Box::pin(async move {
            let file = self
                .0
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            match self.0.reload_file().await {
                Ok(done) => Ok(ReloadSummary {
                    file,
                    apis: done.apis,
                    tls_reloaded: done.tls_changed,
                    restart_required: done.restart.iter().map(|k| (*k).to_owned()).collect(),
                }),
                Err(ReloadError::NoFile) => Err(ReloadRefused::NoFile),
                Err(ReloadError::Invalid { diagnostics, .. }) => Err(ReloadRefused::Invalid {
                    file,
                    errors: ConfigError::all(&diagnostics),
                }),
                Err(e @ (ReloadError::Unreadable { .. } | ReloadError::Store(_))) => {
                    Err(ReloadRefused::Invalid {
                        file,
                        errors: vec![ConfigError {
                            path: String::new(),
                            message: e.to_string(),
                            line: None,
                            column: None,
                        }],
                    })
                }
            }
        })
    }
}

/// The node as the admin API sees it: it compiles a change before the
/// admin API commits it, and waits for a committed change to go live.
pub(crate) struct NodePlane(pub(crate) Arc<NodeControl>);

/// How long the admin API waits for a committed change to go live here
/// before it answers anyway (the publication loop keeps trying).
const PUBLISH_WAIT: Duration = Duration::from_secs(2);

impl portico_control::Plane for NodePlane {
    fn check(
        &self,
        entities: Value,
    ) -> Pin<Box<dyn Future<Output = Result<(), Vec<ConfigError>>> + Send + '_>> {
        Box::pin(async move {
            self.0
                .check_entities(entities)
                .await
                .map_err(|d| ConfigError::all(&d))
        })
    }

    fn published(&self, version: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if !self.0.wait_published(version, PUBLISH_WAIT).await {
                tracing::warn!(
                    version,
                    "A committed change is not live yet; answering anyway, the node keeps trying."
                );
            }
        })
    }
}
