//! TLS termination and the mtls policy, with certificates made by rcgen and
//! a rustls client over real sockets.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use portico_test::{RecordedRequest, TestNode, Upstream};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf signed by `issuer`: (certificate PEM, key PEM, DER).
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String, CertificateDer<'static>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

struct Client {
    cert: CertificateDer<'static>,
    key: String,
}

fn client(pki: &Pki, cn: &str, trusted: bool) -> Client {
    let issuer = if trusted { &pki.ca } else { &pki.other_ca };
    let sans = vec![SanType::URI(
        format!("spiffe://acme/{cn}").try_into().unwrap(),
    )];
    let (_, key, cert) = leaf(issuer, cn, sans, ExtendedKeyUsagePurpose::ClientAuth);
    Client { cert, key }
}

/// Starts a node with a TLS listener; returns it with the PKI and a tempdir.
async fn node(
    up: &portico_test::UpstreamHandle,
    client_auth: &str,
) -> (TestNode, Pki, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki {
        ca: ca("Portico Test CA"),
        other_ca: ca("Someone Else's CA"),
    };
    let (cert, key, _) = leaf(
        &pki.ca,
        "localhost",
        vec![SanType::DnsName("localhost".try_into().unwrap())],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let cert = write(dir.path(), "server.pem", &cert);
    let key = write(dir.path(), "server.key", &key);
    let ca_file = write(dir.path(), "ca.pem", &pki.ca.pem());
    let yaml = format!(
        r#"server:
  proxy:
    tls: {{ listen: "127.0.0.1:0", cert: "{cert}", key: "{key}", client_ca: "{ca_file}", client_auth: {client_auth} }}
apis:
  - name: open
    base_path: /open
    upstream: {{ targets: ["{up}"] }}
  - name: secure
    base_path: /secure
    upstream: {{ targets: ["{up}"] }}
    policies:
      - mtls: {{}}
products:
  - {{ name: p, apis: [secure] }}
developers:
  - {{ email: dev@example.com, name: Dev }}
apps:
  - {{ name: by-subject, developer: dev@example.com, products: [p], certificates: ["CN=client-a, O=Acme"] }}
  - {{ name: by-san, developer: dev@example.com, products: [p], certificates: ["spiffe://acme/client-b"] }}
"#,
        up = up.url()
    );
    (TestNode::new().config(&yaml).run().await, pki, dir)
}

/// Connects over TLS (offering `alpn`), sends GET `path`; returns the
/// negotiated protocol, status and body, or the handshake error.
async fn get(
    addr: SocketAddr,
    pki: &Pki,
    identity: Option<&Client>,
    alpn: &[&[u8]],
    path: &str,
) -> Result<(Option<Vec<u8>>, u16, Bytes), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert.clone()], rustls_key(&c.key))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = if negotiated.as_deref() == Some(b"h2") {
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::get(format!("https://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((negotiated, status, body))
}

fn rustls_key(pem: &str) -> PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn tls_is_terminated_with_alpn_and_forwarded_as_https() {
    let up = Upstream::echo().run().await;
    let (node, pki, _dir) = node(&up, "optional").await;
    let addr = node.tls_addr().expect("a TLS listener");
    let (alpn, status, body) = get(addr, &pki, None, &[b"http/1.1"], "/open/x")
        .await
        .unwrap();
    assert_eq!((alpn.as_deref(), status), (Some(&b"http/1.1"[..]), 200));
    let seen = RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert!(seen.headers["forwarded"][0].contains("proto=https"));

    let (alpn, status, _) = get(addr, &pki, None, &[b"h2", b"http/1.1"], "/open/x")
        .await
        .unwrap();
    assert_eq!((alpn.as_deref(), status), (Some(&b"h2"[..]), 200));
}

#[tokio::test]
async fn mtls_maps_a_certificate_subject_or_san_to_an_app() {
    let up = Upstream::echo().run().await;
    let (node, pki, _dir) = node(&up, "optional").await;
    let addr = node.tls_addr().unwrap();
    for (cn, app) in [("client-a", "by-subject"), ("client-b", "by-san")] {
        let id = client(&pki, cn, true);
        let (_, status, body) = get(addr, &pki, Some(&id), &[b"http/1.1"], "/secure/1")
            .await
            .unwrap();
        assert_eq!(status, 200, "{cn}");
        let seen = RecordedRequest::from_json(&serde_json::from_slice(&body).unwrap());
        assert_eq!(seen.header("x-portico-app"), Some(app));
    }
}

#[tokio::test]
async fn mtls_without_or_with_an_unknown_certificate_is_a_401() {
    let up = Upstream::echo().run().await;
    let (node, pki, _dir) = node(&up, "optional").await;
    let addr = node.tls_addr().unwrap();
    let (_, status, body) = get(addr, &pki, None, &[b"http/1.1"], "/secure/1")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc["type"],
        "https://portico.dev/problems/missing-credential"
    );

    let stranger = client(&pki, "client-z", true);
    let (_, status, body) = get(addr, &pki, Some(&stranger), &[b"http/1.1"], "/secure/1")
        .await
        .unwrap();
    assert_eq!(status, 401);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc["type"],
        "https://portico.dev/problems/invalid-credential"
    );
    // Plain HTTP never carries a certificate.
    let resp = crate::support::client()
        .get(node.proxy_url("/secure/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn certificates_from_another_ca_fail_the_handshake() {
    let up = Upstream::echo().run().await;
    let (node, pki, _dir) = node(&up, "optional").await;
    let forged = client(&pki, "client-a", false);
    let result = get(
        node.tls_addr().unwrap(),
        &pki,
        Some(&forged),
        &[b"http/1.1"],
        "/secure/1",
    )
    .await;
    assert!(
        result.is_err(),
        "a certificate from an unknown CA was accepted"
    );
    assert_eq!(up.connections(), 0);
}

#[tokio::test]
async fn required_client_auth_refuses_connections_without_a_certificate() {
    let up = Upstream::echo().run().await;
    let (node, pki, _dir) = node(&up, "required").await;
    let addr = node.tls_addr().unwrap();
    assert!(
        get(addr, &pki, None, &[b"http/1.1"], "/open/x")
            .await
            .is_err()
    );
    let id = client(&pki, "client-a", true);
    let (_, status, _) = get(addr, &pki, Some(&id), &[b"http/1.1"], "/open/x")
        .await
        .unwrap();
    assert_eq!(status, 200);
}

/// A server certificate for `names`, signed by `issuer`: (cert PEM, key PEM, DER).
fn server_cert(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
) -> (String, String, CertificateDer<'static>) {
    let sans = names
        .iter()
        .map(|n| SanType::DnsName((*n).try_into().unwrap()))
        .collect();
    leaf(issuer, names[0], sans, ExtendedKeyUsagePurpose::ServerAuth)
}

/// Writes `text` to `dir/name` in one step (a rename), as rotation tools do.
fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A fresh TLS connection to `addr` offering `sni` (none when `None`),
/// trusting `ca`, optionally with a client certificate; GET `/open/x`.
/// Returns the leaf certificate the server presented and the status.
async fn handshake(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    sni: Option<&str>,
    identity: Option<&Client>,
) -> Result<(CertificateDer<'static>, u16), String> {
    let (leaf, mut send) = connect(addr, ca, sni, identity).await?;
    Ok((leaf, open_x(&mut send).await?))
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A TLS connection, ready for HTTP/1.1 requests.
async fn connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    sni: Option<&str>,
    identity: Option<&Client>,
) -> Result<(CertificateDer<'static>, Sender), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert.clone()], rustls_key(&c.key))
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = sni.is_some();
    // Without SNI the name is still what the certificate is checked against.
    let name = sni.unwrap_or("default.test").to_owned();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from(name).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok((leaf, send))
}

/// GET `/open/x` on an open connection; the status.
async fn open_x(send: &mut Sender) -> Result<u16, String> {
    let req = http::Request::get("/open/x")
        .header("host", "default.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status)
}

/// The YAML of a node whose TLS listener reads files in `dir`.
fn tls_yaml(dir: &Path, up: &portico_test::UpstreamHandle, tls_extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"server:
  access_log: "off"
  proxy:
    tls:
      listen: "127.0.0.1:0"
      cert: "{d}/default.pem"
      key: "{d}/default.key"
{tls_extra}apis:
  - name: open
    base_path: /open
    upstream: {{ targets: ["{up}"] }}
"#,
        up = up.url()
    )
}

#[tokio::test]
async fn sni_selects_a_certificate_by_exact_or_wildcard_name() {
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Portico Test CA");
    let (default_pem, default_key, default_der) = server_cert(&ca, &["default.test"]);
    let (shop_pem, shop_key, shop_der) = server_cert(&ca, &["shop.example.com"]);
    let (wild_pem, wild_key, wild_der) = server_cert(&ca, &["*.example.com", "example.com"]);
    write(dir.path(), "default.pem", &default_pem);
    write(dir.path(), "default.key", &default_key);
    write(dir.path(), "shop.pem", &shop_pem);
    write(dir.path(), "shop.key", &shop_key);
    write(dir.path(), "wild.pem", &wild_pem);
    write(dir.path(), "wild.key", &wild_key);
    let d = dir.path().display();
    let extra = format!(
        "      certificates:\n        - {{ cert: \"{d}/wild.pem\", key: \"{d}/wild.key\" }}\n        - {{ cert: \"{d}/shop.pem\", key: \"{d}/shop.key\" }}\n"
    );
    let node = TestNode::new()
        .config(&tls_yaml(dir.path(), &up, &extra))
        .run()
        .await;
    let addr = node.tls_addr().unwrap();
    let ca_der = ca.der().clone();
    for (sni, expected) in [
        (Some("shop.example.com"), &shop_der),
        (Some("api.example.com"), &wild_der),
        (Some("example.com"), &wild_der),
        (Some("default.test"), &default_der),
        (None, &default_der),
    ] {
        let (leaf, status) = handshake(addr, &ca_der, sni, None).await.unwrap();
        assert_eq!(status, 200, "{sni:?}");
        assert!(leaf == *expected, "{sni:?} got the wrong certificate");
    }
    // An unknown name gets the default, which the client then refuses.
    let err = handshake(addr, &ca_der, Some("other.test"), None)
        .await
        .unwrap_err();
    assert!(
        err.contains("only valid for DnsName(\"default.test\")"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_file_problems_name_the_key_and_line() {
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Portico Test CA");
    let (pem, _, _) = server_cert(&ca, &["default.test"]);
    let (_, other_key, _) = server_cert(&ca, &["default.test"]);
    write(dir.path(), "default.pem", &pem);
    write(dir.path(), "default.key", &other_key);
    let mut no_san = CertificateParams::new(Vec::<String>::new()).unwrap();
    no_san.distinguished_name.push(DnType::CommonName, "x");
    let no_san_key = KeyPair::generate().unwrap();
    let no_san = no_san.signed_by(&no_san_key, &ca).unwrap();
    write(dir.path(), "nosan.pem", &no_san.pem());
    write(dir.path(), "nosan.key", &no_san_key.serialize_pem());
    let d = dir.path().display();
    let extra = format!(
        "      certificates:\n        - {{ cert: \"{d}/nosan.pem\", key: \"{d}/nosan.key\" }}\n      client_ca: \"{d}/missing.pem\"\n"
    );
    let compiled = portico_config::compile(&tls_yaml(dir.path(), &up, &extra)).unwrap();
    let errors = portico_app::check_files(&compiled).unwrap_err().to_string();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 3, "{errors}");
    assert!(
        lines[0].starts_with("server.proxy.tls.key: the private key in")
            && lines[0].contains("does not match the certificate in")
            && lines[0].contains("at line 7 column 12"),
        "{errors}"
    );
    assert!(
        lines[1].starts_with("server.proxy.tls.certificates[0].cert: the certificate in")
            && lines[1].contains("has no subject alternative name")
            && lines[1].contains("at line 9"),
        "{errors}"
    );
    assert!(
        lines[2].starts_with("server.proxy.tls.client_ca: cannot read")
            && lines[2].contains("at line 10"),
        "{errors}"
    );
}

/// What one fresh connection saw: the served leaf and the status.
type Outcome = Result<(CertificateDer<'static>, u16), String>;

/// Keeps opening fresh TLS connections until told to stop; each result is
/// (started after the reload?, outcome).
fn traffic(
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    reloaded: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(bool, Outcome)>> {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let after = reloaded.load(Ordering::SeqCst);
            seen.push((
                after,
                handshake(addr, &ca, Some("default.test"), None).await,
            ));
        }
        seen
    })
}

#[tokio::test]
async fn a_certificate_rotated_during_traffic_is_served_after_the_reload() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Portico Test CA");
    let (old_pem, old_key, old_der) = server_cert(&ca, &["default.test"]);
    write(dir.path(), "default.pem", &old_pem);
    write(dir.path(), "default.key", &old_key);
    // The file check is off: only the reload may change the certificate.
    let yaml = tls_yaml(dir.path(), &up, "      watch_interval: 0s\n");
    let file = dir.path().join("portico.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let node = TestNode::new().config_file(&file).run().await;
    let addr = node.tls_addr().unwrap();

    let reloaded = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(addr, ca.der().clone(), reloaded.clone(), stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // A connection opened before the rotation, used again after it.
    let (held_leaf, mut held) = connect(addr, &ca.der().clone(), Some("default.test"), None)
        .await
        .unwrap();
    assert!(held_leaf == old_der);
    let (new_pem, new_key, new_der) = server_cert(&ca, &["default.test"]);
    replace(dir.path(), "default.key", &new_key);
    replace(dir.path(), "default.pem", &new_pem);
    // With the file check off, the files alone change nothing.
    let (leaf, _) = handshake(addr, &ca.der().clone(), Some("default.test"), None)
        .await
        .unwrap();
    assert!(leaf == old_der, "the files alone changed the certificate");
    let (status, summary) = node.reload_via_admin().await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["tls_reloaded"], true, "{summary}");
    assert_eq!(summary["restart_required"], serde_json::json!([]));
    reloaded.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = load.await.unwrap();
    // The connection from before keeps its session and keeps serving.
    assert_eq!(open_x(&mut held).await, Ok(200));

    let before = seen.iter().filter(|(after, _)| !after).count();
    let after = seen.len() - before;
    assert!(before > 0 && after > 0, "{before} before, {after} after");
    let mut old_seen = 0;
    for (after, outcome) in &seen {
        let (leaf, status) = outcome.as_ref().expect("every request succeeds");
        assert_eq!(*status, 200);
        if *after {
            assert!(
                *leaf == new_der,
                "a handshake after the reload got the old certificate"
            );
        } else if *leaf == old_der {
            old_seen += 1;
        }
    }
    assert!(old_seen > 0, "the old certificate was never served");
}

#[tokio::test]
async fn a_broken_rotation_keeps_the_old_certificate() {
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Portico Test CA");
    let (pem, key, der) = server_cert(&ca, &["default.test"]);
    write(dir.path(), "default.pem", &pem);
    write(dir.path(), "default.key", &key);
    let yaml = tls_yaml(dir.path(), &up, "      watch_interval: 0s\n");
    let file = dir.path().join("portico.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let node = TestNode::new().config_file(&file).run().await;
    let addr = node.tls_addr().unwrap();

    // A new certificate whose key did not arrive: refused whole.
    let (new_pem, _, _) = server_cert(&ca, &["default.test"]);
    replace(dir.path(), "default.pem", &new_pem);
    let (status, doc) = node.reload_via_admin().await;
    assert_eq!(status, 422, "{doc}");
    assert_eq!(
        doc["type"],
        "https://portico.dev/problems/invalid-configuration"
    );
    let error = &doc["errors"][0];
    assert_eq!(error["path"], "server.proxy.tls.key", "{doc}");
    assert_eq!(error["line"], 7, "{doc}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("does not match the certificate"),
        "{doc}"
    );
    let (leaf, status) = handshake(addr, &ca.der().clone(), Some("default.test"), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(leaf == der, "a refused rotation changed the certificate");
}

#[tokio::test]
async fn the_file_check_picks_up_a_rotation_without_a_reload() {
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("Portico Test CA");
    let (pem, key, old_der) = server_cert(&ca, &["default.test"]);
    write(dir.path(), "default.pem", &pem);
    write(dir.path(), "default.key", &key);
    let node = TestNode::new()
        .config(&tls_yaml(dir.path(), &up, "      watch_interval: 1s\n"))
        .run()
        .await;
    let addr = node.tls_addr().unwrap();
    let ca_der = ca.der().clone();
    let served = || async {
        handshake(addr, &ca_der, Some("default.test"), None)
            .await
            .unwrap()
            .0
    };
    assert!(served().await == old_der);
    // The certificate lands first: until the key follows, the pair does not
    // match, and the check must keep serving the old one.
    let (new_pem, new_key, new_der) = server_cert(&ca, &["default.test"]);
    replace(dir.path(), "default.pem", &new_pem);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        served().await == old_der,
        "a half-rotated pair was installed"
    );
    replace(dir.path(), "default.key", &new_key);
    portico_test::assert_eventually!(served().await == new_der);
}

#[tokio::test]
async fn a_new_client_ca_is_trusted_after_the_reload() {
    let up = Upstream::echo().run().await;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca("Portico Test CA");
    let (pem, key, _) = server_cert(&server_ca, &["default.test"]);
    write(dir.path(), "default.pem", &pem);
    write(dir.path(), "default.key", &key);
    let pki = Pki {
        ca: ca("Old Client CA"),
        other_ca: ca("New Client CA"),
    };
    write(dir.path(), "clients.pem", &pki.ca.pem());
    let d = dir.path().display();
    let extra = format!(
        "      client_ca: \"{d}/clients.pem\"\n      client_auth: required\n      watch_interval: 0s\n"
    );
    let file = dir.path().join("portico.yaml");
    std::fs::write(&file, tls_yaml(dir.path(), &up, &extra)).unwrap();
    let node = TestNode::new().config_file(&file).run().await;
    let addr = node.tls_addr().unwrap();
    let ca_der = server_ca.der().clone();
    let old_client = client(&pki, "client-a", true);
    let new_client = client(&pki, "client-b", false);

    assert_eq!(
        handshake(addr, &ca_der, Some("default.test"), Some(&old_client))
            .await
            .unwrap()
            .1,
        200
    );
    assert!(
        handshake(addr, &ca_der, Some("default.test"), Some(&new_client))
            .await
            .is_err(),
        "a client certificate from the new CA was accepted before the reload"
    );

    replace(dir.path(), "clients.pem", &pki.other_ca.pem());
    let (status, summary) = node.reload_via_admin().await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["tls_reloaded"], true);
    assert_eq!(
        handshake(addr, &ca_der, Some("default.test"), Some(&new_client))
            .await
            .unwrap()
            .1,
        200
    );
    assert!(
        handshake(addr, &ca_der, Some("default.test"), Some(&old_client))
            .await
            .is_err(),
        "the old CA is still trusted after the reload"
    );
}
