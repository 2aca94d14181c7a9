//! Policies. Each module holds one policy: its settings (a serde struct that
//! refuses unknown keys), its `build` from those settings, and its runtime
//! (an implementation of [`portico_model::policy::Policy`]). [`registry`]
//! maps configuration names to builders; adding a policy is one module and
//! one registry line (see `docs/policies.md`).

mod api_key;
pub mod basic_auth;
mod cors;
mod ip_filter;
mod net;
pub mod registry;
mod request_size;

pub use registry::{BUILT, PLANNED, build};
