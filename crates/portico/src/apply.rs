//! `portico apply -f FILE`: makes a running node's entities match the
//! file's `apis`, `products`, `developers` and `apps` through
//! `POST /admin/v1/apply`, and prints the diff, one change a line:
//! `create api orders`, `update app x`, `delete product y`.

use std::path::Path;
use std::process::ExitCode;

use crate::admin_client::{self, Target};

pub(crate) struct Args {
    pub(crate) file: std::path::PathBuf,
    pub(crate) admin: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) dry_run: bool,
    pub(crate) prune: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let dir = crate::config_dir(&args.file);
    let entities = match portico_config::entity_documents(&text, dir) {
        Ok(e) => e,
        Err(diagnostics) => {
            for d in diagnostics.iter() {
                eprintln!("{}: {d}", args.file.display());
            }
            eprintln!(
                "error: {} has {} error{}",
                args.file.display(),
                diagnostics.len(),
                if diagnostics.len() == 1 { "" } else { "s" }
            );
            return ExitCode::FAILURE;
        }
    };
    let target = match Target::resolve(args.admin, args.token) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let runtime = match admin_client::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let body = serde_json::json!({
        "entities": entities,
        "prune": args.prune,
        "dry_run": args.dry_run,
    });
    runtime.block_on(async {
        let resp = reqwest::Client::new()
            .post(target.url("/admin/v1/apply"))
            .bearer_auth(&target.token)
            .json(&body)
            .send()
            .await;
        let diff = match resp {
            Ok(r) => match admin_client::read(r).await {
                Ok(d) => d,
                Err(code) => return code,
            },
            Err(e) => return admin_client::unreachable(&target, &e),
        };
        print_diff(&diff, args.dry_run, &args.file);
        ExitCode::SUCCESS
    })
}

fn print_diff(diff: &serde_json::Value, dry_run: bool, file: &Path) {
    let changes = diff["changes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for c in changes {
        println!(
            "{} {} {}",
            c["action"].as_str().unwrap_or("?"),
            c["kind"].as_str().unwrap_or("?"),
            c["name"].as_str().unwrap_or("?")
        );
    }
    let n = changes.len();
    let summary = match (n, dry_run) {
        (0, _) => format!("{}: no changes", file.display()),
        (_, true) => format!(
            "{}: {n} change{} (dry run: nothing was changed)",
            file.display(),
            if n == 1 { "" } else { "s" }
        ),
        (_, false) => format!(
            "{}: {n} change{} applied (configuration version {})",
            file.display(),
            if n == 1 { "" } else { "s" },
            diff["version"]
        ),
    };
    eprintln!("{summary}");
}
