//! The response cache contract: the compiled settings of a `cache` policy,
//! what a cache stores, and the storage interface the gateway looks entries
//! up through. The backends (in-process and Redis) live in
//! `portico-counters`; the HTTP semantics (keys, freshness, `Cache-Status`)
//! in the gateway. See `docs/adr/0006-response-cache.md`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};

/// Where a `cache` policy keeps its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheBackend {
    /// Redis when the node has `redis:`, in-process otherwise.
    Auto,
    Memory,
    Redis,
}

impl CacheBackend {
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheBackend::Auto => "auto",
            CacheBackend::Memory => "memory",
            CacheBackend::Redis => "redis",
        }
    }
}

/// The compiled settings of an API's `cache` policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// Freshness of a heuristically cacheable response that states none.
    pub ttl: Duration,
    /// Bodies larger than this pass through uncached.
    pub max_entry_size: u64,
    /// Request headers that are part of every key (lower case, sorted).
    pub vary: Arc<[HeaderName]>,
    /// Store responses to requests that carried `Authorization`.
    pub authorization: bool,
    /// Store responses that carry `Set-Cookie`.
    pub cookies: bool,
    pub backend: CacheBackend,
}

/// Default `ttl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default `max_entry_size`.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 1024 * 1024;
/// Default `server.cache.max_size`.
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 64 * 1024 * 1024;

/// A stored response: the upstream's head (hop-by-hop fields and `Age`
/// removed) and body, with what its freshness was computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it was stored, in Unix milliseconds.
    pub stored_at_ms: u64,
    /// Its age when it was stored (RFC 9111 §4.2.3 `corrected_initial_age`).
    pub initial_age: Duration,
    /// Its freshness lifetime (RFC 9111 §4.2.1).
    pub lifetime: Duration,
}

impl CachedResponse {
    /// Its current age at `now_ms` (RFC 9111 §4.2.3).
    pub fn age(&self, now_ms: u64) -> Duration {
        self.initial_age + Duration::from_millis(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// Freshness left at `now_ms`; zero when stale.
    pub fn ttl(&self, now_ms: u64) -> Duration {
        self.lifetime.saturating_sub(self.age(now_ms))
    }

    /// Bytes it takes, roughly: body, header names and values.
    pub fn weight(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 8)
                .sum::<usize>()
            + 64
    }
}

/// What a cache key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A response.
    Response(Arc<CachedResponse>),
    /// The response for this key varies on these request headers (its
    /// `Vary`): each variant is stored under a secondary key made with
    /// their values.
    Variants(Arc<[HeaderName]>),
}

impl Stored {
    pub fn weight(&self) -> usize {
        match self {
            Stored::Response(r) => r.weight(),
            Stored::Variants(v) => 32 + v.iter().map(|n| n.as_str().len() + 8).sum::<usize>(),
        }
    }
}

/// The answer to a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The API's purge generation the lookup ran in; a store made for this
    /// request goes under it, so a purge that happens meanwhile wins.
    pub generation: u64,
    pub stored: Option<Stored>,
}

/// Why a backend call failed. The gateway treats it as a miss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheError(pub String);

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CacheError {}

pub type CacheFuture<T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send + 'static>>;

/// Counters of a backend, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheBackendStats {
    pub backend: &'static str,
    /// Calls that failed or timed out.
    pub errors: u64,
    /// Entries held (in-process only).
    pub entries: u64,
    /// Bytes held, by the entries' weight (in-process only).
    pub bytes: u64,
}

/// A cache storage backend. Keys are per API: `key` is the gateway's key
/// without the API or generation, which the backend adds.
///
/// A purge is a generation bump: O(1), and entries of older generations are
/// never found again (they expire, or are evicted, in their own time).
pub trait CacheStore: Send + Sync + std::fmt::Debug {
    /// `memory` or `redis`.
    fn name(&self) -> &'static str;

    /// What `key` of `api` holds in the API's current generation.
    fn get(&self, api: &str, key: &str) -> CacheFuture<Found>;

    /// Stores `value` under `key` of `api` in `generation` for `ttl`.
    fn put(
        &self,
        api: &str,
        generation: u64,
        key: &str,
        value: Stored,
        ttl: Duration,
    ) -> CacheFuture<()>;

    /// Forgets every entry of `api` (bumps its generation).
    fn purge(&self, api: &str) -> CacheFuture<()>;

    fn stats(&self) -> CacheBackendStats;
}

/// The node's cache backends: the in-process one always, Redis when the
/// node has `redis:`.
#[derive(Clone, Debug)]
pub struct CacheStores {
    pub memory: Arc<dyn CacheStore>,
    pub redis: Option<Arc<dyn CacheStore>>,
}

impl CacheStores {
    /// The store a policy with `backend` uses on this node: `auto` means
    /// Redis when there is one; `redis` without one falls back to memory
    /// (the gateway warns when it installs such an API).
    pub fn pick(&self, backend: CacheBackend) -> &Arc<dyn CacheStore> {
        match (backend, &self.redis) {
            (CacheBackend::Auto | CacheBackend::Redis, Some(r)) => r,
            _ => &self.memory,
        }
    }
}
