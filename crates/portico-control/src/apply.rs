//! `POST /admin/v1/apply` and `GET /admin/v1/export`: the whole set of
//! entities at once, what `portico apply` sends and `portico export`
//! prints.
//!
//! An apply is compiled whole before anything is stored: with `prune` the
//! desired state is the configuration; without it, the desired entities
//! laid over the stored ones. The store then makes the changes in one
//! transaction (`Store::apply`) and answers with the diff.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use portico_model::ErrorCode;
use portico_store::{ApplyOptions, Kind, Prune};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AdminState;
use crate::auth::Caller;
use crate::change::{self, Change};
use crate::extract::Json;
use crate::problem::ApiError;
use crate::rbac;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/export", get(export))
        .route("/apply", post(apply))
}

/// `POST /admin/v1/apply`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyRequest {
    /// `{apis, products, developers, apps}` in the configuration file's
    /// shape; an API's `spec` is the spec's text.
    #[schema(value_type = Object)]
    pub(crate) entities: Value,
    /// Delete stored entities the request does not list.
    #[serde(default)]
    pub(crate) prune: bool,
    /// Compute the diff and store nothing.
    #[serde(default)]
    pub(crate) dry_run: bool,
}

/// What an apply changed (or, for a dry run, would change).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DiffView {
    pub(crate) changes: Vec<ChangeView>,
    /// The configuration version after the commit; null for a dry run or
    /// when nothing changed.
    pub(crate) version: Option<i64>,
}

/// One entity's change.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChangeView {
    /// `create`, `update` or `delete`.
    pub(crate) action: String,
    /// `api`, `product`, `developer` or `app`.
    pub(crate) kind: String,
    pub(crate) name: String,
}

async fn apply(
    State(state): State<AdminState>,
    caller: Caller,
    Json(request): Json<ApplyRequest>,
) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "apply", "configuration", "*").await?;
    let ApplyRequest {
        entities,
        prune,
        dry_run,
    } = request;
    let Value::Object(sections) = &entities else {
        return Err(ApiError::new(
            ErrorCode::InvalidEntity,
            "`entities` is an object with `apis`, `products`, `developers` and `apps`.",
        ));
    };
    if let Some(other) = sections
        .keys()
        .find(|k| !Kind::ALL.iter().any(|kind| kind.section() == k.as_str()))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidEntity,
            format!("`entities.{other}` is not an entity section."),
        ));
    }
    let desired = if prune {
        entities.clone()
    } else {
        let mut merged = state.store.export().await?.document;
        for kind in Kind::ALL {
            for doc in sections
                .get(kind.section())
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(name) = doc.get(kind.key()).and_then(Value::as_str) else {
                    return Err(ApiError::new(
                        ErrorCode::InvalidEntity,
                        format!(
                            "A {} in `{}` has no `{}`.",
                            kind.noun(),
                            kind.section(),
                            kind.key()
                        ),
                    ));
                };
                change::apply(
                    &mut merged,
                    Change::Put {
                        kind,
                        name,
                        document: doc,
                    },
                );
            }
        }
        merged
    };
    state
        .plane
        .check(desired)
        .await
        .map_err(ApiError::Invalid)?;
    let options = ApplyOptions {
        prune: if prune { Prune::All } else { Prune::None },
        dry_run,
    };
    let diff = state
        .store
        .apply(&caller.actor(), &entities, &options)
        .await?;
    if diff.version.is_some() {
        change::publish(&state).await;
    }
    let view = DiffView {
        changes: diff
            .changes
            .iter()
            .map(|c| ChangeView {
                action: serde_json::to_value(c.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                kind: c.kind.to_owned(),
                name: c.name.clone(),
            })
            .collect(),
        version: diff.version,
    };
    Ok(crate::json(StatusCode::OK, &view))
}

/// The store's entities at one configuration version. Admins only: apps
/// carry their key digests.
async fn export(State(state): State<AdminState>, caller: Caller) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "export", "configuration", "*").await?;
    let export = state.store.export().await?;
    let mut resp = crate::json(StatusCode::OK, &export.document);
    if let Ok(v) = axum::http::HeaderValue::from_str(&export.version.to_string()) {
        resp.headers_mut().insert("portico-config-version", v);
    }
    Ok(resp)
}
