//! Extractors whose rejections are problem+json answers (axum's own answer
//! in plain text), and the pieces of HTTP the entity endpoints share:
//! pagination, `ETag`, `If-Match`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use portico_store::{Expect, Page};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The largest admin request body: an API with an inline spec fits.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A JSON body, whatever its `Content-Type` says.
pub(crate) struct Json<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| ApiError::malformed("The request body is unreadable or over 8 MiB."))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::malformed("The request needs a JSON body."));
        }
        parse(&bytes).map(Json)
    }
}

/// A JSON body that may be left out (the operation's defaults apply).
pub(crate) struct JsonOrEmpty<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| ApiError::malformed("The request body is unreadable or over 8 MiB."))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOrEmpty(T::default()));
        }
        parse(&bytes).map(JsonOrEmpty)
    }
}

/// A JSON body as `T`.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("The request body is not valid: {e}.")))
}

/// Middleware: a path with an encoded NUL (`%00`) names nothing: 404.
/// No name or id holds one, and PostgreSQL's text cannot, so the store is
/// not asked.
pub(crate) async fn refuse_nul(req: Request, next: axum::middleware::Next) -> Response {
    if req.uri().path().as_bytes().windows(3).any(|w| w == b"%00") {
        return axum::response::IntoResponse::into_response(ApiError::not_found(
            "No resource has a NUL character in its name.",
        ));
    }
    next.run(req).await
}

/// `s` up to its first NUL character. Stored names hold none, so for a
/// listing cursor the prefix selects exactly the same names.
pub(crate) fn before_nul(s: &str) -> &str {
    s.split('\0').next().unwrap_or_default()
}

/// Query parameters.
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::malformed(format!("The query is not valid: {}.", e.body_text())))
    }
}

/// Path parameters.
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::malformed(format!("The path is not valid: {}.", e.body_text())))
    }
}

/// Milliseconds since the epoch, from a JSON number that is a whole number
/// (`5` or `5.0`; JSON Schema's `integer` allows both).
pub(crate) fn de_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n: Option<serde_json::Number> = serde::Deserialize::deserialize(d)?;
    let Some(n) = n else { return Ok(None) };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)] // Whole and in range: checked first.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(
            "expected milliseconds since the epoch, a whole number",
        )),
    }
}

/// The expiry a request names (`expires_at` in milliseconds since the
/// epoch, or `expires_in` as a duration from now), as milliseconds since
/// the epoch. A value that cannot be an expiry is 422.
pub(crate) fn expiry(at: Option<i64>, within: Option<&str>) -> Result<Option<i64>, ApiError> {
    use portico_model::ErrorCode::InvalidEntity;
    let now = portico_store::now_millis();
    match (at, within) {
        (Some(_), Some(_)) => Err(ApiError::new(
            InvalidEntity,
            "Give `expires_at` or `expires_in`, not both.",
        )),
        (Some(at), None) if at <= now => {
            Err(ApiError::new(InvalidEntity, "`expires_at` is in the past."))
        }
        (Some(at), None) => Ok(Some(at)),
        (None, Some(d)) => {
            let d = portico_model::units::parse_duration(d)
                .map_err(|e| ApiError::new(InvalidEntity, format!("`expires_in`: {e}.")))?;
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            Ok(Some(now.saturating_add(ms)))
        }
        (None, None) => Ok(None),
    }
}

/// `?limit=&after=` of a listing.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

impl PageQuery {
    pub(crate) fn new(limit: Option<String>, after: Option<String>) -> Self {
        Self { limit, after }
    }

    pub(crate) fn page(&self) -> Result<Page, ApiError> {
        let limit = match &self.limit {
            None => Page::DEFAULT_LIMIT,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=Page::MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    ApiError::malformed(format!(
                        "`limit` must be a whole number from 1 to {}.",
                        Page::MAX_LIMIT
                    ))
                })?,
        };
        Ok(Page {
            limit,
            after: self
                .after
                .as_deref()
                .map(before_nul)
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
        })
    }
}

