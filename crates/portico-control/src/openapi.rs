//! The admin API's OpenAPI 3.1 document, served open at
//! `/admin/openapi.json`, and Swagger UI at `/admin/docs` (its files come
//! from the `utoipa-swagger-ui` crate's vendored copy; nothing is fetched).
//!
//! The request and response types of keys, subscriptions, users, tokens
//! and the audit log are derived from the Rust types (`ToSchema`). The four
//! entity kinds share handlers that are instantiated per kind, so their
//! operations are written here, one function for all four; the entity
//! bodies are JSON Schemas of the configuration file's top-level fields,
//! with nested objects (upstreams, policies, limits) left open: the node's
//! compiler is what checks them, and answers 422 with every error.
//!
//! Every status a handler can answer with is listed on its operation, so a
//! schemathesis run (`bench/schemathesis.sh`) finds no undocumented one.

use std::sync::OnceLock;

use axum::Router;
use serde_json::{Map, Value, json};
use utoipa::OpenApi as _;
use utoipa_swagger_ui::SwaggerUi;

use crate::apply::{ApplyRequest, ChangeView, DiffView};
use crate::credentials::{
    IssueKey, IssuedKeyView, KeyList, KeyView, RotateKey, StatusName, SubscriptionRequest,
    SubscriptionStatus, SubscriptionView,
};
use crate::users::{
    AuditView, IssuedTokenView, MeView, RoleName, TokenList, TokenRequest, TokenView, UserBody,
    UserView,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Portico admin API",
        description = "Entities in the configuration file's shape, API keys, subscriptions, users, admin tokens and the audit log. See docs/admin-api.md.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(
        ApplyRequest,
        DiffView,
        ChangeView,
        IssueKey,
        RotateKey,
        KeyView,
        IssuedKeyView,
        KeyList,
        SubscriptionRequest,
        SubscriptionStatus,
        StatusName,
        SubscriptionView,
        UserBody,
        UserView,
        RoleName,
        TokenRequest,
        TokenView,
        IssuedTokenView,
        TokenList,
        AuditView,
        MeView,
    ))
)]
struct Derived;

/// The admin API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    // Built from literals; a failure is a bug that the unit test catches.
    build().unwrap_or_default()
}

fn build() -> Result<utoipa::openapi::OpenApi, serde_json::Error> {
    let mut doc = serde_json::to_value(Derived::openapi()).unwrap_or_else(|_| json!({}));
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(Value::Object(c)) = components {
        let schemas = c.entry("schemas").or_insert_with(|| json!({}));
        if let (Value::Object(schemas), Value::Object(extra)) = (schemas, schemas_json()) {
            schemas.extend(extra);
        }
        c.insert("responses".into(), responses_json());
        c.insert(
            "securitySchemes".into(),
            json!({ "bearer": {
                "type": "http", "scheme": "bearer",
                "description": "An admin token (`pat_…`, or PORTICO_ADMIN_TOKEN). Its user's role decides what it may do."
            }}),
        );
    }
    if let Value::Object(d) = &mut doc {
        d.insert("paths".into(), paths_json());
        d.insert("security".into(), json!([{ "bearer": [] }]));
        d.insert(
            "tags".into(),
            json!([
                {"name": "entities", "description": "APIs, products, developers and apps, in the configuration file's shape."},
                {"name": "credentials", "description": "API keys and subscriptions of apps."},
                {"name": "users", "description": "Users, roles, admin tokens and the audit log (admins)."},
                {"name": "node", "description": "Reload, upstream health, apply and export."}
            ]),
        );
    }
    serde_json::from_value(doc)
}

/// The document as served (built once).
fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(openapi)
}

/// `/admin/openapi.json` and `/admin/docs`, open.
pub(crate) fn routes() -> Router {
    Router::new()
        .merge(SwaggerUi::new("/admin/docs").url("/admin/openapi.json", document().clone()))
}

const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9-]*$";

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn names() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

