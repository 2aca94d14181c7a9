//! An in-process Portico node built from YAML.

use std::net::SocketAddr;
use std::path::PathBuf;

use portico_app::{App, ConfigSource, Overrides, ReloadError};
use portico_config::{Diagnostic, Diagnostics, compile_in};
use portico_model::node::Storage;

/// The admin token of every test node.
pub const ADMIN_TOKEN: &str = "portico-test-admin-token";

/// Builds a [`TestNode`]. Listeners default to `127.0.0.1:0` whatever the
/// YAML says, so tests never collide on ports; the access log defaults to
/// off unless the YAML sets `server.access_log`.
#[derive(Debug, Default)]
pub struct TestNodeBuilder {
    yaml: String,
    file: Option<PathBuf>,
    storage: Option<Storage>,
    poll: Option<std::time::Duration>,
    demo: bool,
}

/// A running node; shut down when dropped (the runtime ends its tasks).
#[derive(Debug)]
pub struct TestNode {
    app: Option<App>,
    /// The node's SQLite store, unless the test chose a store.
    _data: Option<tempfile::TempDir>,
    dir: PathBuf,
}

impl TestNode {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> TestNodeBuilder {
        TestNodeBuilder::default()
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.app().proxy_addr()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.app().admin_addr()
    }

    /// The TLS proxy listener, when the YAML configures one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.app().tls_addr()
    }

    /// `http://127.0.0.1:PORT{path}` on the proxy listener.
    pub fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy_addr())
    }

    /// `http://127.0.0.1:PORT{path}` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr())
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().expect("node is running")
    }

    /// Publishes `yaml` as a reload of the node's file does (its entities
    /// seed the store, then the snapshot and TLS files are published);
    /// returns the settings that need a restart.
    pub async fn reload(&self, yaml: &str) -> Result<Vec<&'static str>, Diagnostics> {
        let source = ConfigSource {
            text: Some(yaml.to_owned()),
            dir: self.dir.clone(),
        };
        match self.app().reload(source).await {
            Ok(done) => Ok(done.restart),
            Err(ReloadError::Invalid { diagnostics, .. }) => Err(diagnostics),
            Err(e) => Err(Diagnostics(vec![Diagnostic {
                path: String::new(),
                message: e.to_string(),
                line: None,
                column: None,
            }])),
        }
    }

    /// `POST /admin/v1/reload` with the test admin token: the node re-reads
    /// the file it was started from ([`TestNodeBuilder::config_file`]).
    /// Returns the status and the JSON body.
    pub async fn reload_via_admin(&self) -> (u16, serde_json::Value) {
        self.admin_post("/admin/v1/reload", Some(ADMIN_TOKEN)).await
    }

    /// A bodiless POST to the admin listener with an optional bearer token;
    /// the status and the body parsed as JSON (`null` if it is not).
    pub async fn admin_post(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let (status, body) = self.admin_call(http::Method::POST, path, token).await;
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The node's Prometheus exposition (`GET /metrics` on the admin
    /// listener), as text.
    pub async fn metrics_text(&self) -> String {
        let (status, body) = self.admin_call(http::Method::GET, "/metrics", None).await;
        assert_eq!(status, 200, "GET /metrics");
        String::from_utf8(body.to_vec()).expect("metrics are UTF-8")
    }

    /// A bodiless request to the admin listener: the status and the body.
    async fn admin_call(
        &self,
        method: http::Method,
        path: &str,
        token: Option<&str>,
    ) -> (u16, bytes::Bytes) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "admin");
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("valid request");
        let stream = tokio::net::TcpStream::connect(self.admin_addr())
            .await
            .expect("admin listener accepts");
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("HTTP/1 handshake");
        tokio::spawn(conn);
        let resp = send.send_request(req).await.expect("admin answers");
        let status = resp.status().as_u16();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("admin body")
            .to_bytes();
        (status, body)
    }

    /// Graceful shutdown: stop accepting, drain, close.
    pub async fn shutdown(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }
}

impl TestNodeBuilder {
    /// The configuration file's text.
    pub fn config(mut self, yaml: &str) -> Self {
        yaml.clone_into(&mut self.yaml);
        self
    }

    /// Reads the configuration from `path` now, and again on every reload
    /// through the admin API, as `portico serve -c FILE` does.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        self.yaml = std::fs::read_to_string(&path).expect("readable test configuration");
        self.file = Some(path);
        self
    }

    /// Keeps the node's entities in this store (a `postgres://` database
    /// shared with other nodes, say) instead of a fresh SQLite file.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// How often the node polls the store's configuration version.
    pub fn poll_interval(mut self, every: std::time::Duration) -> Self {
        self.poll = Some(every);
        self
    }

    /// Also serves the built-in demo API, as `portico serve --demo` does.
    pub fn demo(mut self) -> Self {
        self.demo = true;
        self
    }

    /// Compiles and starts the node; panics with every diagnostic if the
    /// configuration is refused.
    pub async fn run(self) -> TestNode {
        match self.try_run().await {
            Ok(node) => node,
            Err(d) => panic!("test configuration refused:\n{d}"),
        }
    }

    /// Compiles and starts the node, or returns the diagnostics.
    pub async fn try_run(self) -> Result<TestNode, Diagnostics> {
        let dir = self
            .file
            .as_deref()
            .and_then(std::path::Path::parent)
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
        let compiled = compile_in(&self.yaml, &dir)?;
        let local: SocketAddr = ([127, 0, 0, 1], 0).into();
        // A store of its own, unless the test chose one or the YAML names
        // one: tests never share ./portico-data.
        let data = (self.storage.is_none() && !self.yaml.contains("storage:"))
            .then(|| tempfile::tempdir().expect("a temporary directory"));
        let storage = self.storage.or_else(|| {
            data.as_ref()
                .map(|d| Storage::Sqlite(d.path().join("portico.db")))
        });
        let overrides = Overrides {
            proxy_listen: Some(local),
            admin_listen: Some(local),
            config_file: self.file,
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            access_log: (!self.yaml.contains("access_log"))
                .then_some(portico_config::AccessLog::Off),
            storage,
            poll_interval: self.poll,
            demo: self.demo,
        };
        let source = ConfigSource {
            text: Some(self.yaml),
            dir: dir.clone(),
        };
        match App::start(compiled, source, overrides).await {
            Ok(app) => Ok(TestNode {
                app: Some(app),
                _data: data,
                dir,
            }),
            Err(portico_app::StartError::Config(ReloadError::Invalid { diagnostics, .. })) => {
                Err(diagnostics)
            }
            Err(e) => panic!("test node does not start: {e}"),
        }
    }
}
