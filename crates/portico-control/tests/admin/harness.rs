//! The admin router on a real socket, with a stand-in node.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use portico_control::{ConfigError, Control, Plane, Reload, ReloadRefused, ReloadSummary};
use portico_store::{Actor, Expect, Role, Store};
use reqwest::{Method, RequestBuilder, Response};
use tokio::sync::watch;

/// Compiles with `portico_config::compile_with` (no node settings), as the node does, and records every
/// version it was asked to publish.
pub struct FakePlane {
    pub published: watch::Sender<Vec<i64>>,
}

impl Plane for FakePlane {
    fn check(
        &self,
        entities: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<(), Vec<ConfigError>>> + Send + '_>> {
        Box::pin(async move { portico_control::compile_entities(&entities) })
    }

    fn published(&self, version: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.published.send_modify(|v| v.push(version));
        Box::pin(async {})
    }
}

struct NoReload;

impl Reload for NoReload {
    fn reload(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<ReloadSummary, ReloadRefused>> + Send + '_>> {
        Box::pin(async { Err(ReloadRefused::NoFile) })
    }
}

pub const ADMIN_TOKEN: &str = "admin-test-token-0123456789";

pub struct Admin {
    pub store: Store,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub published: watch::Receiver<Vec<i64>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Admin {
    pub async fn start(store: Store) -> Admin {
        portico_control::bootstrap_admin_token(&store, Some(ADMIN_TOKEN))
            .await
            .expect("bootstrap");
        let (published_tx, published) = watch::channel(Vec::new());
        let plane = Arc::new(FakePlane {
            published: published_tx,
        });
        let gateway = Arc::new(portico_gateway::Gateway::new(
            Arc::new(portico_gateway::Metrics::new()),
            None,
        ));
        let router = portico_control::router(
            gateway,
            Control {
                store: store.clone(),
                plane,
            },
            Arc::new(NoReload),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
                .unwrap();
        });
        Admin {
            store,
            addr,
            client: reqwest::Client::new(),
            published,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the admin token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.as_token(ADMIN_TOKEN, method, path)
    }

    pub fn as_token(&self, token: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// PUTs `doc` as admin and asserts a 2xx.
    pub async fn put(&self, path: &str, doc: serde_json::Value) -> Response {
        let resp = self.req(Method::PUT, path).json(&doc).send().await.unwrap();
        if !resp.status().is_success() {
            let status = resp.status();
            panic!("PUT {path}: {status} {}", resp.text().await.unwrap());
        }
        resp
    }

    /// A user with `role` (and `developer`) and a token for it.
    pub async fn token_for(&self, user: &str, role: Role, developer: Option<&str>) -> String {
        self.store
            .put_user(&Actor::system(), user, role, developer, Expect::Any)
            .await
            .unwrap();
        self.store
            .issue_admin_token(&Actor::system(), user, "test", None)
            .await
            .unwrap()
            .plaintext
            .into_string()
    }
}

/// The body of a problem answer, checked for its shape.
pub async fn problem(resp: Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "{:?}", resp.headers());
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("https://portico.dev/problems/{code}"),
        "{body}"
    );
    assert_eq!(body["status"], status);
    body
}