/// The entity bodies, the problem document and the listings.
fn schemas_json() -> Value {
    let open = json!({ "type": "object" });
    let limit = json!({
        "type": "object",
        "properties": { "limit": { "type": "integer", "minimum": 1 }, "window": { "type": "string", "examples": ["1m"] } },
        "required": ["limit", "window"],
    });
    let list_of = |item: Value| {
        json!({
            "type": "object",
            "properties": {
                "items": { "type": "array", "items": item },
                "next": { "type": ["string", "null"], "description": "The cursor of the next page (`after`); null on the last page." },
            },
            "required": ["items", "next"],
        })
    };
    json!({
        "Api": {
            "type": "object",
            "description": "An API proxy, as under `apis:` in the configuration file. `spec` is the OpenAPI document's text. Nested objects are checked by the node's compiler.",
            "properties": {
                "name": { "type": "string", "pattern": NAME_PATTERN, "maxLength": 63 },
                "base_path": { "type": ["string", "null"], "examples": ["/orders/v1"] },
                "hosts": names(),
                "spec": { "type": ["string", "null"], "description": "The spec's text (YAML or JSON)." },
                "routing": {
                    "description": "`spec` (route by the spec's operations) or `prefix`, or a mapping with one such key.",
                    "oneOf": [
                        { "type": "string" },
                        { "type": "object", "minProperties": 1, "maxProperties": 1 },
                        { "type": "null" },
                    ],
                },
                "upstream": open,
                "policies": { "type": "array", "items": open },
                "security_schemes": {
                    "type": ["object", "null"],
                    "description": "The policy (one policy entry) for a security scheme of the spec, by scheme name: a `jwt` for a bearer or OAuth 2.0 scheme.",
                    "additionalProperties": open,
                },
            },
            "required": ["upstream"],
            "additionalProperties": false,
        },
        "Product": {
            "type": "object",
            "description": "An API product, as under `products:`.",
            "properties": {
                "name": { "type": "string", "pattern": NAME_PATTERN, "maxLength": 63 },
                "apis": names(),
                "quota": { "anyOf": [limit, { "type": "null" }] },
                "rate_limit": { "anyOf": [limit, { "type": "null" }] },
                "approval": { "type": "string", "enum": ["auto", "manual"] },
                "description": { "type": ["string", "null"] },
            },
            "additionalProperties": false,
        },
        "Developer": {
            "type": "object",
            "description": "A developer, as under `developers:`; named by e-mail.",
            "properties": {
                "email": { "type": "string" },
                "name": { "type": "string" },
            },
            "required": ["name"],
            "additionalProperties": false,
        },
        "App": {
            "type": "object",
            "description": "An app, as under `apps:`. `products` are its approved subscriptions. `api_keys` (plain) are stored as digests and never read back; keys not listed are kept.",
            "properties": {
                "name": { "type": "string", "pattern": NAME_PATTERN, "maxLength": 63 },
                "developer": { "type": "string" },
                "products": names(),
                "api_keys": names(),
                "api_key_hashes": names(),
                "oauth_clients": { "type": "array", "items": open },
                "basic_auth": { "type": "array", "items": open },
                "certificates": names(),
            },
            "required": ["developer"],
            "additionalProperties": false,
        },
        "Entities": {
            "type": "object",
            "description": "Every entity, as the configuration file's sections.",
            "properties": {
                "apis": { "type": "array", "items": schema_ref("Api") },
                "products": { "type": "array", "items": schema_ref("Product") },
                "developers": { "type": "array", "items": schema_ref("Developer") },
                "apps": { "type": "array", "items": schema_ref("App") },
            },
        },
        "ApiList": list_of(schema_ref("Api")),
        "ProductList": list_of(schema_ref("Product")),
        "DeveloperList": list_of(schema_ref("Developer")),
        "AppList": list_of(schema_ref("App")),
        "UserList": list_of(schema_ref("UserView")),
        "SubscriptionList": list_of(schema_ref("SubscriptionView")),
        "AuditList": list_of(schema_ref("AuditView")),
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; `type` is the stable code (docs/problems.md).",
            "properties": {
                "type": { "type": "string" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
                "request_id": { "type": "string" },
                "errors": {
                    "type": "array",
                    "description": "`invalid-configuration`: every error.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": { "type": "string" },
                            "message": { "type": "string" },
                            "line": { "type": ["integer", "null"] },
                            "column": { "type": ["integer", "null"] },
                        },
                        "required": ["path", "message"],
                    },
                },
            },
            "required": ["type", "title", "status", "detail", "request_id"],
        },
        "Health": { "type": "object", "description": "Targets, health verdicts and circuit states." },
        "ReloadSummary": {
            "type": "object",
            "properties": {
                "file": { "type": "string" },
                "apis": { "type": "integer" },
                "tls_reloaded": { "type": "boolean" },
                "restart_required": names(),
            },
        },
    })
}

