//! Prometheus metrics, lock-free on the request path.
//!
//! Each API gets an [`ApiMetrics`] of atomic counters when a snapshot is
//! installed; a request only does relaxed atomic adds on the handle its
//! runtime already holds. The map from API name to handle is touched when a
//! snapshot is installed and when `/metrics` is scraped, never per request.
//! Metric names are defined here and nowhere else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
#[allow(clippy::disallowed_types)]
// Only locked on snapshot install and scrape, never per request.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portico_model::cache::CacheBackendStats;
use portico_model::limits::{BackendStats, LimitPolicy};

/// Metric names: the one place they are spelled.
pub mod names {
    pub const REQUESTS_TOTAL: &str = "portico_requests_total";
    pub const REQUEST_DURATION: &str = "portico_request_duration_seconds";
    pub const UPSTREAM_DURATION: &str = "portico_upstream_duration_seconds";
    pub const ACCESS_LOG_DROPPED: &str = "portico_access_log_dropped_total";
    pub const SNAPSHOT_APIS: &str = "portico_snapshot_apis";
    pub const CONNECTIONS_REFUSED: &str = "portico_connections_refused_total";
    pub const BUILD_INFO: &str = "portico_build_info";
    pub const RETRIES: &str = "portico_upstream_retries_total";
    pub const RETRY_BUDGET_EXHAUSTED: &str = "portico_upstream_retry_budget_exhausted_total";
    pub const TARGET_AVAILABLE: &str = "portico_upstream_target_available";
    pub const TARGET_HEALTHY: &str = "portico_upstream_target_healthy";
    pub const CIRCUIT_OPENED: &str = "portico_upstream_circuit_opened_total";
    pub const LIMIT_DECISIONS: &str = "portico_limit_decisions_total";
    pub const LIMIT_BACKEND: &str = "portico_limit_backend_info";
    pub const LIMIT_REDIS_UP: &str = "portico_limit_redis_up";
    pub const LIMIT_REDIS_ERRORS: &str = "portico_limit_redis_errors_total";
    pub const LIMIT_REDIS_ROUND_TRIPS: &str = "portico_limit_redis_round_trips_total";
    pub const LIMIT_FALLBACKS: &str = "portico_limit_fallbacks_total";
    pub const LIMIT_LOCAL_KEYS: &str = "portico_limit_local_keys";
    pub const LIMIT_EVICTED: &str = "portico_limit_evicted_keys_total";
    pub const CACHE_REQUESTS: &str = "portico_cache_requests_total";
    pub const CACHE_STORES: &str = "portico_cache_stores_total";
    pub const CACHE_BACKEND_ERRORS: &str = "portico_cache_backend_errors_total";
    pub const CACHE_ENTRIES: &str = "portico_cache_entries";
    pub const CACHE_BYTES: &str = "portico_cache_bytes";
    pub const VALIDATE_REQUESTS: &str = "portico_validate_requests_total";
    pub const VALIDATE_RESPONSES: &str = "portico_validate_responses_total";
}

/// What the `validate` policy decided about one request or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidateOutcome {
    /// The request matched the spec and went on.
    Passed,
    /// 400: parameters or body differ from the spec.
    Refused,
    /// 415: a media type the operation does not declare.
    Unsupported,
    /// 413: the body was over the policy's `max_body`.
    TooLarge,
    /// The upstream's answer matched its response schema.
    ResponsePassed,
    /// The upstream's answer did not match (logged; 502 under `enforce`).
    ResponseMismatch,
    /// The answer was over `max_body` and not checked (502 under
    /// `enforce`).
    ResponseTooLarge,
}

impl ValidateOutcome {
    const ALL: [ValidateOutcome; 7] = [
        ValidateOutcome::Passed,
        ValidateOutcome::Refused,
        ValidateOutcome::Unsupported,
        ValidateOutcome::TooLarge,
        ValidateOutcome::ResponsePassed,
        ValidateOutcome::ResponseMismatch,
        ValidateOutcome::ResponseTooLarge,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ValidateOutcome::Passed | ValidateOutcome::ResponsePassed => "passed",
            ValidateOutcome::Refused => "refused",
            ValidateOutcome::Unsupported => "unsupported_media_type",
            ValidateOutcome::TooLarge | ValidateOutcome::ResponseTooLarge => "too_large",
            ValidateOutcome::ResponseMismatch => "mismatch",
        }
    }

    fn is_response(self) -> bool {
        matches!(
            self,
            ValidateOutcome::ResponsePassed
                | ValidateOutcome::ResponseMismatch
                | ValidateOutcome::ResponseTooLarge
        )
    }
}

