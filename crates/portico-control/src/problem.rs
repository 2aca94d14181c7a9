//! problem+json answers of the admin listener (RFC 9457), with codes from
//! the registry in `portico_model::problem`, and [`ApiError`], the one type
//! every admin handler fails with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_gateway::problem::PROBLEM_JSON;
use portico_model::ErrorCode;

use crate::reload::ConfigError;

/// The problem document for `code`. `extra` members (such as `errors`) are
/// added next to the standard ones. The admin API has no request log yet,
/// so `request_id` is a fresh random id, also sent as `x-request-id`.
pub(crate) fn problem(code: ErrorCode, detail: &str, extra: Option<serde_json::Value>) -> Response {
    let request_id = request_id();
    let mut doc = serde_json::json!({
        "type": code.type_uri(),
        "title": code.title(),
        "status": code.status(),
        "detail": detail,
        "request_id": request_id,
    });
    if let (Some(serde_json::Value::Object(extra)), Some(doc)) = (extra, doc.as_object_mut()) {
        doc.extend(extra);
    }
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, doc.to_string()).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", v);
    }
    resp
}

fn request_id() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return "0".repeat(32);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an admin request failed; turned into a problem answer in one place
/// ([`IntoResponse`]).
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A problem with a detail and no extra members.
    Plain(ErrorCode, String),
    /// The change would make a configuration with these errors.
    Invalid(Vec<ConfigError>),
    /// The role may not do this (403 with an RFC 6750 challenge); the
    /// refusal has been audited.
    Forbidden(String),
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError::Plain(code, detail.into())
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        ApiError::Plain(ErrorCode::MalformedRequest, detail.into())
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        ApiError::Plain(ErrorCode::NotFound, detail.into())
    }
}

impl From<portico_store::Error> for ApiError {
    fn from(e: portico_store::Error) -> Self {
        use portico_store::Error as E;
        let code = match &e {
            E::NotFound { .. } => ErrorCode::NotFound,
            E::AlreadyExists { .. } | E::RevisionMismatch { .. } => ErrorCode::PreconditionFailed,
            E::InUse { .. } => ErrorCode::Conflict,
            E::Invalid { kind: "cursor", .. } => ErrorCode::MalformedRequest,
            E::Invalid { .. } => ErrorCode::InvalidEntity,
            E::Database(_) | E::Migrate(_) => {
                tracing::error!(error = %e, "The admin API's store failed.");
                return ApiError::new(
                    ErrorCode::StoreUnavailable,
                    "The store failed or could not be reached; nothing was changed.",
                );
            }
            E::Unsupported(_) | E::Url(_) | E::Corrupt { .. } => {
                tracing::error!(error = %e, "The admin API's store answered with an error.");
                ErrorCode::Internal
            }
        };
        ApiError::Plain(code, sentence(&e.to_string()))
    }
}

/// A message as a sentence: capitalised, ending with a period.
fn sentence(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Plain(code, detail) => problem(code, &detail, None),
            ApiError::Invalid(errors) => {
                let detail = format!(
                    "The change would make a configuration with {} error{}; nothing was stored.",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                );
                problem(
                    ErrorCode::InvalidConfiguration,
                    &detail,
                    Some(serde_json::json!({ "errors": errors })),
                )
            }
            ApiError::Forbidden(detail) => {
                let mut resp = problem(ErrorCode::Forbidden, &detail, None);
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"portico-admin\", error=\"insufficient_scope\"",
                    ),
                );
                resp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let cases = [
            (
                portico_store::Error::NotFound {
                    kind: "api",
                    name: "a".into(),
                },
                404,
            ),
            (
                portico_store::Error::AlreadyExists {
                    kind: "api",
                    name: "a".into(),
                },
                412,
            ),
            (
                portico_store::Error::RevisionMismatch {
                    kind: "api",
                    name: "a".into(),
                    expected: 1,
                    current: Some(2),
                },
                412,
            ),
            (
                portico_store::Error::InUse {
                    kind: "product",
                    name: "p".into(),
                    detail: "x".into(),
                },
                409,
            ),
            (
                portico_store::Error::Invalid {
                    kind: "app",
                    detail: "x".into(),
                },
                422,
            ),
        ];
        for (e, status) in cases {
            let resp = ApiError::from(e).into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        }
    }

    #[test]
    fn details_are_sentences() {
        assert_eq!(
            sentence("api `a` does not exist"),
            "Api `a` does not exist."
        );
    }
}
