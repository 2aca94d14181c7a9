//! An app's API keys (`/admin/v1/apps/{name}/keys`) and subscriptions
//! (`/admin/v1/apps/{name}/subscriptions`, `/admin/v1/subscriptions`).
//!
//! A key's plain text is in the answer to the request that made it and
//! nowhere else. The store checks what these changes name (the app, the
//! product) in the same transaction, so they are not compiled first; each
//! is answered once the node serves it.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portico_model::ErrorCode;
use portico_model::units::parse_duration;
use portico_store::{ApiKey, Entity, IssuedKey, Kind, Role, Status, Subscription, now_millis};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::AdminState;
use crate::auth::Caller;
use crate::change;
use crate::extract::{
    Json, JsonOrEmpty, PageQuery, Path, Query, de_millis, etag, expectation, expiry, listing,
    percent_encode,
};
use crate::problem::ApiError;
use crate::rbac::{self, Access, Verdict};

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/apps/{name}/keys", get(list_keys).post(issue_key))
        .route("/apps/{name}/keys/{id}", axum::routing::delete(revoke_key))
        .route("/apps/{name}/keys/{id}/rotate", post(rotate_key))
        .route(
            "/apps/{name}/subscriptions",
            get(list_app_subscriptions).post(subscribe),
        )
        .route(
            "/apps/{name}/subscriptions/{product}",
            get(get_subscription)
                .put(set_subscription)
                .delete(unsubscribe),
        )
        .route("/subscriptions", get(list_subscriptions))
}

/// How long a rotated key keeps working when the request names no overlap.
const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// `POST /admin/v1/apps/{name}/keys`: when the key stops working. Both
/// optional; at most one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueKey {
    /// Expiry, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "de_millis")]
    #[schema(minimum = 0)]
    pub(crate) expires_at: Option<i64>,
    /// Expiry as a duration from now: `30d`, `12h`, `90m`.
    #[schema(example = "30d", pattern = "^[0-9]{1,9}(ms|s|m|h|d)$")]
    pub(crate) expires_in: Option<String>,
}

/// `POST /admin/v1/apps/{name}/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateKey {
    /// How long the old key keeps working (default `24h`; `0s` ends it now).
    #[schema(example = "1h", pattern = "^[0-9]{1,9}(ms|s|m|h|d)$")]
    pub(crate) overlap: Option<String>,
    /// The new key's expiry, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "de_millis")]
    #[schema(minimum = 0)]
    pub(crate) expires_at: Option<i64>,
    /// The new key's expiry as a duration from now.
    #[schema(pattern = "^[0-9]{1,9}(ms|s|m|h|d)$")]
    pub(crate) expires_in: Option<String>,
}

/// An API key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// The first 12 hex digits of the key's SHA-256; the id the gateway logs.
    pub(crate) id: String,
    pub(crate) app: String,
    /// `pk_xxxxxxxx` for keys made by Portico; null for imported keys.
    pub(crate) prefix: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    /// The key that replaced this one in a rotation.
    pub(crate) replaced_by: Option<String>,
    /// Whether the key opens the door now.
    pub(crate) active: bool,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            app: k.app.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            replaced_by: k.replaced_by.clone(),
            active: k.is_active(now_millis()),
        }
    }
}

/// A key just made: the plain text, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IssuedKeyView {
    /// The key itself. Not stored; it cannot be shown again.
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) app: String,
    pub(crate) prefix: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
}

impl From<IssuedKey> for IssuedKeyView {
    fn from(i: IssuedKey) -> Self {
        IssuedKeyView {
            id: i.key.id.clone(),
            app: i.key.app.clone(),
            prefix: i.key.prefix.clone(),
            created_at: i.key.created_at,
            expires_at: i.key.expires_at,
            key: i.plaintext.into_string(),
        }
    }
}

/// A list of keys.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyList {
    pub(crate) items: Vec<KeyView>,
}

/// `POST /admin/v1/apps/{name}/subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionRequest {
    /// The product's name.
    pub(crate) product: String,
}

/// `PUT /admin/v1/apps/{name}/subscriptions/{product}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionStatus {
    pub(crate) status: StatusName,
}

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusName {
    Pending,
    Approved,
    Rejected,
}