/// A listing's body, `{items, next}`, with a `Link: <…>; rel="next"` header
/// when there is a next page. `path` is the listing's path from the root.
pub(crate) fn listing<T: serde::Serialize>(
    path: &str,
    page: &Page,
    items: Vec<T>,
    next: Option<String>,
) -> Response {
    let link = next.as_ref().map(|n| {
        format!(
            "<{path}?limit={}&after={}>; rel=\"next\"",
            page.limit,
            percent_encode(n)
        )
    });
    let mut resp = crate::json(
        axum::http::StatusCode::OK,
        &serde_json::json!({ "items": items, "next": next }),
    );
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `ETag: "<revision>"`.
pub(crate) fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// What a change expects, from `If-Match` and `If-None-Match`. `current`
/// is the revision read just before (the store checks again when it
/// commits); `If-Match: *` means "whatever revision exists now".
pub(crate) fn expectation(headers: &HeaderMap, current: Option<i64>) -> Result<Expect, ApiError> {
    let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
        let mut values = headers.get_all(&name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        let mut joined = first
            .to_str()
            .map_err(|_| ApiError::malformed(format!("`{name}` is not ASCII.")))?
            .to_owned();
        for v in values {
            joined.push(',');
            joined.push_str(
                v.to_str()
                    .map_err(|_| ApiError::malformed(format!("`{name}` is not ASCII.")))?,
            );
        }
        Ok(Some(joined))
    };
    let if_match = text(header::IF_MATCH)?;
    let if_none_match = text(header::IF_NONE_MATCH)?;
    // Syntax first (400), then the conditions (412).
    let if_none_match = match if_none_match.as_deref().map(str::trim) {
        None => false,
        Some("*") => true,
        Some(_) => {
            return Err(ApiError::malformed(
                "A change takes only `If-None-Match: *` (create only if absent).",
            ));
        }
    };
    let if_match = match if_match.as_deref().map(str::trim) {
        None => None,
        Some("*") => Some(None),
        Some(im) => {
            let mut revisions = Vec::new();
            for tag in im.split(',') {
                let tag = tag.trim();
                // A bare number is taken as the quoted tag it means.
                let bare = tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or(tag);
                let rev = Some(bare)
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| {
                        ApiError::malformed(format!(
                            "`If-Match` holds `{tag}`, not an entity tag such as \"3\" (weak tags do not match)."
                        ))
                    })?;
                revisions.push(rev);
            }
            Some(Some(revisions))
        }
    };
    let expect = match (if_match, if_none_match) {
        // If-Match asks for the resource to exist and `If-None-Match: *`
        // for it to be absent: one of them fails (RFC 9110 §13.2.2).
        (Some(_), true) => {
            return Err(precondition(
                "`If-Match` and `If-None-Match: *` cannot both hold.",
            ));
        }
        (None, false) => Expect::Any,
        (None, true) => Expect::Absent,
        (Some(None), false) => match current {
            Some(r) => Expect::Revision(r),
            None => return Err(precondition("The resource does not exist.")),
        },
        (Some(Some(revisions)), false) => match (revisions.as_slice(), current) {
            ([only], _) => Expect::Revision(*only),
            (_, Some(c)) if revisions.contains(&c) => Expect::Revision(c),
            _ => return Err(precondition("No entity tag in `If-Match` is current.")),
        },
    };
    // Checked here as well as in the store, so that a stale change is 412
    // before its content is validated.
    match (expect, current) {
        (Expect::Absent, Some(r)) => Err(precondition(&format!(
            "The resource exists (revision {r}) and `If-None-Match: *` asked for it to be absent."
        ))),
        (Expect::Revision(e), c) if Some(e) != c => Err(precondition(&match c {
            Some(c) => format!("The resource is at revision {c}, not at {e}; read it again."),
            None => format!("The resource does not exist; `If-Match` expected revision {e}."),
        })),
        _ => Ok(expect),
    }
}

fn precondition(detail: &str) -> ApiError {
    ApiError::new(portico_model::ErrorCode::PreconditionFailed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn preconditions() {
        assert_eq!(expectation(&headers(&[]), Some(2)).unwrap(), Expect::Any);
        assert_eq!(
            expectation(&headers(&[("if-match", "\"2\"")]), Some(2)).unwrap(),
            Expect::Revision(2)
        );
        assert!(expectation(&headers(&[("if-match", "\"1\"")]), Some(2)).is_err());
        assert_eq!(
            expectation(&headers(&[("if-match", "\"1\", \"2\"")]), Some(2)).unwrap(),
            Expect::Revision(2)
        );
        assert_eq!(
            expectation(&headers(&[("if-match", "*")]), Some(4)).unwrap(),
            Expect::Revision(4)
        );
        assert!(expectation(&headers(&[("if-match", "*")]), None).is_err());
        assert_eq!(
            expectation(&headers(&[("if-none-match", "*")]), None).unwrap(),
            Expect::Absent
        );
        assert!(expectation(&headers(&[("if-none-match", "*")]), Some(1)).is_err());
        assert!(expectation(&headers(&[("if-match", "W/\"1\"")]), Some(1)).is_err());
    }

    #[test]
    fn cursors_are_encoded() {
        assert_eq!(percent_encode("dev@example.com"), "dev%40example.com");
        assert_eq!(percent_encode("a/b"), "a%2Fb");
    }
}
