//! The compiled model: what `portico-config` produces and what the data plane
//! reads. Everything here is immutable once built and free of I/O, so a
//! [`Snapshot`] can be shared by every request through one atomic pointer.

pub mod api;
pub mod cache;
pub mod entities;
pub mod json;
pub mod limits;
pub mod mock;
pub mod node;
pub mod operation;
pub mod policy;
pub mod problem;
pub mod route;
pub mod security;
pub mod snapshot;
pub mod units;
pub mod validate;

pub use api::{Api, Routing, Target, Upstream};
pub use entities::{ApiKeyEntry, App, BasicUser, Consumers, Developer, Product};
pub use node::{AccessLog, NodeSettings};
pub use operation::{ApiOperation, OperationMatch, OperationTable, OperationTableBuilder};
pub use problem::ErrorCode;
pub use route::{RouteError, RouteMatch, RouteTable, RouteTableBuilder};
pub use snapshot::Snapshot;
