//! problem+json answers of the admin listener (RFC 9457), with codes from
//! the registry in `portico_model::problem`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_gateway::problem::PROBLEM_JSON;
use portico_model::ErrorCode;

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
