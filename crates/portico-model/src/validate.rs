//! The contract between the `validate` policy and the gateway: a validator
//! compiled once per snapshot from an API's spec (every schema and
//! parameter decoder of every operation), asked by the gateway at the
//! validation step and again on the upstream's answer.
//!
//! The gateway owns the bodies: it decides from the validator's answers
//! whether to buffer a body (and how much), and hands the bytes back.

use std::fmt::Debug;

use http::{HeaderMap, request};

use crate::ApiOperation;
use crate::policy::Rejection;

/// One way a request or response differs from the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `body`, or the parameter's location: `path`, `query`, `header`,
    /// `cookie`.
    pub place: &'static str,
    /// The parameter's name; `None` for the body.
    pub name: Option<String>,
    /// JSON pointer into the decoded value (`/items/0/id`; `""` for the
    /// whole value).
    pub pointer: String,
    /// The JSON Schema keyword that failed (`type`, `required`, …).
    pub keyword: String,
    pub detail: String,
}

/// What the gateway does with a request body after the head was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyCheck {
    /// Stream it through unread.
    Stream,
    /// Buffer it (at most [`Validator::max_body`] bytes) and hand it to
    /// [`Validator::check_body`] with this schema.
    Json(SchemaId),
}

/// A compiled schema of a validator, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaId(pub u32);

/// What becomes of responses that do not match the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    /// Responses are not checked.
    Off,
    /// Mismatches are logged and counted; the answer goes through.
    Report,
    /// Mismatches are answered with 502 `response-validation-failed`.
    Enforce,
}

/// A request/response validator for one API's spec.
pub trait Validator: Send + Sync + Debug {
    /// Whether requests are checked (`request: true`); a validator may
    /// check responses only.
    fn checks_requests(&self) -> bool;

    /// Checks the request head: parameters (path, query, header, cookie)
    /// and the body's presence and media type. `rest` is the routing path
    /// below the API's base path; `has_body` whether a body follows.
    fn check_head(
        &self,
        op: &ApiOperation,
        rest: &str,
        parts: &request::Parts,
        has_body: bool,
    ) -> Result<BodyCheck, Rejection>;

    /// Checks a buffered JSON request body.
    fn check_body(&self, schema: SchemaId, body: &[u8]) -> Result<(), Rejection>;

    /// The largest body (request or response) buffered for a check.
    fn max_body(&self) -> u64;

    fn response_mode(&self) -> ResponseMode;

    /// The schema an upstream answer with this status and head is checked
    /// against, when it has one and a JSON media type.
    fn response_schema(
        &self,
        op: &ApiOperation,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<SchemaId>;

    /// Checks a buffered JSON response body; empty when it matches.
    fn check_response(&self, schema: SchemaId, body: &[u8]) -> Vec<FieldError>;
}
