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
