//! The response cache in Redis, shared by every node that uses it.
//!
//! Keys: `{prefix}cache:{api}:gen` holds the API's purge generation (absent
//! is 0); an entry lives at `{prefix}cache:{api}:{generation}:{key}` with a
//! TTL of its remaining freshness. A lookup reads both in one round trip
//! (one `EVALSHA` of [`GET`]); a purge is one `INCR` of the generation, so
//! it is O(1) and reaches every node at once. Entries are in the byte
//! format of [`super::format`].
//!
//! A failed call is a miss for the request (logged, counted). While Redis
//! is down, one request per second tries it and the others miss at once,
//! so an outage costs no request the Redis timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use portico_model::cache::{CacheBackendStats, CacheError, CacheFuture, CacheStore, Found, Stored};
use portico_model::node::RedisSettings;
use redis::aio::ConnectionManager;
use redis::{Cmd, RedisError, Script, Value};

use super::format;
use crate::redis::{connection, redacted, timeout_error};

/// KEYS[1]: the generation key. ARGV[1], ARGV[2]: the entry key before and
/// after the generation. Returns `{generation, entry or false}`.
pub const GET: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. g .. ARGV[2])}
";

/// While Redis is down, at most one call per this interval tries it.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Health {
    start: Instant,
    down: AtomicBool,
    /// Milliseconds since `start` before which no call tries Redis.
    next_probe_ms: AtomicU64,
    errors: AtomicU64,
}

/// Responses in Redis.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    get: Arc<Script>,
    prefix: Arc<str>,
    timeout: Duration,
    health: Arc<Health>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisCache {
    /// Connects lazily: the node starts while Redis is down, and misses
    /// until it is up.
    pub fn connect(settings: &RedisSettings) -> Result<Self, RedisError> {
        let conn = connection(settings)?;
        tracing::debug!(url = %redacted(&settings.url), "The response cache can use Redis.");
        Ok(Self {
            conn,
            get: Arc::new(Script::new(GET)),
            prefix: format!("{}cache:", settings.key_prefix).into(),
            timeout: settings.timeout,
            health: Arc::new(Health {
                start: Instant::now(),
                down: AtomicBool::new(false),
                next_probe_ms: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.health.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Always while Redis is up; while it is down, one call per interval.
    fn may_try(&self) -> bool {
        if !self.health.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.now_ms();
        let next = self.health.next_probe_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .health
                .next_probe_ms
                .compare_exchange(
                    next,
                    now + PROBE_INTERVAL.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn failed(&self, what: &str, e: &RedisError) -> CacheError {
        self.health.errors.fetch_add(1, Ordering::Relaxed);
        self.health.next_probe_ms.store(
            self.now_ms() + PROBE_INTERVAL.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.health.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "Redis is unreachable; the response cache misses until it answers.");
        } else {
            tracing::debug!(error = %e, what, "A cache call to Redis failed.");
        }
        CacheError(format!("Redis {what} failed: {e}"))
    }

    fn answered(&self) {
        if self.health.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; the response cache uses it.");
        }
    }

    fn unavailable(&self) -> CacheError {
        CacheError("Redis is down; not tried until the next probe".to_owned())
    }

    fn api_prefix(&self, api: &str) -> String {
        format!("{}{api}:", self.prefix)
    }

    async fn query(&self, cmd: &Cmd) -> Result<Value, RedisError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, cmd.query_async::<Value>(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()))
    }

    async fn lookup(self, api: String, key: String) -> Result<Found, CacheError> {
        let base = self.api_prefix(&api);
        let mut cmd = Cmd::new();
        cmd.arg("EVALSHA")
            .arg(self.get.get_hash())
            .arg(1)
            .arg(format!("{base}gen"))
            .arg(&base)
            .arg(format!(":{key}"));
        let reply = match self.query(&cmd).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                let mut conn = self.conn.clone();
                let loaded = tokio::time::timeout(self.timeout, self.get.load_async(&mut conn))
                    .await
                    .unwrap_or_else(|_| Err(timeout_error()));
                match loaded {
                    Ok(_) => self.query(&cmd).await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        let reply = reply.map_err(|e| self.failed("lookup", &e))?;
        self.answered();
        let Value::Array(mut items) = reply else {
            return Err(CacheError(
                "unexpected reply from the cache script".to_owned(),
            ));
        };
        if items.len() != 2 {
            return Err(CacheError(
                "unexpected reply from the cache script".to_owned(),
            ));
        }
        let entry = items.pop();
        let generation = match items.pop() {
            Some(Value::BulkString(g)) => std::str::from_utf8(&g)
                .ok()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0),
            Some(Value::Int(g)) => u64::try_from(g).unwrap_or(0),
            _ => 0,
        };
        let stored = match entry {
            Some(Value::BulkString(b)) => format::decode(Bytes::from(b)),
            _ => None,
        };
        Ok(Found { generation, stored })
    }

    async fn store(self, key: String, value: Stored, ttl: Duration) -> Result<(), CacheError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = Cmd::new();
        // Encoded here, on the store's own task, not on the response path.
        cmd.arg("SET")
            .arg(key)
            .arg(format::encode(&value))
            .arg("PX")
            .arg(ms);
        self.query(&cmd)
            .await
            .map_err(|e| self.failed("store", &e))?;
        self.answered();
        Ok(())
    }

    async fn bump(self, api: String) -> Result<(), CacheError> {
        let mut cmd = Cmd::new();
        cmd.arg("INCR").arg(format!("{}gen", self.api_prefix(&api)));
        self.query(&cmd)
            .await
            .map_err(|e| self.failed("purge", &e))?;
        self.answered();
        Ok(())
    }
}

impl CacheStore for RedisCache {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get(&self, api: &str, key: &str) -> CacheFuture<Found> {
        if !self.may_try() {
            return Box::pin(std::future::ready(Err(self.unavailable())));
        }
        Box::pin(self.clone().lookup(api.to_owned(), key.to_owned()))
    }

    fn put(
        &self,
        api: &str,
        generation: u64,
        key: &str,
        value: Stored,
        ttl: Duration,
    ) -> CacheFuture<()> {
        if !self.may_try() {
            return Box::pin(std::future::ready(Err(self.unavailable())));
        }
        let full = format!("{}{generation}:{key}", self.api_prefix(api));
        Box::pin(self.clone().store(full, value, ttl))
    }

    fn purge(&self, api: &str) -> CacheFuture<()> {
        // A purge is always tried: an operator asked for it.
        Box::pin(self.clone().bump(api.to_owned()))
    }

    fn stats(&self) -> CacheBackendStats {
        CacheBackendStats {
            backend: "redis",
            errors: self.health.errors.load(Ordering::Relaxed),
            entries: 0,
            bytes: 0,
        }
    }
}
