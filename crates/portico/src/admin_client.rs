//! The admin API as `portico apply` and `portico export` reach it: the
//! node's URL and a bearer token, and problem answers turned into messages.

use std::process::ExitCode;

/// Where the admin API is when `--admin` is not given.
pub(crate) const DEFAULT_ADMIN: &str = "http://127.0.0.1:8081";
/// The environment variable that names the admin API's URL.
pub(crate) const ADMIN_URL_ENV: &str = "PORTICO_ADMIN_URL";
/// The environment variable with the bearer token (the node's first admin
/// token comes from the same variable).
pub(crate) const TOKEN_ENV: &str = "PORTICO_ADMIN_TOKEN";

/// The admin API's base URL and token.
pub(crate) struct Target {
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Target {
    /// From the flags, else the environment. No token is exit code 2.
    pub(crate) fn resolve(admin: Option<String>, token: Option<String>) -> Result<Self, ExitCode> {
        let base = admin
            .or_else(|| std::env::var(ADMIN_URL_ENV).ok())
            .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
        let Some(token) = token.or_else(|| std::env::var(TOKEN_ENV).ok()) else {
            eprintln!("error: no admin token: give --token or set {TOKEN_ENV}");
            return Err(ExitCode::from(2));
        };
        Ok(Target {
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A runtime for one request.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Reads an answer: the JSON body of a 2xx, or the problem printed (with
/// every configuration error it lists) and a failure.
pub(crate) async fn read(resp: reqwest::Response) -> Result<serde_json::Value, ExitCode> {
    let status = resp.status();
    let body: serde_json::Value = match resp.json().await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: the admin API answered {status} with a body that is not JSON: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail");
    let code = body["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("error");
    eprintln!("error: {status} {code}: {detail}");
    for e in body["errors"].as_array().into_iter().flatten() {
        let path = e["path"].as_str().unwrap_or_default();
        let message = e["message"].as_str().unwrap_or_default();
        if path.is_empty() {
            eprintln!("  {message}");
        } else {
            eprintln!("  {path}: {message}");
        }
    }
    Err(ExitCode::FAILURE)
}

/// A request that could not be sent.
pub(crate) fn unreachable(target: &Target, e: &reqwest::Error) -> ExitCode {
    eprintln!("error: cannot reach the admin API at {}: {e}", target.base);
    ExitCode::FAILURE
}
