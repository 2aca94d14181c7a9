//! The `portico` command. Thin: parsing arguments and wiring, nothing else.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use portico_app::{App, ConfigSource, Overrides};
use portico_config::{Compiled, compile_in};

mod admin_client;
mod apply;
mod export;

/// Portico: API gateway, control plane and developer portal in one binary.
#[derive(Parser)]
#[command(name = "portico", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. Without a file, starts on the embedded defaults: proxy on
    /// 0.0.0.0:8080, admin on 127.0.0.1:8081, data under ./portico-data.
    Serve {
        /// Configuration file (YAML): node settings and entities.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Runtime worker threads; overrides `server.workers` (default: one
        /// per core). 1 runs a single-threaded runtime.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
        /// Also serve the built-in demo API under /demo, answered by the
        /// mock upstream from its OpenAPI examples (try
        /// `curl localhost:8080/demo/books`).
        #[arg(long)]
        demo: bool,
    },
    /// Validate a configuration file without starting; prints every error
    /// and exits non-zero if there is one.
    Check {
        /// Configuration file (YAML).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Make a running node's entities (APIs, products, developers, apps)
    /// match a file's, through its admin API; prints the diff.
    Apply {
        /// Configuration file (YAML); its entity sections are applied.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// The admin API (default: $PORTICO_ADMIN_URL, else http://127.0.0.1:8081).
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// Admin token (default: $PORTICO_ADMIN_TOKEN).
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// Print what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete the node's entities that the file does not list.
        #[arg(long)]
        prune: bool,
    },
    /// Print a running node's entities as YAML that `apply` accepts.
    Export {
        /// The admin API (default: $PORTICO_ADMIN_URL, else http://127.0.0.1:8081).
        #[arg(long, value_name = "URL")]
        admin: Option<String>,
        /// Admin token (default: $PORTICO_ADMIN_TOKEN).
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
}

/// mimalloc: the request path allocates many small, short-lived buffers
/// (headers, URIs, body frames); see docs/benchmarks.md for the measurement.
/// Built with `no_thp`: where the kernel grants transparent huge pages on
/// request (`madvise`, Debian's default), mimalloc's huge-page advice kept
/// an idle node with 1,000 APIs at about 60 MiB resident, for an 11 MiB
/// live heap; without it, 38 MiB, at the same requests/s.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Apply {
            file,
            admin,
            token,
            dry_run,
            prune,
        } => apply::run(apply::Args {
            file,
            admin,
            token,
            dry_run,
            prune,
        }),
        Command::Export { admin, token } => export::run(admin, token),
        Command::Serve {
            config,
            workers,
            demo,
        } => match serve(config.as_deref(), workers.map(usize::from), demo) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The directory spec files are read relative to.
fn config_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Reads and compiles `path`, printing every diagnostic on failure.
fn load(path: &Path) -> Result<Compiled, ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Err(ExitCode::from(2));
        }
    };
    let dir = config_dir(path);
    let compiled = compile_in(&text, dir).and_then(|c| portico_app::check_files(&c).map(|()| c));
    compiled.map_err(|diagnostics| {
        for d in diagnostics.iter() {
            eprintln!("{}: {d}", path.display());
        }
        eprintln!(
            "error: {} has {} error{}",
            path.display(),
            diagnostics.len(),
            if diagnostics.len() == 1 { "" } else { "s" }
        );
        ExitCode::FAILURE
    })
}

fn check(path: &Path) -> ExitCode {
    match load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} APIs, {} products, {} developers, {} apps)",
                path.display(),
                c.snapshot.apis.len(),
                c.snapshot.products.len(),
                c.snapshot.developers.len(),
                c.snapshot.consumers.apps.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn serve(path: Option<&Path>, workers: Option<usize>, demo: bool) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTICO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (compiled, source) = match path {
        Some(p) => {
            let compiled = load(p).map_err(|_| anyhow::anyhow!("the configuration has errors"))?;
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let source = ConfigSource {
                text: Some(text),
                dir: config_dir(p).to_path_buf(),
            };
            (compiled, source)
        }
        None => (Compiled::default(), ConfigSource::default()),
    };
    if let Some(dir) = compiled.node.storage.data_dir() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let workers = workers.or(compiled.node.workers);
    let runtime = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let overrides = Overrides {
            config_file: path.map(Path::to_path_buf),
            demo,
            ..Overrides::default()
        };
        // A start error's message already ends with its cause: printed as a
        // chain it would repeat it.
        let app = App::start(compiled, source, overrides)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if demo {
            // A node listening on every address is reached on loopback.
            let mut addr = app.proxy_addr();
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            tracing::info!(
                url = %format!("http://{addr}/demo/books"),
                key = portico_app::demo::KEY,
                "The demo bookstore API is served under /demo; its order operations take the demo key in x-api-key."
            );
        }
        let threads = workers.map_or_else(|| "one per core".to_owned(), |n| n.to_string());
        tracing::info!(workers = %threads, "Press Ctrl-C to stop.");
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        let mut hangups = hangups();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                // The outcome is logged by the node, as for the admin API.
                Some(()) = hangups.recv() => { let _ = app.reload_file().await; }
            }
        }
        tracing::info!("Shutting down: draining in-flight requests.");
        app.shutdown().await;
        Ok(())
    })
}

/// SIGHUP as a stream; never fires where there are no such signals.
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
