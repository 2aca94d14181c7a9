//! `jwt`: bearer JSON Web Tokens (RFC 7519) checked against keys given
//! inline (PEM, JWK or a shared secret) or published at a `jwks_uri`.
//!
//! The algorithm is taken from the token only when the configuration allows
//! it *and* the key is of that algorithm's family (RFC 8725 §3.1); `none`
//! is never accepted. A key set from `jwks_uri` is fetched when first
//! needed, refreshed in the background once it is older than
//! `jwks_refresh`, and fetched again, at most once per
//! `jwks_min_interval`, when a token names a key id it does not have: only
//! the requests holding such a token wait for the fetch. An `https`
//! `jwks_uri` is verified against the system trust store, or the CAs in
//! `jwks_ca`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::request;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portico_model::ErrorCode;
use portico_model::policy::{Auth, Identity, Phase, Policy, Rejection, RequestContext};
use portico_model::units::parse_duration;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Largest key set document accepted from `jwks_uri`.
const MAX_JWKS_BYTES: usize = 1 << 20;
/// Time allowed to fetch a key set.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Accepted `iss` values.
    #[serde(default)]
    issuer: Vec<String>,
    /// Accepted `aud` values (any one must be in the token).
    #[serde(default)]
    audience: Vec<String>,
    /// Algorithms accepted; by default every algorithm of the keys' families.
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    keys: Vec<KeySettings>,
    jwks_uri: Option<String>,
    /// PEM file of CAs for an `https` `jwks_uri`, instead of the system roots.
    jwks_ca: Option<String>,
    jwks_refresh: Option<String>,
    jwks_min_interval: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    leeway: Option<String>,
    /// Claims that must be present.
    #[serde(default)]
    required_claims: Vec<String>,
    /// Scopes the token must grant (`scope` string or `scp` list).
    #[serde(default)]
    scopes: Vec<String>,
    /// Claim → header sent upstream (`sub: x-user-id`).
    #[serde(default)]
    claims_to_headers: BTreeMap<String, String>,
    /// The claim naming the app's OAuth client id; `client_id`, then `azp`,
    /// when not set.
    client_claim: Option<String>,
    realm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySettings {
    pem: Option<String>,
    jwk: Option<serde_json::Value>,
    secret: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
}

/// A key and the algorithms it may verify.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: Arc<DecodingKey>,
    algorithms: Vec<Algorithm>,
}

/// Keys fetched from `jwks_uri`.
struct Fetched {
    keys: Vec<Key>,
    at: Instant,
}

struct Jwks {
    uri: http::Uri,
    refresh: Duration,
    min_interval: Duration,
    current: ArcSwapOption<Fetched>,
    /// Held while a fetch runs, so concurrent requests share one fetch;
    /// guards the time of the last attempt, failed or not.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    background: AtomicBool,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// The operating system's trust store, read once per process; the same
/// source the gateway uses for `https://` targets.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                tracing::warn!(
                    "The system trust store has no usable certificate: https key sets without `jwks_ca` will fail."
                );
            }
            Arc::new(roots)
        })
        .clone()
}

/// The CA certificates in a PEM file, as trust anchors.
fn read_roots(path: &str) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read jwks_ca `{path}`: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("jwks_ca `{path}` is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("jwks_ca `{path}` holds no PEM certificate"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("jwks_ca `{path}` holds an unusable CA certificate: {e}"))?;
    }
    Ok(roots)
}

fn parse_alg<E: serde::de::Error>(name: &str) -> Result<Algorithm, E> {
    if name.eq_ignore_ascii_case("none") {
        return Err(E::custom("algorithm `none` is never accepted"));
    }
    name.parse()
        .map_err(|_| E::custom(format!("unknown algorithm `{name}`")))
}

/// The algorithms a JWK may verify: its `alg`, else those of its type
/// (and curve). Symmetric keys are refused from key sets.
fn jwk_algorithms(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    if let Some(ka) = jwk.common.key_algorithm {
        return Algorithm::try_from(ka).ok().map(|a| vec![a]);
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {
            Some(jsonwebtoken::AlgorithmFamily::Rsa.algorithms().to_vec())
        }
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(vec![Algorithm::ES256]),
            EllipticCurve::P384 => Some(vec![Algorithm::ES384]),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(vec![Algorithm::EdDSA]),
        _ => None,
    }
}

