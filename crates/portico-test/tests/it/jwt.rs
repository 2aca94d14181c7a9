//! The jwt policy, with tokens signed by libraries other than the one the
//! gateway verifies with (RustCrypto's p256, ed25519-dalek and hmac).

// The test JWKS server's key set sits behind a mutex: test code, not the
// data path the lint is about.
#![allow(clippy::disallowed_types)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::Mac;
use p256::ecdsa::signature::Signer as _;
use portico_test::{RecordedRequest, TestNode, Upstream, full_body};
use serde_json::{Value, json};

use crate::support::{client, problem};

pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef-shared";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": "https://idp.example.com",
        "aud": "orders",
        "sub": "user-42",
        "client_id": "dev-one",
        "exp": now() + 600,
        "iat": now(),
        "scope": "orders:read orders:write",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

pub(crate) fn hs256(claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "HS256", "typ": "JWT"}), claims);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

fn ec_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
}

fn es256(claims: &Value, kid: &str) -> String {
    let input = signing_input(&json!({"alg": "ES256", "typ": "JWT", "kid": kid}), claims);
    let sig: p256::ecdsa::Signature = ec_key().sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn ec_jwk(kid: &str) -> Value {
    let point = ec_key().verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap())})
}

fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn eddsa(claims: &Value, seed: u8, kid: &str) -> String {
    use ed25519_dalek::Signer as _;
    let input = signing_input(&json!({"alg": "EdDSA", "kid": kid}), claims);
    let sig = ed_key(seed).sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn ed_jwk(seed: u8, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "x": B64.encode(ed_key(seed).verifying_key().to_bytes())})
}

