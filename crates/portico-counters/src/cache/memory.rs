//! The in-process cache: a moka cache bounded by the entries' weight
//! (`server.cache.max_size`), each entry living for its own freshness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use moka::Expiry;
use portico_model::cache::{CacheBackendStats, CacheFuture, CacheStore, Found, Stored};

#[derive(Clone)]
struct Entry {
    value: Stored,
    ttl: Duration,
}

/// Each entry expires after the time it was stored for.
struct ByTtl;

impl Expiry<String, Entry> for ByTtl {
    fn expire_after_create(&self, _: &String, v: &Entry, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Responses in this node's memory.
#[derive(Clone)]
pub struct MemoryCache {
    entries: moka::sync::Cache<String, Entry>,
    /// Purge generation per API; absent is 0. Written on purge only.
    generations: Arc<DashMap<String, u64>>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryCache {
    /// A cache holding at most `max_size` bytes of entries.
    pub fn new(max_size: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_size)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.value.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(ByTtl)
            .support_invalidation_closures()
            .build();
        Self {
            entries,
            generations: Arc::new(DashMap::new()),
        }
    }

    fn generation(&self, api: &str) -> u64 {
        self.generations.get(api).map_or(0, |g| *g)
    }

    fn full_key(api: &str, generation: u64, key: &str) -> String {
        let mut k = String::with_capacity(api.len() + key.len() + 24);
        k.push_str(api);
        k.push('/');
        k.push_str(&generation.to_string());
        k.push('/');
        k.push_str(key);
        k
    }

    /// Looks `key` up now (the store's futures are ready at once).
    pub fn lookup(&self, api: &str, key: &str) -> Found {
        let generation = self.generation(api);
        let stored = self
            .entries
            .get(&Self::full_key(api, generation, key))
            .map(|e| e.value);
        Found { generation, stored }
    }

    pub fn insert(&self, api: &str, generation: u64, key: &str, value: Stored, ttl: Duration) {
        if ttl.is_zero() || generation != self.generation(api) {
            // Purged since the lookup: the response may predate the purge.
            return;
        }
        self.entries
            .insert(Self::full_key(api, generation, key), Entry { value, ttl });
    }

    /// Bumps the API's generation; older entries are never found again
    /// and are dropped in the background.
    pub fn purge_now(&self, api: &str) {
        let old = {
            let mut g = self.generations.entry(api.to_owned()).or_insert(0);
            let old = *g;
            *g += 1;
            old
        };
        let prefix = format!("{api}/{old}/");
        let _ = self
            .entries
            .invalidate_entries_if(move |k, _| k.starts_with(&prefix));
    }
}

impl CacheStore for MemoryCache {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get(&self, api: &str, key: &str) -> CacheFuture<Found> {
        let found = self.lookup(api, key);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn put(
        &self,
        api: &str,
        generation: u64,
        key: &str,
        value: Stored,
        ttl: Duration,
    ) -> CacheFuture<()> {
        self.insert(api, generation, key, value, ttl);
        Box::pin(std::future::ready(Ok(())))
    }

    fn purge(&self, api: &str) -> CacheFuture<()> {
        self.purge_now(api);
        Box::pin(std::future::ready(Ok(())))
    }

    fn stats(&self) -> CacheBackendStats {
        self.entries.run_pending_tasks();
        CacheBackendStats {
            backend: "memory",
            errors: 0,
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use portico_model::cache::CachedResponse;

    fn response(body: &'static [u8]) -> Stored {
        Stored::Response(Arc::new(CachedResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body),
            stored_at_ms: 0,
            initial_age: Duration::ZERO,
            lifetime: Duration::from_secs(60),
        }))
    }

    #[test]
    fn purge_hides_older_generations() {
        let c = MemoryCache::new(1 << 20);
        let f = c.lookup("orders", "k");
        assert_eq!(f.stored, None);
        c.insert(
            "orders",
            f.generation,
            "k",
            response(b"a"),
            Duration::from_secs(60),
        );
        c.insert("users", 0, "k", response(b"b"), Duration::from_secs(60));
        assert_eq!(c.lookup("orders", "k").stored, Some(response(b"a")));
        c.purge_now("orders");
        assert_eq!(c.lookup("orders", "k").stored, None);
        assert_eq!(c.lookup("users", "k").stored, Some(response(b"b")));
        // A store begun before the purge is dropped.
        c.insert(
            "orders",
            f.generation,
            "k",
            response(b"a"),
            Duration::from_secs(60),
        );
        assert_eq!(c.lookup("orders", "k").stored, None);
    }

    #[test]
    fn bounded_by_weight() {
        let c = MemoryCache::new(10_000);
        static BODY: [u8; 1000] = [b'x'; 1000];
        for i in 0..100 {
            c.insert(
                "a",
                0,
                &format!("k{i}"),
                response(&BODY),
                Duration::from_secs(60),
            );
        }
        c.entries.run_pending_tasks();
        assert!(
            c.entries.weighted_size() <= 10_000,
            "{}",
            c.entries.weighted_size()
        );
    }
}
