//! The admin listener. It is a client of the gateway's state, never of the
//! request path: a scrape or a probe takes no lock that requests wait on.
//!
//! `/healthz`, `/readyz` and `/metrics` are open; everything under
//! `/admin/v1/` needs the admin bearer token ([`AdminAuth`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use portico_gateway::Gateway;
use portico_model::ErrorCode;

mod auth;
mod cache;
mod problem;
mod reload;

pub use auth::{AdminAuth, MIN_TOKEN_LEN, TOKEN_ENV, TokenSource, WeakToken};
pub use reload::{ConfigError, Reload, ReloadRefused, ReloadSummary};

/// The admin routes: the open probes and the authenticated `/admin/v1` API.
pub fn router(gateway: Arc<Gateway>, auth: AdminAuth, reloader: Arc<dyn Reload>) -> Router {
    let health = Router::new()
        .route("/upstreams", get(upstreams))
        .route("/apis/{name}/health", get(api_health))
        .route("/apis/{name}/cache", delete(cache::purge))
        .with_state(gateway.clone());
    let v1 = Router::new()
        .route("/reload", post(reload::reload))
        .with_state(reloader)
        .merge(health)
        // Behind the token like the routes, so an anonymous caller cannot
        // tell which admin paths exist.
        .fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_bearer,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(gateway)
        .nest("/admin/v1", v1)
}

async fn no_route() -> axum::response::Response {
    problem::problem(
        ErrorCode::NotFound,
        "The admin API has no such resource.",
        None,
    )
}

/// Every API's targets: availability, health check verdict, circuit state.
async fn upstreams(State(gateway): State<Arc<Gateway>>) -> Response {
    json(
        StatusCode::OK,
        &serde_json::json!({ "items": gateway.upstream_reports() }),
    )
}

/// One API's targets.
async fn api_health(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    match gateway.upstream_report(&name) {
        Some(report) => json(StatusCode::OK, &report),
        None => problem::problem(
            ErrorCode::NotFound,
            &format!("The live configuration has no API named `{name}`."),
            None,
        ),
    }
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
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
