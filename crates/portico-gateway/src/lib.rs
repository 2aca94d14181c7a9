//! The data plane. It depends on the compiled model only: never on the YAML
//! parser, the store or the admin API.
//!
//! A request goes through [`server`] (accept, HTTP/1.1 and h2c) to
//! [`proxy`], which loads the current [`Runtime`] once, routes on it, sends
//! the request to a target of the API and streams the answer back. Errors
//! become problem+json answers in [`problem`] only. Each exchange is counted
//! in [`metrics`] and written to the [`access_log`] when its response body
//! ends ([`body`]).

pub mod access_log;
pub mod body;
mod cache;
mod client;
mod h1;
mod h1_server;
mod headers;
mod health;
mod limits;
pub mod metrics;
mod mock;
mod path;
mod pipeline;
mod pool;
pub mod problem;
mod proxy;
mod security;
pub mod server;
mod shutdown;
mod sni;
mod state;
mod text;
mod time;
pub mod tls;
mod upgrade;
mod upstream;
mod validate;

pub use access_log::AccessLogSink;
pub use cache::NodeCache;
pub use health::TargetReport;
pub use metrics::Metrics;
pub use server::{ConnectionInfo, ProxyServer};
pub use state::{Gateway, Runtime, UpstreamReport};

#[cfg(test)]
mod tests {
    /// The data plane depends on the compiled model only (STYLE.md §1): a
    /// dependency on the parser, the store or the admin API is a design
    /// change, not a convenience.
    #[test]
    fn depends_on_the_model_only() {
        let manifest = include_str!("../Cargo.toml");
        let deps = manifest.split("[dependencies]").nth(1).unwrap_or("");
        let deps = deps.split("\n[").next().unwrap_or("");
        for name in deps
            .lines()
            .filter_map(|l| l.split_once(['=', '.']).map(|(n, _)| n.trim()))
        {
            assert!(
                !name.starts_with("portico-") || name == "portico-model",
                "portico-gateway must not depend on {name}"
            );
        }
    }
}
