//! Shared counters in Redis: every limit of a request in **one** round trip
//! (one `EVALSHA` of [`ACQUIRE`]), atomic across nodes because Redis runs a
//! script alone, timed by Redis' own clock so nodes' clocks need not agree.
//! While Redis is unreachable the backend answers per `redis.failure`:
//! in-process counters (`local`), refusals (`deny`) or admission without
//! counting (`allow`), and probes Redis again at most once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use portico_model::limits::{
    Acquire, Algorithm, BackendStats, Counters, Decision, Limits, Outcome, Outcomes, Permit,
    RedisFailure,
};
use portico_model::node::RedisSettings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisError, Script, Value};

use crate::local::LocalCounters;

/// Checks every limit of a batch, then counts them all or none.
///
/// KEYS: one per check. ARGV: three per check: kind (`w` window or period,
/// `g` GCRA, `c` concurrency) and two numbers: `w` limit and TTL in ms for
/// a new window; `g` interval in µs and burst; `c` limit and lease in ms.
/// Returns `admitted, (allowed, remaining, reset µs)…`.
pub const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local st = {}
local all = 1
for i = 1, n do
  local kind = ARGV[3*i-2]
  local a = tonumber(ARGV[3*i-1])
  local b = tonumber(ARGV[3*i])
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  if kind == 'w' then
    local ttl = redis.call('PTTL', KEYS[i])
    local fresh = ttl < 0
    if fresh then v = 0; ttl = b end
    st[i] = {v < a, v, ttl * 1000, fresh}
  elseif kind == 'g' then
    if v < now then v = now end
    st[i] = {v + a - now <= a * b, v, 0, false}
  else
    st[i] = {v < a, v, 0, false}
  end
  if not st[i][1] then all = 0 end