/// What the response cache did with one request (lookups) or response
/// (stores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheResult {
    /// A fresh stored response answered.
    Hit,
    /// Nothing stored for the request (or the backend failed: a miss).
    Miss,
    /// A stored response was too old for the request.
    Stale,
    /// The cache stood aside: an unsafe method, or the request asked for
    /// a fresh answer (`no-cache`, `no-store`, `max-age=0`).
    Bypass,
    /// Waited for a concurrent miss on the same key and got its response.
    Collapsed,
    /// A response was stored.
    Stored,
    /// A response was not storable (RFC 9111, `Set-Cookie`, status).
    Uncacheable,
    /// A response's body was larger than `max_entry_size`.
    TooLarge,
}

impl CacheResult {
    const ALL: [CacheResult; 8] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Stale,
        CacheResult::Bypass,
        CacheResult::Collapsed,
        CacheResult::Stored,
        CacheResult::Uncacheable,
        CacheResult::TooLarge,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
            CacheResult::Bypass => "bypass",
            CacheResult::Collapsed => "collapsed",
            CacheResult::Stored => "stored",
            CacheResult::Uncacheable => "uncacheable",
            CacheResult::TooLarge => "too_large",
        }
    }

    /// Lookups count in `portico_cache_requests_total`, stores in
    /// `portico_cache_stores_total`.
    const fn is_store(self) -> bool {
        matches!(
            self,
            CacheResult::Stored | CacheResult::Uncacheable | CacheResult::TooLarge
        )
    }
}

/// What became of one limit of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOutcome {
    /// The limit had room and counted the request.
    Allowed,
    /// The limit had no room: the request was refused (429).
    Limited,
    /// Redis was down and `redis.failure: deny` refused the request (503).
    Unavailable,
    /// Redis was down and `redis.failure: allow` admitted it uncounted.
    Unmetered,
}

impl LimitOutcome {
    const ALL: [LimitOutcome; 4] = [
        LimitOutcome::Allowed,
        LimitOutcome::Limited,
        LimitOutcome::Unavailable,
        LimitOutcome::Unmetered,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            LimitOutcome::Allowed => "allowed",
            LimitOutcome::Limited => "limited",
            LimitOutcome::Unavailable => "unavailable",
            LimitOutcome::Unmetered => "unmetered",
        }
    }
}

/// The `api` label of requests that matched no API.
pub const UNMATCHED: &str = "_unmatched";

/// Bucket upper bounds in microseconds (0.5 ms … 60 s).
const BUCKETS_US: [u64; 16] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts; the last slot is `+Inf`.
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, api: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = BUCKETS_US
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| format_seconds(*b));
            let _ = writeln!(
                out,
                "{name}_bucket{{api=\"{api}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = format_seconds(self.sum_us.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_sum{{api=\"{api}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{api=\"{api}\"}} {cumulative}");
    }
}

fn format_seconds(us: u64) -> String {
    let s = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    let s = s.trim_end_matches('0');
    s.strip_suffix('.')
        .map_or_else(|| s.to_owned(), str::to_owned)
}

/// Counters of one API.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Requests by status class 1xx … 5xx.
    by_class: [AtomicU64; 5],
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    retries: AtomicU64,
    retry_budget_exhausted: AtomicU64,
    /// Limit decisions by policy kind and outcome.
    limits: [[AtomicU64; 4]; LimitPolicy::ALL.len()],
    /// Response cache results.
    cache: [AtomicU64; CacheResult::ALL.len()],
    /// `validate` decisions.
    validate: [AtomicU64; ValidateOutcome::ALL.len()],
}

