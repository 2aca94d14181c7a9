//! Upstream servers for tests: a JSON echo, custom handlers, and faults
//! (refuse, reset, stall, slow, garbage, unreachable), over plain TCP or
//! TLS (optionally requiring a client certificate).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The body type custom handlers answer with.
pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>
        + Send
        + Sync,
>;

/// What the echo upstream saw, as returned in its JSON body.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query as received.
    pub uri: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body_len: usize,
}

impl RecordedRequest {
    /// Parses the echo upstream's JSON answer.
    pub fn from_json(v: &serde_json::Value) -> Self {
        let headers = v["headers"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, vals)| {
                        let vals = vals.as_array().into_iter().flatten();
                        (
                            k.clone(),
                            vals.filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            method: v["method"].as_str().unwrap_or_default().to_owned(),
            uri: v["uri"].as_str().unwrap_or_default().to_owned(),
            headers,
            body_len: v["body_len"].as_u64().unwrap_or(0) as usize,
        }
    }

    /// The single value of `name`, if present once.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self.headers.get(name).map(Vec::as_slice) {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}

enum Mode {
    Serve { handler: Handler, delay: Duration },
    Refuse,
    Reset,
    Stall,
    Garbage,
    Unreachable,
}

/// Builds an upstream.
pub struct Upstream;

/// Configures an upstream before it runs.
pub struct UpstreamBuilder {
    mode: Mode,
    tls: Option<TlsAcceptor>,
}

/// What a TLS upstream learnt from the handshake; put in the request's
/// extensions for handlers, and in the echo's JSON under `tls`.
#[derive(Clone, Debug, Default)]
pub struct TlsSeen {
    /// The server name the client sent (SNI), if any.
    pub sni: Option<String>,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<String>,
    /// True when the client presented a certificate (it was verified).
    pub client_cert: bool,
}

impl Upstream {
    /// Answers 200 with a JSON description of the request: method, URI,
    /// headers (lower-case names, all values) and body length.
    pub fn echo() -> UpstreamBuilder {
        Self::from_fn(|req| async move { echo(req).await })
    }

    /// Answers with `handler`.
    pub fn from_fn<F, Fut>(handler: F) -> UpstreamBuilder
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        UpstreamBuilder::new(Mode::Serve {
            handler,
            delay: Duration::ZERO,
        })
    }

    /// Nothing listens: connections are refused.
    pub fn refuse() -> UpstreamBuilder {
        UpstreamBuilder::new(Mode::Refuse)
    }

    /// Accepts, reads the request, then resets the connection (RST).
    pub fn reset() -> UpstreamBuilder {
        UpstreamBuilder::new(Mode::Reset)
    }

    /// Accepts and reads, and never answers.
    pub fn stall() -> UpstreamBuilder {
        UpstreamBuilder::new(Mode::Stall)
    }

    /// Answers with bytes that are not HTTP.
    pub fn garbage() -> UpstreamBuilder {
        UpstreamBuilder::new(Mode::Garbage)
    }

    /// A listener whose accept queue is full and never drained, so new
    /// connection attempts hang until the client's connect timeout.
    pub fn unreachable() -> UpstreamBuilder {
        UpstreamBuilder::new(Mode::Unreachable)
    }
}

/// A text response, for custom handlers.
pub fn text_response(status: u16, body: &'static str) -> Response<TestBody> {
    let mut resp = Response::new(full_body(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    resp
}

/// A complete body, for custom handlers.
pub fn full_body(bytes: Bytes) -> TestBody {
    Full::new(bytes).map_err(|e| match e {}).boxed()
}

async fn echo(req: Request<Incoming>) -> Response<TestBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let tls = parts
        .extensions
        .get::<TlsSeen>()
        .map(|t| serde_json::json!({ "sni": t.sni, "alpn": t.alpn, "client_cert": t.client_cert }));
    let json = serde_json::json!({
        "tls": tls,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body.len(),
    });
    let mut resp = Response::new(full_body(Bytes::from(json.to_string())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

impl UpstreamBuilder {
    fn new(mode: Mode) -> Self {
        Self { mode, tls: None }
    }

    /// Serves TLS 1.2/1.3 with this certificate chain and key (PEM), ALPN
    /// `h2` and `http/1.1`. The URL becomes `https://127.0.0.1:PORT`.
    pub fn tls(self, cert_pem: &str, key_pem: &str) -> Self {
        self.tls_config(cert_pem, key_pem, None)
    }

    /// Like [`UpstreamBuilder::tls`], and refuses clients without a
    /// certificate that chains to `client_ca_pem`.
    pub fn mtls(self, cert_pem: &str, key_pem: &str, client_ca_pem: &str) -> Self {
        self.tls_config(cert_pem, key_pem, Some(client_ca_pem))
    }

    fn tls_config(mut self, cert_pem: &str, key_pem: &str, client_ca: Option<&str>) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = |pem: &str| {
            CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM certificates")
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca) {
                    roots.add(c).expect("CA certificate");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("PEM key");
        let mut config = builder
            .with_single_cert(certs(cert_pem), key)
            .expect("certificate and key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        self.tls = Some(TlsAcceptor::from(Arc::new(config)));
        self
    }

    /// Waits this long before answering each request.
    pub fn delay(mut self, d: Duration) -> Self {
        if let Mode::Serve { delay, .. } = &mut self.mode {
            *delay = d;
        }
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn run(self) -> UpstreamHandle {
        self.run_at("127.0.0.1:0".parse().expect("an address"))
            .await
    }

    /// Binds `addr` (for example the address of an upstream that was
    /// stopped, to bring it back) and starts serving.
    pub async fn run_at(self, addr: SocketAddr) -> UpstreamHandle {
        let listener = bind_reusing(addr);
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let counters = (connections.clone(), requests.clone());
        let task = match self.mode {
            Mode::Refuse => {
                drop(listener);
                None
            }
            Mode::Unreachable => {
                drop(listener);
                Some(tokio::spawn(unreachable(addr)))
            }
            mode => Some(tokio::spawn(serve(
                listener,
                mode,
                self.tls.clone(),
                counters,
            ))),
        };
        UpstreamHandle {
            scheme: if self.tls.is_some() { "https" } else { "http" },
            addr,
            connections,
            requests,
            task,
        }
    }
}

/// A listener on `addr` that may take over a port a stopped upstream left
/// in TIME_WAIT.
fn bind_reusing(addr: SocketAddr) -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind upstream");
    socket.listen(1024).expect("listen")
}

async fn serve(
    listener: TcpListener,
    mode: Mode,
    tls: Option<TlsAcceptor>,
    (connections, requests): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let mode = Arc::new(mode);
    let mut held = Vec::new();
    // Connection tasks live in the set, so stopping the upstream (aborting
    // this task) closes its open connections too, as a killed process would.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        while tasks.try_join_next().is_some() {}
        connections.fetch_add(1, Ordering::Relaxed);
        let mode = mode.clone();
        let requests = requests.clone();
        match &*mode {
            Mode::Serve { .. } => {
                let tls = tls.clone();
                tasks.spawn(async move {
                    let Mode::Serve { handler, delay } = &*mode else {
                        return;
                    };
                    let Some(acceptor) = tls else {
                        serve_http(stream, handler.clone(), *delay, None, requests).await;
                        return;
                    };
                    // A failed handshake (an untrusted client) just closes.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let (_, session) = stream.get_ref();
                    let seen = TlsSeen {
                        sni: session.server_name().map(str::to_owned),
                        alpn: session
                            .alpn_protocol()
                            .map(|p| String::from_utf8_lossy(p).into_owned()),
                        client_cert: session.peer_certificates().is_some_and(|c| !c.is_empty()),
                    };
                    serve_http(stream, handler.clone(), *delay, Some(seen), requests).await;
                });
            }
            Mode::Reset => {
                tasks.spawn(async move {
                    read_head(&mut stream).await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_zero_linger();
                    drop(stream);
                });
            }
            Mode::Stall => {
                held.push(stream);
            }
            Mode::Garbage => {
                tasks.spawn(async move {
                    read_head(&mut stream).await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    let _ = stream
                        .write_all(b"SMTP ready, not HTTP at all\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
            Mode::Refuse | Mode::Unreachable => unreachable!("not served"),
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 (by preface) on one connection.
async fn serve_http<I>(
    io: I,
    handler: Handler,
    delay: Duration,
    tls: Option<TlsSeen>,
    requests: Arc<AtomicUsize>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |mut req: Request<Incoming>| {
        let handler = handler.clone();
        requests.fetch_add(1, Ordering::Relaxed);
        if let Some(seen) = &tls {
            req.extensions_mut().insert(seen.clone());
        }
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(handler(req).await)
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await;
}

async fn read_head(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Listens with a backlog of one and fills it, so further SYNs are dropped.
async fn unreachable(addr: SocketAddr) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let _ = socket.set_reuse_address(true);
    socket
        .bind(&addr.into())
        .expect("bind unreachable upstream");
    socket.listen(0).expect("listen");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let connect = TcpStream::connect(addr);
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), connect).await {
            fillers.push(s);
        }
    }
    // Keep the socket and the fillers alive until the task is aborted.
    let _keep = (socket, fillers);
    std::future::pending::<()>().await;
}

/// A running upstream; stops when dropped, closing its connections.
pub struct UpstreamHandle {
    scheme: &'static str,
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl UpstreamHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://…` when it serves TLS.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests received so far (for `reset` and `garbage`: connections
    /// whose request was read).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops listening and closes every open connection, like a killed
    /// process; the address can be served again with
    /// [`UpstreamBuilder::run_at`].
    pub async fn stop(mut self) -> SocketAddr {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.addr
    }
}

impl Drop for UpstreamHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