end
local out = {all}
for i = 1, n do
  local kind = ARGV[3*i-2]
  local a = tonumber(ARGV[3*i-1])
  local b = tonumber(ARGV[3*i])
  local s = st[i]
  local ok = s[1] and 1 or 0
  local remaining, reset
  if kind == 'w' then
    local c = s[2]
    if all == 1 then
      c = redis.call('INCR', KEYS[i])
      if s[4] then redis.call('PEXPIRE', KEYS[i], b) end
    end
    remaining = a - c
    if remaining < 0 then remaining = 0 end
    reset = s[3]
  elseif kind == 'g' then
    local tat = s[2]
    if all == 1 then
      tat = tat + a
      redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
    end
    remaining = math.floor((a * b - (tat - now)) / a)
    if remaining < 0 then remaining = 0 end
    reset = tat - now
  else
    local c = s[2]
    if all == 1 then
      c = redis.call('INCR', KEYS[i])
      redis.call('PEXPIRE', KEYS[i], b)
    end
    remaining = a - c
    if remaining < 0 then remaining = 0 end
    reset = 0
  end
  out[#out+1] = ok
  out[#out+1] = remaining
  out[#out+1] = reset
end
return out
";

/// Gives back one concurrency slot; the key goes when nothing is in flight.
pub const RELEASE: &str = r"
local v = redis.call('DECR', KEYS[1])
if v <= 0 then redis.call('DEL', KEYS[1]) end
return v
";

/// How long a concurrency count lives in Redis after its last acquisition:
/// a node that dies with requests in flight cannot give their slots back,
/// so counts are leased. Longer than any sane request.
pub const CONCURRENCY_LEASE: Duration = Duration::from_secs(300);

/// While Redis is down, at most one request per this interval tries it.
const PROBE_INTERVAL_MS: u64 = 1000;

#[derive(Debug, Default)]
struct Health {
    down: AtomicBool,
    /// Node-monotonic ms before which no request probes Redis.
    next_probe_ms: AtomicU64,
    errors: AtomicU64,
    round_trips: AtomicU64,
    fallbacks: [AtomicU64; 3],
}

/// The Redis backend.
#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    acquire: Arc<Script>,
    release: Arc<Script>,
    prefix: Arc<str>,
    timeout: Duration,
    failure: RedisFailure,
    local: LocalCounters,
    health: Arc<Health>,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .field("failure", &self.failure)
            .finish()
    }
}

impl RedisCounters {
    /// Connects lazily (a node starts while Redis is down, and counts per
    /// `failure` until it is up) and loads the scripts if Redis answers.
    /// `local` is the fallback for `redis_failure: local`.
    pub async fn connect(
        settings: &RedisSettings,
        local: LocalCounters,
    ) -> Result<Self, RedisError> {
        let conn = connection(settings)?;
        let this = Self {
            conn,
            acquire: Arc::new(Script::new(ACQUIRE)),
            release: Arc::new(Script::new(RELEASE)),
            prefix: settings.key_prefix.as_str().into(),
            timeout: settings.timeout,
            failure: settings.failure,
            local,
            health: Arc::new(Health::default()),
        };
        let mut conn = this.conn.clone();
        let loaded = tokio::time::timeout(settings.timeout * 4, async {
            this.acquire.load_async(&mut conn).await?;
            this.release.load_async(&mut conn).await
        })
        .await;
        match loaded {
            Ok(Ok(_)) => tracing::info!(url = %redacted(&settings.url), "Limits count in Redis."),
            Ok(Err(e)) => this.went_down(&e.to_string()),
            Err(_) => this.went_down("timed out"),
        }
        Ok(this)
    }

    /// The in-process counters used while Redis is down.
    pub fn local(&self) -> &LocalCounters {
        &self.local
    }

    fn went_down(&self, error: &str) {
        self.health.errors.fetch_add(1, Ordering::Relaxed);
        self.health.next_probe_ms.store(
            self.local.now_us() / 1000 + PROBE_INTERVAL_MS,
            Ordering::Relaxed,
        );
        if !self.health.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %error, failure = self.failure.as_str(), "Redis is unreachable; limits follow redis.failure until it answers.");
        }
    }

    fn came_back(&self) {
        if self.health.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; limits count in Redis.");
        }
    }

    /// Whether this request may try Redis: always while it is up; while it
    /// is down, one request per probe interval.
    fn may_try(&self) -> bool {
        if !self.health.down.load(Ordering::Relaxed) {
            return true;
        }
        let now = self.local.now_us() / 1000;
        let next = self.health.next_probe_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .health
                .next_probe_ms
                .compare_exchange(
                    next,
                    now + PROBE_INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn fallback(&self, batch: &Limits) -> Decision {
        let slot = match self.failure {
            RedisFailure::Local => 0,
            RedisFailure::Deny => 1,
            RedisFailure::Allow => 2,
        };
        self.health.fallbacks[slot].fetch_add(1, Ordering::Relaxed);
        match self.failure {
            RedisFailure::Local => self.local.decide(batch, self.local.time_of(batch)),
            RedisFailure::Deny => Decision::Unavailable,
            RedisFailure::Allow => Decision::Unmetered,
        }
    }

    /// One `EVALSHA`; on `NOSCRIPT` (Redis restarted or flushed its script
    /// cache) the script is loaded and called again.
    async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<Value, RedisError> {
        let mut cmd = Cmd::new();
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for k in keys {
            cmd.arg(k);
        }
        for a in args {
            cmd.arg(a.as_slice());
        }
        let mut conn = self.conn.clone();
        self.health.round_trips.fetch_add(1, Ordering::Relaxed);
        let first = tokio::time::timeout(self.timeout, cmd.query_async::<Value>(&mut conn)).await;
        match first {
            Err(_) => Err(timeout_error()),
            Ok(Err(e)) if e.code() == Some("NOSCRIPT") => {
                self.health.round_trips.fetch_add(2, Ordering::Relaxed);
                tokio::time::timeout(self.timeout, async {
                    script.load_async(&mut conn).await?;
                    cmd.query_async::<Value>(&mut conn).await
                })
                .await
                .unwrap_or_else(|_| Err(timeout_error()))
            }
            Ok(r) => r,
        }
    }

    async fn acquire_remote(self, batch: Limits) -> Decision {
        let mut keys = Vec::with_capacity(batch.len());
        let mut args = Vec::with_capacity(batch.len() * 3);
        for (check, key) in batch.iter() {
            keys.push(format!("{}{key}", self.prefix));
            let (kind, a, b): (&[u8], u64, u64) = match check.algorithm {
                Algorithm::Window { limit, window } => (b"w", limit, millis(window)),
                Algorithm::Period { limit, ends_in, .. } => (b"w", limit, millis(ends_in)),
                Algorithm::Gcra {
                    interval, burst, ..
                } => (
                    b"g",
                    u64::try_from(interval.as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1),
                    burst,
                ),
                Algorithm::Concurrency { limit } => (b"c", limit, millis(CONCURRENCY_LEASE)),
            };
            args.push(kind.to_vec());
            args.push(a.to_string().into_bytes());
            args.push(b.to_string().into_bytes());
        }
        let reply = self.eval(&self.acquire, &keys, &args).await;
        let parsed = reply.and_then(|v| parse(v, batch.len()));
        match parsed {
            Ok((admitted, outcomes)) => {
                self.came_back();
                if !admitted {
                    return Decision::Limited { outcomes };
                }
                let held: Vec<String> = batch
                    .iter()
                    .zip(keys)
                    .filter(|((c, _), _)| matches!(c.algorithm, Algorithm::Concurrency { .. }))
                    .map(|(_, k)| k)
                    .collect();
                let permit = (!held.is_empty()).then(|| {
                    let this = self.clone();
                    Permit::new(move || this.release_later(held))
                });
                Decision::Admitted { outcomes, permit }
            }
            Err(e) => {
                self.went_down(&e.to_string());
                self.fallback(&batch)
            }
        }
    }

    /// Gives concurrency slots back on a task of their own: called when an
    /// exchange ends, which must not wait for Redis.
    fn release_later(self, keys: Vec<String>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime (the process is ending): the lease expires them.
            return;
        };
        handle.spawn(async move {
            for key in keys {
                if let Err(e) = self.eval(&self.release, &[key], &[]).await {
                    self.health.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "A concurrency slot could not be given back to Redis; its lease will expire it.");
                }
            }
        });
    }
}

