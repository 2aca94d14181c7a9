use portico_test::{TestNode, Upstream};

use crate::support::{api, apis, client, problem};

#[tokio::test]
async fn a_reload_publishes_new_apis_and_keeps_pools() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let c = client();
    assert_eq!(
        c.get(node.proxy_url("/a")).send().await.unwrap().status(),
        200
    );
    problem(
        c.get(node.proxy_url("/b")).send().await.unwrap(),
        404,
        "no-route",
    )
    .await;

    let restart = node
        .reload(&apis(&[
            api("a", "/a", &[up.url()]),
            api("b", "/b", &[up.url()]),
        ]))
        .unwrap();
    assert!(restart.is_empty(), "{restart:?}");
    assert_eq!(
        c.get(node.proxy_url("/b/x")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(node.proxy_url("/a")).send().await.unwrap().status(),
        200
    );
    // One connection served every request to `a`, across the reload
    // (`b` shares the upstream but has a pool of its own).
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn a_broken_configuration_is_refused_whole_and_the_old_one_serves() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let broken = format!(
        "{}  - name: b\n    base_path: b\n    upstream: {{ targets: [] }}\n",
        apis(&[api("a", "/x", &[up.url()])])
    );
    let errors = node.reload(&broken).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("apis[1].base_path: invalid base path `b`"),
        "{errors}"
    );
    // Nothing of it was applied: `a` still lives at /a, not /x.
    let c = client();
    assert_eq!(
        c.get(node.proxy_url("/a")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(node.proxy_url("/x")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn node_settings_changed_by_a_reload_are_reported() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[up.url()])]))
        .run()
        .await;
    let yaml = format!(
        "server:\n  workers: 2\n{}",
        apis(&[api("a", "/a", &[up.url()])])
    );
    assert_eq!(node.reload(&yaml).unwrap(), vec!["server.workers"]);
}
