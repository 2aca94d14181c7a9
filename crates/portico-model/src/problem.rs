//! The registry of error codes. Every problem+json answer Portico gives
//! (RFC 9457) takes its `type`, `title` and status from here, and each code
//! has a section in `docs/problems.md`.

/// Base of every problem `type` URI; the code is appended.
pub const PROBLEM_BASE: &str = "https://portico.dev/problems/";

/// Problem types registered with IANA (RFC 9457 §4.2) that Portico answers
/// with instead of its own URI.
pub const IANA_QUOTA_EXCEEDED: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $title:literal, $source:ident $(, $uri:expr)?), )*) => {
        /// A kind of failure a client can see.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in registry order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable, kebab-case code.
            pub const fn code(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code answers with.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Short, human-readable summary; the same for every occurrence.
            pub const fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }

            /// Who caused it: decides 4xx against 5xx and, later, retries.
            pub const fn source(self) -> ErrorSource {
                match self { $(ErrorCode::$variant => ErrorSource::$source,)* }
            }

            /// The full problem `type` URI: [`PROBLEM_BASE`] followed by the
            /// code, unless the code answers with a registered type (IANA's
            /// `quota-exceeded`).
            pub const fn type_uri(self) -> &'static str {
                match self { $(ErrorCode::$variant => error_codes!(@uri $code $(, $uri)?),)* }
            }
        }
    };
    (@uri $code:literal) => { concat!("https://portico.dev/problems/", $code) };
    (@uri $code:literal, $uri:expr) => { $uri };
}

/// Where a failure came from (Pingora's classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client sent something wrong.
    Downstream,
    /// The upstream failed or was too slow.
    Upstream,
    /// Portico itself could not serve the request.
    Internal,
}