fn config(upstream: &str, jwt: &str) -> String {
    format!(
        r#"apis:
  - name: orders
    base_path: /orders
    upstream: {{ targets: ["{upstream}"] }}
    policies:
      - jwt: {jwt}
products:
  - {{ name: p, apis: [orders] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - name: dev-one-app
    developer: dev@example.com
    products: [p]
    oauth_clients: [{{ client_id: dev-one, client_secret: "not-used-here" }}]
"#
    )
}

fn inline_jwt() -> String {
    format!(
        r#"{{ issuer: ["https://idp.example.com"], audience: [orders], required_claims: [sub], scopes: ["orders:read"], claims_to_headers: {{ sub: x-user-id }}, leeway: 5s, keys: [{{ secret: "{SECRET}", alg: HS256 }}, {{ jwk: {ec}, kid: ec-1 }}] }}"#,
        ec = ec_jwk("ec-1")
    )
}

async fn get(node: &TestNode, token: &str) -> reqwest::Response {
    client()
        .get(node.proxy_url("/orders/1"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-id", "spoofed")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn valid_tokens_authenticate_and_map_claims() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(&up.url(), &inline_jwt()))
        .run()
        .await;
    for token in [hs256(&claims(json!({}))), es256(&claims(json!({})), "ec-1")] {
        let resp = get(&node, &token).await;
        assert_eq!(resp.status(), 200);
        let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
        assert_eq!(seen.header("x-portico-app"), Some("dev-one-app"));
        assert_eq!(seen.header("x-user-id"), Some("user-42"));
        assert!(
            !seen.headers.contains_key("authorization"),
            "the token reached the upstream"
        );
    }
}

#[tokio::test]
async fn invalid_tokens_are_refused_with_invalid_token() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(&up.url(), &inline_jwt()))
        .run()
        .await;
    let cases = [
        ("expired", hs256(&claims(json!({"exp": now() - 60})))),
        ("not yet valid", hs256(&claims(json!({"nbf": now() + 600})))),
        (
            "issued in the future",
            hs256(&claims(json!({"iat": now() + 600}))),
        ),
        (
            "wrong issuer",
            hs256(&claims(json!({"iss": "https://evil.example.com"}))),
        ),
        ("wrong audience", hs256(&claims(json!({"aud": "billing"})))),
        ("missing claim", hs256(&claims(json!({"sub": null})))),
        ("no expiry", hs256(&claims(json!({"exp": null})))),
        (
            "unknown client",
            hs256(&claims(json!({"client_id": "stranger"}))),
        ),
        ("tampered", {
            let t = hs256(&claims(json!({})));
            let (head, _) = t.rsplit_once('.').unwrap();
            format!("{head}.{}", B64.encode([0u8; 32]))
        }),
        (
            "alg none",
            format!(
                "{}.",
                signing_input(&json!({"alg": "none"}), &claims(json!({})))
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (why, token) in cases {
        let resp = get(&node, &token).await;
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"portico\", error=\"invalid_token\""),
            "{why}: {challenge}"
        );
        problem(resp, 401, "invalid-credential").await;
    }
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn an_algorithm_the_key_does_not_allow_is_refused() {
    // Only the EC key is configured; an HS256 token "signed" with the EC
    // public key as secret (the classic confusion) must not pass.
    let up = Upstream::echo().run().await;
    let jwt = format!("{{ keys: [{{ jwk: {}, kid: ec-1 }}] }}", ec_jwk("ec-1"));
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;
    let point = ec_key().verifying_key().to_encoded_point(false);
    let input = signing_input(&json!({"alg": "HS256", "kid": "ec-1"}), &claims(json!({})));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(point.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let forged = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
    problem(get(&node, &forged).await, 401, "invalid-credential").await;
    assert_eq!(
        get(&node, &es256(&claims(json!({})), "ec-1"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn missing_scope_is_a_403_insufficient_scope() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(&up.url(), &inline_jwt()))
        .run()
        .await;
    let resp = get(&node, &hs256(&claims(json!({"scope": "orders:write"})))).await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portico\", error=\"insufficient_scope\", scope=\"orders:read\""
    );
    problem(resp, 403, "insufficient-scope").await;
    // `scp` as a list counts too.
    let resp = get(
        &node,
        &hs256(&claims(json!({"scope": null, "scp": ["orders:read"]}))),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn no_token_is_a_401_without_an_error_code() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(&up.url(), &inline_jwt()))
        .run()
        .await;
    let resp = client()
        .get(node.proxy_url("/orders/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"portico\""
    );
    problem(resp, 401, "missing-credential").await;
}

/// A JWKS endpoint whose key set the test can change, counting fetches.
async fn jwks_server(
    keys: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
) -> portico_test::UpstreamHandle {
    Upstream::from_fn(move |_| {
        fetches.fetch_add(1, Ordering::SeqCst);
        let body = keys.lock().unwrap().to_string();
        async move { http::Response::new(full_body(body.into())) }
    })
    .run()
    .await
}

#[tokio::test]
async fn jwks_keys_are_fetched_and_rotated() {
    let keys = Arc::new(std::sync::Mutex::new(json!({"keys": [ed_jwk(1, "k1")]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = jwks_server(keys.clone(), fetches.clone()).await;
    let up = Upstream::echo().run().await;
    let jwt = format!(
        "{{ jwks_uri: \"{}/jwks.json\", jwks_min_interval: 0ms }}",
        jwks.url()
    );
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;

    assert_eq!(
        get(&node, &eddsa(&claims(json!({})), 1, "k1"))
            .await
            .status(),
        200
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "the key set is fetched when first needed"
    );
    assert_eq!(
        get(&node, &eddsa(&claims(json!({})), 1, "k1"))
            .await
            .status(),
        200
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a known key needs no fetch"
    );

    // The identity provider rotates to k2: the first k2 token makes the
    // gateway fetch again, and passes.
    *keys.lock().unwrap() = json!({"keys": [ed_jwk(2, "k2")]});
    assert_eq!(
        get(&node, &eddsa(&claims(json!({})), 2, "k2"))
            .await
            .status(),
        200
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // k1 is gone from the set now.
    problem(
        get(&node, &eddsa(&claims(json!({})), 1, "k1")).await,
        401,
        "invalid-credential",
    )
    .await;
}

#[tokio::test]
async fn unknown_key_ids_do_not_trigger_a_fetch_storm() {
    let keys = Arc::new(std::sync::Mutex::new(json!({"keys": [ed_jwk(1, "k1")]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = jwks_server(keys, fetches.clone()).await;
    let up = Upstream::echo().run().await;
    let jwt = format!(
        "{{ jwks_uri: \"{}/jwks.json\", jwks_min_interval: 1h }}",
        jwks.url()
    );
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;
    assert_eq!(
        get(&node, &eddsa(&claims(json!({})), 1, "k1"))
            .await
            .status(),
        200
    );
    for _ in 0..5 {
        let resp = get(&node, &eddsa(&claims(json!({})), 9, "unknown")).await;
        problem(resp, 401, "invalid-credential").await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "unknown kids refetched within the minimum interval"
    );
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_pem_key() {
    use rcgen::SigningKey as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let input = signing_input(&json!({"alg": "RS256", "kid": "rsa-1"}), &claims(json!({})));
    let token = format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).unwrap())
    );
    let up = Upstream::echo().run().await;
    let jwt = format!(
        "{{ keys: [{{ pem: \"{}\", alg: RS256, kid: rsa-1 }}] }}",
        key.public_key_pem().replace('\n', "\\n")
    );
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;
    assert_eq!(get(&node, &token).await.status(), 200);
    // The same signature presented as PS256 is refused: RS256 only.
    let (_, sig) = token.rsplit_once('.').unwrap();
    let ps = format!(
        "{}.{sig}",
        signing_input(&json!({"alg": "PS256", "kid": "rsa-1"}), &claims(json!({})))
    );
    problem(get(&node, &ps).await, 401, "invalid-credential").await;
}

#[tokio::test]
async fn mapped_claim_headers_cannot_be_sent_by_clients_under_another_credential() {
    let up = Upstream::echo().run().await;
    let yaml = format!(
        r#"apis:
  - name: orders
    base_path: /orders
    upstream: {{ targets: ["{}"] }}
    policies:
      - api_key: {{}}
      - jwt: {{ keys: [{{ secret: "{SECRET}" }}], claims_to_headers: {{ sub: x-user-id }} }}
products:
  - {{ name: p, apis: [orders] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - {{ name: dev-one-app, developer: dev@example.com, products: [p], api_keys: ["key-00000001"] }}
"#,
        up.url()
    );
    let node = TestNode::new().config(&yaml).run().await;
    let resp = client()
        .get(node.proxy_url("/orders/1"))
        .header("x-api-key", "key-00000001")
        .header("x-user-id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = RecordedRequest::from_json(&resp.json().await.unwrap());
    assert!(
        !seen.headers.contains_key("x-user-id"),
        "a client-sent claim header reached the upstream"
    );
}

#[tokio::test]
async fn a_configured_issuer_and_audience_must_be_present() {
    let up = Upstream::echo().run().await;
    let node = TestNode::new()
        .config(&config(&up.url(), &inline_jwt()))
        .run()
        .await;
    for missing in ["iss", "aud"] {
        let token = hs256(&claims(json!({ missing: null })));
        problem(get(&node, &token).await, 401, "invalid-credential").await;
    }
}

#[tokio::test]
async fn a_failing_jwks_endpoint_is_not_hammered() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks = Upstream::from_fn(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { portico_test::text_response(500, "down") }
    })
    .run()
    .await;
    let up = Upstream::echo().run().await;
    let jwt = format!(
        "{{ jwks_uri: \"{}/jwks.json\", jwks_min_interval: 1h }}",
        jwks.url()
    );
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;
    for _ in 0..5 {
        problem(
            get(&node, &eddsa(&claims(json!({})), 1, "k1")).await,
            401,
            "invalid-credential",
        )
        .await;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_https_key_set_is_verified_against_jwks_ca() {
    let pki = crate::pki::Ca::new("IdP CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::pki::write(dir.path(), "idp-ca.pem", &pki.pem());
    let leaf = pki.server(&["127.0.0.1"]);
    let keys = Arc::new(std::sync::Mutex::new(json!({"keys": [ed_jwk(1, "k1")]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks = Upstream::from_fn(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        let body = keys.lock().unwrap().to_string();
        async move { http::Response::new(full_body(body.into())) }
    })
    .tls(&leaf.cert, &leaf.key)
    .run()
    .await;
    assert!(jwks.url().starts_with("https://"));
    let up = Upstream::echo().run().await;
    let token = eddsa(&claims(json!({})), 1, "k1");

    let jwt = format!(
        "{{ jwks_uri: \"{}/jwks.json\", jwks_ca: \"{ca}\" }}",
        jwks.url()
    );
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;
    assert_eq!(get(&node, &token).await.status(), 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // Against the system roots the IdP's certificate does not verify: the
    // handshake fails before any request, so no key, so the token fails.
    let jwt = format!("{{ jwks_uri: \"{}/jwks.json\" }}", jwks.url());
    let node = TestNode::new().config(&config(&up.url(), &jwt)).run().await;
    problem(get(&node, &token).await, 401, "invalid-credential").await;
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}
