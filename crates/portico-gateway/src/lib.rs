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
mod headers;
pub mod metrics;
pub mod problem;
mod proxy;
pub mod server;
mod state;
mod time;
mod upstream;

pub use access_log::AccessLogSink;
pub use metrics::Metrics;
pub use server::{ConnectionInfo, ProxyServer};
pub use state::{Gateway, Runtime};