fn key_from_jwk(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return None;
    }
    Some(Key {
        kid: jwk.common.key_id.clone(),
        key: Arc::new(DecodingKey::from_jwk(jwk).ok()?),
        algorithms: jwk_algorithms(jwk)?,
    })
}

fn inline_key<E: serde::de::Error>(k: KeySettings) -> Result<Key, E> {
    let KeySettings {
        pem,
        jwk,
        secret,
        alg,
        kid,
    } = k;
    let alg = alg.as_deref().map(parse_alg::<E>).transpose()?;
    match (pem, jwk, secret) {
        (Some(pem), None, None) => {
            let alg = alg.ok_or_else(|| E::custom("a `pem` key needs its `alg`"))?;
            let key = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem.as_bytes()),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem.as_bytes()),
                Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                _ => {
                    return Err(E::custom(
                        "a `pem` key is for RS*, PS*, ES* or EdDSA; use `secret` for HS*",
                    ));
                }
            }
            .map_err(|e| E::custom(format!("invalid PEM key: {e}")))?;
            Ok(Key {
                kid,
                key: Arc::new(key),
                algorithms: vec![alg],
            })
        }
        (None, Some(jwk), None) => {
            let jwk: Jwk =
                serde_json::from_value(jwk).map_err(|e| E::custom(format!("invalid JWK: {e}")))?;
            let mut key = key_from_jwk(&jwk)
                .ok_or_else(|| E::custom("unsupported JWK (use `secret` for shared keys)"))?;
            if let Some(alg) = alg {
                if !key.algorithms.contains(&alg) {
                    return Err(E::custom("the JWK's type does not allow this `alg`"));
                }
                key.algorithms = vec![alg];
            }
            key.kid = kid.or(key.kid);
            Ok(key)
        }
        (None, None, Some(secret)) => {
            let alg = alg.unwrap_or(Algorithm::HS256);
            if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(E::custom("a `secret` is for HS256, HS384 or HS512"));
            }
            if secret.len() < 32 {
                return Err(E::custom("a shared secret must be at least 32 bytes"));
            }
            Ok(Key {
                kid,
                key: Arc::new(DecodingKey::from_secret(secret.as_bytes())),
                algorithms: vec![alg],
            })
        }
        _ => Err(E::custom(
            "a key has exactly one of `pem`, `jwk` and `secret`",
        )),
    }
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        issuer,
        audience,
        algorithms,
        keys,
        jwks_uri,
        jwks_ca,
        jwks_refresh,
        jwks_min_interval,
        leeway,
        required_claims,
        scopes,
        claims_to_headers,
        client_claim,
        realm,
    } = Settings::deserialize(d)?;
    let inline: Vec<Key> = keys
        .into_iter()
        .map(inline_key::<D::Error>)
        .collect::<Result<_, _>>()?;
    let duration = |v: Option<String>, default: Duration| {
        v.map_or(Ok(default), |s| parse_duration(&s))
            .map_err(D::Error::custom)
    };
    let jwks = match jwks_uri {
        Some(uri) => {
            let parsed: http::Uri = uri
                .parse()
                .map_err(|_| D::Error::custom(format!("invalid jwks_uri `{uri}`")))?;
            let roots = match (parsed.scheme_str(), jwks_ca) {
                (Some("https"), None) => system_roots(),
                (Some("https"), Some(ca)) => Arc::new(read_roots(&ca).map_err(D::Error::custom)?),
                (Some("http"), None) => Arc::new(rustls::RootCertStore::empty()),
                (Some("http"), Some(_)) => {
                    return Err(D::Error::custom("`jwks_ca` applies to an https jwks_uri"));
                }
                _ => {
                    return Err(D::Error::custom(format!(
                        "invalid jwks_uri `{uri}`: expected http://… or https://…"
                    )));
                }
            };
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(JWKS_TIMEOUT));
            connector.enforce_http(false);
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(D::Error::custom)?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(connector);
            Some(Arc::new(Jwks {
                uri: parsed,
                refresh: duration(jwks_refresh, Duration::from_secs(600))?,
                min_interval: duration(jwks_min_interval, Duration::from_secs(30))?,
                current: ArcSwapOption::empty(),
                fetching: tokio::sync::Mutex::new(None),
                background: AtomicBool::new(false),
                client: Client::builder(TokioExecutor::new()).build(connector),
            }))
        }
        None => None,
    };
    if inline.is_empty() && jwks.is_none() {
        return Err(D::Error::custom("jwt needs `keys` or a `jwks_uri`"));
    }
    let allowed = match algorithms {
        Some(list) => list
            .iter()
            .map(|a| parse_alg::<D::Error>(a))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let mut all: Vec<Algorithm> = inline
                .iter()
                .flat_map(|k| k.algorithms.iter().copied())
                .collect();
            if jwks.is_some() {
                // Asymmetric families only: a key set never carries secrets.
                for family in [
                    jsonwebtoken::AlgorithmFamily::Rsa,
                    jsonwebtoken::AlgorithmFamily::Ec,
                    jsonwebtoken::AlgorithmFamily::Ed,
                ] {
                    all.extend_from_slice(family.algorithms());
                }
            }
            all.sort_by_key(|a| format!("{a:?}"));
            all.dedup();
            all
        }
    };
    let header_map = claims_to_headers
        .into_iter()
        .map(|(claim, header)| {
            HeaderName::try_from(header.to_ascii_lowercase())
                .map(|h| (claim, h))
                .map_err(|_| D::Error::custom(format!("invalid header name `{header}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let realm = crate::realm::<D::Error>(realm)?;
    let leeway = duration(leeway, Duration::from_secs(60))?;
    if leeway > Duration::from_secs(86_400) {
        return Err(D::Error::custom("leeway is clock skew, at most 1d"));
    }
    let leeway = leeway.as_secs();
    let challenge =
        HeaderValue::try_from(format!("Bearer realm=\"{realm}\"")).map_err(D::Error::custom)?;
    let mut inner = Inner {
        owned: header_map.iter().map(|(_, h)| h.clone()).collect(),
        validations: Vec::new(),
        issuer,
        audience,
        allowed,
        inline,
        jwks,
        leeway,
        required_claims,
        scopes,
        header_map,
        client_claim,
        realm,
        challenge,
    };
    inner.validations = inner
        .allowed
        .iter()
        .map(|&alg| (alg, inner.validation(alg)))
        .collect();
    Ok(Arc::new(Jwt(Arc::new(inner))))
}

/// The policy; its settings are shared with pending checks.
struct Jwt(Arc<Inner>);

struct Inner {
    issuer: Vec<String>,
    audience: Vec<String>,
    allowed: Vec<Algorithm>,
    inline: Vec<Key>,
    jwks: Option<Arc<Jwks>>,
    leeway: u64,
    required_claims: Vec<String>,
    scopes: Vec<String>,
    header_map: Vec<(String, HeaderName)>,
    /// The mapped headers' names, for `owned_headers`.
    owned: Vec<HeaderName>,
    client_claim: Option<String>,
    realm: String,
    challenge: HeaderValue,
    /// One prepared validation per accepted algorithm.
    validations: Vec<(Algorithm, Validation)>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let this = &self.0;
        f.debug_struct("Jwt")
            .field("allowed", &this.allowed)
            .field("inline_keys", &this.inline.len())
            .field("jwks", &this.jwks.as_ref().map(|j| j.uri.to_string()))
            .finish_non_exhaustive()
    }
}

/// Why a token was refused.
enum Refusal {
    Invalid(String),
    Scope,
}

/// What a check of the signature found.
enum Checked {
    Claims(serde_json::Map<String, serde_json::Value>),
    /// No key has the token's key id: a fresher key set might.
    UnknownKey,
    Refused(Refusal),
}

impl Inner {
    fn invalid(&self, why: &str) -> Rejection {
        let challenge = format!(
            "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{}\"",
            self.realm,
            why.replace(['"', '\\'], "'")
        );
        Rejection::new(
            ErrorCode::InvalidCredential,
            format!("The bearer token is not valid: {why}."),
        )
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::try_from(challenge).unwrap_or_else(|_| self.challenge.clone()),
        )
    }

    fn insufficient_scope(&self) -> Rejection {
        let challenge = format!(
            "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{}\"",
            self.realm,
            self.scopes.join(" ")
        );
        Rejection::new(
            ErrorCode::InsufficientScope,
            format!(
                "The token does not grant every scope this API requires: {}.",
                self.scopes.join(" ")
            ),
        )
        .with_header(
            WWW_AUTHENTICATE,
            HeaderValue::try_from(challenge).unwrap_or_else(|_| self.challenge.clone()),
        )
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.validate_exp = true;
        // A configured issuer or audience must be present, not merely
        // match when present.
        let mut required = vec!["exp"];
        if !self.issuer.is_empty() {
            required.push("iss");
        }
        if !self.audience.is_empty() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        if !self.issuer.is_empty() {
            v.set_issuer(&self.issuer);
        }
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
        }
        v
    }

    /// Checks the signature and the registered claims against `keys`.
    fn check(&self, token: &str, fetched: Option<&Fetched>) -> Checked {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(_) => return Checked::Refused(Refusal::Invalid("malformed token".into())),
        };
        if !self.allowed.contains(&header.alg) {
            return Checked::Refused(Refusal::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let candidates: Vec<&Key> = self
            .inline
            .iter()
            .chain(fetched.into_iter().flat_map(|f| f.keys.iter()))
            .filter(|k| k.algorithms.contains(&header.alg))
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Checked::UnknownKey;
        }
        let Some((_, validation)) = self.validations.iter().find(|(alg, _)| *alg == header.alg)
        else {
            return Checked::Refused(Refusal::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        };
        let mut last = String::from("signature does not verify");
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token, &key.key, validation,
            ) {
                Ok(data) => return self.claims(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => "token expired".into(),
                        ErrorKind::ImmatureSignature => "token not yet valid".into(),
                        ErrorKind::InvalidIssuer => "wrong issuer".into(),
                        ErrorKind::InvalidAudience => "wrong audience".into(),
                        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
                        ErrorKind::InvalidSignature => "signature does not verify".into(),
                        _ => "token rejected".into(),
                    };
                }
            }
        }
        Checked::Refused(Refusal::Invalid(last))
    }

    /// The checks beyond the signature: `iat`, required claims, scopes.
    fn claims(&self, claims: serde_json::Map<String, serde_json::Value>) -> Checked {
        let now = jsonwebtoken::get_current_timestamp();
        if claims
            .get("iat")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|iat| iat > now + self.leeway)
        {
            return Checked::Refused(Refusal::Invalid("issued in the future".into()));
        }
        if let Some(missing) = self
            .required_claims
            .iter()
            .find(|c| !claims.contains_key(*c))
        {
            return Checked::Refused(Refusal::Invalid(format!("missing claim {missing}")));
        }
        let granted = granted_scopes(&claims);
        if self.scopes.iter().any(|s| !granted.contains(&s.as_str())) {
            return Checked::Refused(Refusal::Scope);
        }
        Checked::Claims(claims)
    }

    /// Maps verified claims to an identity and the headers for the upstream.
    fn admit(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        snapshot: &portico_model::Snapshot,
    ) -> Result<Identity, Rejection> {
        let client = match &self.client_claim {
            Some(c) => claims.get(c),
            None => claims.get("client_id").or_else(|| claims.get("azp")),
        }
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| self.invalid("no client claim"))?;
        let &app = snapshot
            .consumers
            .clients
            .get(client)
            .ok_or_else(|| self.invalid("unknown client"))?;
        // The same scopes the policy checked, so that the spec's
        // per-operation requirements see them too.
        let scopes = granted_scopes(claims)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let credential = claims
            .get("jti")
            .or_else(|| claims.get("sub"))
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("jwt:{client}"), |id| format!("jwt:{id}"));
        let headers = self
            .header_map
            .iter()
            .filter_map(|(claim, header)| {
                let text = match claims.get(claim)? {
                    serde_json::Value::String(s) => s.clone(),
                    v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                        v.to_string()
                    }
                    _ => return None,
                };
                HeaderValue::try_from(text)
                    .ok()
                    .map(|v| (header.clone(), v))
            })
            .collect();
        Ok(Identity {
            app: snapshot.consumers.apps[app as usize].clone(),
            credential: credential.into(),
            scopes,
            headers,
        })
    }

    fn outcome(&self, checked: Checked, snapshot: &portico_model::Snapshot) -> Auth {
        match self.decide(checked, snapshot) {
            Ok(identity) => Auth::Authenticated(identity),
            Err(r) => Auth::Rejected(r),
        }
    }

    fn decide(
        &self,
        checked: Checked,
        snapshot: &portico_model::Snapshot,
    ) -> Result<Identity, Rejection> {
        match checked {
            Checked::Claims(claims) => self.admit(&claims, snapshot),
            Checked::UnknownKey => Err(self.invalid("no key matches the token")),
            Checked::Refused(Refusal::Scope) => Err(self.insufficient_scope()),
            Checked::Refused(Refusal::Invalid(why)) => Err(self.invalid(&why)),
        }
    }
}

