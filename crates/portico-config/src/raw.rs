//! Wire types: the file format exactly as written. Every struct refuses
//! unknown keys, and the compiler destructures each one completely, so a new
//! field cannot be silently ignored.

use std::sync::Arc;

use portico_model::api::RetryOn;
use portico_model::policy::Policy;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor,
    value::MapAccessDeserializer,
};

use crate::de::Located;
use crate::values::{BasePath, DurationValue, HostName, ListenAddr, Name, Percent};

/// The top-level keys of the file; each section is read on its own.
pub(crate) const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "redis",
    "apis",
    "products",
    "developers",
    "apps",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub proxy: Option<RawProxyListener>,
    pub admin: Option<RawListener>,
    pub portal: Option<RawPortal>,
    /// `stdout`, `off`, or a file path.
    pub access_log: Option<String>,
    /// Runtime worker threads (default: one per core).
    pub workers: Option<Located<usize>>,
    /// How long shutdown drains in-flight exchanges (default 30s).
    pub shutdown_timeout: Option<DurationValue>,
    /// Client connections open at once (default 10,000).
    pub max_connections: Option<Located<usize>>,
    /// Time a client has to send a complete request head (default 30s).
    pub header_timeout: Option<Located<DurationValue>>,
    /// The in-process response cache.
    pub cache: Option<RawNodeCache>,
}

