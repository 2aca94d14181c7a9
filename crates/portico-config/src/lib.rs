//! The configuration compiler.
//!
//! [`compile`] turns the YAML configuration file into a [`Compiled`] value:
//! the node's own settings and an immutable [`Snapshot`] of every entity. It
//! never stops at the first problem: every error in the file comes back at
//! once as a [`Diagnostic`] naming the key path and the line and column, so
//! `portico check` can print them all.
//!
//! The pipeline is: text → a YAML tree with locations ([`yaml`]) → raw
//! structs with `deny_unknown_fields` ([`raw`], read through a deserializer
//! that records paths, [`de`]) → semantic checks and the compiled model
//! ([`compile`]).

mod compile;
mod de;
mod diagnostic;
mod documents;
mod mock;
mod raw;
mod security;
mod spec;
mod upstream_tls;
mod values;
mod yaml;

pub use compile::{Compiled, compile, compile_in};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use documents::{ENTITY_SECTIONS, compile_with, entity_documents};
pub use portico_model::units::{parse_duration, parse_size};
pub use portico_model::{AccessLog, Snapshot};