/// Status code → (name in `components.responses`, description).
const PROBLEMS: &[(u16, &str, &str)] = &[
    (
        400,
        "MalformedRequest",
        "`malformed-request`: the body, a query parameter or a precondition header is not what the operation takes.",
    ),
    (
        401,
        "Unauthorized",
        "`missing-credential` or `invalid-credential`: no bearer token, or one that is unknown, expired or revoked.",
    ),
    (
        403,
        "Forbidden",
        "`forbidden`: the token's role does not allow this; the attempt is in the audit log.",
    ),
    (404, "NotFound", "`not-found`: no such resource."),
    (
        409,
        "Conflict",
        "`conflict`: in use by other entities, or exists already.",
    ),
    (
        412,
        "PreconditionFailed",
        "`precondition-failed`: `If-Match` names another revision, or `If-None-Match: *` and it exists.",
    ),
    (
        422,
        "Unprocessable",
        "`invalid-configuration` (with every error) or `invalid-entity`: nothing was stored.",
    ),
    (
        503,
        "StoreUnavailable",
        "`store-unavailable`: the store failed; nothing was changed.",
    ),
];

fn responses_json() -> Value {
    let mut out = Map::new();
    for (status, name, description) in PROBLEMS {
        let mut headers = Map::new();
        if matches!(status, 401 | 403) {
            headers.insert(
                "WWW-Authenticate".into(),
                json!({ "description": "RFC 6750 challenge.", "schema": { "type": "string" } }),
            );
        }
        out.insert(
            (*name).to_owned(),
            json!({
                "description": description,
                "headers": headers,
                "content": { "application/problem+json": { "schema": schema_ref("Problem") } },
            }),
        );
    }
    Value::Object(out)
}

/// One operation. `ok` are the success answers; `problems` the error
/// statuses besides those every `/admin/v1` operation can give (400, 401,
/// 403, 503).
struct Op {
    id: String,
    summary: String,
    tag: &'static str,
    params: Vec<Value>,
    body: Option<(Value, bool)>,
    ok: Vec<(u16, Value)>,
    problems: Vec<u16>,
}

