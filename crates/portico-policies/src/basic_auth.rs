//! `basic_auth`: RFC 7617 user names and passwords of apps, kept as argon2
//! hashes. An argon2 check costs tens of milliseconds of CPU, so it never
//! runs on the request path's thread: the first request with a credential
//! waits for a check on the blocking pool (at most [`MAX_CHECKS`] at once),
//! and a credential that passed is remembered, as a salted SHA-256, for as
//! long as this snapshot lives. Later requests with it cost one hash and one
//! lock-free lookup.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use http::request;
use portico_model::policy::{Auth, Identity, Phase, Policy, Rejection, RequestContext};
use portico_model::{ErrorCode, Snapshot};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Password checks running at once; more wait their turn.
const MAX_CHECKS: usize = 4;
/// Credentials remembered per snapshot; past this, checks are not cached.
const MAX_REMEMBERED: usize = 100_000;

/// A well-formed argon2 hash of a random password, checked when the user
/// name is unknown so that the answer takes as long as for a known one.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$cG9ydGljby1kZWNveQ$2r1cHxDwGJ5U38GH45Wzaw9OaBJKuhOIy4w1w2T/4wU";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The protection space named in the challenge.
    realm: Option<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings { realm } =
        Option::<Settings>::deserialize(d)?.unwrap_or(Settings { realm: None });
    let realm = crate::realm::<D::Error>(realm)?;
    let challenge = HeaderValue::try_from(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        .map_err(D::Error::custom)?;
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(D::Error::custom)?;
    Ok(Arc::new(BasicAuth {
        challenge,
        salt,
        remembered: Arc::new(ArcSwap::from_pointee(HashMap::new())),
        checks: Arc::new(Semaphore::new(MAX_CHECKS)),
    }))
}

struct BasicAuth {
    challenge: HeaderValue,
    /// Per-policy random salt of the remembered digests.
    salt: [u8; 32],
    /// Salted digest of `user:password` → app index, for credentials that
    /// passed an argon2 check. Copy-on-write: written once per credential.
    remembered: Arc<ArcSwap<HashMap<[u8; 32], u32>>>,
    checks: Arc<Semaphore>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("remembered", &self.remembered.load().len())
            .finish_non_exhaustive()
    }
}

/// Splits `Authorization: Basic <base64(user:password)>`.
pub(crate) fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let (scheme, token) = crate::scheme_and_token(std::str::from_utf8(value).ok()?);
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `Authorization` holds this scheme's credential.
fn is_basic(value: &HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|v| crate::scheme_and_token(v).0.eq_ignore_ascii_case("basic"))
}

impl BasicAuth {
    fn reject(&self, detail: &str) -> Auth {
        Auth::Rejected(
            Rejection::new(ErrorCode::InvalidCredential, detail)
                .with_header(WWW_AUTHENTICATE, self.challenge.clone()),
        )
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn identity(snapshot: &Snapshot, app: u32, user: &str) -> Identity {
        Identity {
            app: snapshot.consumers.apps[app as usize].clone(),
            credential: format!("basic:{user}").into(),
            scopes: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn remember(remembered: &ArcSwap<HashMap<[u8; 32], u32>>, digest: [u8; 32], app: u32) {
        remembered.rcu(|current| {
            let mut next = HashMap::clone(current);
            if next.len() < MAX_REMEMBERED {
                next.insert(digest, app);
            }
            next
        });
    }
}

impl Policy for BasicAuth {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "basic_auth"
    }

    fn phase(&self) -> Phase {
        Phase::Authentication
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }

    fn remove_credential(&self, req: &mut request::Parts) {
        if req.headers.get(AUTHORIZATION).is_some_and(is_basic) {
            req.headers.remove(AUTHORIZATION);
        }
    }

    fn authenticate(&self, req: &mut request::Parts, cx: &RequestContext<'_>) -> Auth {
        let Some(value) = req.headers.get(AUTHORIZATION) else {
            return Auth::Absent;
        };
        if !is_basic(value) {
            // Another scheme (Bearer): another policy's credential.
            return Auth::Absent;
        }
        let parsed = parse_basic(value.as_bytes());
        req.headers.remove(AUTHORIZATION);
        let Some((user, password)) = parsed else {
            return self.reject("The Basic credential is not base64 of user:password.");
        };
        let digest = self.digest(&user, &password);
        if let Some(&app) = self.remembered.load().get(&digest) {
            return Auth::Authenticated(Self::identity(cx.snapshot, app, &user));
        }
        let known = cx.snapshot.consumers.basic_users.get(&user).cloned();
        let snapshot = cx.snapshot.clone();
        let checks = self.checks.clone();
        let rejection = self.reject("The user name or password is not valid.");
        let hash = known
            .as_ref()
            .map_or_else(|| Arc::<str>::from(DECOY_HASH), |k| k.password_hash.clone());
        let remembered = self.remembered.clone();
        Auth::Pending(Box::pin(async move {
            let Ok(_permit) = checks.acquire_owned().await else {
                return rejection;
            };
            let verified = tokio::task::spawn_blocking(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await
            .unwrap_or(false);
            match known {
                Some(k) if verified => {
                    Self::remember(&remembered, digest, k.app);
                    Auth::Authenticated(Self::identity(&snapshot, k.app, &user))
                }
                _ => rejection,
            }
        }))
    }
}

/// Hashes a password written in a configuration file with argon2id and
/// the crate's default cost, under a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Hashes `password` with a salt of the caller's choosing. The same inputs
/// give the same hash: for documents that must compare equal when nothing
/// changed (a configuration file seeding the store). Choose a salt unique
/// to the credential.
pub fn hash_password_with_salt(password: &str, salt: &[u8]) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a hash given in PHC string form is an argon2 hash this build can
/// verify.
pub fn check_password_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => return Err(format!("`{other}` hashes are not supported; use argon2id")),
    }
    argon2::Params::try_from(&parsed).map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("aladdin:open:sesame");
        let value = format!("Basic {b64}");
        assert_eq!(
            parse_basic(value.as_bytes()),
            Some(("aladdin".into(), "open:sesame".into()))
        );
        let lower = format!("basic {b64}");
        assert!(parse_basic(lower.as_bytes()).is_some());
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert_eq!(parse_basic(format!("Basic {no_colon}").as_bytes()), None);
    }

    #[test]
    fn hashes_verify_and_the_decoy_is_well_formed() {
        let phc = hash_password("s3cret").unwrap();
        check_password_hash(&phc).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        check_password_hash(DECOY_HASH).unwrap();
        assert!(check_password_hash("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(check_password_hash("plain").is_err());
    }
}
