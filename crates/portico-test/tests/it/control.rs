//! The node follows the store: the configuration file seeds it, and a
//! change committed to it (by this node, another node or `portico apply`)
//! is live within a second. On PostgreSQL, nodes keep serving while the
//! database is away and catch up when it returns.

use std::time::Duration;

use portico_model::node::Storage;
use portico_store::{Actor, Expect, Kind, Store};
use portico_test::{ADMIN_TOKEN, Cuttable, TestDatabase, TestNode, Upstream, assert_eventually};
use serde_json::json;

use crate::support::{api, apis, client};

const LIVE: Duration = Duration::from_secs(1);

async fn status(url: String) -> u16 {
    client()
        .get(url)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

fn api_doc(name: &str, target: &str) -> serde_json::Value {
    json!({ "name": name, "base_path": format!("/{name}"), "upstream": { "targets": [target] } })
}

#[tokio::test]
async fn the_file_seeds_the_store_and_a_reload_keeps_what_the_admin_made() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[
            api("a", "/a", &[up.url()]),
            api("b", "/b", &[up.url()]),
        ]))
        .run()
        .await;
    let store = node.app().store();
    let a = store.get(Kind::Api, "a").await.unwrap().expect("seeded");
    assert_eq!(a.document["base_path"], "/a");
    let audit = store.audit_log(&Default::default()).await.unwrap();
    let entity_records: Vec<_> = audit.items.iter().filter(|r| r.kind == "api").collect();
    assert_eq!(entity_records.len(), 2);
    assert!(
        entity_records.iter().all(|r| r.actor == "file"),
        "{:?}",
        audit.items
    );

    // Made elsewhere (the admin API): live without a reload.
    store
        .put(
            &Actor::new("alice"),
            Kind::Api,
            "made",
            api_doc("made", &up.url()),
            Expect::Absent,
        )
        .await
        .unwrap();
    assert_eventually!(
        status(node.proxy_url("/made")).await == 200,
        timeout = LIVE * 2
    );

    // The file drops `b`: it goes; `made` is not the file's and stays.
    node.reload(&apis(&[api("a", "/a", &[up.url()])]))
        .await
        .unwrap();
    assert_eq!(status(node.proxy_url("/b")).await, 404);
    assert_eq!(status(node.proxy_url("/made")).await, 200);
    assert!(store.get(Kind::Api, "b").await.unwrap().is_none());

    // Reloading the same file writes nothing.
    let version = store.config_version().await.unwrap();
    node.reload(&apis(&[api("a", "/a", &[up.url()])]))
        .await
        .unwrap();
    assert_eq!(store.config_version().await.unwrap(), version);
}

#[tokio::test]
async fn a_restart_on_the_same_store_keeps_the_entities() {
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::Sqlite(dir.path().join("portico.db"));
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .storage(storage.clone())
        .run()
        .await;
    node.app()
        .store()
        .put(
            &Actor::new("alice"),
            Kind::Api,
            "made",
            api_doc("made", &up.url()),
            Expect::Absent,
        )
        .await
        .unwrap();
    node.shutdown().await;

    // Started again, with the same file: both are back.
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .storage(storage)
        .run()
        .await;
    assert_eq!(status(node.proxy_url("/a")).await, 200);
    assert_eq!(status(node.proxy_url("/made")).await, 200);
}

#[tokio::test]
async fn a_change_that_does_not_compile_is_not_published() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .poll_interval(Duration::from_millis(50))
        .run()
        .await;
    let store = node.app().store();
    // The store accepts documents the compiler would refuse (the admin API
    // checks before committing; a hand-made change may not).
    let mut bad = api_doc("bad", &up.url());
    bad["upstream"]["targets"] = json!([]);
    store
        .put(&Actor::new("alice"), Kind::Api, "bad", bad, Expect::Absent)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(node.proxy_url("/a")).await, 200);
    assert_eq!(status(node.proxy_url("/bad")).await, 404);
    // Fixed: published.
    store
        .put(
            &Actor::new("alice"),
            Kind::Api,
            "bad",
            api_doc("bad", &up.url()),
            Expect::Any,
        )
        .await
        .unwrap();
    assert_eventually!(
        status(node.proxy_url("/bad")).await == 200,
        timeout = LIVE * 2
    );
}

