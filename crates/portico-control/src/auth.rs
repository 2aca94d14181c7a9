//! Bearer-token authentication of the admin API (`/admin/v1/…`) against
//! the store's admin tokens, and the first admin token of a new node.
//!
//! A token is looked up by its SHA-256 digest (`Store::verify_admin_token`,
//! one query on the admin path; the proxy path never does this). A missing
//! token, or one that is unknown, expired or revoked, is 401 with an RFC 6750
//! challenge; a valid one puts its [`Caller`] in the request.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portico_model::ErrorCode;
use portico_store::{Actor, Expect, Principal, Role, Store, now_millis};

use crate::problem::{ApiError, problem};

/// The environment variable that sets the first admin token.
pub const TOKEN_ENV: &str = "PORTICO_ADMIN_TOKEN";

/// Shortest admin token accepted from the environment.
pub const MIN_TOKEN_LEN: usize = 16;

/// The realm named in `WWW-Authenticate` challenges (RFC 6750 §3).
pub(crate) const REALM: &str = "portico-admin";

/// The user the first admin token belongs to.
const BOOTSTRAP_USER: &str = "admin";

/// Who is calling: the principal of a verified token.
#[derive(Clone, Debug)]
pub(crate) struct Caller(pub(crate) Principal);

impl Caller {
    /// The actor the audit log names: the user.
    pub(crate) fn actor(&self) -> Actor {
        Actor::new(self.0.user.clone())
    }

    pub(crate) fn role(&self) -> Role {
        self.0.role
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| unauthorized(false))
    }
}

/// Middleware: lets a request through only with `Authorization: Bearer
/// <token>` naming a valid admin token; otherwise 401 with an RFC 6750
/// challenge.
pub(crate) async fn authenticate(
    State(store): State<Store>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (first, second) = (values.next(), values.next());
    let token = match (first, second) {
        (None, _) => return unauthorized(false),
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned()),
        // Two Authorization headers: ambiguous, so refused.
        (Some(_), Some(_)) => None,
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return unauthorized(true);
    };
    match store.verify_admin_token(&token).await {
        Ok(Some(principal)) => {
            req.extensions_mut().insert(Caller(principal));
            next.run(req).await
        }
        Ok(None) => unauthorized(true),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// 401: `missing-credential` without a token, `invalid-credential` with a
/// token that is not valid (`error="invalid_token"`, RFC 6750 §3.1).
fn unauthorized(presented: bool) -> Response {
    let (code, detail, challenge) = match presented {
        false => (
            ErrorCode::MissingCredential,
            "The admin API needs `Authorization: Bearer <admin token>`.",
            format!("Bearer realm=\"{REALM}\""),
        ),
        true => (
            ErrorCode::InvalidCredential,
            "The bearer token is not a valid admin token: unknown, expired or revoked.",
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
        ),
    };
    let mut resp = problem(code, detail, None).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// First start: imports `token` (`PORTICO_ADMIN_TOKEN`) for a user `admin`
/// with role admin (idempotent: a token the store has is left as it is,
/// revoked or not), or, when none is given and the store holds no usable
/// admin token, issues one and returns it so the caller prints it once.
/// Otherwise `Ok(None)`.
pub async fn bootstrap_admin_token(
    store: &Store,
    token: Option<&str>,
) -> Result<Option<String>, portico_store::Error> {
    let actor = Actor::system();
    match token {
        Some(token) => {
            if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(portico_store::Error::Invalid {
                    kind: "admin token",
                    detail: format!(
                        "{TOKEN_ENV} must be at least {MIN_TOKEN_LEN} visible ASCII characters without spaces"
                    ),
                });
            }
            ensure_admin_user(store, &actor).await?;
            store
                .import_admin_token(&actor, BOOTSTRAP_USER, token, TOKEN_ENV)
                .await?;
            Ok(None)
        }
        None => {
            if has_usable_admin_token(store).await? {
                return Ok(None);
            }
            ensure_admin_user(store, &actor).await?;
            let issued = store
                .issue_admin_token(&actor, BOOTSTRAP_USER, "generated at first start", None)
                .await?;
            Ok(Some(issued.plaintext.into_string()))
        }
    }
}

/// The user `admin` exists with the role admin.
async fn ensure_admin_user(store: &Store, actor: &Actor) -> Result<(), portico_store::Error> {
    match store.get_user(BOOTSTRAP_USER).await? {
        Some(u) if u.role == Role::Admin => Ok(()),
        Some(u) => store
            .put_user(
                actor,
                BOOTSTRAP_USER,
                Role::Admin,
                None,
                Expect::Revision(u.revision),
            )
            .await
            .map(drop),
        None => store
            .put_user(actor, BOOTSTRAP_USER, Role::Admin, None, Expect::Absent)
            .await
            .map(drop),
    }
}

/// Whether some admin's token is neither revoked nor expired.
async fn has_usable_admin_token(store: &Store) -> Result<bool, portico_store::Error> {
    let now = now_millis();
    for t in store.list_admin_tokens(None).await? {
        if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
            continue;
        }
        if store
            .get_user(&t.user)
            .await?
            .is_some_and(|u| u.role == Role::Admin)
        {
            return Ok(true);
        }
    }
    Ok(false)
}
