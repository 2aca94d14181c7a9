//! A compiled API proxy: where it is mounted and where it sends traffic.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};

use crate::mock::MockTable;
use crate::operation::OperationTable;
use crate::policy::PolicyChain;
use crate::security::SpecSecurity;

/// One API proxy, validated and normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// Entity name, `[a-z0-9][a-z0-9-]*`, unique in a snapshot.
    pub name: String,
    /// Normalised prefix: starts with `/`, no trailing `/` unless it is `/`.
    pub base_path: String,
    /// Lower-case host names without port; empty means every host.
    pub hosts: Vec<String>,
    pub upstream: Upstream,
    /// Compiled policies, sorted by phase.
    pub policies: PolicyChain,
    /// The spec's operations, when the API has a spec.
    pub operations: Option<Arc<OperationTable>>,
    pub routing: Routing,
    /// The spec's security requirements, when the API has a spec that
    /// states some and lists no authentication policy of its own.
    pub security: Option<Arc<SpecSecurity>>,
    /// The prepared answers of `upstream: { mock: true }`; the upstream
    /// then has no targets.
    pub mock: Option<Arc<MockTable>>,
}

/// How requests inside an API's base path are routed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// Everything under the base path goes upstream. With a spec, a
    /// request that matches an operation is still known by it.
    #[default]
    Passthrough,
    /// Only the spec's operations are routed: any other path is 404, any
    /// other method on a declared path 405.
    Spec,
}

impl Api {
    /// The part of `path` (which matched `base_path`) after the base path:
    /// `""` or a path starting with `/`.
    pub fn rest_of<'a>(&self, path: &'a str) -> &'a str {
        // Strip as many segments as the base path has, not as many bytes: a
        // matched segment may carry matrix parameters (`/v1;x`). Counted in
        // bytes, not with `char` patterns: this runs more than once per
        // request.
        let base = self.base_path.as_bytes();
        let segments = base.iter().filter(|b| **b == b'/').count() - usize::from(base == b"/");
        if segments == 0 {
            return path;
        }
        path.bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'/')
            .nth(segments)
            .map_or("", |(i, _)| &path[i..])
    }

    /// The path to send upstream for `path` (which matched `base_path`):
    /// the base path is stripped and the target's own path prefix is put in
    /// front. The result always starts with `/`.
    pub fn upstream_path<'a>(&self, target: &'a Target, path: &'a str) -> UpstreamPath<'a> {
        UpstreamPath {
            prefix: &target.path_prefix,
            rest: self.rest_of(path),
        }
    }
}

/// The upstream path as two borrowed halves, joined without an allocation
/// until the request URI is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamPath<'a> {
    prefix: &'a str,
    rest: &'a str,
}

impl UpstreamPath<'_> {
    /// Writes the path into `out`.
    pub fn write_to(&self, out: &mut String) {
        out.push_str(self.prefix);
        if self.rest.is_empty() {
            if self.prefix.is_empty() {
                out.push('/');
            }
        } else {
            out.push_str(self.rest);
        }
    }

    /// Upper bound of the joined length, for `String::with_capacity`.
    pub fn len_hint(&self) -> usize {
        self.prefix.len() + self.rest.len() + 1
    }
}

/// Where an API's traffic goes and how long Portico waits for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub targets: Vec<Target>,
    /// Target indexes in smooth weighted round-robin order; one turn of the
    /// schedule gives each target as many slots as its weight.
    pub schedule: Vec<u32>,
    pub connect_timeout: Duration,
    /// Time allowed from asking for an upstream connection (pooled or new)
    /// to receiving the response headers.
    pub timeout: Duration,
    pub balance: Balance,
    /// Active checks: a target that fails them gets no traffic.
    pub health_check: Option<HealthCheck>,
    /// Passive health: failures observed on live traffic open a target's
    /// circuit, which keeps traffic away for a cool-down.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Retries of idempotent requests, on another target where possible.
    pub retries: Option<Retries>,
    /// The HTTP version spoken to the targets.
    pub protocol: UpstreamProtocol,
    /// How `https://` targets are verified and what Portico presents to
    /// them; `None` when no target is `https://`.
    pub tls: Option<UpstreamTls>,
}