impl From<StatusName> for Status {
    fn from(s: StatusName) -> Self {
        match s {
            StatusName::Pending => Status::Pending,
            StatusName::Approved => Status::Approved,
            StatusName::Rejected => Status::Rejected,
        }
    }
}

impl From<Status> for StatusName {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => StatusName::Pending,
            Status::Approved => StatusName::Approved,
            Status::Rejected => StatusName::Rejected,
        }
    }
}

/// A subscription.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriptionView {
    pub(crate) app: String,
    pub(crate) product: String,
    pub(crate) status: StatusName,
    pub(crate) revision: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        SubscriptionView {
            app: s.app.clone(),
            product: s.product.clone(),
            status: s.status.into(),
            revision: s.revision,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// `?status=&limit=&after=` of `GET /admin/v1/subscriptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionQuery {
    status: Option<StatusName>,
    limit: Option<String>,
    after: Option<String>,
}

/// The app `name`, if the caller may do `access` to it (`action` names the
/// attempt in the audit log when it may not).
async fn app_for(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    access: Access,
    action: &str,
    kind: &str,
) -> Result<Entity, ApiError> {
    let verdict = rbac::entity(caller.role(), Kind::App, access);
    if verdict == Verdict::Refused {
        return Err(rbac::refuse(&state.store, caller, action, kind, name, None).await);
    }
    let app = state
        .store
        .get(Kind::App, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("There is no app `{name}`.")))?;
    let own = rbac::owns(
        caller,
        app.document.get("developer").and_then(Value::as_str),
    );
    if verdict == Verdict::IfOwn && !own {
        return Err(rbac::refuse(&state.store, caller, action, kind, name, None).await);
    }
    Ok(app)
}

async fn list_keys(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    app_for(&state, &caller, &name, Access::Read, "list-keys", "api-key").await?;
    let keys = state.store.list_keys(&name).await?;
    Ok(crate::json(
        StatusCode::OK,
        &KeyList {
            items: keys.iter().map(KeyView::from).collect(),
        },
    ))
}

async fn issue_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonOrEmpty(body): JsonOrEmpty<IssueKey>,
) -> Result<Response, ApiError> {
    app_for(
        &state,
        &caller,
        &name,
        Access::Write,
        "issue-key",
        "api-key",
    )
    .await?;
    let expires_at = expiry(body.expires_at, body.expires_in.as_deref())?;
    let issued = state
        .store
        .issue_key(&caller.actor(), &name, expires_at)
        .await?;
    change::publish(&state).await;
    let location = format!(
        "/admin/v1/apps/{}/keys/{}",
        percent_encode(&name),
        issued.key.id
    );
    let mut resp = crate::json(StatusCode::CREATED, &IssuedKeyView::from(issued));
    no_store(&mut resp, Some(&location));
    Ok(resp)
}

/// A secret is in the body: no cache keeps it.
fn no_store(resp: &mut Response, location: Option<&str>) {
    let headers = resp.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(header::LOCATION, v);
    }
}

async fn revoke_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app_for(
        &state,
        &caller,
        &name,
        Access::Write,
        "revoke-key",
        "api-key",
    )
    .await?;
    state.store.revoke_key(&caller.actor(), &name, &id).await?;
    change::publish(&state).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
    JsonOrEmpty(body): JsonOrEmpty<RotateKey>,
) -> Result<Response, ApiError> {
    app_for(
        &state,
        &caller,
        &name,
        Access::Write,
        "rotate-key",
        "api-key",
    )
    .await?;
    let overlap = match body.overlap.as_deref() {
        None => DEFAULT_OVERLAP,
        Some("0") => Duration::ZERO,
        Some(o) => {
            parse_duration(o).map_err(|e| ApiError::malformed(format!("`overlap`: {e}.")))?
        }
    };
    let expires_at = expiry(body.expires_at, body.expires_in.as_deref())?;
    let issued = state
        .store
        .rotate_key(&caller.actor(), &name, &id, overlap, expires_at)
        .await?;
    change::publish(&state).await;
    let location = format!(
        "/admin/v1/apps/{}/keys/{}",
        percent_encode(&name),
        issued.key.id
    );
    let mut resp = crate::json(StatusCode::CREATED, &IssuedKeyView::from(issued));
    no_store(&mut resp, Some(&location));
    Ok(resp)
}