#[tokio::test]
async fn an_expiring_key_stops_working_without_a_change() {
    let up = Upstream::echo().run().await;
    let yaml = format!(
        "apis:\n  - {{ name: a, base_path: /a, upstream: {{ targets: [\"{}\"] }}, policies: [{{ api_key: {{}} }}] }}\n\
         products:\n  - {{ name: p, apis: [a] }}\n\
         developers:\n  - {{ email: dev@example.com, name: Dev }}\n\
         apps:\n  - {{ name: one, developer: dev@example.com, products: [p] }}\n",
        up.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let store = node.app().store();
    let expires = portico_store::now_millis() + 2500;
    let issued = store
        .issue_key(&Actor::new("alice"), "one", Some(expires))
        .await
        .unwrap();
    let key = issued.plaintext.expose().to_owned();
    let call = || async {
        client()
            .get(node.proxy_url("/a"))
            .header("x-api-key", &key)
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    };
    assert_eventually!(call().await == 200, timeout = LIVE * 2);
    // The version does not change when a key expires: the node rebuilds at
    // the expiry it knows of.
    assert_eventually!(call().await == 401, timeout = Duration::from_secs(4));
}

/// Two nodes on one PostgreSQL: a change through one is live on the other
/// within a second; with the database gone both keep proxying, and they
/// catch up when it returns.
#[tokio::test]
async fn two_nodes_on_postgres_follow_each_other_and_survive_its_absence() {
    let up = Upstream::echo().run().await;
    let db = TestDatabase::create().await;
    let path = Cuttable::to(db.server_addr()).await;
    let storage = Storage::Postgres(db.url_via(Some(path.addr())));
    let file = apis(&[api("a", "/a", &[up.url()])]);
    let node_a = TestNode::new()
        .config(&file)
        .storage(storage.clone())
        .run()
        .await;
    let node_b = TestNode::new()
        .config(&file)
        .storage(storage.clone())
        .poll_interval(Duration::from_secs(30)) // LISTEN/NOTIFY must do it
        .run()
        .await;

    // Created through node A's admin API: live on A when it answers.
    let created = client()
        .put(node_a.admin_url("/admin/v1/apis/orders"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&api_doc("orders", &up.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(status(node_a.proxy_url("/orders")).await, 200);
    assert_eventually!(
        status(node_b.proxy_url("/orders")).await == 200,
        timeout = LIVE
    );
    assert_eventually!(
        status(node_a.proxy_url("/orders")).await == 200,
        timeout = LIVE
    );

    // PostgreSQL goes away: both nodes keep answering from their snapshot.
    path.cut();
    for _ in 0..20 {
        assert_eq!(status(node_a.proxy_url("/orders")).await, 200);
        assert_eq!(status(node_b.proxy_url("/a")).await, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A change made while the nodes could not see it (straight to the
    // database), then the path returns: both catch up.
    let direct = Store::open(&db.url()).await.unwrap();
    direct
        .put(
            &Actor::new("alice"),
            Kind::Api,
            "late",
            api_doc("late", &up.url()),
            Expect::Absent,
        )
        .await
        .unwrap();
    path.restore();
    assert_eventually!(
        status(node_a.proxy_url("/late")).await == 200,
        timeout = Duration::from_secs(5)
    );
    // Node B's poll is 30 s and it missed the notification: it must notice
    // that its listener dropped and look at the version when it is back.
    assert_eventually!(
        status(node_b.proxy_url("/late")).await == 200,
        timeout = Duration::from_secs(5)
    );

    direct.close().await;
    node_a.shutdown().await;
    node_b.shutdown().await;
    db.finish().await;
}