/// The HTTP version Portico speaks to an upstream, whatever the client spoke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (ALPN `http/1.1` on `https://` targets).
    #[default]
    Http1,
    /// HTTP/2 over TLS, agreed by ALPN `h2`; every target is `https://`.
    Http2,
    /// HTTP/2 over cleartext TCP with prior knowledge; every target is
    /// `http://`.
    H2c,
}

/// TLS towards `https://` targets. Files were read and checked by the
/// configuration compiler; this holds their contents, so a snapshot is
/// self-contained and two snapshots compare equal only when the certificates
/// are the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Trust anchors (DER) that replace the system roots; empty means the
    /// operating system's trust store.
    pub ca: Vec<Vec<u8>>,
    /// Certificate chain and key presented when a target asks for one.
    pub identity: Option<ClientIdentity>,
    /// Name sent in SNI and checked against the target's certificate,
    /// instead of the target URL's host.
    pub sni: Option<String>,
    /// `false` accepts any certificate: no protection against an active
    /// attacker. The gateway logs a warning whenever it builds such a client.
    pub verify: bool,
}

/// A client certificate chain (DER, leaf first) and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub chain: Vec<Vec<u8>>,
    pub key: PrivateKey,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain", &self.chain.len())
            .field("key", &self.key)
            .finish()
    }
}

/// A private key in DER. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pub format: KeyFormat,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?}, redacted)", self.format)
    }
}

/// The encoding of a [`PrivateKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    Pkcs1,
    Sec1,
    Pkcs8,
}

/// Active health checks: each target is asked for `path` every `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Absolute path (and query) asked of the target's authority.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that make an unhealthy target healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy target unhealthy.
    pub unhealthy_threshold: u32,
}

/// When a target's circuit opens, and for how long.
///
/// A circuit opens after `failures` consecutive failures, or when at least
/// `min_requests` requests in one `window` failed at `error_rate` percent or
/// more. It stays open for the cool-down, then lets one probe request
/// through (half-open): success closes it, failure opens it again for
/// twice as long, up to `max_cool_down`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub failures: u32,
    /// Percent, 1–100; `None` disables the rate rule.
    pub error_rate: Option<u32>,
    pub min_requests: u32,
    pub window: Duration,
    pub cool_down: Duration,
    pub max_cool_down: Duration,
}

/// Retries of idempotent requests whose body was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retries {
    /// Retries after the first try.
    pub attempts: u32,
    pub on: RetryOn,
    /// Base of the exponential back-off between tries.
    pub backoff: Duration,
    /// Retries allowed per 100 requests over the budget window, on top of
    /// [`Retries::BUDGET_FLOOR`] per window.
    pub budget_percent: u32,
}

impl Retries {
    /// Retries always allowed per budget window, so that a quiet API can
    /// still retry.
    pub const BUDGET_FLOOR: u32 = 10;
    /// The span the retry budget is counted over.
    pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);
}

/// The outcomes that are retried, as a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryOn(u8);

impl RetryOn {
    /// The connection to the target could not be made.
    pub const CONNECT_ERROR: Self = Self(1);
    /// The target reset or closed the connection, or did not speak HTTP.
    pub const RESET: Self = Self(1 << 1);
    /// The target did not answer within the API's timeout.
    pub const TIMEOUT: Self = Self(1 << 2);
    pub const STATUS_502: Self = Self(1 << 3);
    pub const STATUS_503: Self = Self(1 << 4);
    pub const STATUS_504: Self = Self(1 << 5);
    /// What `retries` retries when `on` is not given.
    pub const DEFAULT: Self = Self(
        Self::CONNECT_ERROR.0
            | Self::RESET.0
            | Self::STATUS_502.0
            | Self::STATUS_503.0
            | Self::STATUS_504.0,
    );

