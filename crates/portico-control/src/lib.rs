//! The admin listener. It is a client of the gateway's state and of the
//! store, never of the request path: a scrape or a probe takes no lock that
//! requests wait on, and the proxy never waits for the store.
//!
//! - `/healthz`, `/readyz`, `/metrics`, `/admin/openapi.json` and the
//!   Swagger UI at `/admin/docs` are open.
//! - Everything under `/admin/v1/` needs a bearer token from the store
//!   (`Store::verify_admin_token`); what a token may do follows its user's
//!   role ([`rbac`]). See `docs/admin-api.md`.
//!
//! Every change is compiled with the node's settings ([`Plane::check`])
//! before it is stored, and answered only once this node serves it
//! ([`Plane::published`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use portico_gateway::Gateway;
use portico_model::ErrorCode;
use portico_store::Store;

mod apply;
mod auth;
mod cache;
mod change;
mod credentials;
mod entities;
mod extract;
mod openapi;
mod problem;
mod rbac;
mod reload;
mod users;

pub use auth::{MIN_TOKEN_LEN, TOKEN_ENV, bootstrap_admin_token};
pub use openapi::openapi;
pub use reload::{ConfigError, Reload, ReloadRefused, ReloadSummary, compile_entities};

/// What the admin API needs from the node it runs in.
pub trait Plane: Send + Sync + 'static {
    /// Compiles `entities` — a document `{apis, products, developers, apps}`
    /// in the configuration file's shape (what `Store::export().document`
    /// holds), with the change being made already applied — together with
    /// the node's own settings. Err: every configuration error.
    fn check(
        &self,
        entities: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<(), Vec<ConfigError>>> + Send + '_>>;

    /// Waits (the node bounds the wait to ~2 s) until this node serves
    /// configuration version `version` or later, so a 2xx answer means the
    /// change is live here.
    fn published(&self, version: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The control plane the admin API works on: the store, and the node that
/// compiles and publishes what is stored.
#[derive(Clone)]
pub struct Control {
    pub store: Store,
    pub plane: Arc<dyn Plane>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The state every `/admin/v1` handler gets.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) store: Store,
    pub(crate) plane: Arc<dyn Plane>,
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) reloader: Arc<dyn Reload>,
}

/// The admin routes: the open probes and documents, and the authenticated
/// `/admin/v1` API.
pub fn router(gateway: Arc<Gateway>, control: Control, reloader: Arc<dyn Reload>) -> Router {
    let state = AdminState {
        store: control.store.clone(),
        plane: control.plane,
        gateway: gateway.clone(),
        reloader,
    };
    let v1 = Router::new()
        .route("/reload", post(reload::reload_admin))
        .route("/upstreams", get(upstreams))
        .route("/apis/{name}/health", get(api_health))
        .route("/apis/{name}/cache", delete(cache::purge))
        .route("/me", get(users::me))
        .merge(entities::routes())
        .merge(credentials::routes())
        .merge(users::routes())
        .merge(apply::routes())
        // Behind the token like the routes, so an anonymous caller cannot
        // tell which admin paths exist.
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(extract::refuse_nul))
        .layer(axum::middleware::from_fn_with_state(
            control.store,
            auth::authenticate,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gateway)
        .merge(openapi::routes())
        .nest("/admin/v1", v1)
}

async fn no_route() -> Response {
    problem::problem(
        ErrorCode::NotFound,
        "The admin API has no such resource.",
        None,
    )
}

async fn method_not_allowed() -> Response {
    let mut resp = problem::problem(
        ErrorCode::MethodNotAllowed,
        "The resource does not take this method.",
        None,
    );
    // axum adds `Allow` to the fallback's answer.
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp
}

/// Every API's targets: availability, health check verdict, circuit state.
async fn upstreams(State(state): State<AdminState>, caller: auth::Caller) -> Response {
    if let Err(e) = rbac::health(&state.store, &caller, "upstreams").await {
        return e.into_response();
    }
    json(
        StatusCode::OK,
        &serde_json::json!({ "items": state.gateway.upstream_reports() }),
    )
}

/// One API's targets.
async fn api_health(
    State(state): State<AdminState>,
    caller: auth::Caller,
    Path(name): Path<String>,
) -> Response {
    if let Err(e) = rbac::health(&state.store, &caller, &name).await {
        return e.into_response();
    }
    match state.gateway.upstream_report(&name) {
        Some(report) => json(StatusCode::OK, &report),
        None => problem::problem(
            ErrorCode::NotFound,
            &format!("The live configuration has no API named `{name}`."),
            None,
        ),
    }
}

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Alive: the process answers.
async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
}

/// Ready: a configuration snapshot is live and requests are routed.
async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let (status, body) = if gateway.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no configuration loaded\n")
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gateway.render_metrics(),
    )
}