error_codes! {
    /// The request was not valid HTTP as Portico accepts it.
    BadRequest = ("bad-request", 400, "Bad request", Downstream),
    /// The API needs a credential and the request carries none.
    MissingCredential = ("missing-credential", 401, "Credential required", Downstream),
    /// The request carries a credential that is not valid.
    InvalidCredential = ("invalid-credential", 401, "Invalid credential", Downstream),
    /// The token is valid but lacks a scope the API requires.
    InsufficientScope = ("insufficient-scope", 403, "Insufficient scope", Downstream),
    /// The authenticated app is not subscribed to a product that includes this API.
    NotSubscribed = ("not-subscribed", 403, "Not subscribed", Downstream),
    /// The client's address is not allowed by the API's `ip_filter`.
    AddressDenied = ("address-denied", 403, "Address not allowed", Downstream),
    /// A CORS preflight from an origin, method or header the API does not allow.
    CorsDenied = ("cors-denied", 403, "Cross-origin request not allowed", Downstream),
    /// The request body is larger than the API allows.
    PayloadTooLarge = ("payload-too-large", 413, "Payload too large", Downstream),
    /// The request does not match its operation in the API's spec
    /// (`validate`): the document lists every error.
    ValidationFailed = ("validation-failed", 400, "Validation failed", Downstream),
    /// The request body's media type is not one its operation declares.
    UnsupportedMediaType = ("unsupported-media-type", 415, "Unsupported media type", Downstream),
    /// No API is mounted at this host and path.
    NoRoute = ("no-route", 404, "No route", Downstream),
    /// The API routes by its spec, and the spec declares no operation at this path.
    NoOperation = ("no-operation", 404, "No operation", Downstream),
    /// The API routes by its spec, and the spec declares the path but not this method.
    MethodNotAllowed = ("method-not-allowed", 405, "Method not allowed", Downstream),
    /// The API's mock upstream has no response in any media type the
    /// request's `Accept` field allows.
    NotAcceptable = ("not-acceptable", 406, "Not acceptable", Downstream),
    /// The request's `Prefer` field asks the API's mock upstream for a
    /// status or a named example that the spec does not declare.
    MockNoResponse = ("mock-no-response", 400, "No such mock response", Downstream),
    /// The admin API has no resource at this path.
    NotFound = ("not-found", 404, "Not found", Downstream),
    /// The upstream refused or dropped the connection attempt.
    UpstreamConnect = ("upstream-connect", 502, "Upstream connection failed", Upstream),
    /// The TLS handshake with an `https://` target failed: its certificate
    /// did not verify, or it refused Portico's client certificate or protocol.
    UpstreamTls = ("upstream-tls", 502, "Upstream TLS handshake failed", Upstream),
    /// The upstream reset the connection or answered with something that is not HTTP.
    UpstreamFailed = ("upstream-failed", 502, "Upstream failed", Upstream),
    /// The upstream did not accept the connection or answer within the API's timeout.
    UpstreamTimeout = ("upstream-timeout", 504, "Upstream timeout", Upstream),
    /// The upstream's answer does not match its operation's response in the
    /// spec (`validate` with `response: enforce`).
    ResponseValidationFailed = ("response-validation-failed", 502, "Upstream response failed validation", Upstream),
    /// Every target of the API failed its active health checks.
    NoHealthyTarget = ("no-healthy-target", 503, "No healthy target", Upstream),
    /// Every target of the API that passes its checks has an open circuit.
    CircuitOpen = ("circuit-open", 503, "Circuit open", Upstream),
    /// A configuration handed to the admin API has errors; nothing of it was applied.
    InvalidConfiguration = ("invalid-configuration", 422, "Invalid configuration", Downstream),
    /// The admin API's bearer token is valid, but its role does not allow
    /// this action on this resource.
    Forbidden = ("forbidden", 403, "Forbidden", Downstream),
    /// An admin API request body or query parameter is not what the
    /// operation takes (not JSON, a wrong type, an unknown field).
    MalformedRequest = ("malformed-request", 400, "Malformed request", Downstream),
    /// An admin API change named a precondition (`If-Match`,
    /// `If-None-Match: *`) that the resource does not meet.
    PreconditionFailed = ("precondition-failed", 412, "Precondition failed", Downstream),
    /// An admin API change conflicts with the current state: the entity is
    /// still in use, or what it creates exists already.
    Conflict = ("conflict", 409, "Conflict", Downstream),
    /// An admin API entity is not one the store can keep (a bad name, a
    /// missing developer, a plain-text secret).
    InvalidEntity = ("invalid-entity", 422, "Invalid entity", Downstream),
    /// The admin API could not reach its store; nothing was changed.
    StoreUnavailable = ("store-unavailable", 503, "Store unavailable", Internal),
    /// A reload was asked of a node that was not started from a configuration file.
    ReloadUnavailable = ("reload-unavailable", 409, "Nothing to reload", Downstream),
    /// A limit (`rate_limit`, `spike_arrest`, `quota`, `concurrency`, or a
    /// product's) has no room for the request. Answers with the type IANA
    /// registered for it, not a `portico.dev` URI.
    QuotaExceeded = ("quota-exceeded", 429, "Request cannot be satisfied as assigned quota has been exceeded", Downstream, IANA_QUOTA_EXCEEDED),
    /// The shared counters (Redis) are unreachable and `redis.failure: deny`
    /// refuses requests under a limit until they are back.
    LimitsUnavailable = ("limits-unavailable", 503, "Limits unavailable", Internal),
    /// A cache purge could not reach a backend (Redis); entries there may
    /// still be served until it succeeds or they expire.
    CacheUnavailable = ("cache-unavailable", 503, "Cache unavailable", Internal),
    /// The node has no configuration loaded yet.
    NotReady = ("not-ready", 503, "Not ready", Internal),
    /// A failure inside Portico; the log has the request id.
    Internal = ("internal", 500, "Internal error", Internal),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_kebab_case_and_statuses_are_errors() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
            assert!(
                c.code()
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '-')
            );
            assert!((400..600).contains(&c.status()));
            if *c == ErrorCode::QuotaExceeded {
                assert_eq!(c.type_uri(), IANA_QUOTA_EXCEEDED);
            } else {
                assert_eq!(c.type_uri(), format!("{PROBLEM_BASE}{}", c.code()));
            }
            let client = c.source() == ErrorSource::Downstream;
            assert_eq!(
                client,
                c.status() < 500,
                "{c:?}: source and status disagree"
            );
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../../docs/problems.md");
        for c in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("## {}", c.code())),
                "docs/problems.md lacks {}",
                c.code()
            );
        }
    }
}