    /// The flag for a retryable status, if it is one.
    pub fn status(status: u16) -> Option<Self> {
        match status {
            502 => Some(Self::STATUS_502),
            503 => Some(Self::STATUS_503),
            504 => Some(Self::STATUS_504),
            _ => None,
        }
    }

    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

/// How a target is chosen for each request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round-robin over [`Upstream::schedule`].
    #[default]
    RoundRobin,
    /// The target with the fewest requests in flight per unit of weight.
    LeastRequests,
    /// The same key always reaches the same target while it is there.
    ConsistentHash { key: HashKey, ring: HashRing },
}

/// What a consistent hash is computed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// A request header's value.
    Header(http::HeaderName),
    /// A cookie's value.
    Cookie(String),
    /// The client address.
    ClientIp,
}

/// Points on a 64-bit ring, each owned by a target; a key belongs to the
/// first point at or after its hash. Each target has points in proportion
/// to its weight, placed by hashing its URL, so removing a target moves
/// only the keys it owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRing {
    points: Vec<(u64, u32)>,
}

/// Points per unit of weight: enough for an even spread at small counts.
const POINTS_PER_WEIGHT: u32 = 160;

impl HashRing {
    pub fn new(targets: &[Target]) -> Self {
        let mut points = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            for p in 0..t.weight * POINTS_PER_WEIGHT {
                let mut h = stable_hash(t.url.as_bytes());
                h = mix(h ^ u64::from(p));
                points.push((h, u32::try_from(i).expect("fewer than 2^32 targets")));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The target index for a key hash.
    pub fn target(&self, key: u64) -> u32 {
        let i = self.points.partition_point(|&(h, _)| h < key);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map_or(0, |&(_, t)| t)
    }

    /// The targets in the order a key meets them walking the ring from its
    /// hash: the owner first, then the owners of the following points. A
    /// target that cannot take the request hands it to the next one, so its
    /// keys spread over the others and come back when it does.
    pub fn walk(&self, key: u64) -> impl Iterator<Item = u32> + '_ {
        let start = self.points.partition_point(|&(h, _)| h < key);
        let (before, after) = self.points.split_at(start.min(self.points.len()));
        after.iter().chain(before).map(|&(_, t)| t)
    }
}

/// FNV-1a, finished with a mixer: stable across processes and builds, so
/// every node of a cluster maps a key to the same target.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One upstream server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as written, for logs and the admin API (shared: every
    /// access log line names its target).
    pub url: std::sync::Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path of the target URL without a trailing `/`; empty for none.
    pub path_prefix: String,
    pub weight: u32,
}

