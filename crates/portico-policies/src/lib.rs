//! Policies. Each module holds one policy: its settings (a serde struct that
//! refuses unknown keys), its `build` from those settings, and its runtime
//! (an implementation of [`portico_model::policy::Policy`]). [`registry`]
//! maps configuration names to builders; adding a policy is one module and
//! one registry line (see `docs/policies.md`).

mod api_key;
pub mod basic_auth;
mod cors;
mod ip_filter;
mod jwt;
mod mtls;
mod net;
pub mod registry;
mod request_size;

pub use registry::{BUILT, PLANNED, build};

/// Entry points for the fuzz targets in `fuzz/`: every parser of
/// client-controlled credential input, fed the same bytes. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs the credential parsers on `data`; they must never panic.
    pub fn credentials(data: &[u8]) {
        let _ = crate::basic_auth::parse_basic(data);
        if let Ok(value) = http::HeaderValue::from_bytes(data) {
            let _ = crate::jwt::bearer(&value);
        }
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = jsonwebtoken::decode_header(text);
            if let Ok(mut uri) = format!("/p?{text}").parse::<http::Uri>() {
                let _ = crate::api_key::take_query_param(&mut uri, "api_key");
            }
        }
    }
}