impl Op {
    fn new(id: impl Into<String>, tag: &'static str, summary: impl Into<String>) -> Self {
        Op {
            id: id.into(),
            summary: summary.into(),
            tag,
            params: Vec::new(),
            body: None,
            ok: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn param(mut self, p: Value) -> Self {
        self.params.push(p);
        self
    }

    fn body(mut self, schema: Value, required: bool) -> Self {
        self.body = Some((schema, required));
        self
    }

    fn ok(mut self, status: u16, response: Value) -> Self {
        self.ok.push((status, response));
        self
    }

    fn problems(mut self, statuses: &[u16]) -> Self {
        self.problems.extend_from_slice(statuses);
        self
    }

    fn build(self) -> Value {
        let mut responses = Map::new();
        for (status, r) in self.ok {
            responses.insert(status.to_string(), r);
        }
        let mut statuses = vec![400, 401, 403, 503];
        statuses.extend(self.problems);
        statuses.sort_unstable();
        statuses.dedup();
        for s in statuses {
            if let Some((_, name, _)) = PROBLEMS.iter().find(|(st, _, _)| *st == s) {
                responses.insert(
                    s.to_string(),
                    json!({ "$ref": format!("#/components/responses/{name}") }),
                );
            }
        }
        let mut op = json!({
            "operationId": self.id,
            "summary": self.summary,
            "tags": [self.tag],
            "parameters": self.params,
            "responses": responses,
        });
        if let Some((schema, required)) = self.body {
            op["requestBody"] = json!({
                "required": required,
                "content": { "application/json": { "schema": schema } },
            });
        }
        op
    }
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": { "type": "string", "minLength": 1 } })
}

fn page_params(op: Op, after: &str) -> Op {
    page_params_with(op, after, json!({ "type": "string" }))
}

/// A listing's `limit` and `after`; `cursor` is the schema of `after`.
fn page_params_with(op: Op, after: &str, cursor: Value) -> Op {
    op.param(json!({ "name": "limit", "in": "query", "required": false,
                     "description": "Items per page, 1 to 1000 (default 100).",
                     "schema": { "type": "integer", "minimum": 1, "maximum": 1000 } }))
        .param(json!({ "name": "after", "in": "query", "required": false,
                       "description": after, "schema": cursor }))
}

/// The cursor of subscription listings: `app/product`.
fn subscription_cursor() -> Value {
    json!({ "type": "string", "pattern": "^$|^[^/]*/" })
}

fn if_match() -> Value {
    json!({ "name": "If-Match", "in": "header", "required": false,
            "description": "`\"<revision>\"` (the ETag) or `*`: change only that revision.",
            "schema": { "type": "string", "pattern": "^(\\*|(\"[0-9]{1,18}\"|[0-9]{1,18})( *, *(\"[0-9]{1,18}\"|[0-9]{1,18}))*)$" } })
}

fn if_none_match() -> Value {
    json!({ "name": "If-None-Match", "in": "header", "required": false,
            "description": "`*`: create only, refuse if it exists.",
            "schema": { "type": "string", "enum": ["*"] } })
}

fn header(description: &str) -> Value {
    json!({ "description": description, "schema": { "type": "string" } })
}

fn json_response(description: &str, schema: Value, headers: Value) -> Value {
    json!({ "description": description, "headers": headers,
            "content": { "application/json": { "schema": schema } } })
}

fn listing_response(list: &str) -> Value {
    json_response(
        "A page of results.",
        schema_ref(list),
        json!({ "Link": header("`<…?limit=&after=>; rel=\"next\"` when there is a next page.") }),
    )
}

fn no_content(description: &str) -> Value {
    json!({ "description": description })
}

fn paths_json() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut add = |path: &str, method: &str, op: Op| {
        let item = paths
            .entry(format!("/admin/v1{path}"))
            .or_insert_with(|| json!({}));
        item[method] = op.build();
    };

    for (section, noun, schema, list, key_doc) in [
        ("apis", "api", "Api", "ApiList", "The API's name."),
        (
            "products",
            "product",
            "Product",
            "ProductList",
            "The product's name.",
        ),
        (
            "developers",
            "developer",
            "Developer",
            "DeveloperList",
            "The developer's e-mail (compared lower-cased).",
        ),
        ("apps", "app", "App", "AppList", "The app's name."),
    ] {
        let etag = json!({ "ETag": header("`\"<revision>\"`: give it back in `If-Match`.") });
        add(
            &format!("/{section}"),
            "get",
            page_params(
                Op::new(
                    format!("list-{section}"),
                    "entities",
                    format!("List {section}"),
                ),
                "The `next` of the previous page.",
            )
            .ok(200, listing_response(list)),
        );
        let item = format!("/{section}/{{name}}");
        add(
            &item,
            "get",
            Op::new(
                format!("get-{noun}"),
                "entities",
                format!("Read one {noun}"),
            )
            .param(path_param("name", key_doc))
            .ok(
                200,
                json_response("The document.", schema_ref(schema), etag.clone()),
            )
            .problems(&[404]),
        );
        let mut created_headers = etag.clone();
        created_headers["Location"] = header("The entity's URL.");
        add(
            &item,
            "put",
            Op::new(
                format!("put-{noun}"),
                "entities",
                format!("Create or replace a {noun}; compiled before it is stored"),
            )
            .param(path_param("name", key_doc))
            .param(if_match())
            .param(if_none_match())
            .body(schema_ref(schema), true)
            .ok(
                200,
                json_response(
                    "Replaced; live on this node.",
                    schema_ref(schema),
                    etag.clone(),
                ),
            )
            .ok(
                201,
                json_response(
                    "Created; live on this node.",
                    schema_ref(schema),
                    created_headers,
                ),
            )
            .problems(&[412, 422]),
        );
        add(
            &item,
            "delete",
            Op::new(
                format!("delete-{noun}"),
                "entities",
                format!("Delete a {noun}"),
            )
            .param(path_param("name", key_doc))
            .param(if_match())
            .ok(204, no_content("Deleted; live on this node."))
            .problems(&[404, 409, 412, 422]),
        );
    }

    let app = || path_param("name", "The app's name.");
    let key_id = || path_param("id", "The key's id (12 hex digits).");
    let product = || path_param("product", "The product's name.");
    let secret_headers = json!({
        "Location": header("The key's URL."),
        "Cache-Control": header("`no-store`: the body holds a secret."),
    });
    add(
        "/apps/{name}/keys",
        "get",
        Op::new(
            "list-keys",
            "credentials",
            "List an app's API keys (never their secrets)",
        )
        .param(app())
        .ok(
            200,
            json_response("The keys.", schema_ref("KeyList"), json!({})),
        )
        .problems(&[404]),
    );
    add(
        "/apps/{name}/keys",
        "post",
        Op::new(
            "issue-key",
            "credentials",
            "Issue an API key; the answer is the only place it is shown",
        )
        .param(app())
        .body(schema_ref("IssueKey"), false)
        .ok(
            201,
            json_response(
                "The new key, once.",
                schema_ref("IssuedKeyView"),
                secret_headers.clone(),
            ),
        )
        .problems(&[404, 422]),
    );
    add(
        "/apps/{name}/keys/{id}",
        "delete",
        Op::new("revoke-key", "credentials", "Revoke an API key at once")
            .param(app())
            .param(key_id())
            .ok(204, no_content("Revoked."))
            .problems(&[404]),
    );
    add(
        "/apps/{name}/keys/{id}/rotate",
        "post",
        Op::new(
            "rotate-key",
            "credentials",
            "Replace a key; the old one works for the overlap",
        )
        .param(app())
        .param(key_id())
        .body(schema_ref("RotateKey"), false)
        .ok(
            201,
            json_response(
                "The new key, once.",
                schema_ref("IssuedKeyView"),
                secret_headers,
            ),
        )
        .problems(&[404, 422]),
    );
    add(
        "/apps/{name}/subscriptions",
        "get",
        page_params_with(
            Op::new(
                "list-app-subscriptions",
                "credentials",
                "An app's subscriptions",
            ),
            "The `next` of the previous page (`app/product`).",
            subscription_cursor(),
        )
        .param(app())
        .ok(200, listing_response("SubscriptionList"))
        .problems(&[404]),
    );
    let sub_etag = json!({ "ETag": header("`\"<revision>\"` of the subscription.") });
    let mut sub_created = sub_etag.clone();
    sub_created["Location"] = header("The subscription's URL.");
    add(
        "/apps/{name}/subscriptions",
        "post",
        Op::new(
            "subscribe",
            "credentials",
            "Ask for a product: approved at once (`approval: auto`) or pending (`manual`)",
        )
        .param(app())
        .body(schema_ref("SubscriptionRequest"), true)
        .ok(
            201,
            json_response(
                "The subscription.",
                schema_ref("SubscriptionView"),
                sub_created,
            ),
        )
        .problems(&[404, 409]),
    );
    let sub = "/apps/{name}/subscriptions/{product}";
    add(
        sub,
        "get",
        Op::new("get-subscription", "credentials", "One subscription")
            .param(app())
            .param(product())
            .ok(
                200,
                json_response(
                    "The subscription.",
                    schema_ref("SubscriptionView"),
                    sub_etag.clone(),
                ),
            )
            .problems(&[404]),
    );
    add(
        sub,
        "put",
        Op::new(
            "set-subscription",
            "credentials",
            "Approve or reject a subscription (admins)",
        )
        .param(app())
        .param(product())
        .param(if_match())
        .body(schema_ref("SubscriptionStatus"), true)
        .ok(
            200,
            json_response(
                "The subscription.",
                schema_ref("SubscriptionView"),
                sub_etag,
            ),
        )
        .problems(&[404, 412]),
    );
    add(
        sub,
        "delete",
        Op::new("unsubscribe", "credentials", "End a subscription")
            .param(app())
            .param(product())
            .param(if_match())
            .ok(204, no_content("Ended."))
            .problems(&[404, 412]),
    );
    add(
        "/subscriptions",
        "get",
        page_params_with(
            Op::new(
                "list-subscriptions",
                "credentials",
                "Every subscription, optionally of one status",
            ),
            "The `next` of the previous page (`app/product`).",
            subscription_cursor(),
        )
        .param(json!({ "name": "status", "in": "query", "required": false,
                       "schema": schema_ref("StatusName") }))
        .ok(200, listing_response("SubscriptionList")),
    );

    let user = || path_param("name", "The user's name.");
    let user_etag = json!({ "ETag": header("`\"<revision>\"` of the user.") });
    let mut user_created = user_etag.clone();
    user_created["Location"] = header("The user's URL.");
    add(
        "/users",
        "get",
        page_params(
            Op::new("list-users", "users", "List users"),
            "The `next` of the previous page.",
        )
        .ok(200, listing_response("UserList")),
    );
    add(
        "/users/{name}",
        "get",
        Op::new("get-user", "users", "Read a user")
            .param(user())
            .ok(
                200,
                json_response("The user.", schema_ref("UserView"), user_etag.clone()),
            )
            .problems(&[404]),
    );
    add(
        "/users/{name}",
        "put",
        Op::new("put-user", "users", "Create or replace a user and its role")
            .param(user())
            .param(if_match())
            .param(if_none_match())
            .body(schema_ref("UserBody"), true)
            .ok(
                200,
                json_response("Replaced.", schema_ref("UserView"), user_etag),
            )
            .ok(
                201,
                json_response("Created.", schema_ref("UserView"), user_created),
            )
            .problems(&[409, 412, 422]),
    );
    add(
        "/users/{name}",
        "delete",
        Op::new("delete-user", "users", "Delete a user and its tokens")
            .param(user())
            .param(if_match())
            .ok(204, no_content("Deleted."))
            .problems(&[404, 409, 412]),
    );
    add(
        "/users/{name}/tokens",
        "post",
        Op::new(
            "issue-token",
            "users",
            "Issue an admin token for a user; shown once",
        )
        .param(user())
        .body(schema_ref("TokenRequest"), false)
        .ok(
            201,
            json_response(
                "The new token, once.",
                schema_ref("IssuedTokenView"),
                json!({ "Cache-Control": header("`no-store`.") }),
            ),
        )
        .problems(&[404, 422]),
    );
    add(
        "/tokens",
        "get",
        Op::new("list-tokens", "users", "List admin tokens (never their secrets)")
            .param(json!({ "name": "user", "in": "query", "required": false,
                           "description": "Only this user's tokens.", "schema": { "type": "string" } }))
            .ok(200, json_response("The tokens.", schema_ref("TokenList"), json!({}))),
    );
    add(
        "/tokens/{id}",
        "delete",
        Op::new(
            "revoke-token",
            "users",
            "Revoke an admin token (admins; anyone their own)",
        )
        .param(path_param("id", "The token's id."))
        .ok(204, no_content("Revoked."))
        .problems(&[404]),
    );
    add(
        "/audit",
        "get",
        page_params_with(
            Op::new("audit-log", "users", "The audit log, oldest first"),
            "The `next` of the previous page (a record id).",
            json!({ "type": "string", "pattern": "^[0-9]{0,18}$" }),
        )
        .ok(200, listing_response("AuditList")),
    );
    add(
        "/me",
        "get",
        Op::new("me", "users", "Who the token speaks for").ok(
            200,
            json_response("The principal.", schema_ref("MeView"), json!({})),
        ),
    );

    add(
        "/reload",
        "post",
        Op::new(
            "reload",
            "node",
            "Re-read the node's configuration file (admins)",
        )
        .ok(
            200,
            json_response("Published.", schema_ref("ReloadSummary"), json!({})),
        )
        .problems(&[409, 422]),
    );
    add(
        "/upstreams",
        "get",
        Op::new("upstreams", "node", "Every API's targets and their health").ok(
            200,
            json_response("Targets.", schema_ref("Health"), json!({})),
        ),
    );
    add(
        "/apis/{name}/health",
        "get",
        Op::new("api-health", "node", "One API's targets and their health")
            .param(path_param("name", "The API's name."))
            .ok(
                200,
                json_response("Targets.", schema_ref("Health"), json!({})),
            )
            .problems(&[404]),
    );
    add(
        "/apply",
        "post",
        Op::new(
            "apply",
            "node",
            "Make the store match a set of entities in one transaction (admins); `portico apply`",
        )
        .body(schema_ref("ApplyRequest"), true)
        .ok(
            200,
            json_response(
                "What changed, or would change.",
                schema_ref("DiffView"),
                json!({}),
            ),
        )
        .problems(&[409, 422]),
    );
    add(
        "/export",
        "get",
        Op::new(
            "export",
            "node",
            "Every entity, as `portico export` prints it (admins)",
        )
        .ok(
            200,
            json_response(
                "The entities; apps carry their active keys as `api_key_hashes`.",
                schema_ref("Entities"),
                json!({ "Portico-Config-Version": header("The configuration version exported.") }),
            ),
        ),
    );
    Value::Object(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let doc = serde_json::to_value(build().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 20, "{}", paths.len());
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("401"), "{method} {path}");
                assert!(op["operationId"].is_string(), "{method} {path}");
            }
        }
        for name in ["Api", "App", "Problem", "KeyView", "UserBody", "AuditView"] {
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "schema {name}"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
