//! Response cache backends behind [`portico_model::cache::CacheStore`]:
//! [`MemoryCache`] in the node's memory (moka, bounded by size) and
//! [`RedisCache`] shared by every node that uses the same Redis. The node
//! makes both with [`cache_stores`]; each API's `cache` policy picks one.
//! See `docs/adr/0006-response-cache.md`.

pub mod format;
mod memory;
mod redis;

use std::sync::Arc;

use portico_model::cache::CacheStores;
use portico_model::node::RedisSettings;

pub use self::memory::MemoryCache;
pub use self::redis::{GET, RedisCache};
use crate::StartError;

/// The node's cache backends: in-process, bounded by `max_size` bytes, and
/// Redis when `redis` is set. Must run inside a Tokio runtime.
pub fn cache_stores(
    redis: Option<&RedisSettings>,
    max_size: u64,
) -> Result<CacheStores, StartError> {
    let redis = match redis {
        Some(settings) => Some(Arc::new(
            RedisCache::connect(settings)
                .map_err(|e| StartError(format!("invalid Redis settings: {e}")))?,
        ) as Arc<dyn portico_model::cache::CacheStore>),
        None => None,
    };
    Ok(CacheStores {
        memory: Arc::new(MemoryCache::new(max_size)),
        redis,
    })
}
