//! The pooled HTTP client an API uses to reach its targets: HTTP/1.1, h2
//! over TLS (ALPN) or h2c, with `https://` targets verified against the
//! operating system's trust store or the API's own CA, and an optional
//! client certificate.
//!
//! Everything TLS needs is built here once, when a runtime is installed
//! (start and reloads that change the upstream), never per request. An API
//! without `https://` targets gets the plain connector, so plain HTTP/1.1
//! traffic pays nothing for TLS support.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::request::Parts;
use http::{Request, Response, Version};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portico_model::Upstream;
use portico_model::api::{KeyFormat, UpstreamProtocol, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    ServerName, UnixTime,
};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::body::RequestBody;
use crate::body::UpstreamBody;
use crate::headers::Forwarding;
use crate::pool::{H1Pool, PoolError};

/// Idle upstream connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// An API's connection pool to its targets. Cloning shares the pool.
#[derive(Clone)]
pub(crate) struct UpstreamClient {
    inner: Inner,
    version: Version,
}

#[derive(Clone)]
enum Inner {
    /// Only `http://` targets, HTTP/1.1: Portico's own pool (`pool.rs`).
    Http1(H1Pool),
    /// Only `http://` targets, h2c.
    Plain(Client<HttpConnector, RequestBody>),
    /// At least one `https://` target (`http://` ones still work).
    Tls(Client<HttpsConnector<HttpConnector>, RequestBody>),
}

impl UpstreamClient {
    /// The client for `upstream`; `api` names it in log lines.
    pub fn new(api: &str, upstream: &Upstream) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(upstream.connect_timeout));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let version = match upstream.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::Http2 | UpstreamProtocol::H2c => {
                builder.http2_only(true);
                Version::HTTP_2
            }
        };
        let inner = match &upstream.tls {
            None if upstream.protocol == UpstreamProtocol::Http1 => Inner::Http1(H1Pool::new(
                upstream.targets.iter().map(|t| t.authority.clone()),
                upstream.connect_timeout,
                TCP_KEEPALIVE,
            )),
            None => {
                http.enforce_http(true);
                Inner::Plain(builder.build(http))
            }
            Some(tls) => {
                http.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(client_config(api, tls))
                    .https_or_http();
                let https = match tls.sni.as_deref().map(ServerName::try_from) {
                    Some(Ok(name)) => https
                        .with_server_name_resolver(FixedServerNameResolver::new(name.to_owned())),
                    // The compiler checked the name; the target's host is
                    // used if it ever fails here.
                    _ => https,
                };
                let connector = match upstream.protocol {
                    UpstreamProtocol::Http1 => https.enable_http1().wrap_connector(http),
                    UpstreamProtocol::Http2 | UpstreamProtocol::H2c => {
                        https.enable_http2().wrap_connector(http)
                    }
                };
                Inner::Tls(builder.build(connector))
            }
        };
        Self { inner, version }
    }

    /// The HTTP version every upstream request is sent with.
    #[inline]
    pub fn version(&self) -> Version {
        self.version
    }

    /// Sends `req`, with the `forwarding` fields of a proxied request, on a
    /// pooled (or new) connection, which goes back to its pool when the
    /// answer's body has ended.
    pub async fn request(
        &self,
        req: Request<RequestBody>,
        forwarding: Option<&Forwarding<'_>>,
    ) -> Result<Response<UpstreamBody>, ClientError> {
        let (head, body) = req.into_parts();
        self.send(Box::new(head), body, forwarding, false).await
    }

    /// [`Self::request`] for a head already boxed: the proxy's, which so
    /// passes through the client's layers as a pointer rather than as a
    /// copy at each. With `raw`, an HTTP/1.1 target's answer may come
    /// with its fields kept as they came (`h1::RawFields`, with the body)
    /// and an empty map: for a caller that reads none of them.
    pub(crate) async fn send(
        &self,
        mut head: Box<Parts>,
        body: RequestBody,
        forwarding: Option<&Forwarding<'_>>,
        raw: bool,
    ) -> Result<Response<UpstreamBody>, ClientError> {
        if let (Inner::Plain(_) | Inner::Tls(_), Some(f)) = (&self.inner, forwarding) {
            f.apply(&mut head.headers);
        }
        let sent = match &self.inner {
            Inner::Http1(p) => {
                return p
                    .send_boxed(head, body, forwarding, raw)
                    .await
                    .map_err(ClientError::Pool);
            }
            Inner::Plain(c) => c.request(Request::from_parts(*head, body)),
            Inner::Tls(c) => c.request(Request::from_parts(*head, body)),
        };
        sent.await
            .map(|r| r.map(UpstreamBody::Hyper))
            .map_err(ClientError::Legacy)
    }
}

