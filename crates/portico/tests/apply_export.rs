//! `portico apply` and `portico export` against the admin API (the real
//! router and store, in this process, with a stand-in node that compiles
//! each change): apply a file, export it, and apply the export back with
//! `--dry-run`, which must show no change.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Output;
use std::sync::Arc;

use portico_control::{ConfigError, Control, Plane, Reload, ReloadRefused, ReloadSummary};

const TOKEN: &str = "apply-test-token-0123456789";

struct CompilingPlane;

impl Plane for CompilingPlane {
    fn check(
        &self,
        entities: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<(), Vec<ConfigError>>> + Send + '_>> {
        Box::pin(async move { portico_control::compile_entities(&entities) })
    }

    fn published(&self, _version: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
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

async fn admin_api(dir: &tempfile::TempDir) -> SocketAddr {
    let url = format!("sqlite://{}/data/portico.db", dir.path().display());
    let store = portico_store::Store::open(&url).await.unwrap();
    portico_control::bootstrap_admin_token(&store, Some(TOKEN))
        .await
        .unwrap();
    let gateway = Arc::new(portico_gateway::Gateway::new(
        Arc::new(portico_gateway::Metrics::new()),
        None,
    ));
    let router = portico_control::router(
        gateway,
        Control {
            store,
            plane: Arc::new(CompilingPlane),
        },
        Arc::new(NoReload),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

async fn portico(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_portico"));
    cmd.args(args)
        .env_remove("PORTICO_ADMIN_TOKEN")
        .env_remove("PORTICO_ADMIN_URL");
    if let Some(t) = token {
        cmd.env("PORTICO_ADMIN_TOKEN", t);
    }
    cmd.output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FILE: &str = r#"
server:
  admin: { listen: "127.0.0.1:0" }
apis:
  - name: orders
    base_path: /orders/v1
    spec:
      openapi: 3.1.0
      info: { title: Orders, version: "1" }
      paths:
        /items: { get: { responses: { "200": { description: ok } } } }
    upstream: { targets: ["http://127.0.0.1:9"] }
products:
  - { name: basic, apis: [orders], approval: manual }
developers:
  - { email: dev@example.com, name: Dev One }
apps:
  - name: dev-one-app
    developer: dev@example.com
    products: [basic]
    api_keys: ["test-key-0001"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_export_and_apply_back_shows_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let addr = admin_api(&dir).await;
    let admin = format!("http://{addr}");
    let file = dir.path().join("portico.yaml");
    std::fs::write(&file, FILE).unwrap();
    let file = file.to_str().unwrap();

    // No token: refused before anything is sent.
    let out = portico(&["apply", "-f", file, "--admin", &admin], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    let out = portico(
        &["apply", "-f", file, "--admin", &admin, "--dry-run"],
        Some(TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        4,
        "{}",
        text(&out.stdout)
    );

    let out = portico(&["apply", "-f", file, "--admin", &admin], Some(TOKEN)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "create developer dev@example.com\ncreate api orders\ncreate product basic\ncreate app dev-one-app\n"
    );
    let out = portico(&["apply", "-f", file, "--admin", &admin], Some(TOKEN)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "",
        "applying the same file again changes nothing"
    );

    let out = portico(&["export", "--admin", &admin, "--token", TOKEN], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = text(&out.stdout);
    assert!(exported.contains("api_key_hashes"), "{exported}");
    assert!(!exported.contains("test-key-0001"), "{exported}");
    let back = dir.path().join("exported.yaml");
    std::fs::write(&back, &exported).unwrap();
    let out = portico(
        &[
            "apply",
            "-f",
            back.to_str().unwrap(),
            "--admin",
            &admin,
            "--dry-run",
            "--prune",
        ],
        Some(TOKEN),
    )
    .await;
    assert!(out.status.success(), "{}\n{exported}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "{exported}");

    // An invalid change: every error printed, non-zero exit.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "products:\n  - { name: p, apis: [nope] }\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    let out = portico(
        &["apply", "-f", bad.to_str().unwrap(), "--admin", &admin],
        Some(TOKEN),
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
    // A wrong token.
    let out = portico(&["export", "--admin", &admin, "--token", "pat_wrong"], None).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
}