async fn list_app_subscriptions(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = q.page()?;
    app_for(&state, &caller, &name, Access::Read, "list", "subscription").await?;
    let l = state
        .store
        .list_subscriptions(Some(&name), None, &page)
        .await?;
    let items: Vec<SubscriptionView> = l.items.iter().map(SubscriptionView::from).collect();
    Ok(listing(
        &format!("/admin/v1/apps/{}/subscriptions", percent_encode(&name)),
        &page,
        items,
        l.next,
    ))
}

async fn list_subscriptions(
    State(state): State<AdminState>,
    caller: Caller,
    Query(q): Query<SubscriptionQuery>,
) -> Result<Response, ApiError> {
    if caller.role() == Role::Consumer {
        return Err(rbac::refuse(&state.store, &caller, "list", "subscription", "*", None).await);
    }
    let page = PageQuery::new(q.limit, q.after).page()?;
    let l = state
        .store
        .list_subscriptions(None, q.status.map(Status::from), &page)
        .await?;
    let items: Vec<SubscriptionView> = l.items.iter().map(SubscriptionView::from).collect();
    Ok(listing("/admin/v1/subscriptions", &page, items, l.next))
}

fn subscription_response(status: StatusCode, sub: &Subscription) -> Response {
    let mut resp = crate::json(status, &SubscriptionView::from(sub));
    resp.headers_mut().insert(header::ETAG, etag(sub.revision));
    resp
}

async fn get_subscription(
    State(state): State<AdminState>,
    caller: Caller,
    Path((name, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app_for(&state, &caller, &name, Access::Read, "get", "subscription").await?;
    let sub = state
        .store
        .get_subscription(&name, &product)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("App `{name}` has no subscription to `{product}`."))
        })?;
    Ok(subscription_response(StatusCode::OK, &sub))
}

async fn subscribe(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<SubscriptionRequest>,
) -> Result<Response, ApiError> {
    app_for(
        &state,
        &caller,
        &name,
        Access::Write,
        "subscribe",
        "subscription",
    )
    .await?;
    if body.product.contains('\0') {
        return Err(ApiError::not_found(format!(
            "There is no product `{}`.",
            body.product.escape_debug()
        )));
    }
    let sub = state
        .store
        .request_subscription(&caller.actor(), &name, &body.product)
        .await
        .map_err(|e| match e {
            // Asking again for what the app has is a conflict, not a
            // failed precondition.
            portico_store::Error::AlreadyExists { name, .. } => ApiError::new(
                ErrorCode::Conflict,
                format!("The subscription `{name}` exists already."),
            ),
            e => e.into(),
        })?;
    change::publish(&state).await;
    let mut resp = subscription_response(StatusCode::CREATED, &sub);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/admin/v1/apps/{}/subscriptions/{}",
        percent_encode(&name),
        percent_encode(&sub.product)
    )) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn set_subscription(
    State(state): State<AdminState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, product)): Path<(String, String)>,
    Json(body): Json<SubscriptionStatus>,
) -> Result<Response, ApiError> {
    let audit_name = format!("{name}/{product}");
    rbac::admin(
        &state.store,
        &caller,
        "set-status",
        "subscription",
        &audit_name,
    )
    .await?;
    let current = state.store.get_subscription(&name, &product).await?;
    let Some(current) = current else {
        return Err(ApiError::not_found(format!(
            "App `{name}` has no subscription to `{product}`."
        )));
    };
    let expect = expectation(&headers, Some(current.revision))?;
    let sub = state
        .store
        .set_subscription_status(&caller.actor(), &name, &product, body.status.into(), expect)
        .await?;
    change::publish(&state).await;
    Ok(subscription_response(StatusCode::OK, &sub))
}

async fn unsubscribe(
    State(state): State<AdminState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, product)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app_for(
        &state,
        &caller,
        &name,
        Access::Write,
        "unsubscribe",
        "subscription",
    )
    .await?;
    let current = state.store.get_subscription(&name, &product).await?;
    let Some(current) = current else {
        return Err(ApiError::not_found(format!(
            "App `{name}` has no subscription to `{product}`."
        )));
    };
    let expect = expectation(&headers, Some(current.revision))?;
    state
        .store
        .delete_subscription(&caller.actor(), &name, &product, expect)
        .await?;
    change::publish(&state).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
