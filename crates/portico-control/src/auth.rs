//! Bearer-token authentication of the admin API (`/admin/v1/…`).
//!
//! Until the control plane has a token store, the node has one admin token:
//! `PORTICO_ADMIN_TOKEN`, or a random one generated at start and shown once.
//! Only its SHA-256 digest is kept, and a presented token is compared in
//! constant time. [`AdminAuth`] is the one place that decides whether a
//! token is valid, so the store can later replace its source.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_gateway::problem::PROBLEM_JSON;
use portico_model::ErrorCode;

use crate::problem::problem;

/// The environment variable that sets the admin token.
pub const TOKEN_ENV: &str = "PORTICO_ADMIN_TOKEN";

/// Shortest admin token accepted from the environment.
pub const MIN_TOKEN_LEN: usize = 16;

/// The realm named in `WWW-Authenticate` challenges (RFC 6750 §3).
const REALM: &str = "portico-admin";

/// The admin token, kept as its SHA-256 digest.
#[derive(Clone)]
pub struct AdminAuth {
    digest: [u8; 32],
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminAuth(..)")
    }
}

/// Why a configured admin token is refused.
#[derive(Debug, thiserror::Error)]
#[error("{TOKEN_ENV} must be at least {MIN_TOKEN_LEN} visible ASCII characters without spaces")]
pub struct WeakToken;

/// Where the node's admin token came from.
#[derive(Debug)]
pub enum TokenSource {
    /// `PORTICO_ADMIN_TOKEN`.
    Environment,
    /// Generated at start; the token itself, to be shown once.
    Generated(String),
}

impl AdminAuth {
    /// Accepts exactly `token`.
    pub fn from_token(token: &str) -> Result<Self, WeakToken> {
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakToken);
        }
        Ok(Self {
            digest: sha256(token.as_bytes()),
        })
    }

    /// A new random token: 32 bytes from the system's CSPRNG, base64url
    /// without padding (43 characters).
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        // aws-lc's RNG fails only if the OS has no entropy source, and a
        // node cannot run safely without one.
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let auth = Self {
            digest: sha256(token.as_bytes()),
        };
        (auth, token)
    }

    /// The token from `PORTICO_ADMIN_TOKEN`, or a generated one when the
    /// variable is not set.
    pub fn from_env() -> Result<(Self, TokenSource), WeakToken> {
        match std::env::var(TOKEN_ENV) {
            Ok(token) => Ok((Self::from_token(&token)?, TokenSource::Environment)),
            Err(_) => {
                let (auth, token) = Self::generate();
                Ok((auth, TokenSource::Generated(token)))
            }
        }
    }

    /// Whether `token` is the admin token, in constant time with respect
    /// to its contents (both sides are digests of the same length).
    pub fn verify(&self, token: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&sha256(token.as_bytes()), &self.digest)
            .is_ok()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Middleware: lets a request through only with `Authorization: Bearer
/// <admin token>`; otherwise 401 with an RFC 6750 challenge.
pub(crate) async fn require_bearer(
    State(auth): State<AdminAuth>,
    req: Request,
    next: Next,
) -> Response {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (first, second) = (values.next(), values.next());
    let token = match (first, second) {
        (None, _) => return unauthorized(false),
        (Some(v), None) => v
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim()),
        // Two Authorization headers: ambiguous, so refused.
        (Some(_), Some(_)) => None,
    };
    match token {
        Some(token) if auth.verify(token) => next.run(req).await,
        _ => unauthorized(true),
    }
}

/// 401: `missing-credential` without a token, `invalid-credential` with a
/// wrong one (`error="invalid_token"`, RFC 6750 §3.1).
fn unauthorized(presented: bool) -> Response {
    let (code, detail, challenge) = match presented {
        false => (
            ErrorCode::MissingCredential,
            "The admin API needs `Authorization: Bearer <admin token>`.",
            format!("Bearer realm=\"{REALM}\""),
        ),
        true => (
            ErrorCode::InvalidCredential,
            "The bearer token is not the admin token.",
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
        ),
    };
    let mut resp = problem(code, detail, None).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    debug_assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_by_digest() {
        let auth = AdminAuth::from_token("correct-horse-battery").unwrap();
        assert!(auth.verify("correct-horse-battery"));
        assert!(!auth.verify("correct-horse-batterY"));
        assert!(!auth.verify(""));
        assert!(format!("{auth:?}").find("horse").is_none());
    }

    #[test]
    fn weak_tokens_are_refused() {
        assert!(AdminAuth::from_token("short").is_err());
        assert!(AdminAuth::from_token("sixteen chars ok").is_err());
        assert!(AdminAuth::from_token("sixteen-chars-ok").is_ok());
    }

    #[test]
    fn generated_tokens_are_random_base64url() {
        let (auth, a) = AdminAuth::generate();
        let (_, b) = AdminAuth::generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert!(auth.verify(&a));
        assert!(!auth.verify(&b));
    }
}