impl Jwks {
    async fn fetch(&self) -> Result<Fetched, String> {
        let resp = self
            .client
            .get(self.uri.clone())
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(Fetched {
            keys: set.keys.iter().filter_map(key_from_jwk).collect(),
            at: Instant::now(),
        })
    }

    /// Fetches unless another caller fetched since `seen`, or the last
    /// attempt (successful or not) is younger than the minimum interval.
    async fn refresh(&self, seen: Option<Instant>) -> Option<Arc<Fetched>> {
        let mut last_attempt = self.fetching.lock().await;
        let current = self.current.load_full();
        if current.as_ref().map(|c| c.at) != seen
            || last_attempt.is_some_and(|t| t.elapsed() < self.min_interval)
        {
            return current;
        }
        *last_attempt = Some(Instant::now());
        // The whole exchange, body included, is bounded: the lock is held.
        match tokio::time::timeout(JWKS_TIMEOUT, self.fetch()).await {
            Ok(Ok(fetched)) => {
                let fetched = Arc::new(fetched);
                self.current.store(Some(fetched.clone()));
                Some(fetched)
            }
            Ok(Err(e)) => {
                tracing::warn!(uri = %self.uri, error = %e, "JWKS fetch failed; keeping the previous keys.");
                current
            }
            Err(_) => {
                tracing::warn!(uri = %self.uri, "JWKS fetch timed out; keeping the previous keys.");
                current
            }
        }
    }
}

