//! `https://` targets: verification against a configured CA, failures as
//! 502 `upstream-tls`, a client certificate for upstreams that require one,
//! `sni`, `verify: false`, and the HTTP version spoken upstream (`http2`
//! over TLS, `h2c`).

use portico_test::{TestNode, Upstream, UpstreamHandle};
use tempfile::TempDir;

use crate::pki::{Ca, write};
use crate::support::{client, problem};

/// One API at `/t` in front of `target`, with `extra` YAML lines under
/// `upstream:` (indented by the caller's six spaces).
fn config(target: &str, extra: &str) -> String {
    format!(
        "apis:\n  - name: t\n    base_path: /t\n    upstream:\n      targets: [\"{target}\"]\n{extra}"
    )
}

async fn node(yaml: &str) -> TestNode {
    TestNode::new().config(yaml).run().await
}

/// GET /t/x; the echo's JSON.
async fn get_json(node: &TestNode) -> serde_json::Value {
    let resp = client().get(node.proxy_url("/t/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

struct Setup {
    dir: TempDir,
    ca: Ca,
    ca_file: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Upstream Test CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    Setup { dir, ca, ca_file }
}

/// An echo upstream serving TLS with a certificate for 127.0.0.1 from `ca`.
async fn tls_echo(ca: &Ca) -> UpstreamHandle {
    let leaf = ca.server(&["127.0.0.1", "localhost"]);
    Upstream::echo().tls(&leaf.cert, &leaf.key).run().await
}

#[tokio::test]
async fn https_target_verified_against_the_configured_ca() {
    let s = setup();
    let up = tls_echo(&s.ca).await;
    assert!(up.url().starts_with("https://"));
    let n = node(&config(
        &up.url(),
        &format!("      tls: {{ ca: \"{}\" }}\n", s.ca_file),
    ))
    .await;
    let seen = get_json(&n).await;
    assert_eq!(seen["uri"], "/x");
    assert_eq!(seen["version"], "HTTP/1.1");
    // An IP address target sends no SNI.
    assert_eq!(seen["tls"]["sni"], serde_json::Value::Null);
    assert_eq!(seen["tls"]["client_cert"], false);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_502_upstream_tls() {
    let s = setup();
    let up = tls_echo(&Ca::new("Someone Else's CA")).await;
    // Verified against the configured CA, which did not sign it.
    let n = node(&config(
        &up.url(),
        &format!("      tls: {{ ca: \"{}\" }}\n", s.ca_file),
    ))
    .await;
    let resp = client().get(n.proxy_url("/t/x")).send().await.unwrap();
    let doc = problem(resp, 502, "upstream-tls").await;
    let detail = doc["detail"].as_str().unwrap();
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert!(detail.contains(&up.url()), "{detail}");

    // Without `tls`, the system trust store is used, which does not have
    // the test CA either.
    let n = node(&config(&up.url(), "")).await;
    let resp = client().get(n.proxy_url("/t/x")).send().await.unwrap();
    problem(resp, 502, "upstream-tls").await;
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_an_upstream_that_requires_one() {
    let s = setup();
    let leaf = s.ca.server(&["127.0.0.1"]);
    let up = Upstream::echo()
        .mtls(&leaf.cert, &leaf.key, &s.ca.pem())
        .run()
        .await;
    let me = s.ca.client("portico-gateway");
    let cert = write(s.dir.path(), "client.pem", &me.cert);
    let key = write(s.dir.path(), "client.key", &me.key);
    let n = node(&config(
        &up.url(),
        &format!(
            "      tls: {{ ca: \"{}\", cert: \"{cert}\", key: \"{key}\" }}\n",
            s.ca_file
        ),
    ))
    .await;
    let seen = get_json(&n).await;
    assert_eq!(seen["tls"]["client_cert"], true);

    // Without the certificate the upstream refuses the handshake.
    let n = node(&config(
        &up.url(),
        &format!("      tls: {{ ca: \"{}\" }}\n", s.ca_file),
    ))
    .await;
    let resp = client().get(n.proxy_url("/t/x")).send().await.unwrap();
    let doc = problem(resp, 502, "upstream-tls").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("CertificateRequired"),
        "{doc}"
    );
}

#[tokio::test]
async fn sni_overrides_the_name_sent_and_verified() {
    let s = setup();
    let leaf = s.ca.server(&["orders.internal"]);
    let up = Upstream::echo().tls(&leaf.cert, &leaf.key).run().await;
    // The certificate does not name 127.0.0.1.
    let n = node(&config(
        &up.url(),
        &format!("      tls: {{ ca: \"{}\" }}\n", s.ca_file),
    ))
    .await;
    let resp = client().get(n.proxy_url("/t/x")).send().await.unwrap();
    let doc = problem(resp, 502, "upstream-tls").await;
    assert!(
        doc["detail"]
            .as_str()
            .unwrap()
            .contains("certificate not valid for name \"127.0.0.1\""),
        "{doc}"
    );
    let n = node(&config(
        &up.url(),
        &format!(
            "      tls: {{ ca: \"{}\", sni: orders.internal }}\n",
            s.ca_file
        ),
    ))
    .await;
    let seen = get_json(&n).await;
    assert_eq!(seen["tls"]["sni"], "orders.internal");
}

#[tokio::test]
async fn verify_false_accepts_any_certificate() {
    let up = tls_echo(&Ca::new("Nobody Trusts Me")).await;
    let n = node(&config(&up.url(), "      tls: { verify: false }\n")).await;
    let seen = get_json(&n).await;
    assert_eq!(seen["uri"], "/x");
}

#[tokio::test]
async fn http2_over_tls_is_agreed_by_alpn() {
    let s = setup();
    let up = tls_echo(&s.ca).await;
    let n = node(&config(
        &up.url(),
        &format!(
            "      protocol: http2\n      tls: {{ ca: \"{}\" }}\n",
            s.ca_file
        ),
    ))
    .await;
    // The client speaks HTTP/1.1 to Portico; the upstream sees HTTP/2.
    let seen = get_json(&n).await;
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["tls"]["alpn"], "h2");
    // The default stays HTTP/1.1, without ALPN h2.
    let n = node(&config(
        &up.url(),
        &format!("      tls: {{ ca: \"{}\" }}\n", s.ca_file),
    ))
    .await;
    let seen = get_json(&n).await;
    assert_eq!(seen["version"], "HTTP/1.1");
    assert_ne!(seen["tls"]["alpn"], "h2");
}

#[tokio::test]
async fn h2c_speaks_cleartext_http2_with_prior_knowledge() {
    let up = Upstream::echo().run().await;
    let n = node(&config(&up.url(), "      protocol: h2c\n")).await;
    let resp = client()
        .post(n.proxy_url("/t/x?q=1"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["uri"], format!("{}/x?q=1", up.url()));
    assert_eq!(seen["body_len"], 5);
    // HTTP/2 has no Host header; the authority is the target's.
    assert!(seen["headers"].get("host").is_none(), "{seen}");
    // The forwarding fields go in the header map for hyper's client.
    let h = &seen["headers"];
    assert_eq!(
        h["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"]),
        "{seen}"
    );
    assert_eq!(
        h["x-forwarded-proto"],
        serde_json::json!(["http"]),
        "{seen}"
    );
    assert_eq!(h["x-request-id"], serde_json::json!([id]), "{seen}");
    assert_eq!(h["traceparent"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(h["forwarded"].as_array().map(Vec::len), Some(1), "{seen}");
}

#[tokio::test]
async fn a_reload_picks_up_a_rotated_ca_file() {
    let s = setup();
    let new_ca = Ca::new("Rotated CA");
    let up = tls_echo(&new_ca).await;
    let yaml = config(
        &up.url(),
        &format!("      tls: {{ ca: \"{}\" }}\n", s.ca_file),
    );
    let n = node(&yaml).await;
    let resp = client().get(n.proxy_url("/t/x")).send().await.unwrap();
    problem(resp, 502, "upstream-tls").await;
    // Same file name, new contents: the reload reads it again, the
    // upstream compares unequal, and a new pool trusts the new CA.
    write(s.dir.path(), "ca.pem", &new_ca.pem());
    n.reload(&yaml).await.expect("the configuration compiles");
    let seen = get_json(&n).await;
    assert_eq!(seen["uri"], "/x");
}
