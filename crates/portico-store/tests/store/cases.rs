//! The cases, each a function of a test database; `store.rs` runs every one
//! on SQLite and on PostgreSQL.

use std::time::Duration;

use portico_store::{Actor, Error, Expect, Kind, Outcome, Page, Role, Status, Store, now_millis};
use serde_json::{Value, json};

use crate::support::TestDb;

fn admin() -> Actor {
    Actor::new("alice")
}

fn api(name: &str, base_path: &str) -> Value {
    json!({ "name": name, "base_path": base_path, "upstream": { "targets": ["http://127.0.0.1:9001"] } })
}

/// An API, a product with it, a developer and an app subscribed to it.
async fn seed(store: &Store) {
    let a = admin();
    store
        .put(
            &a,
            Kind::Api,
            "orders",
            api("orders", "/orders/v1"),
            Expect::Absent,
        )
        .await
        .unwrap();
    store
        .put(
            &a,
            Kind::Product,
            "orders-basic",
            json!({ "apis": ["orders"], "approval": "auto" }),
            Expect::Absent,
        )
        .await
        .unwrap();
    store
        .put(
            &a,
            Kind::Developer,
            "Dev@Example.com",
            json!({ "email": "dev@example.com", "name": "Dev One" }),
            Expect::Absent,
        )
        .await
        .unwrap();
    store
        .put(
            &a,
            Kind::App,
            "dev-app",
            json!({ "developer": "DEV@example.com", "products": ["orders-basic"] }),
            Expect::Absent,
        )
        .await
        .unwrap();
}

async fn audit_len(store: &Store) -> usize {
    store
        .audit_log(&Page::first(1000))
        .await
        .unwrap()
        .items
        .len()
}

pub async fn migrations_are_idempotent_on_reopen(db: &TestDb) {
    seed(&db.store).await;
    let version = db.store.config_version().await.unwrap();
    // Opening again runs the migrator again: nothing is applied twice and
    // nothing is lost.
    let again = Store::open(&db.url).await.unwrap();
    let again2 = Store::open(&db.url).await.unwrap();
    assert_eq!(again.config_version().await.unwrap(), version);
    assert!(again2.get(Kind::App, "dev-app").await.unwrap().is_some());
    again.close().await;
    again2.close().await;
}

