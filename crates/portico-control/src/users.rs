//! Users and their roles, admin tokens, the audit log (admins only), and
//! `GET /admin/v1/me` (anyone with a valid token).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use portico_model::ErrorCode;
use portico_store::{AdminToken, AuditRecord, Outcome, Role, User, now_millis};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AdminState;
use crate::auth::Caller;
use crate::extract::{
    Json, JsonOrEmpty, PageQuery, Path, Query, de_millis, etag, expectation, expiry, listing,
    percent_encode,
};
use crate::problem::ApiError;
use crate::rbac;

pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/users", get(list_users))
        .route(
            "/users/{name}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/users/{name}/tokens", post(issue_token))
        .route("/tokens", get(list_tokens))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/audit", get(audit))
}

/// A role.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleName {
    Admin,
    Publisher,
    Consumer,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Admin => Role::Admin,
            RoleName::Publisher => Role::Publisher,
            RoleName::Consumer => Role::Consumer,
        }
    }
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleName::Admin,
            Role::Publisher => RoleName::Publisher,
            Role::Consumer => RoleName::Consumer,
        }
    }
}

/// `PUT /admin/v1/users/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    /// Must equal the path's name when given.
    pub(crate) name: Option<String>,
    pub(crate) role: RoleName,
    /// The developer (e-mail) a consumer acts for; required for consumers.
    pub(crate) developer: Option<String>,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    pub(crate) name: String,
    pub(crate) role: RoleName,
    pub(crate) developer: Option<String>,
    pub(crate) revision: i64,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            role: u.role.into(),
            developer: u.developer.clone(),
            revision: u.revision,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `POST /admin/v1/users/{name}/tokens`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// What the token is for (shown in listings).
    pub(crate) description: Option<String>,
    /// Expiry, milliseconds since the Unix epoch.
    #[serde(default, deserialize_with = "de_millis")]
    #[schema(minimum = 0)]
    pub(crate) expires_at: Option<i64>,
    /// Expiry as a duration from now: `90d`.
    #[schema(pattern = "^[0-9]{1,9}(ms|s|m|h|d)$")]
    pub(crate) expires_in: Option<String>,
}

/// An admin token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenView {
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) description: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) active: bool,
}

impl From<&AdminToken> for TokenView {
    fn from(t: &AdminToken) -> Self {
        let now = now_millis();
        TokenView {
            id: t.id.clone(),
            user: t.user.clone(),
            description: t.description.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
            active: t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now),
        }
    }
}

/// A token just made: the plain text, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IssuedTokenView {
    /// The bearer token. Not stored; it cannot be shown again.
    pub(crate) token: String,
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) description: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
}

/// A list of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenList {
    pub(crate) items: Vec<TokenView>,
}

/// `?user=` of `GET /admin/v1/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenQuery {
    user: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditView {
    pub(crate) id: i64,
    /// Milliseconds since the Unix epoch.
    pub(crate) at: i64,
    pub(crate) actor: String,
    /// `put`, `delete`, `issue-key`, `subscribe`, …
    pub(crate) action: String,
    /// `api`, `product`, `developer`, `app`, `subscription`, `api-key`, `user`, `admin-token`.
    pub(crate) kind: String,
    pub(crate) name: String,
    /// The document before the change.
    #[schema(value_type = Option<Object>)]
    pub(crate) before: Option<serde_json::Value>,
    /// The document after it, or what a refused attempt asked for.
    #[schema(value_type = Option<Object>)]
    pub(crate) after: Option<serde_json::Value>,
    /// `ok` or `refused`.
    pub(crate) outcome: String,
    pub(crate) detail: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        AuditView {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            kind: r.kind,
            name: r.name,
            before: r.before,
            after: r.after,
            outcome: match r.outcome {
                Outcome::Ok => "ok",
                Outcome::Refused => "refused",
            }
            .to_owned(),
            detail: r.detail,
        }
    }
}

/// Who the presented token speaks for.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MeView {
    pub(crate) user: String,
    pub(crate) role: RoleName,
    /// For consumers: the developer whose apps they manage.
    pub(crate) developer: Option<String>,
    /// The id of the token in use.
    pub(crate) token_id: String,
}

pub(crate) async fn me(caller: Caller) -> Response {
    let p = caller.0;
    crate::json(
        StatusCode::OK,
        &MeView {
            user: p.user,
            role: p.role.into(),
            developer: p.developer,
            token_id: p.token_id,
        },
    )
}

async fn list_users(
    State(state): State<AdminState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = q.page()?;
    rbac::admin(&state.store, &caller, "list", "user", "*").await?;
    let l = state.store.list_users(&page).await?;
    let items: Vec<UserView> = l.items.iter().map(UserView::from).collect();
    Ok(listing("/admin/v1/users", &page, items, l.next))
}