impl ApiMetrics {
    /// Counts one limit decision.
    #[inline]
    pub(crate) fn limit(&self, policy: LimitPolicy, outcome: LimitOutcome) {
        self.limits[policy.index()][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one response cache result.
    #[inline]
    pub(crate) fn cache(&self, result: CacheResult) {
        self.cache[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one `validate` decision.
    #[inline]
    pub(crate) fn validate(&self, outcome: ValidateOutcome) {
        self.validate[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry that was sent.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry the API's retry budget refused.
    pub(crate) fn retry_budget_exhausted(&self) {
        self.retry_budget_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one finished exchange.
    #[inline]
    pub fn record(&self, status: u16, total: Duration, upstream: Option<Duration>) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.request_duration.observe(total);
        if let Some(u) = upstream {
            self.upstream_duration.observe(u);
        }
    }
}

/// All metrics of a node.
#[derive(Debug, Default)]
pub struct Metrics {
    #[allow(clippy::disallowed_types)]
    apis: Mutex<BTreeMap<String, Arc<ApiMetrics>>>,
    unmatched: Arc<ApiMetrics>,
    pub(crate) access_log_dropped: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    snapshot_apis: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle for API `name`, created on first use and kept across
    /// reloads so counters stay monotonic.
    pub fn api(&self, name: &str) -> Arc<ApiMetrics> {
        let mut apis = self.apis.lock().unwrap_or_else(|e| e.into_inner());
        apis.entry(name.to_owned()).or_default().clone()
    }

    pub(crate) fn unmatched(&self) -> &Arc<ApiMetrics> {
        &self.unmatched
    }

    pub(crate) fn set_apis(&self, n: usize) {
        self.snapshot_apis.store(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let apis: Vec<(String, Arc<ApiMetrics>)> = {
            let map = self.apis.lock().unwrap_or_else(|e| e.into_inner());
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let all = || {
            apis.iter()
                .map(|(n, m)| (n.as_str(), m.as_ref()))
                .chain(std::iter::once((UNMATCHED, self.unmatched.as_ref())))
        };
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            names::BUILD_INFO,
            "gauge",
            "Portico build information.",
        );
        let _ = writeln!(
            out,
            "{}{{version=\"{}\"}} 1",
            names::BUILD_INFO,
            env!("CARGO_PKG_VERSION")
        );

        family(
            &mut out,
            names::REQUESTS_TOTAL,
            "counter",
            "Requests answered, by API and status class.",
        );
        for (api, m) in all() {
            for (i, c) in m.by_class.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{}{{api=\"{api}\",status_class=\"{}xx\"}} {n}",
                    names::REQUESTS_TOTAL,
                    i + 1
                );
            }
        }
        family(
            &mut out,
            names::REQUEST_DURATION,
            "histogram",
            "Time from receiving a request to sending the last response byte.",
        );
        for (api, m) in all() {
            m.request_duration
                .render(&mut out, names::REQUEST_DURATION, api);
        }
        family(
            &mut out,
            names::UPSTREAM_DURATION,
            "histogram",
            "Time from sending a request upstream to receiving its response headers.",
        );
        for (api, m) in all() {
            m.upstream_duration
                .render(&mut out, names::UPSTREAM_DURATION, api);
        }
        for (name, help, counter) in [
            (
                names::RETRIES,
                "Retries sent to an upstream, by API.",
                (|m: &ApiMetrics| &m.retries) as fn(&ApiMetrics) -> &AtomicU64,
            ),
            (
                names::RETRY_BUDGET_EXHAUSTED,
                "Retries not sent because the API's retry budget was spent, by API.",
                |m: &ApiMetrics| &m.retry_budget_exhausted,
            ),
        ] {
            family(&mut out, name, "counter", help);
            for (api, m) in apis.iter().map(|(n, m)| (n.as_str(), m.as_ref())) {
                let _ = writeln!(
                    out,
                    "{name}{{api=\"{api}\"}} {}",
                    counter(m).load(Ordering::Relaxed)
                );
            }
        }
        family(
            &mut out,
            names::LIMIT_DECISIONS,
            "counter",
            "Limit decisions, by API, policy and outcome (series appear once counted).",
        );
        for (api, m) in apis.iter().map(|(n, m)| (n.as_str(), m.as_ref())) {
            for policy in LimitPolicy::ALL {
                for outcome in LimitOutcome::ALL {
                    let n = m.limits[policy.index()][outcome as usize].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "{}{{api=\"{api}\",policy=\"{}\",outcome=\"{}\"}} {n}",
                            names::LIMIT_DECISIONS,
                            policy.as_str(),
                            outcome.as_str()
                        );
                    }
                }
            }
        }
        for (name, help, stores) in [
            (
                names::CACHE_REQUESTS,
                "Response cache lookups, by API and result (series appear once counted).",
                false,
            ),
            (
                names::CACHE_STORES,
                "Responses the cache stored or passed by, by API and result (series appear once counted).",
                true,
            ),
        ] {
            family(&mut out, name, "counter", help);
            for (api, m) in apis.iter().map(|(n, m)| (n.as_str(), m.as_ref())) {
                for result in CacheResult::ALL.iter().filter(|r| r.is_store() == stores) {
                    let n = m.cache[*result as usize].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "{name}{{api=\"{api}\",result=\"{}\"}} {n}",
                            result.as_str()
                        );
                    }
                }
            }
        }
        for (name, help, responses) in [
            (
                names::VALIDATE_REQUESTS,
                "Requests the validate policy checked, by API and outcome (series appear once counted).",
                false,
            ),
            (
                names::VALIDATE_RESPONSES,
                "Upstream answers the validate policy checked, by API and outcome (series appear once counted).",
                true,
            ),
        ] {
            family(&mut out, name, "counter", help);
            for (api, m) in apis.iter().map(|(n, m)| (n.as_str(), m.as_ref())) {
                for outcome in ValidateOutcome::ALL
                    .iter()
                    .filter(|o| o.is_response() == responses)
                {
                    let n = m.validate[*outcome as usize].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "{name}{{api=\"{api}\",outcome=\"{}\"}} {n}",
                            outcome.as_str()
                        );
                    }
                }
            }
        }
        family(
            &mut out,
            names::ACCESS_LOG_DROPPED,
            "counter",
            "Access log lines dropped because the writer fell behind.",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::ACCESS_LOG_DROPPED,
            self.access_log_dropped.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            names::CONNECTIONS_REFUSED,
            "counter",
            "Connections closed at accept because server.max_connections were open.",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::CONNECTIONS_REFUSED,
            self.connections_refused.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            names::SNAPSHOT_APIS,
            "gauge",
            "APIs in the live snapshot.",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::SNAPSHOT_APIS,
            self.snapshot_apis.load(Ordering::Relaxed)
        );
        out
    }
}

/// Starts a metric family: its `# HELP` and `# TYPE` lines.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The response cache backends' own metrics.
pub fn render_cache_backends(out: &mut String, stats: &[CacheBackendStats]) {
    family(
        out,
        names::CACHE_BACKEND_ERRORS,
        "counter",
        "Response cache backend calls that failed or timed out (each served as a miss).",
    );
    for s in stats {
        let _ = writeln!(
            out,
            "{}{{backend=\"{}\"}} {}",
            names::CACHE_BACKEND_ERRORS,
            s.backend,
            s.errors
        );
    }
    for (name, help, value) in [
        (
            names::CACHE_ENTRIES,
            "Entries held by the in-process response cache.",
            (|s: &CacheBackendStats| s.entries) as fn(&CacheBackendStats) -> u64,
        ),
        (
            names::CACHE_BYTES,
            "Bytes held by the in-process response cache (entry weights).",
            |s: &CacheBackendStats| s.bytes,
        ),
    ] {
        family(out, name, "gauge", help);
        for s in stats.iter().filter(|s| s.backend == "memory") {
            let _ = writeln!(out, "{name}{{backend=\"memory\"}} {}", value(s));
        }
    }
}

/// The counter backend's own metrics.
pub fn render_backend(out: &mut String, s: &BackendStats) {
    let lines: [(&str, &str, &str, String); 6] = [
        (
            names::LIMIT_BACKEND,
            "gauge",
            "The counter backend of this node.",
            format!("{{backend=\"{}\"}} 1", s.backend),
        ),
        (
            names::LIMIT_REDIS_UP,
            "gauge",
            "1 while Redis answers (always 1 for in-process counters).",
            format!(" {}", u8::from(s.redis_up)),
        ),
        (
            names::LIMIT_REDIS_ERRORS,
            "counter",
            "Redis calls for limits that failed or timed out.",
            format!(" {}", s.redis_errors),
        ),
        (
            names::LIMIT_REDIS_ROUND_TRIPS,
            "counter",
            "Redis round trips made for limits (one per request with limits, plus concurrency releases).",
            format!(" {}", s.redis_round_trips),
        ),
        (
            names::LIMIT_LOCAL_KEYS,
            "gauge",
            "Limit keys held in this node's memory.",
            format!(" {}", s.local_keys),
        ),
        (
            names::LIMIT_EVICTED,
            "counter",
            "Idle limit keys removed from this node's memory.",
            format!(" {}", s.evicted),
        ),
    ];
    for (name, kind, help, value) in lines {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name}{value}");
    }
    let name = names::LIMIT_FALLBACKS;
    family(
        out,
        name,
        "counter",
        "Requests whose limits were decided without Redis while it was down, by redis.failure mode.",
    );
    for (mode, n) in ["local", "deny", "allow"].iter().zip(s.fallbacks) {
        let _ = writeln!(out, "{name}{{mode=\"{mode}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_decisions_are_rendered() {
        let m = Metrics::new();
        let a = m.api("orders");
        a.limit(LimitPolicy::RateLimit, LimitOutcome::Limited);
        let text = m.render();
        assert!(
            text.contains(
                "portico_limit_decisions_total{api=\"orders\",policy=\"rate_limit\",outcome=\"limited\"} 1"
            ),
            "{text}"
        );
        let mut out = String::new();
        render_backend(
            &mut out,
            &BackendStats {
                backend: "redis",
                fallbacks: [3, 0, 0],
                ..BackendStats::default()
            },
        );
        assert!(
            out.contains("portico_limit_backend_info{backend=\"redis\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("portico_limit_fallbacks_total{mode=\"local\"} 3"),
            "{out}"
        );
        assert!(out.contains("portico_limit_redis_up 0"), "{out}");
    }

    #[test]
    fn validate_outcomes_are_rendered() {
        let m = Metrics::new();
        let a = m.api("orders");
        a.validate(ValidateOutcome::Passed);
        a.validate(ValidateOutcome::Refused);
        a.validate(ValidateOutcome::Refused);
        a.validate(ValidateOutcome::ResponseMismatch);
        let text = m.render();
        for line in [
            "portico_validate_requests_total{api=\"orders\",outcome=\"passed\"} 1",
            "portico_validate_requests_total{api=\"orders\",outcome=\"refused\"} 2",
            "portico_validate_responses_total{api=\"orders\",outcome=\"mismatch\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains("outcome=\"too_large\""), "{text}");
    }

    #[test]
    fn cache_results_are_rendered() {
        let m = Metrics::new();
        let a = m.api("orders");
        a.cache(CacheResult::Hit);
        a.cache(CacheResult::Hit);
        a.cache(CacheResult::TooLarge);
        let text = m.render();
        assert!(
            text.contains("portico_cache_requests_total{api=\"orders\",result=\"hit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("portico_cache_stores_total{api=\"orders\",result=\"too_large\"} 1"),
            "{text}"
        );
        assert!(!text.contains("result=\"miss\""), "{text}");
        let mut out = String::new();
        render_cache_backends(
            &mut out,
            &[
                CacheBackendStats {
                    backend: "memory",
                    entries: 3,
                    bytes: 300,
                    errors: 0,
                },
                CacheBackendStats {
                    backend: "redis",
                    errors: 2,
                    ..CacheBackendStats::default()
                },
            ],
        );
        assert!(
            out.contains("portico_cache_backend_errors_total{backend=\"redis\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("portico_cache_entries{backend=\"memory\"} 3"),
            "{out}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        let a = m.api("orders");
        a.record(
            200,
            Duration::from_micros(400),
            Some(Duration::from_micros(300)),
        );
        a.record(204, Duration::from_millis(3), None);
        a.record(502, Duration::from_secs(100), None);
        let text = m.render();
        assert!(
            text.contains("portico_requests_total{api=\"orders\",status_class=\"2xx\"} 2"),
            "{text}"
        );
        assert!(text.contains("portico_requests_total{api=\"orders\",status_class=\"5xx\"} 1"));
        assert!(
            text.contains(
                "portico_request_duration_seconds_bucket{api=\"orders\",le=\"0.0005\"} 1"
            )
        );
        assert!(
            text.contains("portico_request_duration_seconds_bucket{api=\"orders\",le=\"0.005\"} 2")
        );
        assert!(
            text.contains("portico_request_duration_seconds_bucket{api=\"orders\",le=\"+Inf\"} 3")
        );
        assert!(text.contains("portico_request_duration_seconds_count{api=\"orders\"} 3"));
        assert!(text.contains("portico_request_duration_seconds_sum{api=\"orders\"} 100.0034"));
        assert!(text.contains("portico_upstream_duration_seconds_count{api=\"orders\"} 1"));
        assert!(text.contains("portico_requests_total{api=\"_unmatched\",status_class=\"4xx\"} 0"));
    }

    #[test]
    fn handles_survive_lookups() {
        let m = Metrics::new();
        assert!(Arc::ptr_eq(&m.api("a"), &m.api("a")));
    }

    #[test]
    fn seconds_format() {
        assert_eq!(format_seconds(500), "0.0005");
        assert_eq!(format_seconds(1_000_000), "1");
        assert_eq!(format_seconds(2_500_000), "2.5");
        assert_eq!(format_seconds(0), "0");
    }
}
