//! The counter interface: what traffic policies ask of a counter backend
//! (in-process or Redis) and what it answers. See `docs/adr/0004-counters.md`.
//!
//! Traffic policies do not count themselves. During the traffic phase each
//! one adds a [`LimitCheck`] to the request's [`Limits`] batch; after the
//! phase the gateway hands the whole batch to the node's [`Counters`] once,
//! so a request with several limits costs one backend call (one Redis round
//! trip). A batch is all-or-nothing: either every check passes and each is
//! counted, or the request is refused and nothing is counted.

use std::fmt::{self, Debug};
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

/// How one limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// At most `limit` requests in a window that opens with the key's first
    /// request and lasts `window` (`rate_limit`, product `rate_limit`).
    Window { limit: u64, window: Duration },
    /// At most `limit` requests in a fixed period (a calendar minute, hour,
    /// day or month, or an epoch-aligned product quota window) that ends in
    /// `ends_in`. The key names the period, so a new period is a new key.
    Period {
        limit: u64,
        period: Duration,
        ends_in: Duration,
    },
    /// Generic cell rate: one request each `interval`, up to `burst` at
    /// once (`spike_arrest`). `rate` and `per` are the configured rate
    /// (`10/s`: 10 per 1 s), shown in the RateLimit fields.
    Gcra {
        interval: Duration,
        burst: u64,
        rate: u64,
        per: Duration,
    },
    /// At most `limit` requests in flight at once (`concurrency`); a
    /// request's slot is given back when its exchange ends.
    Concurrency { limit: u64 },
}

impl Algorithm {
    /// The quota `q` of the `RateLimit-Policy` field.
    pub fn quota(&self) -> u64 {
        match *self {
            Algorithm::Window { limit, .. }
            | Algorithm::Period { limit, .. }
            | Algorithm::Concurrency { limit } => limit,
            Algorithm::Gcra { rate, .. } => rate,
        }
    }

    /// The window `w` in seconds, where the policy has one.
    pub fn window_secs(&self) -> Option<u64> {
        match *self {
            Algorithm::Window { window, .. } => Some(window.as_secs().max(1)),
            Algorithm::Period { period, .. } => Some(period.as_secs().max(1)),
            Algorithm::Gcra { per, .. } => Some(per.as_secs().max(1)),
            Algorithm::Concurrency { .. } => None,
        }
    }
}

/// Which kind of limit a check belongs to, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitPolicy {
    RateLimit,
    SpikeArrest,
    Quota,
    Concurrency,
    /// A product's `rate_limit`, applied to its subscribed apps.
    ProductRateLimit,
    /// A product's `quota`.
    ProductQuota,
}

impl LimitPolicy {
    pub const ALL: [LimitPolicy; 6] = [
        LimitPolicy::RateLimit,
        LimitPolicy::SpikeArrest,
        LimitPolicy::Quota,
        LimitPolicy::Concurrency,
        LimitPolicy::ProductRateLimit,
        LimitPolicy::ProductQuota,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LimitPolicy::RateLimit => "rate_limit",
            LimitPolicy::SpikeArrest => "spike_arrest",
            LimitPolicy::Quota => "quota",
            LimitPolicy::Concurrency => "concurrency",
            LimitPolicy::ProductRateLimit => "product_rate_limit",
            LimitPolicy::ProductQuota => "product_quota",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One limit to check for one request.
#[derive(Clone, Debug)]
pub struct LimitCheck {
    /// The policy identifier of the RateLimit fields and of
    /// `violated-policies` (`"app"`).
    pub name: Arc<str>,
    pub policy: LimitPolicy,
    pub algorithm: Algorithm,
    /// This check's key, a range of [`Limits::keys`].
    key: Range<usize>,
}

/// The limits of one request: checks added by the traffic phase, keys kept
/// in one shared buffer. Up to two checks (nearly every request under a
/// limit) and their keys, up to 128 bytes in all, are held inline: a
/// batch allocates nothing (three allocations a request otherwise, for
/// the keys, the checks and the outcomes).
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// The keys, each written whole as UTF-8 by a [`KeyWriter`].
    keys: KeyBuf,
    checks: SmallVec<[LimitCheck; 2]>,
    /// What the backend answered, index for index with the checks; empty
    /// until the batch ran.
    pub outcomes: Outcomes,
    /// When the request arrived, where the gateway knows it: an in-process
    /// backend counts the batch at that instant rather than reading the
    /// clock again (the checks run microseconds later).
    pub arrived: Option<Instant>,
}

/// A batch's outcomes, index for index with its checks.
pub type Outcomes = SmallVec<[Outcome; 2]>;

/// How many bytes of keys a batch holds without allocating.
const INLINE_KEYS: usize = 128;

/// The bytes of a batch's keys: in the batch up to [`INLINE_KEYS`], all
/// of them on the heap past that. Each key is a few short pieces (a
/// prefix, names, a number); a piece costs one copy here, where
/// `SmallVec::extend_from_slice` made two calls (an empty move of the
/// tail, then the copy).
#[derive(Clone, Debug)]
struct KeyBuf {
    /// Bytes used of `inline` while `heap` is empty.
    len: usize,
    inline: [u8; INLINE_KEYS],
    /// Every byte, once the keys outgrew `inline` (never empty then).
    heap: Vec<u8>,
}

impl Default for KeyBuf {
    fn default() -> Self {
        Self {
            len: 0,
            inline: [0; INLINE_KEYS],
            heap: Vec::new(),
        }
    }
}

impl KeyBuf {
    fn push(&mut self, s: &[u8]) {
        if self.heap.is_empty() {
            let end = self.len + s.len();
            if let Some(room) = self.inline.get_mut(self.len..end) {
                room.copy_from_slice(s);
                self.len = end;
                return;
            }
            self.heap.reserve(end.max(2 * INLINE_KEYS));
            self.heap
                .extend_from_slice(self.inline.get(..self.len).unwrap_or_default());
        }
        self.heap.extend_from_slice(s);
    }

