//! Policies. Each module holds one policy: its settings (a serde struct that
//! refuses unknown keys), its `build` from those settings, and its runtime
//! (an implementation of [`portico_model::policy::Policy`]). [`registry`]
//! maps configuration names to builders; adding a policy is one module and
//! one registry line (see `docs/policies.md`).

mod api_key;
pub mod basic_auth;
mod cache;
mod concurrency;
mod cors;
mod ip_filter;
mod jwt;
mod limits;
mod mtls;
mod net;
mod quota;
mod rate_limit;
pub mod registry;
mod request_size;
mod spike_arrest;
pub mod validate;

pub use api_key::{KeyIn, for_scheme as api_key_for_scheme};
pub use registry::{BUILT, PLANNED, build};

/// `Authorization` credentials split into the scheme and what follows it
/// (RFC 9110 §11.4): the scheme ends at the first space or tab.
pub(crate) fn scheme_and_token(value: &str) -> (&str, &str) {
    let value = value.trim();
    value
        .split_once([' ', '\t'])
        .map_or((value, ""), |(scheme, token)| (scheme, token.trim()))
}

/// The protection space named in a challenge: `portico` unless set, and
/// quotable as it is.
pub(crate) fn realm<E: serde::de::Error>(realm: Option<String>) -> Result<String, E> {
    let realm = realm.unwrap_or_else(|| "portico".to_owned());
    if realm.contains(['"', '\\']) || !realm.is_ascii() {
        return Err(E::custom("a realm is ASCII without quotes or backslashes"));
    }
    Ok(realm)
}

/// Entry points for the fuzz targets in `fuzz/`: every parser of
/// client-controlled credential input, fed the same bytes. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs the credential parsers on `data`; they must never panic.
    pub fn credentials(data: &[u8]) {
        let _ = crate::basic_auth::parse_basic(data);
        if let Ok(value) = http::HeaderValue::from_bytes(data) {
            let _ = crate::jwt::bearer(&value);
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::COOKIE, value.clone());
            let _ = crate::api_key::take_cookie(&mut headers, "api_key");
        }
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = jsonwebtoken::decode_header(text);
            if let Ok(mut uri) = format!("/p?{text}").parse::<http::Uri>() {
                let _ = crate::api_key::take_query_param(&mut uri, "api_key");
            }
        }
    }

    /// Compiles the `validate` policy's validator for a loaded spec (a
    /// schema the compiler refuses is fine; a panic is not) and, when it
    /// compiles, runs every operation's checks on `data` as the request
    /// path below the base path, query, header values and body.
    pub fn validator(spec: &portico_spec::Spec, data: &[u8]) {
        crate::validate::fuzz(spec, data);
    }

    /// Reads `data` with the validator's JSON reader and with
    /// `serde_json`: a document the reader accepts must read as
    /// `serde_json` reads it, and one `serde_json` refuses must be refused.
    /// Then walks it with the quick walk against two schemas (anything,
    /// and an object of the keywords the walk handles): a body the walk
    /// accepts must pass the full path.
    pub fn json_body(data: &[u8]) {
        crate::validate::fuzz_json(data);
    }
}
