//! `POST /admin/v1/reload`: re-read the node's configuration file and
//! publish it whole, the same path as SIGHUP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_model::ErrorCode;
use serde::Serialize;

use crate::problem::problem;

/// What a successful reload changed.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadSummary {
    /// The configuration file that was read.
    pub file: String,
    /// APIs in the new snapshot.
    pub apis: usize,
    /// Whether new TLS certificates or trust stores were installed.
    pub tls_reloaded: bool,
    /// Settings that changed but take effect at the next restart.
    pub restart_required: Vec<String>,
}

/// One configuration error, as `portico check` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigError {
    /// Key path such as `apis[0].upstream`; empty for the whole file.
    pub path: String,
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl From<&portico_config::Diagnostic> for ConfigError {
    fn from(d: &portico_config::Diagnostic) -> Self {
        Self {
            path: d.path.clone(),
            message: d.message.clone(),
            line: d.line,
            column: d.column,
        }
    }
}

impl ConfigError {
    /// Every diagnostic of a failed compile, in order.
    pub fn all(diagnostics: &portico_config::Diagnostics) -> Vec<Self> {
        diagnostics.iter().map(Self::from).collect()
    }
}

/// Compiles `entities` (the file's entity sections as JSON) with the
/// default node settings: the check of an admin API that runs without a
/// node around it (the schemathesis server, tests).
pub fn compile_entities(entities: &serde_json::Value) -> Result<(), Vec<ConfigError>> {
    portico_config::compile_with("", std::path::Path::new("."), entities)
        .map(drop)
        .map_err(|d| ConfigError::all(&d))
}

/// Why a reload published nothing.
#[derive(Clone, Debug)]
pub enum ReloadRefused {
    /// The node runs on the embedded defaults: there is no file to re-read.
    NoFile,
    /// The file could not be read or has errors; the running configuration
    /// stays.
    Invalid {
        file: String,
        errors: Vec<ConfigError>,
    },
}

/// Re-reads and publishes the node's configuration. Implemented by the
/// node (`portico-app`), which owns the file and the running listeners.
pub trait Reload: Send + Sync + 'static {
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ReloadSummary, ReloadRefused>> + Send + '_>>;
}

/// `POST /admin/v1/reload` on the store-backed admin API: admins only.
pub(crate) async fn reload_admin(
    State(state): State<crate::AdminState>,
    caller: crate::auth::Caller,
) -> Response {
    if let Err(e) = crate::rbac::admin(&state.store, &caller, "reload", "node", "*").await {
        return e.into_response();
    }
    reload(State(state.reloader)).await
}

pub(crate) async fn reload(State(reloader): State<Arc<dyn Reload>>) -> Response {
    match reloader.reload().await {
        Ok(summary) => {
            let mut resp = (
                StatusCode::OK,
                serde_json::to_string(&summary).unwrap_or_default(),
            )
                .into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(ReloadRefused::NoFile) => problem(
            ErrorCode::ReloadUnavailable,
            "The node was started without a configuration file, so there is nothing to re-read.",
            None,
        ),
        Err(ReloadRefused::Invalid { file, errors }) => {
            let detail = format!(
                "{file} has {} error{}; the running configuration stays.",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            problem(
                ErrorCode::InvalidConfiguration,
                &detail,
                Some(serde_json::json!({ "errors": errors })),
            )
        }
    }
}
