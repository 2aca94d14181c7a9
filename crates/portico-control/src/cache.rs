//! `DELETE /admin/v1/apis/{name}/cache`: forgets every cached response of
//! an API, in memory and in Redis. A purge bumps the API's generation in
//! each backend (O(1)); older entries are never served again and expire on
//! their own. With Redis the bump reaches every node that shares it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portico_gateway::Gateway;
use portico_model::ErrorCode;

use crate::problem::problem;

/// 204 once purged; 404 when the live configuration has no such API; 503
/// when Redis could not be reached (the in-process entries are gone).
pub(crate) async fn purge(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Response {
    match gateway.purge_cache(&name).await {
        Some(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Some(Err(e)) => problem(
            ErrorCode::CacheUnavailable,
            &format!("The cache of API `{name}` could not be purged in Redis: {e}. Retry."),
            None,
        ),
        None => problem(
            ErrorCode::NotFound,
            &format!("The live configuration has no API named `{name}`."),
            None,
        ),
    }
}
