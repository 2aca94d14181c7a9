//! Every error answer is made here: RFC 9457 problem+json from the registry
//! in `portico_model::problem`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use portico_model::ErrorCode;
use serde::Serialize;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
}

/// The problem document for `code` as bytes.
pub fn body(code: ErrorCode, detail: &str, request_id: &str) -> Bytes {
    let problem = Problem {
        kind: code.type_uri(),
        title: code.title(),
        status: code.status(),
        detail,
        request_id,
    };
    serde_json::to_vec(&problem)
        .map(Bytes::from)
        .unwrap_or_default()
}

/// The problem document for `code` with extension members (RFC 9457
/// §3.2), such as `violated-policies`, after the standard ones.
pub fn body_with(
    code: ErrorCode,
    detail: &str,
    request_id: &str,
    members: &[(&'static str, serde_json::Value)],
) -> Bytes {
    if members.is_empty() {
        return body(code, detail, request_id);
    }
    let mut doc = serde_json::Map::new();
    doc.insert("type".into(), code.type_uri().into());
    doc.insert("title".into(), code.title().into());
    doc.insert("status".into(), code.status().into());
    doc.insert("detail".into(), detail.into());
    doc.insert("request_id".into(), request_id.into());
    for (name, value) in members {
        doc.insert((*name).to_owned(), value.clone());
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .unwrap_or_default()
}

/// A complete response for `code`. The caller adds `x-request-id`.
pub fn response(code: ErrorCode, detail: &str, request_id: &str) -> Response<Bytes> {
    response_with(code, detail, request_id, &[])
}

/// [`response`] with extension members in the document.
pub fn response_with(
    code: ErrorCode,
    detail: &str,
    request_id: &str,
    members: &[(&'static str, serde_json::Value)],
) -> Response<Bytes> {
    let mut resp = Response::new(body_with(code, detail, request_id, members));
    *resp.status_mut() =
        StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_exceeded_uses_the_iana_type_and_members() {
        let members = [("violated-policies", serde_json::json!(["app"]))];
        let resp = response_with(ErrorCode::QuotaExceeded, "No room.", "abc", &members);
        assert_eq!(resp.status(), 429);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            v["type"],
            "https://iana.org/assignments/http-problem-types#quota-exceeded"
        );
        assert_eq!(v["violated-policies"], serde_json::json!(["app"]));
        assert_eq!(v["request_id"], "abc");
    }

    #[test]
    fn problem_document_shape() {
        let resp = response(ErrorCode::NoRoute, "No API at \"/x\".", "abc");
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "https://portico.dev/problems/no-route",
                "title": "No route",
                "status": 404,
                "detail": "No API at \"/x\".",
                "request_id": "abc"
            })
        );
    }
}