    fn as_bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            self.inline.get(..self.len).unwrap_or_default()
        } else {
            &self.heap
        }
    }

    fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

/// Writes one check's key into the batch's buffer (text only, so every
/// key is UTF-8).
pub struct KeyWriter<'a>(&'a mut KeyBuf);

impl KeyWriter<'_> {
    pub fn push_str(&mut self, s: &str) {
        self.0.push(s.as_bytes());
    }

    pub fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }
}

impl fmt::Write for KeyWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl Limits {
    /// Adds a check whose key `write_key` writes. Keys are compared as
    /// bytes by the backends; they must be unique per counter.
    pub fn push(
        &mut self,
        name: &Arc<str>,
        policy: LimitPolicy,
        algorithm: Algorithm,
        write_key: impl FnOnce(&mut KeyWriter<'_>),
    ) {
        let start = self.keys.len();
        write_key(&mut KeyWriter(&mut self.keys));
        self.checks.push(LimitCheck {
            name: name.clone(),
            policy,
            algorithm,
            key: start..self.keys.len(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// The checks with their keys, in the order they were added. Each key
    /// is checked for UTF-8 as it is read: where only the checks are
    /// needed, [`Self::checks`] is cheaper.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&LimitCheck, &str)> {
        self.checks.iter().map(|c| (c, self.key_of(c)))
    }

    /// The key of one of this batch's checks.
    pub fn key_of(&self, check: &LimitCheck) -> &str {
        // A key is whole `&str` writes, so always UTF-8; the check goes a
        // word at a time over ASCII.
        std::str::from_utf8(self.key_bytes(check)).unwrap_or_default()
    }

    /// The bytes of one of this batch's checks' key.
    fn key_bytes(&self, check: &LimitCheck) -> &[u8] {
        self.keys
            .as_bytes()
            .get(check.key.clone())
            .unwrap_or_default()
    }

    pub fn checks(&self) -> &[LimitCheck] {
        &self.checks
    }

    /// The checks with their keys as bytes, for backends that compare keys
    /// without reading them as text (no UTF-8 check).
    pub fn iter_bytes(&self) -> impl ExactSizeIterator<Item = (&LimitCheck, &[u8])> {
        self.checks.iter().map(|c| (c, self.key_bytes(c)))
    }
}

/// The state of one limit after a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this limit had room for the request.
    pub allowed: bool,
    /// Requests left (after this one, when the batch was admitted).
    pub remaining: u64,
    /// Time until the limit has room again (window end, next GCRA slot);
    /// zero when there is room now or it cannot be known (concurrency).
    pub reset: Duration,
}

/// What the backend decided for a whole batch.
#[derive(Debug)]
pub enum Decision {
    /// Every check passed and was counted. Outcomes are index for index
    /// with the batch's checks; the permit, if any, holds concurrency slots
    /// until it is dropped.
    Admitted {
        outcomes: Outcomes,
        permit: Option<Permit>,
    },
    /// At least one check failed; nothing was counted.
    Limited { outcomes: Outcomes },
    /// The shared backend is unreachable and `redis_failure: deny` says to
    /// refuse.
    Unavailable,
    /// The shared backend is unreachable and `redis_failure: allow` says to
    /// admit without counting.
    Unmetered,
}

/// A decision that is ready now, or has to wait (a Redis round trip). The
/// future owns what it needs. As with [`crate::policy::Auth::Pending`], the
/// in-process backend never boxes a future.
pub enum Acquire {
    Ready(Decision),
    Pending(Pin<Box<dyn Future<Output = Decision> + Send + 'static>>),
}

impl Debug for Acquire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Acquire::Ready(d) => f.debug_tuple("Ready").field(d).finish(),
            Acquire::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// Concurrency slots taken by an admitted request; dropping the permit
/// gives them back. The gateway keeps it with the exchange, so slots are
/// returned when the response body ends, fails or is dropped.
pub struct Permit(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Permit {
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(release)))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

impl Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

/// Counters of a backend, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// `local` or `redis`.
    pub backend: &'static str,
    /// Keys held in this node's memory (the in-process counters, or the
    /// fallback counters of the Redis backend).
    pub local_keys: u64,
    /// Idle keys removed from memory.
    pub evicted: u64,
    /// Redis calls that failed or timed out.
    pub redis_errors: u64,
    /// Redis round trips made (batches and releases).
    pub redis_round_trips: u64,
    /// Batches decided without Redis because it was down, by
    /// `redis_failure` mode: `local`, `deny`, `allow`.
    pub fallbacks: [u64; 3],
    /// 1 while Redis answers (always 1 for the in-process backend).
    pub redis_up: bool,
}

/// A node's counters: one per node, shared by every snapshot, so counts
/// survive reloads.
pub trait Counters: Send + Sync + Debug {
    /// Checks every limit of `batch` and counts them if all pass.
    fn acquire(&self, batch: &Limits) -> Acquire;

    fn stats(&self) -> BackendStats;
}

/// What to do with limits while Redis is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisFailure {
    /// Count on this node alone until Redis answers again.
    #[default]
    Local,
    /// Refuse requests under a limit (503 `limits-unavailable`).
    Deny,
    /// Admit requests under a limit without counting them.
    Allow,
}

impl RedisFailure {
    pub const fn as_str(self) -> &'static str {
        match self {
            RedisFailure::Local => "local",
            RedisFailure::Deny => "deny",
            RedisFailure::Allow => "allow",
        }
    }
}

/// Seconds as shown in the RateLimit fields and `Retry-After`: rounded up,
/// so a client that waits that long finds room.
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_buffer() {
        let mut l = Limits::default();
        let name: Arc<str> = "app".into();
        let a = Algorithm::Concurrency { limit: 1 };
        l.push(&name, LimitPolicy::RateLimit, a, |k| k.push_str("one"));
        l.push(&name, LimitPolicy::Quota, a, |k| k.push_str("two"));
        let keys: Vec<&str> = l.iter().map(|(_, k)| k).collect();
        assert_eq!(keys, ["one", "two"]);
        // A third check and long keys go to the heap, whole.
        let long = "k".repeat(200);
        l.push(&name, LimitPolicy::Quota, a, |k| k.push_str(&long));
        let keys: Vec<&str> = l.iter().map(|(_, k)| k).collect();
        assert_eq!(keys, ["one", "two", long.as_str()]);
    }

    /// A key whose pieces cross the end of the inline bytes moves every
    /// key to the heap, whole and in order.
    #[test]
    fn keys_move_to_the_heap_whole() {
        let mut l = Limits::default();
        let name: Arc<str> = "app".into();
        let a = Algorithm::Concurrency { limit: 1 };
        let sixty = "s".repeat(60);
        l.push(&name, LimitPolicy::RateLimit, a, |k| {
            k.push_str(&sixty);
            k.push_str(&sixty);
        });
        l.push(&name, LimitPolicy::Quota, a, |k| {
            k.push_str("abcdefgh");
            k.push(':');
            k.push_str("tail");
        });
        l.push(&name, LimitPolicy::Quota, a, |k| k.push_str(""));
        let keys: Vec<&str> = l.iter().map(|(_, k)| k).collect();
        assert_eq!(keys, [sixty.repeat(2).as_str(), "abcdefgh:tail", ""]);
        assert!(
            !l.keys.heap.is_empty(),
            "past 128 bytes the keys are on the heap"
        );
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    #[test]
    fn permit_releases_once_on_drop() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let m = n.clone();
        drop(Permit::new(move || {
            m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        assert_eq!(n.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
