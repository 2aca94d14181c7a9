//! Test support for Portico, in the style of linkerd's test builders: every
//! server binds `127.0.0.1:0`, every helper cleans up when dropped.
//!
//! ```no_run
//! # async fn demo() {
//! use portico_test::{TestNode, Upstream};
//! let upstream = Upstream::echo().run().await;
//! let node = TestNode::new()
//!     .config(&format!("apis:\n  - {{ name: a, base_path: /a, upstream: {{ targets: [\"{}\"] }} }}\n", upstream.url()))
//!     .run()
//!     .await;
//! let url = node.proxy_url("/a/hello");
//! # }
//! ```

mod eventually;
mod node;
mod postgres;
mod upstream;

pub use node::{ADMIN_TOKEN, TestNode, TestNodeBuilder};
pub use postgres::{Cuttable, POSTGRES_ENV, TestDatabase};
pub use upstream::{
    RecordedRequest, TestBody, TlsSeen, Upstream, UpstreamBuilder, UpstreamHandle, full_body,
    text_response,
};