/// A lazily connecting, reconnecting connection to the node's Redis, with
/// the node's timeouts: the counters and the response cache each hold one.
pub(crate) fn connection(settings: &RedisSettings) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(settings.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.timeout))
        .set_response_timeout(Some(settings.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

pub(crate) fn timeout_error() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer in time",
    ))
}

/// The URL without a password, for logs.
pub(crate) fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_owned(),
    }
}

fn parse(v: Value, n: usize) -> Result<(bool, Outcomes), RedisError> {
    let bad = || {
        RedisError::from((
            redis::ErrorKind::Parse,
            "unexpected reply from the limit script",
        ))
    };
    let Value::Array(items) = v else {
        return Err(bad());
    };
    let ints: Vec<i64> = items
        .into_iter()
        .map(|i| match i {
            Value::Int(n) => Ok(n),
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    if ints.len() != 1 + 3 * n {
        return Err(bad());
    }
    let outcomes = ints[1..]
        .chunks_exact(3)
        .map(|c| Outcome {
            allowed: c[0] == 1,
            remaining: u64::try_from(c[1]).unwrap_or(0),
            reset: Duration::from_micros(u64::try_from(c[2]).unwrap_or(0)),
        })
        .collect();
    Ok((ints[0] == 1, outcomes))
}

impl Counters for RedisCounters {
    fn acquire(&self, batch: &Limits) -> Acquire {
        if !self.may_try() {
            return Acquire::Ready(self.fallback(batch));
        }
        let batch = batch.clone();
        Acquire::Pending(Box::pin(self.clone().acquire_remote(batch)))
    }

    fn stats(&self) -> BackendStats {
        let h = &self.health;
        BackendStats {
            backend: "redis",
            local_keys: self.local.len() as u64,
            evicted: self.local.evicted(),
            redis_errors: h.errors.load(Ordering::Relaxed),
            redis_round_trips: h.round_trips.load(Ordering::Relaxed),
            fallbacks: [0, 1, 2].map(|i| h.fallbacks[i].load(Ordering::Relaxed)),
            redis_up: !h.down.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_parsing() {
        let v = Value::Array(vec![
            Value::Int(1),
            Value::Int(1),
            Value::Int(99),
            Value::Int(60_000_000),
        ]);
        let (admitted, o) = parse(v, 1).unwrap();
        assert!(admitted);
        assert_eq!(o[0].remaining, 99);
        assert_eq!(o[0].reset, Duration::from_secs(60));
        assert!(parse(Value::Array(vec![Value::Int(1)]), 1).is_err());
        assert!(parse(Value::Nil, 0).is_err());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted("redis://:secret@host:6379/0"),
            "redis://…@host:6379/0"
        );
        assert_eq!(redacted("redis://host"), "redis://host");
    }
}