/// A failed upstream request, from either client.
#[derive(Debug)]
pub(crate) enum ClientError {
    Legacy(hyper_util::client::legacy::Error),
    Pool(PoolError),
}

impl ClientError {
    /// True when no connection could be made, so the request never left.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Legacy(e) => e.is_connect(),
            Self::Pool(e) => e.is_connect(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Legacy(e) => e.fmt(f),
            Self::Pool(e) => e.fmt(f),
        }
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Legacy(e) => Some(e),
            Self::Pool(e) => Some(e),
        }
    }
}

/// The rustls configuration for an upstream. It cannot fail on settings the
/// compiler accepted; should it fail anyway, the result trusts nothing, so
/// every handshake fails (`upstream-tls`) rather than going unverified.
fn client_config(api: &str, tls: &UpstreamTls) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match try_client_config(&provider, tls) {
        Ok(config) => {
            if !tls.verify {
                tracing::warn!(
                    api,
                    "Upstream certificates are not verified (`tls.verify: false`): anyone on the path to the targets can read and change this API's traffic."
                );
            }
            config
        }
        Err(e) => {
            tracing::error!(api, error = %e, "Upstream TLS settings are unusable; every https request of this API will fail.");
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(RootCertStore::empty())
                        .with_no_client_auth()
                })
                .expect("aws-lc-rs supports the default protocol versions")
        }
    }
}

fn try_client_config(
    provider: &Arc<CryptoProvider>,
    tls: &UpstreamTls,
) -> Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if !tls.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider.clone())))
    } else if tls.ca.is_empty() {
        builder.with_root_certificates(system_roots())
    } else {
        let mut roots = RootCertStore::empty();
        for der in &tls.ca {
            roots.add(CertificateDer::from(der.clone()))?;
        }
        builder.with_root_certificates(roots)
    };
    match &tls.identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => {
            let chain = id
                .chain
                .iter()
                .map(|c| CertificateDer::from(c.clone()))
                .collect();
            let der = id.key.der.clone();
            let key = match id.key.format {
                KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
                KeyFormat::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
                KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
            };
            builder.with_client_auth_cert(chain, key)
        }
    }
}

/// The operating system's trust store, read once per process (through
/// rustls-native-certs, which also honours `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`). A change to it takes effect at the next restart.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "Could not read part of the system trust store.");
            }
            let mut roots = RootCertStore::empty();
            let (_, unusable) = roots.add_parsable_certificates(found.certs);
            if unusable > 0 {
                tracing::debug!(
                    unusable,
                    "Skipped system trust store certificates rustls cannot use."
                );
            }
            if roots.is_empty() {
                tracing::warn!(
                    "The system trust store has no usable certificate: https targets without `tls.ca` will fail verification."
                );
            }
            Arc::new(roots)
        })
        .clone()
}

/// `verify: false`: any certificate is accepted, but the handshake
/// signatures are still checked (they prove the peer holds the key of the
/// certificate it sent, whatever that certificate is).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS reason behind a failed upstream request, if TLS was the cause:
/// a certificate that did not verify, or an alert from the target (for
/// example, it wanted a client certificate).
pub(crate) fn tls_failure(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // `io::Error::source` skips the error it wraps; look inside.
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => err.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_rustls_error_wrapped_in_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let reason = tls_failure(&wrapped).expect("found");
        assert!(reason.contains("UnknownIssuer"), "{reason}");
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_failure(&plain), None);
    }
}
