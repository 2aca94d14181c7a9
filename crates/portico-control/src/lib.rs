//! The admin listener. It is a client of the gateway's state, never of the
//! request path: a scrape or a probe takes no lock that requests wait on.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portico_gateway::{Gateway, problem};
use portico_model::ErrorCode;

/// The admin routes: `/healthz`, `/readyz`, `/metrics`, and the upstream
/// health of the APIs.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/v1/upstreams", get(upstreams))
        .route("/admin/v1/apis/{name}/health", get(api_health))
        .with_state(gateway)
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
        None => {
            let resp = problem::response(
                ErrorCode::NotFound,
                &format!("The live configuration has no API named `{name}`."),
                "",
            );
            resp.map(Body::from)
        }
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
