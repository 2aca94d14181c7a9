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
        .await
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
    let errors = node.reload(&broken).await.unwrap_err();
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
    assert_eq!(node.reload(&yaml).await.unwrap(), vec!["server.workers"]);
}

#[tokio::test]
async fn reloads_under_load_lose_no_request() {
    let one = Upstream::echo().run().await;
    let two = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&apis(&[api("a", "/a", &[one.url()])]))
        .run()
        .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url, stop) = (client(), node.proxy_url("/a/x"), stop.clone());
        load.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status = c.get(&url).send().await.map(|r| r.status().as_u16());
                statuses.push(status.unwrap_or(0));
            }
            statuses
        }));
    }
    // Each reload changes what `a` sends to, or the APIs around it.
    let configs = [
        apis(&[api("a", "/a", &[one.url(), two.url()])]),
        apis(&[api("a", "/a", &[two.url()]), api("b", "/b", &[one.url()])]),
        apis(&[api("b", "/b", &[two.url()]), api("a", "/a", &[one.url()])]),
    ];
    for round in 0..60 {
        node.reload(&configs[round % configs.len()]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in load {
        let statuses = task.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    }
    assert!(total > 20, "only {total} requests ran during the reloads");
    assert!(one.connections() > 0 && two.connections() > 0);
}
