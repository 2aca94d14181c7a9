//! Portico's spec model: one shape for OpenAPI 3.0 and 3.1 documents, with
//! every reference outside schemas already followed. Schemas stay JSON
//! (their dialect differs between the versions); their `$ref`s are
//! rewritten to keys of [`Spec::schemas`].

use std::collections::BTreeMap;

use http::Method;
use serde_json::Value;

/// The OpenAPI version line a document declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenApiVersion {
    /// 3.0.x: schemas are OpenAPI's JSON Schema draft-04 dialect
    /// (`nullable`, boolean `exclusiveMinimum`).
    V3_0,
    /// 3.1.x: schemas are JSON Schema 2020-12.
    V3_1,
}

/// A loaded, checked spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub version: OpenApiVersion,
    /// The `openapi` field as written (`3.0.3`).
    pub openapi: String,
    pub title: String,
    /// `info.version`.
    pub api_version: String,
    pub servers: Vec<Server>,
    /// Every operation, ordered by path template, then by method in the
    /// order of [`METHODS`].
    pub operations: Vec<Operation>,
    /// The document-wide `security`, used by operations without their own.
    pub security: Vec<SecurityRequirement>,
    /// `components.securitySchemes`, by name.
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    /// Every schema of `components.schemas` and every schema a `$ref`
    /// reaches, by key: `#/pointer` in the root document,
    /// `file#/pointer` in another one.
    pub schemas: BTreeMap<String, Schema>,
}

/// The HTTP methods a path item may declare, in document order.
pub const METHODS: [Method; 8] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::OPTIONS,
    Method::HEAD,
    Method::PATCH,
    Method::TRACE,
];

/// One entry of `servers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The URL with every variable replaced by its default.
    pub url: String,
    /// The URL's path without a trailing `/` (`/` when it has none), the
    /// prefix the operations are served under.
    pub base_path: String,
}

/// One operation: a method on a path template.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The path template as written (`/pets/{petId}`).
    pub path: String,
    pub method: Method,
    pub operation_id: Option<String>,
    pub summary: Option<String>,
    /// Path-item and operation parameters, the operation's winning on the
    /// same name and location.
    pub parameters: Vec<Parameter>,
    pub request_body: Option<RequestBody>,
    /// In document order; `status` is a code (`200`), a range (`2XX`) or
    /// `default`.
    pub responses: Vec<Response>,
    /// `None`: the document-wide requirements apply.
    pub security: Option<Vec<SecurityRequirement>>,
    pub deprecated: bool,
    /// Where the operation is in the root document (`/paths/~1pets/get`).
    pub pointer: String,
}

/// Where a parameter is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParameterIn {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParameterIn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

/// How a parameter value is serialised (OpenAPI "Style Values").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Matrix,
    Label,
    Form,
    Simple,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub location: ParameterIn,
    pub required: bool,
    pub style: Style,
    pub explode: bool,
    pub allow_empty_value: bool,
    pub deprecated: bool,
    /// From `schema`, or from the one media type of `content`.
    pub schema: Option<Schema>,
    /// The media type when the parameter uses `content`.
    pub content_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RequestBody {
    pub required: bool,
    pub content: Vec<MediaType>,
}

/// A media type entry of `content`.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaType {
    /// As written: `application/json`, `application/*+json`, `*/*`.
    pub content_type: String,
    pub schema: Option<Schema>,
    pub example: Option<Value>,
    /// Named examples with an inline `value` (`externalValue` is a URL and
    /// is not fetched).
    pub examples: Vec<(String, Value)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: String,
    pub description: String,
    pub content: Vec<MediaType>,
}

/// One alternative of a `security` list: every named scheme must pass
/// (with these scopes). An empty requirement allows anonymous calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityRequirement {
    pub schemes: Vec<(String, Vec<String>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityScheme {
    ApiKey {
        name: String,
        location: ParameterIn,
    },
    /// `scheme` lower-cased: `basic`, `bearer`, …
    Http {
        scheme: String,
        bearer_format: Option<String>,
    },
    OAuth2 {
        flows: Vec<OAuthFlow>,
    },
    OpenIdConnect {
        url: String,
    },
    MutualTls,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthFlow {
    /// `implicit`, `password`, `clientCredentials` or `authorizationCode`.
    pub kind: String,
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    /// Scope names, sorted.
    pub scopes: Vec<String>,
}

/// A schema as JSON, with each `$ref` rewritten to a key of
/// [`Spec::schemas`].
#[derive(Clone, Debug, PartialEq)]
pub struct Schema(pub Value);

impl Spec {
    /// The operation called `id`.
    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|o| o.operation_id.as_deref() == Some(id))
    }

    /// The requirements that apply to `op`.
    pub fn security_of<'a>(&'a self, op: &'a Operation) -> &'a [SecurityRequirement] {
        op.security.as_deref().unwrap_or(&self.security)
    }
}