fn user_response(status: StatusCode, user: &User) -> Response {
    let mut resp = crate::json(status, &UserView::from(user));
    let headers = resp.headers_mut();
    headers.insert(header::ETAG, etag(user.revision));
    if status == StatusCode::CREATED
        && let Ok(v) =
            HeaderValue::from_str(&format!("/admin/v1/users/{}", percent_encode(&user.name)))
    {
        headers.insert(header::LOCATION, v);
    }
    resp
}

fn no_user(name: &str) -> ApiError {
    ApiError::not_found(format!("There is no user `{name}`."))
}

async fn get_user(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "get", "user", &name).await?;
    let user = state
        .store
        .get_user(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    Ok(user_response(StatusCode::OK, &user))
}

async fn put_user(
    State(state): State<AdminState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<UserBody>,
) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "put", "user", &name).await?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::new(
            ErrorCode::InvalidEntity,
            format!("The body's `name` is not `{name}`."),
        ));
    }
    if name == caller.0.user && body.role != RoleName::Admin {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "An admin cannot take the admin role from their own user; another admin can.",
        ));
    }
    if body.developer.as_ref().is_some_and(|d| d.contains('\0')) {
        return Err(ApiError::new(
            ErrorCode::InvalidEntity,
            "No developer has a NUL character in its e-mail.",
        ));
    }
    let current = state.store.get_user(&name).await?;
    let expect = expectation(&headers, current.as_ref().map(|u| u.revision))?;
    let user = state
        .store
        .put_user(
            &caller.actor(),
            &name,
            body.role.into(),
            body.developer.as_deref(),
            expect,
        )
        .await?;
    let status = if current.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(user_response(status, &user))
}

async fn delete_user(
    State(state): State<AdminState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "delete", "user", &name).await?;
    let current = state
        .store
        .get_user(&name)
        .await?
        .ok_or_else(|| no_user(&name))?;
    if name == caller.0.user {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "An admin cannot delete their own user; another admin can.",
        ));
    }
    let expect = expectation(&headers, Some(current.revision))?;
    state
        .store
        .delete_user(&caller.actor(), &name, expect)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn issue_token(
    State(state): State<AdminState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonOrEmpty(body): JsonOrEmpty<TokenRequest>,
) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "issue-token", "admin-token", &name).await?;
    let expires_at = expiry(body.expires_at, body.expires_in.as_deref())?;
    if body.description.as_ref().is_some_and(|d| d.contains('\0')) {
        return Err(ApiError::new(
            ErrorCode::InvalidEntity,
            "A token's description cannot hold a NUL character.",
        ));
    }
    if state.store.get_user(&name).await?.is_none() {
        return Err(no_user(&name));
    }
    let issued = state
        .store
        .issue_admin_token(
            &caller.actor(),
            &name,
            body.description.as_deref().unwrap_or(""),
            expires_at,
        )
        .await?;
    let t = &issued.token;
    let view = IssuedTokenView {
        id: t.id.clone(),
        user: t.user.clone(),
        description: t.description.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        token: issued.plaintext.into_string(),
    };
    let mut resp = crate::json(StatusCode::CREATED, &view);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

async fn list_tokens(
    State(state): State<AdminState>,
    caller: Caller,
    Query(q): Query<TokenQuery>,
) -> Result<Response, ApiError> {
    rbac::admin(&state.store, &caller, "list", "admin-token", "*").await?;
    // No user name holds a NUL: such a filter matches nothing.
    let tokens = match q.user.as_deref().filter(|u| !u.is_empty()) {
        Some(u) if u.contains('\0') => Vec::new(),
        user => state.store.list_admin_tokens(user).await?,
    };
    Ok(crate::json(
        StatusCode::OK,
        &TokenList {
            items: tokens.iter().map(TokenView::from).collect(),
        },
    ))
}

/// Admins revoke any token; anyone may revoke the token they hold.
async fn revoke_token(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if caller.role() != Role::Admin && caller.0.token_id != id {
        return Err(rbac::refuse(
            &state.store,
            &caller,
            "revoke-token",
            "admin-token",
            &id,
            None,
        )
        .await);
    }
    state
        .store
        .revoke_admin_token(&caller.actor(), &id)
        .await
        .map_err(|e| match e {
            portico_store::Error::NotFound { .. } => {
                ApiError::not_found(format!("There is no admin token `{id}`."))
            }
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn audit(
    State(state): State<AdminState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let page = q.page()?;
    rbac::admin(&state.store, &caller, "get", "audit", "*").await?;
    let l = state.store.audit_log(&page).await.map_err(|e| match e {
        portico_store::Error::Invalid { detail, .. } => ApiError::malformed(format!("{detail}.")),
        e => e.into(),
    })?;
    let items: Vec<AuditView> = l.items.into_iter().map(AuditView::from).collect();
    Ok(listing("/admin/v1/audit", &page, items, l.next))
}
