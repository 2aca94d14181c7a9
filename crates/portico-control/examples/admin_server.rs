//! The admin API alone, over a store, with a stand-in node that compiles
//! every change with `portico_config` and publishes at once: what
//! `bench/schemathesis.sh` fuzzes while no proxy is needed.
//!
//! `cargo run -p portico-control --example admin_server -- ADDR STORAGE_URL`
//! with `PORTICO_ADMIN_TOKEN` set.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use portico_control::{ConfigError, Control, Plane, Reload, ReloadRefused, ReloadSummary};

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let storage = args
        .next()
        .unwrap_or_else(|| "sqlite://portico-data/portico.db".into());
    let store = portico_store::Store::open(&storage).await?;
    let token = std::env::var(portico_control::TOKEN_ENV).ok();
    if let Some(generated) =
        portico_control::bootstrap_admin_token(&store, token.as_deref()).await?
    {
        eprintln!("Admin API token (shown once): {generated}");
    }
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
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("Admin API on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