/// `server.cache`: the in-process response cache of the node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNodeCache {
    /// Bytes of entries held at most (default 64MiB).
    pub max_size: Option<Located<crate::values::SizeValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub listen: ListenAddr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxyListener {
    pub listen: Option<ListenAddr>,
    pub tls: Option<Located<RawTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub listen: ListenAddr,
    /// The default certificate, in the single-certificate form.
    pub cert: Option<Located<String>>,
    pub key: Option<Located<String>>,
    /// Further certificates, chosen by SNI.
    pub certificates: Option<Vec<RawCertificate>>,
    pub client_ca: Option<Located<String>>,
    pub client_auth: Option<Located<RawClientAuth>>,
    /// How often the files are checked for changes (`0s`: never).
    pub watch_interval: Option<Located<DurationValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub cert: Located<String>,
    pub key: Located<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawClientAuth {
    None,
    Optional,
    Required,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortal {
    pub listen: Option<ListenAddr>,
    pub title: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub name: Located<Name>,
    /// Required unless a spec gives one through `servers`.
    pub base_path: Option<Located<BasePath>>,
    #[serde(default)]
    pub hosts: Vec<Located<HostName>>,
    /// A file path relative to the configuration file, or the document inline.
    pub spec: Option<Located<serde_json::Value>>,
    /// `spec` (default with a spec) or `passthrough`.
    pub routing: Option<Located<RawRouting>>,
    pub upstream: Located<RawUpstream>,
    #[serde(default)]
    pub policies: Vec<Located<RawPolicy>>,
    /// Policies for the spec's security schemes, by scheme name (a `jwt`
    /// for an OAuth 2.0 or bearer scheme, whose keys a spec does not carry).
    pub security_schemes: Option<Located<crate::security::SchemeOverrides>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawRouting {
    Spec,
    Passthrough,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    /// Required unless `mock: true`.
    pub targets: Option<Located<Vec<Located<RawTarget>>>>,
    pub balance: Option<Located<RawBalance>>,
    /// For `consistent_hash`: `ip`, `header:NAME` or `cookie:NAME`.
    pub hash_key: Option<Located<String>>,
    pub connect_timeout: Option<Located<DurationValue>>,
    pub timeout: Option<Located<DurationValue>>,
    pub retries: Option<Located<RawRetries>>,
    pub health_check: Option<Located<RawHealthCheck>>,
    pub circuit_breaker: Option<Located<RawCircuitBreaker>>,
    pub mock: Option<Located<bool>>,
    /// `http1` (default), `http2` (h2 over TLS) or `h2c`.
    pub protocol: Option<Located<RawProtocol>>,
    /// Verification and client certificate for `https://` targets.
    pub tls: Option<Located<RawUpstreamTls>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawProtocol {
    Http1,
    Http2,
    H2c,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstreamTls {
    /// PEM file of CA certificates that replace the system roots.
    pub ca: Option<Located<String>>,
    /// PEM client certificate chain, leaf first.
    pub cert: Option<Located<String>>,
    /// PEM private key of `cert`.
    pub key: Option<Located<String>>,
    /// Server name to send and verify instead of the target's host.
    pub sni: Option<Located<String>>,
    /// `false` turns certificate verification off.
    pub verify: Option<Located<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetries {
    pub attempts: Located<u32>,
    pub on: Option<Located<Vec<Located<RetryCondition>>>>,
    pub backoff: Option<Located<DurationValue>>,
    pub budget: Option<Located<Percent>>,
}

/// One entry of `retries.on`: a condition name or a status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryCondition {
    Named(RetryOn),
    Status(u64),
}

impl<'de> Deserialize<'de> for RetryCondition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RetryCondition;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`connect_error`, `reset`, `timeout` or a status code 502, 503 or 504")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RetryCondition, E> {
                Ok(RetryCondition::Status(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RetryCondition, E> {
                Ok(RetryCondition::Status(u64::try_from(v).unwrap_or(0)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RetryCondition, E> {
                match v {
                    "connect_error" => Ok(RetryCondition::Named(RetryOn::CONNECT_ERROR)),
                    "reset" => Ok(RetryCondition::Named(RetryOn::RESET)),
                    "timeout" => Ok(RetryCondition::Named(RetryOn::TIMEOUT)),
                    _ => match v.parse::<u64>() {
                        Ok(n) => Ok(RetryCondition::Status(n)),
                        Err(_) => Err(E::custom(format!(
                            "unknown retry condition `{v}`: expected `connect_error`, `reset`, `timeout`, 502, 503 or 504"
                        ))),
                    },
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub path: Located<String>,
    pub interval: Option<Located<DurationValue>>,
    pub timeout: Option<Located<DurationValue>>,
    pub healthy_threshold: Option<Located<u32>>,
    pub unhealthy_threshold: Option<Located<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCircuitBreaker {
    pub failures: Option<Located<u32>>,
    pub error_rate: Option<Located<Percent>>,
    pub min_requests: Option<Located<u32>>,
    pub window: Option<Located<DurationValue>>,
    pub cool_down: Option<Located<DurationValue>>,
    pub max_cool_down: Option<Located<DurationValue>>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawBalance {
    RoundRobin,
    LeastRequests,
    ConsistentHash,
}

/// A target is a URL, or `{ url, weight }`.
#[derive(Debug)]
pub(crate) struct RawTarget {
    pub url: String,
    pub weight: Option<Located<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetFull {
    url: String,
    weight: Option<Located<u32>>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a target URL or a mapping with `url` and `weight`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget {
                    url: v.to_owned(),
                    weight: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<RawTarget, A::Error> {
                let RawTargetFull { url, weight } =
                    RawTargetFull::deserialize(MapAccessDeserializer::new(a))?;
                Ok(RawTarget { url, weight })
            }
        }
        d.deserialize_any(V)
    }
}

/// One policy entry: a mapping whose one key is the policy name, built by
/// the policy registry from its settings as it is read, so a settings error
/// is reported at its own key.
pub(crate) struct RawPolicy(pub Arc<dyn Policy>);

impl std::fmt::Debug for RawPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RawPolicy").field(&self.0.name()).finish()
    }
}

const ONE_KEY: &str = "a policy is a mapping with exactly one key, the policy name, such as `- api_key: { header: x-api-key }`";

impl<'de> Deserialize<'de> for RawPolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPolicy;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(ONE_KEY)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPolicy, A::Error> {
                let Some(name) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(ONE_KEY));
                };
                let policy = map.next_value_seed(Build(&name))?;
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(ONE_KEY));
                }
                Ok(RawPolicy(policy))
            }
        }
        d.deserialize_map(V)
    }
}

struct Build<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Arc<dyn Policy>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Arc<dyn Policy>, D::Error> {
        portico_policies::build(self.0, d)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProduct {
    pub name: Located<Name>,
    #[serde(default)]
    pub apis: Vec<Located<String>>,
    pub quota: Option<RawLimit>,
    pub rate_limit: Option<RawLimit>,
    #[serde(default)]
    pub approval: RawApproval,
    pub description: Option<String>,
}

/// `redis:` written as a mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    pub url: Located<String>,
    /// `local` (default), `deny` or `allow`.
    pub failure: Option<RawRedisFailure>,
    pub key_prefix: Option<Located<String>>,
    pub timeout: Option<Located<DurationValue>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawRedisFailure {
    Local,
    Deny,
    Allow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimit {
    pub limit: Located<u64>,
    pub window: Located<DurationValue>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawApproval {
    #[default]
    Auto,
    Manual,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeveloper {
    pub email: Located<String>,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: Located<Name>,
    pub developer: Located<String>,
    #[serde(default)]
    pub products: Vec<Located<String>>,
    #[serde(default)]
    pub api_keys: Vec<Located<String>>,
    /// SHA-256 digests (64 hex digits) of API keys whose plain text is kept
    /// nowhere, as the store exports them.
    #[serde(default)]
    pub api_key_hashes: Vec<Located<String>>,
    #[serde(default)]
    pub oauth_clients: Vec<RawOAuthClient>,
    #[serde(default)]
    pub basic_auth: Vec<RawBasicCredential>,
    /// Client certificate subjects or subject alternative names, for `mtls`.
    #[serde(default)]
    pub certificates: Vec<Located<String>>,
}

/// A user name with a password (hashed when compiled) or an argon2 hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasicCredential {
    pub username: Located<String>,
    pub password: Option<Located<String>>,
    pub password_hash: Option<Located<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuthClient {
    pub client_id: Located<String>,
    pub client_secret: Option<Located<String>>,
    /// The secret's SHA-256 (hex), as the store keeps it.
    pub client_secret_hash: Option<Located<String>>,
}