pub async fn entities_round_trip(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    let stored = store.get(Kind::Api, "orders").await.unwrap().unwrap();
    assert_eq!(stored.document["base_path"], "/orders/v1");
    assert_eq!(stored.revision, 1);
    let dev = store
        .get(Kind::Developer, "DEV@EXAMPLE.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dev.name, "dev@example.com");
    assert_eq!(
        dev.document,
        json!({ "email": "dev@example.com", "name": "Dev One" })
    );
    let app = store.get(Kind::App, "dev-app").await.unwrap().unwrap();
    assert_eq!(
        app.document,
        json!({ "name": "dev-app", "developer": "dev@example.com", "products": ["orders-basic"] })
    );

    // Replace: the revision grows, the creation time stays.
    let updated = store
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api_doc_with_hosts(),
            Expect::Revision(1),
        )
        .await
        .unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.created_at, stored.created_at);
    assert_eq!(updated.document["hosts"], json!(["api.example.com"]));

    // A document naming another entity is refused.
    let err = store
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api("other", "/x"),
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let err = store
        .put(
            &admin(),
            Kind::Api,
            "Bad_Name",
            api("Bad_Name", "/x"),
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");

    // Delete the app, then everything else.
    store
        .delete(&admin(), Kind::App, "dev-app", Expect::Any)
        .await
        .unwrap();
    assert!(store.get(Kind::App, "dev-app").await.unwrap().is_none());
    store
        .delete(&admin(), Kind::Product, "orders-basic", Expect::Any)
        .await
        .unwrap();
    store
        .delete(
            &admin(),
            Kind::Developer,
            "dev@example.com",
            Expect::Revision(1),
        )
        .await
        .unwrap();
    store
        .delete(&admin(), Kind::Api, "orders", Expect::Revision(2))
        .await
        .unwrap();
    for kind in Kind::ALL {
        assert!(
            store
                .list(kind, &Page::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
    let err = store
        .delete(&admin(), Kind::Api, "orders", Expect::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Users, linked to a developer.
    store
        .put(
            &admin(),
            Kind::Developer,
            "d@example.com",
            json!({ "name": "D" }),
            Expect::Any,
        )
        .await
        .unwrap();
    let u = store
        .put_user(
            &admin(),
            "bob",
            Role::Consumer,
            Some("D@example.com"),
            Expect::Absent,
        )
        .await
        .unwrap();
    assert_eq!(u.developer.as_deref(), Some("d@example.com"));
    let u = store
        .put_user(&admin(), "bob", Role::Publisher, None, Expect::Revision(1))
        .await
        .unwrap();
    assert_eq!((u.role, u.revision), (Role::Publisher, 2));
    assert!(matches!(
        store
            .put_user(&admin(), "carol", Role::Consumer, None, Expect::Any)
            .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        store
            .put_user(
                &admin(),
                "carol",
                Role::Consumer,
                Some("nobody@example.com"),
                Expect::Any
            )
            .await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(
        store
            .list_users(&Page::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    store
        .delete_user(&admin(), "bob", Expect::Any)
        .await
        .unwrap();
    assert!(store.get_user("bob").await.unwrap().is_none());
}

fn api_doc_with_hosts() -> Value {
    let mut doc = api("orders", "/orders/v1");
    doc["hosts"] = json!(["api.example.com"]);
    doc
}

pub async fn audit_commits_with_the_change(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    store
        .put(
            &Actor::new("bob"),
            Kind::Api,
            "orders",
            api_doc_with_hosts(),
            Expect::Any,
        )
        .await
        .unwrap();
    store
        .delete(&Actor::new("carol"), Kind::App, "dev-app", Expect::Any)
        .await
        .unwrap();
    let log = store.audit_log(&Page::first(100)).await.unwrap().items;
    assert_eq!(log.len(), 6);
    let update = &log[4];
    assert_eq!(
        (
            update.actor.as_str(),
            update.action.as_str(),
            update.kind.as_str(),
            update.name.as_str()
        ),
        ("bob", "put", "api", "orders")
    );
    assert_eq!(update.before.as_ref().unwrap()["base_path"], "/orders/v1");
    assert_eq!(
        update.after.as_ref().unwrap()["hosts"],
        json!(["api.example.com"])
    );
    assert_eq!(update.outcome, Outcome::Ok);
    let delete = &log[5];
    assert_eq!(
        (delete.actor.as_str(), delete.action.as_str()),
        ("carol", "delete")
    );
    assert_eq!(
        delete.before.as_ref().unwrap()["products"],
        json!(["orders-basic"])
    );
    assert_eq!(delete.after, None);
    assert!(
        log.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
}

pub async fn failed_change_leaves_nothing(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    let records = audit_len(store).await;
    let version = store.config_version().await.unwrap();
    // The app row is written, then its subscription fails on an unknown
    // product: the whole transaction, audit record included, rolls back.
    let err = store
        .put(
            &admin(),
            Kind::App,
            "second",
            json!({ "developer": "dev@example.com", "products": ["nope"] }),
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    // An unknown developer fails on the foreign key.
    let err = store
        .put(
            &admin(),
            Kind::App,
            "third",
            json!({ "developer": "nobody@example.com" }),
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    // A plain-text secret the store has no hashed place for is refused.
    let err = store
        .put(
            &admin(),
            Kind::App,
            "fourth",
            json!({ "developer": "dev@example.com", "oauth_clients": [{ "client_id": "x", "client_secret": "s3cret-s3cret" }] }),
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    // A key already owned by another app: the new app must not appear.
    store
        .put(
            &admin(),
            Kind::App,
            "dev-app",
            json!({ "developer": "dev@example.com", "api_keys": ["shared-key-0001"] }),
            Expect::Any,
        )
        .await
        .unwrap();
    let records = records + 1;
    let version = version + 1;
    let err = store
        .put(
            &admin(),
            Kind::App,
            "fifth",
            json!({ "developer": "dev@example.com", "api_keys": ["shared-key-0001"] }),
            Expect::Any,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    for name in ["second", "third", "fourth", "fifth"] {
        assert!(
            store.get(Kind::App, name).await.unwrap().is_none(),
            "{name} was stored"
        );
    }
    assert_eq!(audit_len(store).await, records);
    assert_eq!(store.config_version().await.unwrap(), version);
}

pub async fn refused_attempt_is_audited(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    let before = audit_len(store).await;
    store
        .record_refused(
            &Actor::new("mallory"),
            "put",
            "app",
            "dev-app",
            Some(&json!({ "developer": "mallory@example.com" })),
            "a consumer may change only its own apps",
        )
        .await
        .unwrap();
    let log = store.audit_log(&Page::first(1000)).await.unwrap().items;
    assert_eq!(log.len(), before + 1);
    let r = log.last().unwrap();
    assert_eq!((r.actor.as_str(), r.outcome), ("mallory", Outcome::Refused));
    assert_eq!(
        r.detail.as_deref(),
        Some("a consumer may change only its own apps")
    );
    // Nothing else changed.
    let app = store.get(Kind::App, "dev-app").await.unwrap().unwrap();
    assert_eq!(app.document["developer"], "dev@example.com");
}

pub async fn revision_conflicts_are_distinct(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    let err = store
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api("orders", "/o"),
            Expect::Revision(7),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RevisionMismatch {
                expected: 7,
                current: Some(1),
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api("orders", "/o"),
            Expect::Absent,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let err = store
        .put(
            &admin(),
            Kind::Api,
            "missing",
            api("missing", "/m"),
            Expect::Revision(1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::RevisionMismatch { current: None, .. }),
        "{err}"
    );
    let err = store
        .delete(&admin(), Kind::Api, "orders", Expect::Revision(2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RevisionMismatch { .. }), "{err}");
    // The failed attempts changed nothing.
    let stored = store.get(Kind::Api, "orders").await.unwrap().unwrap();
    assert_eq!(
        (stored.revision, stored.document["base_path"].as_str()),
        (1, Some("/orders/v1"))
    );

    // Two writers that read revision 1: exactly one wins.
    let (alice, bob) = (admin(), Actor::new("bob"));
    let (a, b) = tokio::join!(
        store.put(
            &alice,
            Kind::Api,
            "orders",
            api_doc_with_hosts(),
            Expect::Revision(1)
        ),
        store.put(
            &bob,
            Kind::Api,
            "orders",
            api("orders", "/b"),
            Expect::Revision(1)
        ),
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "{a:?} {b:?}"
    );
    let loser = match (a, b) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
        _ => unreachable!("exactly one succeeded"),
    };
    assert!(matches!(loser, Error::RevisionMismatch { .. }), "{loser}");
    assert_eq!(
        store
            .get(Kind::Api, "orders")
            .await
            .unwrap()
            .unwrap()
            .revision,
        2
    );
}

pub async fn lists_paginate_in_a_stable_order(db: &TestDb) {
    let store = &db.store;
    // Names whose byte order differs from a natural-language collation.
    let names = ["a-b", "a0", "ab", "b", "z-1", "z1", "0a"];
    for (i, n) in names.iter().enumerate() {
        store
            .put(
                &admin(),
                Kind::Api,
                n,
                api(n, &format!("/p{i}")),
                Expect::Absent,
            )
            .await
            .unwrap();
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_unstable();
    let mut seen = Vec::new();
    let mut page = Page::first(3);
    let mut pages = 0;
    loop {
        let l = store.list(Kind::Api, &page).await.unwrap();
        assert!(l.items.len() <= 3);
        seen.extend(l.items.iter().map(|e| e.name.clone()));
        pages += 1;
        match l.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, sorted);
    assert_eq!(pages, 3);
    // The audit log pages too, oldest first.
    let first = store.audit_log(&Page::first(4)).await.unwrap();
    assert_eq!(first.items.len(), 4);
    let rest = store
        .audit_log(&Page {
            limit: 4,
            after: first.next.clone(),
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 3);
    assert_eq!(rest.next, None);
    assert!(first.items[3].id < rest.items[0].id);
}

pub async fn api_specs_keep_a_history(db: &TestDb) {
    let store = &db.store;
    let spec_v1 = "openapi: 3.1.0\ninfo: { title: Orders, version: '1' }\npaths: {}\n";
    let spec_v2 = "openapi: 3.1.0\ninfo: { title: Orders, version: '2' }\npaths: {}\n";
    let mut doc = api("orders", "/orders");
    doc["spec"] = json!(spec_v1);
    store
        .put(&admin(), Kind::Api, "orders", doc.clone(), Expect::Any)
        .await
        .unwrap();
    // The same text again: no new version.
    doc["base_path"] = json!("/orders/v1");
    store
        .put(&admin(), Kind::Api, "orders", doc.clone(), Expect::Any)
        .await
        .unwrap();
    doc["spec"] = json!(spec_v2);
    let e = store
        .put(
            &Actor::new("bob"),
            Kind::Api,
            "orders",
            doc.clone(),
            Expect::Any,
        )
        .await
        .unwrap();
    assert_eq!(e.document["spec"], spec_v2);
    let history = store.api_spec_history("orders").await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(history[0].created_by, "bob");
    assert_eq!(history[1].sha256.len(), 64);
    assert_ne!(history[0].sha256, history[1].sha256);
    assert_eq!(
        store.api_spec("orders", 1).await.unwrap().as_deref(),
        Some(spec_v1)
    );
    // The audit log holds the hash, not the text.
    let log = store.audit_log(&Page::first(10)).await.unwrap().items;
    let after = log.last().unwrap().after.as_ref().unwrap();
    assert_eq!(after["spec"], format!("sha256:{}", history[0].sha256));
    // Without a spec the API has none, and the history stays.
    doc.as_object_mut().unwrap().remove("spec");
    let e = store
        .put(&admin(), Kind::Api, "orders", doc, Expect::Any)
        .await
        .unwrap();
    assert!(e.document.get("spec").is_none());
    assert_eq!(store.api_spec_history("orders").await.unwrap().len(), 2);
}

pub async fn subscriptions_follow_product_approval(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    store
        .put(
            &admin(),
            Kind::Product,
            "gold",
            json!({ "apis": ["orders"], "approval": "manual" }),
            Expect::Any,
        )
        .await
        .unwrap();
    let sub = store
        .request_subscription(&admin(), "dev-app", "gold")
        .await
        .unwrap();
    assert_eq!(sub.status, Status::Pending);
    let app = store.get(Kind::App, "dev-app").await.unwrap().unwrap();
    assert_eq!(app.document["products"], json!(["orders-basic"]));
    let pending = store
        .list_subscriptions(None, Some(Status::Pending), &Page::default())
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 1);
    let err = store
        .request_subscription(&admin(), "dev-app", "gold")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let approved = store
        .set_subscription_status(
            &admin(),
            "dev-app",
            "gold",
            Status::Approved,
            Expect::Revision(1),
        )
        .await
        .unwrap();
    assert_eq!((approved.status, approved.revision), (Status::Approved, 2));
    let app2 = store.get(Kind::App, "dev-app").await.unwrap().unwrap();
    assert_eq!(app2.document["products"], json!(["gold", "orders-basic"]));
    assert!(
        app2.revision > app.revision,
        "the app's ETag follows its subscriptions"
    );
    store
        .set_subscription_status(&admin(), "dev-app", "gold", Status::Rejected, Expect::Any)
        .await
        .unwrap();
    let all = store
        .list_subscriptions(Some("dev-app"), None, &Page::first(1))
        .await
        .unwrap();
    assert_eq!(all.items[0].product, "gold");
    let rest = store
        .list_subscriptions(
            Some("dev-app"),
            None,
            &Page {
                limit: 1,
                after: all.next,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (rest.items[0].product.as_str(), rest.items[0].status),
        ("orders-basic", Status::Approved)
    );
    store
        .delete_subscription(&admin(), "dev-app", "gold", Expect::Any)
        .await
        .unwrap();
    assert!(
        store
            .get_subscription("dev-app", "gold")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn keys_are_shown_once_and_stored_hashed(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    let issued = store.issue_key(&admin(), "dev-app", None).await.unwrap();
    let plain = issued.plaintext.expose().to_owned();
    assert!(plain.starts_with(issued.key.prefix.as_deref().unwrap()));
    assert!(plain.starts_with("pk_") && plain.len() > 50, "{plain}");
    assert_eq!(format!("{:?}", issued.plaintext), "Secret(..)");
    assert_eq!(
        store.verify_key(&plain).await.unwrap().unwrap().id,
        issued.key.id
    );
    assert!(
        store
            .verify_key("pk_nothing_nothing")
            .await
            .unwrap()
            .is_none()
    );
    // Listing shows the prefix and id, never the key.
    let keys = store.list_keys("dev-app").await.unwrap();
    assert_eq!(keys, vec![issued.key.clone()]);
    // A key imported from an app document, as the file lists them.
    store
        .put(
            &admin(),
            Kind::App,
            "dev-app",
            json!({ "developer": "dev@example.com", "api_keys": ["file-key-0001"] }),
            Expect::Any,
        )
        .await
        .unwrap();
    assert!(store.verify_key("file-key-0001").await.unwrap().is_some());
    let token = store
        .put_user(&admin(), "ops", Role::Admin, None, Expect::Any)
        .await
        .unwrap();
    let t = store
        .issue_admin_token(&admin(), &token.name, "ci", None)
        .await
        .unwrap();
    // No plain text anywhere in the database, audit log included.
    let text = db.all_text().await;
    assert!(!text.is_empty());
    for secret in [plain.as_str(), "file-key-0001", t.plaintext.expose()] {
        assert!(
            !text.iter().any(|t| t.contains(secret)),
            "a plain secret is stored"
        );
        let bytes = db.sqlite_bytes();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a plain secret is in the SQLite files"
        );
    }
    // The digest is.
    let digest: String = sha256_hex(&plain);
    assert!(text.iter().any(|t| t == &digest));
}

fn sha256_hex(s: &str) -> String {
    use sha2_free::hex_sha256;
    hex_sha256(s)
}

/// SHA-256 through aws-lc, as the store computes it.
mod sha2_free {
    pub fn hex_sha256(s: &str) -> String {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub async fn key_expiry_rotation_and_revocation(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    // Expiry.
    let expired = store
        .issue_key(&admin(), "dev-app", Some(now_millis() - 1))
        .await
        .unwrap();
    assert!(
        store
            .verify_key(expired.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );
    // Rotation with an overlap: both work until the old one expires.
    let old = store.issue_key(&admin(), "dev-app", None).await.unwrap();
    let new = store
        .rotate_key(
            &admin(),
            "dev-app",
            &old.key.id,
            Duration::from_secs(3600),
            None,
        )
        .await
        .unwrap();
    assert_ne!(new.plaintext, old.plaintext);
    assert!(
        store
            .verify_key(new.plaintext.expose())
            .await
            .unwrap()
            .is_some()
    );
    let still = store
        .verify_key(old.plaintext.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.replaced_by.as_deref(), Some(new.key.id.as_str()));
    let until = still.expires_at.unwrap();
    assert!((until - now_millis() - 3_600_000).abs() < 60_000, "{until}");
    // A zero overlap ends the old key at once.
    let newer = store
        .rotate_key(&admin(), "dev-app", &new.key.id, Duration::ZERO, None)
        .await
        .unwrap();
    assert!(
        store
            .verify_key(new.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );
    // An expired key cannot be rotated.
    assert!(matches!(
        store
            .rotate_key(&admin(), "dev-app", &expired.key.id, Duration::ZERO, None)
            .await,
        Err(Error::Invalid { .. })
    ));
    // Revocation.
    let revoked = store
        .revoke_key(&admin(), "dev-app", &newer.key.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(
        store
            .verify_key(newer.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.revoke_key(&admin(), "other-app", &old.key.id).await,
        Err(Error::NotFound { .. })
    ));
    // Only the old key (still in its overlap) reaches the export.
    let export = store.export().await.unwrap();
    let hashes = &export.document["apps"][0]["api_key_hashes"];
    assert_eq!(hashes, &json!([sha256_hex(old.plaintext.expose())]));
    assert_eq!(export.next_expiry, Some(until));
    // The app's keys go with it.
    store
        .delete(&admin(), Kind::App, "dev-app", Expect::Any)
        .await
        .unwrap();
    assert!(
        store
            .verify_key(old.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn admin_tokens_verify_revoke_expire(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    store
        .put_user(&admin(), "ops", Role::Admin, None, Expect::Any)
        .await
        .unwrap();
    store
        .put_user(
            &admin(),
            "dev",
            Role::Consumer,
            Some("dev@example.com"),
            Expect::Any,
        )
        .await
        .unwrap();
    let t = store
        .issue_admin_token(&admin(), "ops", "laptop", None)
        .await
        .unwrap();
    assert!(t.plaintext.expose().starts_with("pat_"));
    assert!(t.token.last_used_at.is_none());
    let p = store
        .verify_admin_token(t.plaintext.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.user.as_str(), p.role, p.token_id.as_str()),
        ("ops", Role::Admin, t.token.id.as_str())
    );
    let listed = store.list_admin_tokens(Some("ops")).await.unwrap();
    assert!(listed[0].last_used_at.is_some(), "last use is recorded");
    assert!(
        store
            .verify_admin_token("pat_wrong")
            .await
            .unwrap()
            .is_none()
    );

    let c = store
        .issue_admin_token(&admin(), "dev", "portal", None)
        .await
        .unwrap();
    let p = store
        .verify_admin_token(c.plaintext.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.role, p.developer.as_deref()),
        (Role::Consumer, Some("dev@example.com"))
    );

    let expired = store
        .issue_admin_token(&admin(), "ops", "old", Some(now_millis() - 1))
        .await
        .unwrap();
    assert!(
        store
            .verify_admin_token(expired.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );

    store
        .revoke_admin_token(&admin(), &t.token.id)
        .await
        .unwrap();
    assert!(
        store
            .verify_admin_token(t.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );

    // A token from the environment, imported at every start, is one token.
    let env = "an-operator-chosen-token-0001";
    let a = store
        .import_admin_token(&Actor::system(), "ops", env, "PORTICO_ADMIN_TOKEN")
        .await
        .unwrap();
    let b = store
        .import_admin_token(&Actor::system(), "ops", env, "PORTICO_ADMIN_TOKEN")
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert!(store.verify_admin_token(env).await.unwrap().is_some());
    assert!(matches!(
        store
            .import_admin_token(&Actor::system(), "ops", "short", "x")
            .await,
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        store.issue_admin_token(&admin(), "nobody", "x", None).await,
        Err(Error::NotFound { .. })
    ));
    // Deleting the user ends its tokens.
    store
        .delete_user(&admin(), "dev", Expect::Any)
        .await
        .unwrap();
    assert!(
        store
            .verify_admin_token(c.plaintext.expose())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn version_counter_bumps_on_changes(db: &TestDb) {
    let store = &db.store;
    let v0 = store.config_version().await.unwrap();
    assert_eq!(v0, 0);
    seed(store).await;
    let v1 = store.config_version().await.unwrap();
    assert_eq!(v1, 4, "one bump per committed change");
    let key = store.issue_key(&admin(), "dev-app", None).await.unwrap();
    store
        .revoke_key(&admin(), "dev-app", &key.key.id)
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), v1 + 2);
    // Failed changes and changes outside the snapshot do not bump it.
    let _ = store
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api("orders", "/x"),
            Expect::Revision(9),
        )
        .await;
    store
        .put_user(&admin(), "ops", Role::Admin, None, Expect::Any)
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), v1 + 2);
    assert_eq!(store.export().await.unwrap().version, v1 + 2);
}

pub async fn export_compiles_into_a_snapshot(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    store
        .put(
            &admin(),
            Kind::Api,
            "billing",
            api("billing", "/billing"),
            Expect::Any,
        )
        .await
        .unwrap();
    let issued = store.issue_key(&admin(), "dev-app", None).await.unwrap();
    let export = store.export().await.unwrap();
    assert_eq!(
        export.document["products"],
        json!([{ "name": "orders-basic", "apis": ["orders"], "approval": "auto" }])
    );
    let compiled = portico_config::compile(&export.to_config_text()).unwrap_or_else(|d| {
        panic!(
            "the export does not compile: {d:?}\n{}",
            export.to_config_text()
        )
    });
    let snap = &compiled.snapshot;
    assert_eq!(snap.apis.len(), 2);
    let m = snap
        .routes
        .lookup(None, "/orders/v1/items/7")
        .expect("route");
    assert_eq!(snap.apis[m.api as usize].name, "orders");
    assert!(snap.routes.lookup(None, "/nothing").is_none());
    let digest: [u8; 32] = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        issued.plaintext.expose().as_bytes(),
    )
    .as_ref()
    .try_into()
    .unwrap();
    let entry = snap
        .consumers
        .api_keys
        .get(&digest)
        .expect("the issued key reaches the snapshot");
    let app = &snap.consumers.apps[entry.app as usize];
    assert_eq!(app.name, "dev-app");
    assert_eq!(app.developer, "dev@example.com");
    assert_eq!(app.products, vec!["orders-basic"]);
    assert_eq!(entry.id.as_ref(), issued.key.id);
    // Applying the export to another store gives the same export.
    let other = TestDb::sqlite().await;
    let doc = &export.document;
    for kind in Kind::ALL {
        for item in doc[kind.section()].as_array().unwrap() {
            let name = item[kind.key()].as_str().unwrap();
            other
                .store
                .put(&Actor::system(), kind, name, item.clone(), Expect::Any)
                .await
                .unwrap();
        }
    }
    assert_eq!(
        other.store.export().await.unwrap().document,
        export.document
    );
    other.finish().await;
}

pub async fn in_use_entities_stay(db: &TestDb) {
    let store = &db.store;
    seed(store).await;
    let err = store
        .delete(&admin(), Kind::Developer, "dev@example.com", Expect::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    let err = store
        .delete(&admin(), Kind::Product, "orders-basic", Expect::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(
        store
            .get(Kind::Developer, "dev@example.com")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get(Kind::Product, "orders-basic")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn notify_after_commit(db: &TestDb) {
    let mut listener = db.store.listen().await.unwrap();
    // Another connection (another node) makes a change.
    let writer = Store::open(&db.url).await.unwrap();
    writer
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api("orders", "/orders"),
            Expect::Any,
        )
        .await
        .unwrap();
    let v = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .expect("a notification within 5 s")
        .unwrap();
    assert_eq!(v, writer.config_version().await.unwrap());
    // A failed change announces nothing; the next commit does.
    let _ = writer
        .put(
            &admin(),
            Kind::Api,
            "orders",
            api("orders", "/x"),
            Expect::Revision(9),
        )
        .await;
    writer
        .put(
            &admin(),
            Kind::Api,
            "billing",
            api("billing", "/billing"),
            Expect::Any,
        )
        .await
        .unwrap();
    let v2 = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v2, v + 1);
    writer.close().await;
}

fn desired(apis: &[&str], with_app: bool) -> Value {
    let apis: Vec<Value> = apis.iter().map(|n| api(n, &format!("/{n}"))).collect();
    let mut doc = json!({
        "apis": apis,
        "products": [{ "name": "basic", "apis": ["a"], "approval": "auto" }],
        "developers": [{ "email": "Dev@Example.com", "name": "Dev" }],
        "apps": [],
    });
    if with_app {
        doc["apps"] = json!([{ "name": "one", "developer": "dev@example.com",
                               "products": ["basic"], "api_keys": ["plain-key-0001"] }]);
    }
    doc
}

fn changes(diff: &portico_store::Diff) -> Vec<String> {
    diff.changes
        .iter()
        .map(|c| format!("{:?} {} {}", c.action, c.kind, c.name).to_lowercase())
        .collect()
}

fn opts(prune: portico_store::Prune, dry_run: bool) -> portico_store::ApplyOptions {
    portico_store::ApplyOptions { prune, dry_run }
}

pub async fn apply_writes_only_what_differs(db: &TestDb) {
    use portico_store::Prune;
    let store = &db.store;
    let diff = store
        .apply(
            &admin(),
            &desired(&["a", "b"], true),
            &opts(Prune::None, false),
        )
        .await
        .unwrap();
    assert_eq!(
        changes(&diff),
        [
            "create developer dev@example.com",
            "create api a",
            "create api b",
            "create product basic",
            "create app one"
        ]
    );
    let version = store.config_version().await.unwrap();
    assert_eq!(diff.version, Some(version));
    let audit = audit_len(store).await;
    // The key was imported: the app's key digest verifies.
    assert!(store.verify_key("plain-key-0001").await.unwrap().is_some());

    // The same state again: nothing written, no version, no audit record.
    let again = store
        .apply(
            &admin(),
            &desired(&["a", "b"], true),
            &opts(Prune::None, false),
        )
        .await
        .unwrap();
    assert!(again.is_empty(), "{:?}", again.changes);
    assert_eq!(again.version, None);
    assert_eq!(store.config_version().await.unwrap(), version);
    assert_eq!(audit_len(store).await, audit);
    assert_eq!(
        store.get(Kind::Api, "a").await.unwrap().unwrap().revision,
        1
    );

    // One API changes; the one left out stays without pruning.
    let mut changed = desired(&["a"], true);
    changed["apis"][0]["base_path"] = json!("/a2");
    let diff = store
        .apply(&admin(), &changed, &opts(Prune::None, false))
        .await
        .unwrap();
    assert_eq!(changes(&diff), ["update api a"]);
    assert!(store.get(Kind::Api, "b").await.unwrap().is_some());
    assert_eq!(
        store.get(Kind::Api, "a").await.unwrap().unwrap().revision,
        2
    );
}

/// A spec is compared as a document: the same spec written as YAML and as
/// JSON (as an export writes it back) is no change; another spec is.
pub async fn apply_compares_specs_as_documents(db: &TestDb) {
    use portico_store::Prune;
    let store = &db.store;
    let with_spec = |spec: &str| {
        let mut doc = desired(&["a"], false);
        doc["apis"][0]["spec"] = json!(spec);
        doc
    };
    let yaml = "openapi: 3.1.0\ninfo: { title: A, version: '1' }\npaths:\n  /x: { get: { responses: { '200': { description: ok } } } }\n";
    let json_text = r#"{"openapi":"3.1.0","info":{"title":"A","version":"1"},"paths":{"/x":{"get":{"responses":{"200":{"description":"ok"}}}}}}"#;
    let diff = store
        .apply(&admin(), &with_spec(yaml), &opts(Prune::None, false))
        .await
        .unwrap();
    assert!(changes(&diff).contains(&"create api a".to_owned()));
    let again = store
        .apply(&admin(), &with_spec(json_text), &opts(Prune::None, false))
        .await
        .unwrap();
    assert!(again.is_empty(), "{:?}", again.changes);
    let other = store
        .apply(
            &admin(),
            &with_spec(&json_text.replace("\"1\"", "\"2\"")),
            &opts(Prune::None, true),
        )
        .await
        .unwrap();
    assert_eq!(changes(&other), ["update api a"]);
}

pub async fn apply_prunes_all_or_only_its_own(db: &TestDb) {
    use portico_store::Prune;
    let store = &db.store;
    // Made through the admin API, not by the file.
    store
        .put(
            &admin(),
            Kind::Api,
            "manual",
            api("manual", "/manual"),
            Expect::Absent,
        )
        .await
        .unwrap();
    let file = Prune::Source("file:portico.yaml".into());
    store
        .apply(
            &Actor::system(),
            &desired(&["a", "b"], true),
            &opts(file.clone(), false),
        )
        .await
        .unwrap();
    // The file drops `b` and the app: they go, `manual` stays.
    let diff = store
        .apply(
            &Actor::system(),
            &desired(&["a"], false),
            &opts(file.clone(), false),
        )
        .await
        .unwrap();
    assert_eq!(changes(&diff), ["delete app one", "delete api b"]);
    assert!(store.get(Kind::Api, "manual").await.unwrap().is_some());
    // Dropped entities are no longer the file's: bringing `b` back through
    // the admin API and restarting with the same file leaves it alone.
    store
        .put(&admin(), Kind::Api, "b", api("b", "/b"), Expect::Absent)
        .await
        .unwrap();
    let diff = store
        .apply(
            &Actor::system(),
            &desired(&["a"], false),
            &opts(file, false),
        )
        .await
        .unwrap();
    assert!(diff.is_empty(), "{:?}", diff.changes);

    // A dry run of pruning everything reports and changes nothing.
    let before = store.export().await.unwrap();
    let diff = store
        .apply(&admin(), &desired(&["a"], false), &opts(Prune::All, true))
        .await
        .unwrap();
    assert_eq!(changes(&diff), ["delete api b", "delete api manual"]);
    assert_eq!(diff.version, None);
    assert_eq!(store.export().await.unwrap(), before);
    let diff = store
        .apply(&admin(), &desired(&["a"], false), &opts(Prune::All, false))
        .await
        .unwrap();
    assert_eq!(changes(&diff), ["delete api b", "delete api manual"]);
    assert!(store.get(Kind::Api, "manual").await.unwrap().is_none());
}

pub async fn apply_is_all_or_nothing(db: &TestDb) {
    use portico_store::Prune;
    let store = &db.store;
    let mut bad = desired(&["a", "b"], true);
    // The app names a developer the state does not have: the last write
    // fails, and the APIs written before it are rolled back.
    bad["apps"][0]["developer"] = json!("nobody@example.com");
    let err = store
        .apply(&admin(), &bad, &opts(Prune::None, false))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(store.get(Kind::Api, "a").await.unwrap().is_none());
    assert_eq!(store.config_version().await.unwrap(), 0);
    assert_eq!(audit_len(store).await, 0);

    let mut twice = desired(&["a", "a"], false);
    twice["apps"] = json!([]);
    assert!(
        store
            .apply(&admin(), &twice, &opts(Prune::None, false))
            .await
            .is_err()
    );
}

pub async fn apply_of_an_export_changes_nothing(db: &TestDb) {
    use portico_store::Prune;
    let store = &db.store;
    seed(store).await;
    store.issue_key(&admin(), "dev-app", None).await.unwrap();
    let export = store.export().await.unwrap();
    let diff = store
        .apply(&admin(), &export.document, &opts(Prune::All, false))
        .await
        .unwrap();
    assert!(diff.is_empty(), "{:?}", diff.changes);
}
