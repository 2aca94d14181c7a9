//! An in-process Portico node built from YAML.

use std::net::SocketAddr;

use portico_app::{App, Overrides};
use portico_config::{Diagnostics, compile};

/// Builds a [`TestNode`]. Listeners default to `127.0.0.1:0` whatever the
/// YAML says, so tests never collide on ports; the access log defaults to
/// off unless the YAML sets `server.access_log`.
#[derive(Debug, Default)]
pub struct TestNodeBuilder {
    yaml: String,
}

/// A running node; shut down when dropped (the runtime ends its tasks).
#[derive(Debug)]
pub struct TestNode {
    app: Option<App>,
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

    /// Compiles `yaml` and publishes it, as SIGHUP does for `portico serve`.
    pub fn reload(&self, yaml: &str) -> Result<Vec<&'static str>, Diagnostics> {
        let mut compiled = compile(yaml)?;
        if !yaml.contains("access_log") {
            compiled.node.access_log = portico_config::AccessLog::Off;
        }
        Ok(self.app().reload(compiled))
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
        let mut compiled = compile(&self.yaml)?;
        if !self.yaml.contains("access_log") {
            compiled.node.access_log = portico_config::AccessLog::Off;
        }
        let local: SocketAddr = ([127, 0, 0, 1], 0).into();
        let overrides = Overrides {
            proxy_listen: Some(local),
            admin_listen: Some(local),
        };
        let app = App::start(compiled, overrides)
            .await
            .expect("test node starts");
        Ok(TestNode { app: Some(app) })
    }
}
