//! The cases, each run against SQLite and PostgreSQL.

use portico_store::{Actor, Page, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Admin, problem};

fn api(name: &str) -> Value {
    json!({
        "name": name,
        "base_path": format!("/{name}"),
        "upstream": { "targets": ["http://127.0.0.1:9"] },
    })
}

/// An API, a product with `approval`, two developers and one app each.
async fn catalog(a: &Admin, approval: &str) {
    a.put("/admin/v1/apis/orders", api("orders")).await;
    a.put(
        "/admin/v1/products/basic",
        json!({ "apis": ["orders"], "approval": approval }),
    )
    .await;
    for (dev, app) in [
        ("one@example.com", "app-one"),
        ("two@example.com", "app-two"),
    ] {
        a.put(
            &format!("/admin/v1/developers/{dev}"),
            json!({ "name": dev }),
        )
        .await;
        a.put(
            &format!("/admin/v1/apps/{app}"),
            json!({ "developer": dev }),
        )
        .await;
    }
}

async fn audit(a: &Admin) -> Vec<portico_store::AuditRecord> {
    a.store.audit_log(&Page::first(1000)).await.unwrap().items
}

pub async fn entities_round_trip_with_etags(a: &Admin) {
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/orders")
        .json(&api("orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    assert_eq!(resp.headers()["location"], "/admin/v1/apis/orders");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["base_path"], "/orders");

    let resp = a
        .req(Method::GET, "/admin/v1/apis/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    assert_eq!(resp.json::<Value>().await.unwrap(), api("orders"));

    let mut changed = api("orders");
    changed["base_path"] = json!("/orders/v2");
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/orders")
        .header("if-match", "\"1\"")
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"2\"");

    // An API's spec is its text, and is compiled with the rest.
    let spec = "openapi: 3.1.0\ninfo: { title: Specced, version: '1' }\npaths:\n  /items:\n    get: { responses: { '200': { description: ok } } }\n";
    let mut specced = api("specced");
    specced["spec"] = json!(spec);
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/specced")
        .json(&specced)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got: Value = a
        .req(Method::GET, "/admin/v1/apis/specced")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["spec"], spec);
    specced["spec"] = json!("openapi: 3.1.0\npaths: 7\n");
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/specced")
        .json(&specced)
        .send()
        .await
        .unwrap();
    problem(resp, 422, "invalid-configuration").await;

    // Developers are named by e-mail, compared lower-cased.
    let resp = a
        .req(Method::PUT, "/admin/v1/developers/Dev@Example.com")
        .json(&json!({ "name": "Dev" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = a
        .req(Method::GET, "/admin/v1/developers/dev@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "email": "dev@example.com", "name": "Dev" })
    );

    let resp = a
        .req(Method::DELETE, "/admin/v1/apis/orders")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a
        .req(Method::GET, "/admin/v1/apis/orders")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
    let resp = a
        .req(Method::DELETE, "/admin/v1/apis/orders")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;

    // Malformed JSON is 400; a document that is not an object is 422.
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/x")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(resp, 400, "malformed-request").await;
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/x")
        .json(&json!([1]))
        .send()
        .await
        .unwrap();
    problem(resp, 422, "invalid-entity").await;
    // NUL characters, which PostgreSQL's text cannot hold, answer the
    // same on both stores: no name holds one.
    let resp = a
        .req(Method::GET, "/admin/v1/apis?after=a%00b")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = a
        .req(Method::GET, "/admin/v1/users/a%00b")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
    let resp = a
        .req(Method::GET, "/admin/v1/tokens?user=a%00b")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["items"], json!([]));
    let resp = a
        .req(Method::PUT, "/admin/v1/developers/d@example.com")
        .json(&json!({ "name": "a\u{0}b" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // A name the configuration file would refuse.
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/Bad_Name")
        .json(&api("bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}

pub async fn preconditions_refuse_stale_changes(a: &Admin) {
    a.put("/admin/v1/apis/orders", api("orders")).await;
    a.put("/admin/v1/apis/orders", api("orders")).await; // revision 2
    let stale = a
        .req(Method::PUT, "/admin/v1/apis/orders")
        .header("if-match", "\"1\"")
        .json(&api("orders"))
        .send()
        .await
        .unwrap();
    let body = problem(stale, 412, "precondition-failed").await;
    assert!(
        body["detail"].as_str().unwrap().contains("revision 2"),
        "{body}"
    );
    let exists = a
        .req(Method::PUT, "/admin/v1/apis/orders")
        .header("if-none-match", "*")
        .json(&api("orders"))
        .send()
        .await
        .unwrap();
    problem(exists, 412, "precondition-failed").await;
    let stale_delete = a
        .req(Method::DELETE, "/admin/v1/apis/orders")
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    problem(stale_delete, 412, "precondition-failed").await;
    // Creating only if absent works once.
    let created = a
        .req(Method::PUT, "/admin/v1/apis/other")
        .header("if-none-match", "*")
        .json(&api("other"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // If-Match on something that does not exist.
    let missing = a
        .req(Method::PUT, "/admin/v1/apis/missing")
        .header("if-match", "\"1\"")
        .json(&api("missing"))
        .send()
        .await
        .unwrap();
    problem(missing, 412, "precondition-failed").await;
    let ok = a
        .req(Method::DELETE, "/admin/v1/apis/orders")
        .header("if-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
}

pub async fn invalid_change_is_refused_whole(a: &Admin) {
    let before = audit(a).await.len();
    let version = a.store.config_version().await.unwrap();
    // A product naming an API that does not exist, and a bad limit.
    let resp = a
        .req(Method::PUT, "/admin/v1/products/basic")
        .json(&json!({ "apis": ["nope", "nada"] }))
        .send()
        .await
        .unwrap();
    let body = problem(resp, 422, "invalid-configuration").await;
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "{body}");
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("nope")),
        "{body}"
    );
    let resp = a
        .req(Method::GET, "/admin/v1/products/basic")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(audit(a).await.len(), before);
    assert_eq!(a.store.config_version().await.unwrap(), version);

    // Two APIs on one base path.
    a.put("/admin/v1/apis/orders", api("orders")).await;
    let mut clash = api("clash");
    clash["base_path"] = json!("/orders");
    let resp = a
        .req(Method::PUT, "/admin/v1/apis/clash")
        .json(&clash)
        .send()
        .await
        .unwrap();
    problem(resp, 422, "invalid-configuration").await;
}

pub async fn in_use_entities_are_conflicts(a: &Admin) {
    catalog(a, "auto").await;
    let resp = a
        .req(Method::DELETE, "/admin/v1/developers/one@example.com")
        .send()
        .await
        .unwrap();
    let body = problem(resp, 409, "conflict").await;
    assert!(
        body["detail"].as_str().unwrap().contains("app-one"),
        "{body}"
    );
    let resp = a
        .req(Method::DELETE, "/admin/v1/apis/orders")
        .send()
        .await
        .unwrap();
    problem(resp, 409, "conflict").await;
    // A product with a subscription (approved: in the app's document).
    let resp = a
        .req(Method::POST, "/admin/v1/apps/app-one/subscriptions")
        .json(&json!({ "product": "basic" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = a
        .req(Method::DELETE, "/admin/v1/products/basic")
        .send()
        .await
        .unwrap();
    problem(resp, 409, "conflict").await;
}

pub async fn listings_paginate_with_link_headers(a: &Admin) {
    for i in 0..5 {
        a.put(
            &format!("/admin/v1/developers/d{i}@example.com"),
            json!({ "name": "D" }),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut path = "/admin/v1/developers?limit=2".to_owned();
    loop {
        let resp = a.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let link = resp
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let body: Value = resp.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["email"].as_str().unwrap().to_owned()),
        );
        match link {
            Some(link) => {
                let next = body["next"].as_str().unwrap();
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                assert!(link.contains(&next.replace('@', "%40")), "{link}");
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_owned();
            }
            None => {
                assert!(body["next"].is_null());
                break;
            }
        }
    }
    let expected: Vec<String> = (0..5).map(|i| format!("d{i}@example.com")).collect();
    assert_eq!(seen, expected);
    for bad in ["limit=0", "limit=1001", "limit=x", "colour=red"] {
        let resp = a
            .req(Method::GET, &format!("/admin/v1/developers?{bad}"))
            .send()
            .await
            .unwrap();
        problem(resp, 400, "malformed-request").await;
    }
}

pub async fn tokens_authenticate(a: &Admin) {
    let resp = a.client.get(a.url("/admin/v1/apis")).send().await.unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portico-admin\""
    );
    problem(resp, 401, "missing-credential").await;
    let resp = a
        .as_token("pat_wrong", Method::GET, "/admin/v1/apis")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portico-admin\", error=\"invalid_token\""
    );
    problem(resp, 401, "invalid-credential").await;
    // Unknown paths are behind the token too.
    let resp = a
        .client
        .get(a.url("/admin/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = a
        .req(Method::GET, "/admin/v1/nothing")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;

    // A token stops working when revoked or expired.
    let token = a.token_for("ops", Role::Admin, None).await;
    let me: Value = a
        .as_token(&token, Method::GET, "/admin/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "ops");
    assert_eq!(me["role"], "admin");
    let id = me["token_id"].as_str().unwrap().to_owned();
    let resp = a
        .req(Method::DELETE, &format!("/admin/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a
        .as_token(&token, Method::GET, "/admin/v1/me")
        .send()
        .await
        .unwrap();
    problem(resp, 401, "invalid-credential").await;
    let expired = a
        .store
        .issue_admin_token(
            &Actor::system(),
            "ops",
            "expired",
            Some(portico_store::now_millis() - 1),
        )
        .await
        .unwrap();
    let resp = a
        .as_token(expired.plaintext.expose(), Method::GET, "/admin/v1/me")
        .send()
        .await
        .unwrap();
    problem(resp, 401, "invalid-credential").await;
}

pub async fn consumer_changing_another_developers_app_is_refused_and_audited(a: &Admin) {
    catalog(a, "auto").await;
    let one = a
        .token_for("one", Role::Consumer, Some("one@example.com"))
        .await;
    // Its own app: allowed.
    let resp = a
        .as_token(&one, Method::PUT, "/admin/v1/apps/app-one")
        .json(&json!({ "developer": "one@example.com", "certificates": ["CN=one"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Another developer's app: refused, and nothing changes.
    let attempt = json!({ "developer": "two@example.com", "certificates": ["CN=one"] });
    let resp = a
        .as_token(&one, Method::PUT, "/admin/v1/apps/app-two")
        .json(&attempt)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portico-admin\", error=\"insufficient_scope\""
    );
    problem(resp, 403, "forbidden").await;
    let two = a
        .store
        .get(portico_store::Kind::App, "app-two")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(two.revision, 1);
    assert!(two.document.get("certificates").is_none());
    // Taking it over by naming one's own developer: refused too.
    let resp = a
        .as_token(&one, Method::PUT, "/admin/v1/apps/app-two")
        .json(&json!({ "developer": "one@example.com" }))
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;
    let resp = a
        .as_token(&one, Method::DELETE, "/admin/v1/apps/app-two")
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;

    let refused: Vec<_> = audit(a)
        .await
        .into_iter()
        .filter(|r| r.outcome == portico_store::Outcome::Refused)
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    let first = &refused[0];
    assert_eq!(first.actor, "one");
    assert_eq!(first.action, "put");
    assert_eq!(first.kind, "app");
    assert_eq!(first.name, "app-two");
    assert_eq!(first.after.as_ref(), Some(&attempt));
    assert_eq!(refused[2].action, "delete");
    // The refusals are readable through the API.
    let log: Value = a
        .req(Method::GET, "/admin/v1/audit?limit=1000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["outcome"] == "refused")
            .count(),
        3
    );
}

pub async fn roles_follow_the_table(a: &Admin) {
    catalog(a, "auto").await;
    let one = a
        .token_for("one", Role::Consumer, Some("one@example.com"))
        .await;
    let publisher = a.token_for("pub", Role::Publisher, None).await;
    let status = |token: &str, method: Method, path: &str, body: Option<Value>| {
        let mut req = a.as_token(token, method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Consumer: the catalog, its developer and apps; nothing else.
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/products/basic", None).await,
        200
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/products", None).await,
        200
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/apis/orders", None).await,
        403
    );
    assert_eq!(
        status(
            &one,
            Method::GET,
            "/admin/v1/developers/one@example.com",
            None
        )
        .await,
        200
    );
    assert_eq!(
        status(
            &one,
            Method::GET,
            "/admin/v1/developers/two@example.com",
            None
        )
        .await,
        403
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/apps/app-two", None).await,
        403
    );
    assert_eq!(
        status(
            &one,
            Method::PUT,
            "/admin/v1/products/basic",
            Some(json!({"apis": []}))
        )
        .await,
        403
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/users", None).await,
        403
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/audit", None).await,
        403
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/upstreams", None).await,
        403
    );
    assert_eq!(
        status(&one, Method::GET, "/admin/v1/export", None).await,
        403
    );
    assert_eq!(status(&one, Method::GET, "/admin/v1/me", None).await, 200);
    // A consumer's list of apps is its own.
    let apps: Value = a
        .as_token(&one, Method::GET, "/admin/v1/apps")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(apps["items"].as_array().unwrap().len(), 1);
    assert_eq!(apps["items"][0]["name"], "app-one");
    // A consumer cannot approve its own subscriptions through the document.
    assert_eq!(
        status(
            &one,
            Method::PUT,
            "/admin/v1/apps/app-one",
            Some(json!({"developer": "one@example.com", "products": ["basic"]}))
        )
        .await,
        403
    );
    // A consumer creates an app for itself.
    assert_eq!(
        status(
            &one,
            Method::PUT,
            "/admin/v1/apps/app-new",
            Some(json!({"developer": "one@example.com"}))
        )
        .await,
        201
    );

    // Publisher: APIs and products; reads developers and apps.
    assert_eq!(
        status(
            &publisher,
            Method::PUT,
            "/admin/v1/apis/billing",
            Some(api("billing"))
        )
        .await,
        201
    );
    assert_eq!(
        status(&publisher, Method::GET, "/admin/v1/apps/app-two", None).await,
        200
    );
    assert_eq!(
        status(&publisher, Method::GET, "/admin/v1/apps", None).await,
        200
    );
    assert_eq!(
        status(&publisher, Method::GET, "/admin/v1/upstreams", None).await,
        200
    );
    assert_eq!(
        status(
            &publisher,
            Method::PUT,
            "/admin/v1/apps/app-two",
            Some(json!({"developer": "two@example.com"}))
        )
        .await,
        403
    );
    assert_eq!(
        status(
            &publisher,
            Method::POST,
            "/admin/v1/apps/app-two/keys",
            None
        )
        .await,
        403
    );
    assert_eq!(
        status(&publisher, Method::GET, "/admin/v1/tokens", None).await,
        403
    );
    assert_eq!(
        status(&publisher, Method::POST, "/admin/v1/reload", None).await,
        403
    );
    // Admin: the reload answers for itself (no file here).
    assert_eq!(
        status(ADMIN_TOKEN, Method::POST, "/admin/v1/reload", None).await,
        409
    );
}

pub async fn keys_issue_rotate_revoke(a: &Admin) {
    catalog(a, "auto").await;
    let one = a
        .token_for("one", Role::Consumer, Some("one@example.com"))
        .await;
    let resp = a
        .as_token(&one, Method::POST, "/admin/v1/apps/app-one/keys")
        .json(&json!({ "expires_in": "30d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let issued: Value = resp.json().await.unwrap();
    let key = issued["key"].as_str().unwrap().to_owned();
    let id = issued["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(issued["prefix"].as_str().unwrap()));
    assert!(issued["expires_at"].as_i64().unwrap() > portico_store::now_millis());
    assert_eq!(a.store.verify_key(&key).await.unwrap().unwrap().id, id);

    // Listing never shows the secret.
    let resp = a
        .as_token(&one, Method::GET, "/admin/v1/apps/app-one/keys")
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&key));
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["active"], true);

    // Rotation: a new key, the old one still works for the overlap.
    let resp = a
        .as_token(
            &one,
            Method::POST,
            &format!("/admin/v1/apps/app-one/keys/{id}/rotate"),
        )
        .json(&json!({ "overlap": "1h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let rotated: Value = resp.json().await.unwrap();
    let new_key = rotated["key"].as_str().unwrap();
    assert_ne!(new_key, key);
    assert!(a.store.verify_key(new_key).await.unwrap().is_some());
    assert!(a.store.verify_key(&key).await.unwrap().is_some());

    // Revocation ends it at once.
    let resp = a
        .as_token(
            &one,
            Method::DELETE,
            &format!("/admin/v1/apps/app-one/keys/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(a.store.verify_key(&key).await.unwrap().is_none());
    let resp = a
        .as_token(
            &one,
            Method::POST,
            &format!("/admin/v1/apps/app-one/keys/{id}/rotate"),
        )
        .send()
        .await
        .unwrap();
    problem(resp, 422, "invalid-entity").await;
    let resp = a
        .req(Method::DELETE, "/admin/v1/apps/app-one/keys/000000000000")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;

    // Another developer's app: refused.
    let resp = a
        .as_token(&one, Method::POST, "/admin/v1/apps/app-two/keys")
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;
    let resp = a
        .req(Method::POST, "/admin/v1/apps/app-one/keys")
        .json(&json!({ "expires_in": "soon" }))
        .send()
        .await
        .unwrap();
    problem(resp, 422, "invalid-entity").await;
    let resp = a
        .req(Method::POST, "/admin/v1/apps/app-one/keys")
        .json(&json!({ "expires_in": 5 }))
        .send()
        .await
        .unwrap();
    problem(resp, 400, "malformed-request").await;
    let resp = a
        .req(Method::POST, "/admin/v1/apps/nope/keys")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
}

pub async fn subscriptions_follow_product_approval(a: &Admin) {
    catalog(a, "manual").await;
    let one = a
        .token_for("one", Role::Consumer, Some("one@example.com"))
        .await;
    let resp = a
        .as_token(&one, Method::POST, "/admin/v1/apps/app-one/subscriptions")
        .json(&json!({ "product": "basic" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let sub: Value = resp.json().await.unwrap();
    assert_eq!(sub["status"], "pending");
    let resp = a
        .as_token(&one, Method::POST, "/admin/v1/apps/app-one/subscriptions")
        .json(&json!({ "product": "basic" }))
        .send()
        .await
        .unwrap();
    problem(resp, 409, "conflict").await;
    // The consumer cannot approve it.
    let resp = a
        .as_token(
            &one,
            Method::PUT,
            "/admin/v1/apps/app-one/subscriptions/basic",
        )
        .json(&json!({ "status": "approved" }))
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;
    // The pending queue, as an admin sees it.
    let queue: Value = a
        .req(Method::GET, "/admin/v1/subscriptions?status=pending")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queue["items"][0]["app"], "app-one");
    let resp = a
        .req(Method::PUT, "/admin/v1/apps/app-one/subscriptions/basic")
        .header("if-match", "\"1\"")
        .json(&json!({ "status": "approved" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let app: Value = a
        .as_token(&one, Method::GET, "/admin/v1/apps/app-one")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["products"], json!(["basic"]));
    // The consumer may now PUT its app with the same products, or none
    // (kept as they are).
    let resp = a
        .as_token(&one, Method::PUT, "/admin/v1/apps/app-one")
        .json(&json!({ "developer": "one@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["products"],
        json!(["basic"])
    );
    let resp = a
        .req(Method::PUT, "/admin/v1/apps/app-one/subscriptions/basic")
        .json(&json!({ "status": "maybe" }))
        .send()
        .await
        .unwrap();
    problem(resp, 400, "malformed-request").await;
    let resp = a
        .as_token(
            &one,
            Method::DELETE,
            "/admin/v1/apps/app-one/subscriptions/basic",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a
        .as_token(
            &one,
            Method::GET,
            "/admin/v1/apps/app-one/subscriptions/basic",
        )
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
}

pub async fn users_and_tokens(a: &Admin) {
    a.put(
        "/admin/v1/developers/one@example.com",
        json!({ "name": "One" }),
    )
    .await;
    let resp = a
        .req(Method::PUT, "/admin/v1/users/carol")
        .json(&json!({ "role": "consumer", "developer": "one@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    let resp = a
        .req(Method::PUT, "/admin/v1/users/dave")
        .json(&json!({ "role": "consumer" }))
        .send()
        .await
        .unwrap();
    problem(resp, 422, "invalid-entity").await;
    let resp = a
        .req(Method::PUT, "/admin/v1/users/dave")
        .json(&json!({ "role": "root" }))
        .send()
        .await
        .unwrap();
    problem(resp, 400, "malformed-request").await;

    let resp = a
        .req(Method::POST, "/admin/v1/users/carol/tokens")
        .json(&json!({ "description": "portal", "expires_in": "1d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let issued: Value = resp.json().await.unwrap();
    let token = issued["token"].as_str().unwrap();
    let me: Value = a
        .as_token(token, Method::GET, "/admin/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        json!({
            "user": "carol", "role": "consumer", "developer": "one@example.com",
            "token_id": issued["id"],
        })
    );
    let tokens: Value = a
        .req(Method::GET, "/admin/v1/tokens?user=carol")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["items"].as_array().unwrap().len(), 1);
    assert!(!tokens.to_string().contains(token));
    let users: Value = a
        .req(Method::GET, "/admin/v1/users")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol"]);
    // A consumer may revoke the token it holds, not others'.
    let admin_token_id = a.store.list_admin_tokens(Some("admin")).await.unwrap()[0]
        .id
        .clone();
    let resp = a
        .as_token(
            token,
            Method::DELETE,
            &format!("/admin/v1/tokens/{admin_token_id}"),
        )
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;
    // An admin cannot lock itself out.
    let resp = a
        .req(Method::DELETE, "/admin/v1/users/admin")
        .send()
        .await
        .unwrap();
    problem(resp, 409, "conflict").await;
    // Deleting a user ends its tokens.
    let resp = a
        .req(Method::DELETE, "/admin/v1/users/carol")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a
        .as_token(token, Method::GET, "/admin/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = a
        .req(Method::GET, "/admin/v1/users/carol")
        .send()
        .await
        .unwrap();
    problem(resp, 404, "not-found").await;
}

pub async fn changes_are_published(a: &Admin) {
    a.put("/admin/v1/apis/orders", api("orders")).await;
    let v = a.store.config_version().await.unwrap();
    assert_eq!(a.published.borrow().last(), Some(&v));
    let resp = a
        .req(Method::PUT, "/admin/v1/products/p")
        .json(&json!({ "apis": ["missing"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(
        a.published.borrow().len(),
        1,
        "a refused change publishes nothing"
    );
    a.put("/admin/v1/developers/d@example.com", json!({ "name": "D" }))
        .await;
    a.put("/admin/v1/apps/x", json!({"developer": "d@example.com"}))
        .await;
    let resp = a
        .req(Method::POST, "/admin/v1/apps/x/keys")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v = a.store.config_version().await.unwrap();
    assert_eq!(a.published.borrow().last(), Some(&v));
    assert_eq!(a.published.borrow().len(), 4);
    // The export is what was published.
    let export: Value = a
        .req(Method::GET, "/admin/v1/export")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(export["apis"][0]["name"], "orders");
    assert_eq!(
        export["apps"][0]["api_key_hashes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

pub async fn bootstrap_token(a: &Admin) {
    // The harness imported ADMIN_TOKEN: importing again changes nothing.
    assert_eq!(
        portico_control::bootstrap_admin_token(&a.store, Some(ADMIN_TOKEN))
            .await
            .unwrap(),
        None
    );
    assert_eq!(a.store.list_admin_tokens(None).await.unwrap().len(), 1);
    // A usable admin token exists: nothing is generated.
    assert_eq!(
        portico_control::bootstrap_admin_token(&a.store, None)
            .await
            .unwrap(),
        None
    );
    assert!(
        portico_control::bootstrap_admin_token(&a.store, Some("short"))
            .await
            .is_err()
    );
    // Once it is revoked, a new one is generated and works.
    let id = a.store.list_admin_tokens(None).await.unwrap()[0].id.clone();
    a.store
        .revoke_admin_token(&Actor::system(), &id)
        .await
        .unwrap();
    let generated = portico_control::bootstrap_admin_token(&a.store, None)
        .await
        .unwrap()
        .expect("a new token");
    let resp = a
        .as_token(&generated, Method::GET, "/admin/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

pub async fn openapi_document_is_open(a: &Admin) {
    let resp = a
        .client
        .get(a.url("/admin/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/admin/v1/apis/{name}",
        "/admin/v1/apps",
        "/admin/v1/apps/{name}/keys",
        "/admin/v1/users/{name}",
        "/admin/v1/audit",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    let resp = a.client.get(a.url("/admin/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("swagger"));
}

/// The document and the router agree: every documented operation is
/// routed (its answer is neither 405 nor the no-route 404), and every other
/// method on a documented path is 405 with `Allow`.
pub async fn every_documented_operation_is_routed(a: &Admin) {
    let doc: Value = a
        .client
        .get(a.url("/admin/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (template, item) in paths {
        // A value no entity has, for every path parameter.
        let mut path = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').unwrap() + start;
            path.push_str(&rest[..start]);
            path.push_str("zz-none");
            rest = &rest[end + 1..];
        }
        path.push_str(rest);
        let documented = item.as_object().unwrap();
        for method in [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ] {
            let resp = a.req(method.clone(), &path).send().await.unwrap();
            let status = resp.status().as_u16();
            if documented.contains_key(&method.as_str().to_ascii_lowercase()) {
                operations += 1;
                assert_ne!(status, 405, "{method} {template} is documented, not routed");
                if status == 404 {
                    let body: Value = resp.json().await.unwrap();
                    assert_ne!(
                        body["detail"], "The admin API has no such resource.",
                        "{method} {template} is documented, not routed"
                    );
                }
            } else {
                assert_eq!(status, 405, "{method} {template} is routed, not documented");
                assert!(resp.headers().contains_key("allow"), "{method} {template}");
            }
        }
    }
    assert!(operations >= 40, "{operations}");
}

pub async fn apply_and_export(a: &Admin) {
    let entities = json!({
        "apis": [api("orders")],
        "products": [{ "name": "basic", "apis": ["orders"] }],
        "developers": [{ "email": "one@example.com", "name": "One" }],
        "apps": [{ "name": "app-one", "developer": "one@example.com", "products": ["basic"],
                   "api_keys": ["test-key-0001"] }],
    });
    let apply = |body: Value| async move {
        a.req(Method::POST, "/admin/v1/apply")
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    // A dry run changes nothing.
    let resp = apply(json!({ "entities": entities, "dry_run": true })).await;
    assert_eq!(resp.status(), 200);
    let diff: Value = resp.json().await.unwrap();
    assert_eq!(diff["changes"].as_array().unwrap().len(), 4, "{diff}");
    assert!(diff["version"].is_null());
    assert!(
        a.store
            .get(portico_store::Kind::Api, "orders")
            .await
            .unwrap()
            .is_none()
    );

    let diff: Value = apply(json!({ "entities": entities }))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<String> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["action"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "create developer one@example.com",
            "create api orders",
            "create product basic",
            "create app app-one"
        ]
    );
    let v = diff["version"].as_i64().unwrap();
    assert_eq!(a.published.borrow().last(), Some(&v));
    assert!(a.store.verify_key("test-key-0001").await.unwrap().is_some());

    // The export applied back (pruning) changes nothing.
    let export: Value = a
        .req(Method::GET, "/admin/v1/export")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let diff: Value = apply(json!({ "entities": export, "prune": true, "dry_run": true }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(diff["changes"], json!([]), "{diff}");

    // Pruning deletes what the request does not list.
    let diff: Value = apply(json!({
        "entities": { "apis": [api("orders")], "products": [], "developers": [], "apps": [] },
        "prune": true,
    }))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(diff["changes"].as_array().unwrap().len(), 3, "{diff}");

    // Invalid: refused whole, nothing stored.
    let resp =
        apply(json!({ "entities": { "products": [{ "name": "p", "apis": ["nope"] }] } })).await;
    problem(resp, 422, "invalid-configuration").await;
    assert!(
        a.store
            .get(portico_store::Kind::Product, "p")
            .await
            .unwrap()
            .is_none()
    );
    let resp = apply(json!({ "entities": { "widgets": [] } })).await;
    problem(resp, 422, "invalid-entity").await;
    let resp = apply(json!({ "entities": {}, "force": true })).await;
    problem(resp, 400, "malformed-request").await;

    // Admins only.
    let publisher = a.token_for("pub", Role::Publisher, None).await;
    let resp = a
        .as_token(&publisher, Method::POST, "/admin/v1/apply")
        .json(&json!({ "entities": {} }))
        .send()
        .await
        .unwrap();
    problem(resp, 403, "forbidden").await;
}
