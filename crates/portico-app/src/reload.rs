//! Reloading a running node: one code path for `App::reload`, SIGHUP and
//! `POST /admin/v1/reload`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use portico_config::{Compiled, Diagnostic, Diagnostics, compile_in};
use portico_control::{ConfigError, Reload, ReloadRefused, ReloadSummary};
use portico_gateway::Gateway;
use portico_gateway::tls::{self, TlsError, TlsTerminator};
use portico_model::NodeSettings;

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
}

/// The parts of a running node that a reload changes, shared with the
/// admin listener.
#[derive(Debug)]
pub(crate) struct NodeControl {
    gateway: Arc<Gateway>,
    /// The settings the listeners were started with.
    node: NodeSettings,
    tls: Option<Arc<TlsTerminator>>,
    file: Option<PathBuf>,
    /// One file reload at a time, so two cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
}

impl NodeControl {
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        node: NodeSettings,
        tls: Option<Arc<TlsTerminator>>,
        file: Option<PathBuf>,
    ) -> Self {
        Self {
            gateway,
            node,
            tls,
            file,
            reloading: tokio::sync::Mutex::new(()),
        }
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

    pub(crate) async fn reload_file(self: &Arc<Self>) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let Some(path) = self.file.clone() else {
            tracing::warn!(
                "Reload ignored: the node runs on the embedded defaults, with no file to re-read."
            );
            return Err(ReloadError::NoFile);
        };
        let this = self.clone();
        let file = path.clone();
        // Reading, compiling and the TLS files are blocking work that grows
        // with the configuration: keep it off the request path's workers.
        let result = tokio::task::spawn_blocking(move || {
            let text =
                std::fs::read_to_string(&file).map_err(|source| ReloadError::Unreadable {
                    path: file.clone(),
                    source,
                })?;
            let invalid = |diagnostics| ReloadError::Invalid {
                path: file.clone(),
                diagnostics,
            };
            let dir = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let compiled = compile_in(&text, dir).map_err(invalid)?;
            this.apply(compiled).map_err(invalid)
        })
        .await
        .unwrap_or_else(|e| {
            Err(ReloadError::Unreadable {
                path: path.clone(),
                source: std::io::Error::other(e),
            })
        });
        let file = path.display();
        match &result {
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
        result
    }
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
                    errors: diagnostics
                        .iter()
                        .map(|d| ConfigError {
                            path: d.path.clone(),
                            message: d.message.clone(),
                            line: d.line,
                            column: d.column,
                        })
                        .collect(),
                }),
                Err(e @ ReloadError::Unreadable { .. }) => Err(ReloadRefused::Invalid {
                    file,
                    errors: vec![ConfigError {
                        path: String::new(),
                        message: e.to_string(),
                        line: None,
                        column: None,
                    }],
                }),
            }
        })
    }
}