pub(crate) fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = crate::scheme_and_token(value.to_str().ok()?);
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Policy for Jwt {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "jwt"
    }

    fn phase(&self) -> Phase {
        Phase::Authentication
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.0.challenge.clone())
    }

    fn owned_headers(&self) -> &[HeaderName] {
        &self.0.owned
    }

    fn remove_credential(&self, req: &mut request::Parts) {
        if req.headers.get(AUTHORIZATION).and_then(bearer).is_some() {
            req.headers.remove(AUTHORIZATION);
        }
    }

    fn authenticate(&self, req: &mut request::Parts, cx: &RequestContext<'_>) -> Auth {
        let this = &self.0;
        let Some(token) = req
            .headers
            .get(AUTHORIZATION)
            .and_then(bearer)
            .map(str::to_owned)
        else {
            return Auth::Absent;
        };
        req.headers.remove(AUTHORIZATION);
        let fetched = this.jwks.as_ref().and_then(|j| j.current.load_full());
        if let (Some(jwks), Some(f)) = (&this.jwks, &fetched)
            && f.at.elapsed() > jwks.refresh
            && !jwks.background.swap(true, Ordering::AcqRel)
        {
            let jwks = jwks.clone();
            let seen = Some(f.at);
            tokio::spawn(async move {
                jwks.refresh(seen).await;
                jwks.background.store(false, Ordering::Release);
            });
        }
        let checked = this.check(&token, fetched.as_deref());
        let jwks = match (checked, &this.jwks) {
            (Checked::UnknownKey, Some(jwks)) => jwks.clone(),
            (checked, _) => return this.outcome(checked, cx.snapshot),
        };
        // The token names a key we do not have: fetch (or wait for the
        // fetch in progress), then decide.
        let this = self.0.clone();
        let snapshot = cx.snapshot.clone();
        let seen = fetched.as_ref().map(|f| f.at);
        Auth::Pending(Box::pin(async move {
            let fresh = jwks.refresh(seen).await;
            this.outcome(this.check(&token, fresh.as_deref()), &snapshot)
        }))
    }
}

/// The scopes a token grants: `scope` (a space-separated string, RFC 8693)
/// or `scp` (a list, or a string).
fn granted_scopes(claims: &serde_json::Map<String, serde_json::Value>) -> Vec<&str> {
    match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(s)), _) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        (_, Some(serde_json::Value::Array(a))) => {
            a.iter().filter_map(serde_json::Value::as_str).collect()
        }
        (_, Some(serde_json::Value::String(s))) => s.split(' ').filter(|s| !s.is_empty()).collect(),
        _ => Vec::new(),
    }
}
