//! `GET|PUT|DELETE /admin/v1/{apis,products,developers,apps}/{name}` and
//! `GET /admin/v1/{kind}?limit=&after=`: the configuration entities, in the
//! configuration file's shape, with `ETag`/`If-Match` from their revision.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use portico_model::ErrorCode;
use portico_store::{Entity, Kind};
use serde_json::Value;

use crate::AdminState;
use crate::auth::Caller;
use crate::change::{self, Change};
use crate::extract::{Json, PageQuery, Path, Query, etag, expectation, listing, percent_encode};
use crate::problem::ApiError;
use crate::rbac::{self, Access, Verdict};

pub(crate) fn routes() -> Router<AdminState> {
    let mut router = Router::new();
    for kind in Kind::ALL {
        let section = kind.section();
        router = router
            .route(
                &format!("/{section}"),
                get(
                    move |State(s): State<AdminState>, c: Caller, Query(q): Query<PageQuery>| {
                        list(kind, s, c, q)
                    },
                ),
            )
            .route(
                &format!("/{section}/{{name}}"),
                get(
                    move |State(s): State<AdminState>, c: Caller, Path(n): Path<String>| {
                        get_one(kind, s, c, n)
                    },
                )
                .put(
                    move |State(s): State<AdminState>,
                          c: Caller,
                          h: HeaderMap,
                          Path(n): Path<String>,
                          Json(body): Json<Value>| put(kind, s, c, h, n, body),
                )
                .delete(
                    move |State(s): State<AdminState>,
                          c: Caller,
                          h: HeaderMap,
                          Path(n): Path<String>| delete(kind, s, c, h, n),
                ),
            );
    }
    router
}

fn not_found(kind: Kind, name: &str) -> ApiError {
    ApiError::not_found(format!("There is no {} `{name}`.", kind.noun()))
}

/// Whether the entity belongs to the caller's developer.
fn owns(caller: &Caller, entity: &Entity) -> bool {
    match entity.kind {
        Kind::Developer => rbac::owns(caller, Some(&entity.name)),
        Kind::App => rbac::owns(
            caller,
            entity.document.get("developer").and_then(Value::as_str),
        ),
        Kind::Api | Kind::Product => false,
    }
}

async fn list(
    kind: Kind,
    state: AdminState,
    caller: Caller,
    query: PageQuery,
) -> Result<Response, ApiError> {
    let page = query.page()?;
    let path = format!("/admin/v1/{}", kind.section());
    let listing_of = |l: portico_store::Listing<Entity>| {
        let docs: Vec<Value> = l.items.into_iter().map(|e| e.document).collect();
        listing(&path, &page, docs, l.next)
    };
    match rbac::entity(caller.role(), kind, Access::Read) {
        Verdict::Allowed => Ok(listing_of(state.store.list(kind, &page).await?)),
        Verdict::IfOwn => {
            let Some(developer) = caller.0.developer.clone() else {
                return Err(
                    rbac::refuse(&state.store, &caller, "list", kind.noun(), "*", None).await,
                );
            };
            match kind {
                Kind::App => Ok(listing_of(
                    state.store.list_apps_of(&developer, &page).await?,
                )),
                // A consumer's own developer, the one item it may read.
                _ => {
                    let own = state.store.get(kind, &developer).await?;
                    let items: Vec<Value> = own
                        .filter(|e| page.after.as_ref().is_none_or(|a| e.name > *a))
                        .map(|e| e.document)
                        .into_iter()
                        .collect();
                    Ok(listing(&path, &page, items, None))
                }
            }
        }
        Verdict::Refused => {
            Err(rbac::refuse(&state.store, &caller, "list", kind.noun(), "*", None).await)
        }
    }
}

async fn get_one(
    kind: Kind,
    state: AdminState,
    caller: Caller,
    name: String,
) -> Result<Response, ApiError> {
    let name = kind.normalise(&name);
    let verdict = rbac::entity(caller.role(), kind, Access::Read);
    if verdict == Verdict::Refused {
        return Err(rbac::refuse(&state.store, &caller, "get", kind.noun(), &name, None).await);
    }
    let entity = state
        .store
        .get(kind, &name)
        .await?
        .ok_or_else(|| not_found(kind, &name))?;
    if verdict == Verdict::IfOwn && !owns(&caller, &entity) {
        return Err(rbac::refuse(&state.store, &caller, "get", kind.noun(), &name, None).await);
    }
    Ok(entity_response(StatusCode::OK, &entity))
}