/// Builds the smooth weighted round-robin order for `weights` (the sequence
/// nginx's upstream module produces): every target appears `weight / g` times
/// per turn, where `g` is the greatest common divisor of the weights, and
/// heavy targets are spread out rather than bunched.
pub fn wrr_schedule(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let reduced: Vec<i64> = weights.iter().map(|w| i64::from(w / g)).collect();
    let total: i64 = reduced.iter().sum();
    let mut current = vec![0i64; reduced.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&reduced) {
            *c += w;
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| a.cmp(b).then(ib.cmp(ia)))
            .expect("weights is not empty");
        current[best] -= total;
        order.push(u32::try_from(best).expect("fewer than 2^32 targets"));
    }
    order
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_honours_weights_and_spreads_them() {
        let order = wrr_schedule(&[1, 3]);
        assert_eq!(order.len(), 4);
        assert_eq!(order.iter().filter(|&&i| i == 1).count(), 3);
        // Smooth: the light target is not first-and-last bunched with itself.
        assert_eq!(order, vec![1, 0, 1, 1]);
        assert_eq!(wrr_schedule(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    fn targets(urls: &[&str]) -> Vec<Target> {
        urls.iter()
            .map(|u| Target {
                url: (*u).into(),
                scheme: Scheme::HTTP,
                authority: Authority::from_static("h"),
                path_prefix: String::new(),
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn ring_spreads_keys_and_only_moves_a_leaving_targets_keys() {
        let three = HashRing::new(&targets(&["http://a", "http://b", "http://c"]));
        let two = HashRing::new(&targets(&["http://a", "http://b"]));
        let mut counts = [0usize; 3];
        for k in 0..3000u64 {
            let key = stable_hash(format!("user-{k}").as_bytes());
            let before = three.target(key);
            counts[before as usize] += 1;
            if before != 2 {
                assert_eq!(
                    two.target(key),
                    before,
                    "key {k} moved though its target stayed"
                );
            }
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven spread {counts:?}");
        }
    }

    #[test]
    fn ring_walk_starts_at_the_owner_and_visits_every_target() {
        let ring = HashRing::new(&targets(&["http://a", "http://b", "http://c"]));
        for k in 0..200u64 {
            let key = stable_hash(&k.to_le_bytes());
            let mut seen = Vec::new();
            for t in ring.walk(key) {
                if !seen.contains(&t) {
                    seen.push(t);
                }
            }
            assert_eq!(seen[0], ring.target(key));
            assert_eq!(seen.len(), 3);
        }
    }

    #[test]
    fn retry_on_is_a_set() {
        let on = RetryOn::default().with(RetryOn::RESET);
        assert!(on.contains(RetryOn::RESET));
        assert!(!on.contains(RetryOn::CONNECT_ERROR));
        assert!(!on.contains(RetryOn::default()));
        assert!(RetryOn::DEFAULT.contains(RetryOn::status(503).unwrap()));
        assert!(!RetryOn::DEFAULT.contains(RetryOn::TIMEOUT));
        assert_eq!(RetryOn::status(500), None);
    }

    #[test]
    fn schedule_reduces_by_gcd() {
        assert_eq!(wrr_schedule(&[100, 100]), vec![0, 1]);
        assert_eq!(wrr_schedule(&[7]), vec![0]);
        assert!(wrr_schedule(&[]).is_empty());
    }

    #[test]
    fn upstream_path_strips_base_and_adds_prefix() {
        let target = Target {
            url: "http://h/api".into(),
            scheme: Scheme::HTTP,
            authority: Authority::from_static("h"),
            path_prefix: "/api".into(),
            weight: 1,
        };
        let bare = Target {
            path_prefix: String::new(),
            ..target.clone()
        };
        let api = Api {
            name: "a".into(),
            base_path: "/orders/v1".into(),
            hosts: vec![],
            policies: PolicyChain::default(),
            operations: None,
            security: None,
            mock: None,
            routing: Routing::Passthrough,
            upstream: Upstream {
                targets: vec![],
                schedule: vec![],
                connect_timeout: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                balance: Balance::RoundRobin,
                health_check: None,
                circuit_breaker: None,
                retries: None,
                protocol: UpstreamProtocol::Http1,
                tls: None,
            },
        };
        let join = |t: &Target, p: &str| {
            let mut s = String::new();
            api.upstream_path(t, p).write_to(&mut s);
            s
        };
        assert_eq!(join(&bare, "/orders/v1/items"), "/items");
        assert_eq!(join(&bare, "/orders/v1"), "/");
        assert_eq!(join(&target, "/orders/v1/items"), "/api/items");
        assert_eq!(join(&target, "/orders/v1"), "/api");
        assert_eq!(join(&bare, "/orders/v1;x=1/items"), "/items");
        assert_eq!(join(&bare, "/orders/v1/"), "/");
        let root = Api {
            base_path: "/".into(),
            ..api.clone()
        };
        let mut s = String::new();
        root.upstream_path(&target, "/x/y").write_to(&mut s);
        assert_eq!(s, "/api/x/y");
    }
}
