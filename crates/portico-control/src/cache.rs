//! `DELETE /admin/v1/apis/{name}/cache`: forgets every cached response of
//! an API, in memory and in Redis. A purge bumps the API's generation in
//! each backend (O(1)); older entries are never served again and expire on
//! their own. With Redis the bump reaches every node that shares it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portico_model::ErrorCode;
use portico_store::{Kind, Role};

use crate::AdminState;
use crate::auth::Caller;
use crate::problem::problem;
use crate::rbac;

/// 204 once purged; 404 when the live configuration has no such API; 503
/// when Redis could not be reached (the in-process entries are gone).
/// Admins and publishers (who may change the API) may purge.
pub(crate) async fn purge(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    if rbac::entity(caller.role(), Kind::Api, rbac::Access::Write) != rbac::Verdict::Allowed
        || caller.role() == Role::Consumer
    {
        return rbac::refuse(
            &state.store,
            &caller,
            "purge the cache of",
            "api",
            &name,
            None,
        )
        .await
        .into_response();
    }
    match state.gateway.purge_cache(&name).await {
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