fn entity_response(status: StatusCode, entity: &Entity) -> Response {
    let mut resp = crate::json(status, &entity.document);
    let headers = resp.headers_mut();
    headers.insert(header::ETAG, etag(entity.revision));
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&format!(
            "/admin/v1/{}/{}",
            entity.kind.section(),
            percent_encode(&entity.name)
        ))
    {
        headers.insert(header::LOCATION, v);
    }
    resp
}

async fn put(
    kind: Kind,
    state: AdminState,
    caller: Caller,
    headers: HeaderMap,
    name: String,
    mut body: Value,
) -> Result<Response, ApiError> {
    let name = kind.normalise(&name);
    let store = &state.store;
    let verdict = rbac::entity(caller.role(), kind, Access::Write);
    if verdict == Verdict::Refused {
        return Err(rbac::refuse(store, &caller, "put", kind.noun(), &name, Some(&body)).await);
    }
    if !body.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidEntity,
            format!("A {} is a JSON object.", kind.noun()),
        ));
    }
    let current = store.get(kind, &name).await?;
    if verdict == Verdict::IfOwn {
        own_change(&state, &caller, kind, &name, current.as_ref(), &mut body).await?;
    }
    // The content is checked before the preconditions, so that a bad
    // document is 422 whatever `If-Match` says.
    change::validate(
        &state,
        Change::Put {
            kind,
            name: &name,
            document: &body,
        },
    )
    .await?;
    let expect = expectation(&headers, current.as_ref().map(|c| c.revision))?;
    let entity = store
        .put(&caller.actor(), kind, &name, body, expect)
        .await?;
    change::publish(&state).await;
    // Revision 1 is a row just inserted.
    let status = if entity.revision == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(entity_response(status, &entity))
}

/// A consumer's change to its own developer or app: the entity must be
/// its own before and after, and an app's approved subscriptions
/// (`products`) change only through subscription requests.
async fn own_change(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    name: &str,
    current: Option<&Entity>,
    body: &mut Value,
) -> Result<(), ApiError> {
    let refuse = |body: &Value| {
        let body = body.clone();
        async move { rbac::refuse(&state.store, caller, "put", kind.noun(), name, Some(&body)).await }
    };
    let ok = match kind {
        Kind::Developer => rbac::owns(caller, Some(name)),
        Kind::App => {
            current.is_none_or(|c| owns(caller, c))
                && rbac::owns(caller, body.get("developer").and_then(Value::as_str))
        }
        Kind::Api | Kind::Product => false,
    };
    if !ok {
        return Err(refuse(body).await);
    }
    if kind == Kind::App {
        let approved = current
            .and_then(|c| c.document.get("products").cloned())
            .unwrap_or(Value::Array(Vec::new()));
        let sorted = |v: &Value| {
            let mut names: Vec<String> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names.dedup();
            names
        };
        match body.get("products") {
            None | Some(Value::Null) => {
                if let Value::Object(map) = body {
                    map.insert("products".into(), approved);
                }
            }
            Some(given) if sorted(given) == sorted(&approved) => {}
            Some(_) => return Err(refuse(body).await),
        }
    }
    Ok(())
}

async fn delete(
    kind: Kind,
    state: AdminState,
    caller: Caller,
    headers: HeaderMap,
    name: String,
) -> Result<Response, ApiError> {
    let name = kind.normalise(&name);
    let store = &state.store;
    let verdict = rbac::entity(caller.role(), kind, Access::Delete);
    if verdict == Verdict::Refused {
        return Err(rbac::refuse(store, &caller, "delete", kind.noun(), &name, None).await);
    }
    let current = store
        .get(kind, &name)
        .await?
        .ok_or_else(|| not_found(kind, &name))?;
    if verdict == Verdict::IfOwn && !owns(&caller, &current) {
        return Err(rbac::refuse(store, &caller, "delete", kind.noun(), &name, None).await);
    }
    let expect = expectation(&headers, Some(current.revision))?;
    change::validate(&state, Change::Delete { kind, name: &name }).await?;
    store.delete(&caller.actor(), kind, &name, expect).await?;
    change::publish(&state).await;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
