//! Target health: the verdict of active checks, the per-target circuit
//! breaker fed by live traffic (passive health), and the per-API retry
//! budget.
//!
//! Everything a request reads or writes here is an atomic owned by one API
//! runtime; nothing is locked. The runtime keeps these across reloads that
//! leave the API's upstream unchanged, so an open circuit stays open and a
//! target known to be down stays down.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, header};
use http_body_util::BodyExt;
use portico_model::api::{CircuitBreaker, HealthCheck, Retries, Upstream};
use serde::Serialize;

use crate::body::RequestBody;
use crate::client::UpstreamClient;

/// Milliseconds since the first call in this process: a clock for
/// deadlines that costs one `Instant::now()`.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Whether a target can take a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Availability {
    Yes,
    /// Its circuit's cool-down is over: one request may go as a probe.
    Probe,
    No,
}

/// What one target's health looks like to the request path.
#[derive(Debug)]
pub(crate) struct TargetHealth {
    /// The active checks' verdict; true until they say otherwise.
    healthy: AtomicBool,
    check_passes: AtomicU32,
    check_failures: AtomicU32,
    circuit: AtomicU8,
    /// While open: when the cool-down ends, in [`now_ms`] time.
    open_until: AtomicU64,
    /// How long the next opening lasts; doubles on a failed probe.
    cool_down_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    window_start: AtomicU64,
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    opened: AtomicU64,
}

impl TargetHealth {
    fn new(cool_down: Duration) -> Self {
        Self {
            healthy: AtomicBool::new(true),
            check_passes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
            circuit: AtomicU8::new(CLOSED),
            open_until: AtomicU64::new(0),
            cool_down_ms: AtomicU64::new(millis(cool_down)),
            consecutive_failures: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            window_requests: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
            opened: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn availability(&self, now: u64) -> Availability {
        if !self.healthy.load(Ordering::Relaxed) {
            return Availability::No;
        }
        match self.circuit.load(Ordering::Acquire) {
            CLOSED => Availability::Yes,
            OPEN if now >= self.open_until.load(Ordering::Acquire) => Availability::Probe,
            _ => Availability::No,
        }
    }

    /// Takes the one probe slot of a circuit whose cool-down is over.
    pub(crate) fn claim_probe(&self) -> bool {
        self.circuit
            .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn circuit_state(&self) -> &'static str {
        match self.circuit.load(Ordering::Acquire) {
            CLOSED => "closed",
            OPEN => "open",
            _ => "half_open",
        }
    }
}

/// Why no target could take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Every target failed its active checks.
    Unhealthy,
    /// Every target that passes its checks has an open circuit.
    CircuitOpen,
}

/// The health of every target of one API, index for index with
/// `upstream.targets`.
#[derive(Debug)]
pub(crate) struct UpstreamHealth {
    targets: Box<[TargetHealth]>,
    breaker: Option<CircuitBreaker>,
    api: Arc<str>,
    urls: Box<[String]>,
}

impl UpstreamHealth {
    /// Health state for `upstream`, or `None` when it has neither checks nor
    /// a circuit breaker (then every target always takes traffic).
    pub(crate) fn new(api: Arc<str>, upstream: &Upstream) -> Option<Arc<Self>> {
        if upstream.health_check.is_none() && upstream.circuit_breaker.is_none() {
            return None;
        }
        let cool_down = upstream
            .circuit_breaker
            .as_ref()
            .map_or(Duration::ZERO, |b| b.cool_down);
        Some(Arc::new(Self {
            targets: upstream
                .targets
                .iter()
                .map(|_| TargetHealth::new(cool_down))
                .collect(),
            breaker: upstream.circuit_breaker.clone(),
            api,
            urls: upstream.targets.iter().map(|t| t.url.to_string()).collect(),
        }))
    }

    #[inline]
    pub(crate) fn target(&self, i: usize) -> &TargetHealth {
        &self.targets[i]
    }

    /// Why nothing is available, given that nothing is.
    pub(crate) fn why_unavailable(&self) -> Unavailable {
        let open = self.targets.iter().any(|t| {
            t.healthy.load(Ordering::Relaxed) && t.circuit.load(Ordering::Acquire) != CLOSED
        });
        if open {
            Unavailable::CircuitOpen
        } else {
            Unavailable::Unhealthy
        }
    }

    /// Records the outcome of a request to target `i`. `probe` is true for
    /// the one request a half-open circuit let through.
    pub(crate) fn record(&self, i: usize, ok: bool, probe: bool, now: u64) {
        let Some(breaker) = &self.breaker else {
            return;
        };
        let t = &self.targets[i];
        if probe {
            if ok {
                t.consecutive_failures.store(0, Ordering::Relaxed);
                t.window_requests.store(0, Ordering::Relaxed);
                t.window_failures.store(0, Ordering::Relaxed);
                t.window_start.store(now, Ordering::Relaxed);
                t.cool_down_ms
                    .store(millis(breaker.cool_down), Ordering::Relaxed);
                t.circuit.store(CLOSED, Ordering::Release);
                tracing::info!(api = %self.api, target = %self.urls[i], "Circuit closed: the probe request succeeded.");
            } else {
                let next = t
                    .cool_down_ms
                    .load(Ordering::Relaxed)
                    .saturating_mul(2)
                    .min(millis(breaker.max_cool_down));
                t.cool_down_ms.store(next, Ordering::Relaxed);
                self.open(i, HALF_OPEN, now);
            }
            return;
        }
        // Outcomes of requests sent before the circuit opened do not count.
        if t.circuit.load(Ordering::Acquire) != CLOSED {
            return;
        }
        let window = millis(breaker.window);
        let start = t.window_start.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= window
            && t.window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            t.window_requests.store(0, Ordering::Relaxed);
            t.window_failures.store(0, Ordering::Relaxed);
        }
        let requests = t.window_requests.fetch_add(1, Ordering::Relaxed) + 1;
        if ok {
            t.consecutive_failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = t.window_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let consecutive = t.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let by_rate = breaker.error_rate.is_some_and(|rate| {
            requests >= breaker.min_requests
                && u64::from(failures) * 100 >= u64::from(rate) * u64::from(requests)
        });
        if consecutive >= breaker.failures || by_rate {
            self.open(i, CLOSED, now);
        }
    }

    /// Opens target `i`'s circuit from state `from` for its cool-down.
    fn open(&self, i: usize, from: u8, now: u64) {
        let t = &self.targets[i];
        let cool_down = t.cool_down_ms.load(Ordering::Relaxed);
        // The deadline is written before the state, so no reader sees an
        // open circuit with an old deadline.
        t.open_until
            .store(now.saturating_add(cool_down), Ordering::Release);
        if t.circuit
            .compare_exchange(from, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            t.opened.fetch_add(1, Ordering::Relaxed);
            t.consecutive_failures.store(0, Ordering::Relaxed);
            tracing::warn!(
                api = %self.api,
                target = %self.urls[i],
                cool_down_ms = cool_down,
                "Circuit opened: the target gets no traffic until the cool-down ends."
            );
        }
    }

    /// A probe that ended without an outcome (the client went away) gives
    /// its slot back: the circuit is open again with its cool-down over.
    pub(crate) fn release_probe(&self, i: usize, now: u64) {
        let t = &self.targets[i];
        t.open_until.store(now, Ordering::Release);
        let _ = t
            .circuit
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }

    fn check_result(&self, i: usize, passed: bool, check: &HealthCheck) {
        let t = &self.targets[i];
        if passed {
            t.check_failures.store(0, Ordering::Relaxed);
            let n = t.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= check.healthy_threshold && !t.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!(api = %self.api, target = %self.urls[i], "Target healthy: it passed its health checks.");
            }
        } else {
            t.check_passes.store(0, Ordering::Relaxed);
            let n = t.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= check.unhealthy_threshold && t.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!(api = %self.api, target = %self.urls[i], "Target unhealthy: it failed its health checks and gets no traffic.");
            }
        }
    }

    /// A report of every target, for the admin API and metrics.
    pub(crate) fn report(&self, now: u64) -> Vec<TargetReport> {
        self.targets
            .iter()
            .zip(&self.urls)
            .map(|(t, url)| {
                let circuit = t.circuit_state();
                TargetReport {
                    url: url.clone(),
                    available: t.availability(now) != Availability::No,
                    healthy: t.healthy.load(Ordering::Relaxed),
                    circuit,
                    reopens_in_ms: (circuit == "open")
                        .then(|| t.open_until.load(Ordering::Acquire).saturating_sub(now)),
                    circuit_opened: t.opened.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

/// One target as the admin API and `/metrics` show it.
#[derive(Clone, Debug, Serialize)]
pub struct TargetReport {
    pub url: String,
    /// True when the target takes traffic (or its next probe) now.
    pub available: bool,
    /// The active checks' verdict (true when the API has none).
    pub healthy: bool,
    /// `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    /// While open: time left in the cool-down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopens_in_ms: Option<u64>,
    /// Times the circuit opened since the API's upstream was configured.
    pub circuit_opened: u64,
}

/// Starts the active checks of `upstream` in the background. The task ends
/// on its own once `health` is dropped (the API left the configuration or
/// its upstream changed).
pub(crate) fn spawn_checks(
    health: &Arc<UpstreamHealth>,
    upstream: &Upstream,
    client: UpstreamClient,
) {
    let Some(check) = upstream.health_check.clone() else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(api = %health.api, "No runtime to run health checks on; they are off.");
        return;
    };
    let Ok(path) = PathAndQuery::try_from(check.path.as_str()) else {
        return;
    };
    let targets: Vec<(Scheme, Authority)> = upstream
        .targets
        .iter()
        .map(|t| (t.scheme.clone(), t.authority.clone()))
        .collect();
    let weak = Arc::downgrade(health);
    runtime.spawn(run_checks(weak, check, path, targets, client));
}

async fn run_checks(
    health: Weak<UpstreamHealth>,
    check: HealthCheck,
    path: PathAndQuery,
    targets: Vec<(Scheme, Authority)>,
    client: UpstreamClient,
) {
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if health.strong_count() == 0 {
            return;
        }
        let mut probes = tokio::task::JoinSet::new();
        for (i, (scheme, authority)) in targets.iter().enumerate() {
            let uri = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query(path.clone())
                .build();
            let client = client.clone();
            let timeout = check.timeout;
            probes.spawn(async move {
                let Ok(uri) = uri else {
                    return (i, false);
                };
                (i, probe(&client, uri, timeout).await)
            });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((i, passed)) = done else { continue };
            let Some(h) = health.upgrade() else { return };
            h.check_result(i, passed, &check);
        }
    }
}

/// One check: a GET answered 2xx or 3xx within `timeout`, body read to the
/// end so the connection can be reused.
async fn probe(client: &UpstreamClient, uri: Uri, timeout: Duration) -> bool {
    let req = Request::get(uri)
        .header(header::USER_AGENT, HEALTH_CHECK_AGENT)
        .body(RequestBody::Empty);
    let Ok(req) = req else { return false };
    let exchange = async {
        let resp = client.request(req, None).await.ok()?;
        let status = resp.status();
        let _: Bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some(status.is_success() || status.is_redirection())
    };
    matches!(
        tokio::time::timeout(timeout, exchange).await,
        Ok(Some(true))
    )
}

const HEALTH_CHECK_AGENT: &str = concat!("portico-health-check/", env!("CARGO_PKG_VERSION"));

/// Caps an API's retries at a share of its requests over a sliding window
/// of one-second slots, so that retries cannot multiply an outage.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    percent: u64,
    slots: [BudgetSlot; BUDGET_SLOTS],
}

const BUDGET_SLOTS: usize = 10;

#[derive(Debug, Default)]
struct BudgetSlot {
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    pub(crate) fn new(retries: &Retries) -> Self {
        debug_assert_eq!(
            Retries::BUDGET_WINDOW,
            Duration::from_secs(BUDGET_SLOTS as u64)
        );
        Self {
            percent: u64::from(retries.budget_percent),
            slots: Default::default(),
        }
    }

    /// The slot for `second`, emptied first if it last served an older one.
    /// Two requests racing to empty it may lose a count: the budget is a
    /// guard rail, not an invoice.
    fn slot(&self, second: u64) -> &BudgetSlot {
        let slot = &self.slots[(second % BUDGET_SLOTS as u64) as usize];
        let seen = slot.second.load(Ordering::Relaxed);
        if seen != second
            && slot
                .second
                .compare_exchange(seen, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            slot.requests.store(0, Ordering::Relaxed);
            slot.retries.store(0, Ordering::Relaxed);
        }
        slot
    }

    /// Counts one request (first tries only).
    #[inline]
    pub(crate) fn on_request(&self, now: u64) {
        self.slot(now / 1000)
            .requests
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget, if there is one left.
    pub(crate) fn try_retry(&self, now: u64) -> bool {
        let second = now / 1000;
        let (mut requests, mut retries) = (0, 0);
        for slot in &self.slots {
            let s = slot.second.load(Ordering::Relaxed);
            if second.saturating_sub(s) < BUDGET_SLOTS as u64 {
                requests += slot.requests.load(Ordering::Relaxed);
                retries += slot.retries.load(Ordering::Relaxed);
            }
        }
        let allowed = u64::from(Retries::BUDGET_FLOOR) + requests * self.percent / 100;
        if retries >= allowed {
            return false;
        }
        self.slot(second).retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::uri::{Authority, Scheme};
    use portico_model::Target;
    use portico_model::api::Balance;

    fn upstream(breaker: Option<CircuitBreaker>) -> Upstream {
        let target = |port: u16| Target {
            url: format!("http://127.0.0.1:{port}").into(),
            scheme: Scheme::HTTP,
            authority: Authority::try_from(format!("127.0.0.1:{port}")).unwrap(),
            path_prefix: String::new(),
            weight: 1,
        };
        Upstream {
            targets: vec![target(1), target(2)],
            schedule: vec![0, 1],
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            balance: Balance::RoundRobin,
            health_check: None,
            circuit_breaker: breaker,
            retries: None,
            protocol: portico_model::api::UpstreamProtocol::Http1,
            tls: None,
        }
    }

    fn breaker() -> CircuitBreaker {
        CircuitBreaker {
            failures: 3,
            error_rate: Some(50),
            min_requests: 10,
            window: Duration::from_secs(10),
            cool_down: Duration::from_millis(100),
            max_cool_down: Duration::from_millis(300),
        }
    }

    #[test]
    fn no_checks_and_no_breaker_means_no_state() {
        assert!(UpstreamHealth::new("a".into(), &upstream(None)).is_none());
    }

    #[test]
    fn consecutive_failures_open_and_a_probe_closes() {
        let h = UpstreamHealth::new("a".into(), &upstream(Some(breaker()))).unwrap();
        let t = h.target(0);
        h.record(0, false, false, 0);
        h.record(0, false, false, 1);
        h.record(0, true, false, 2); // a success resets the run
        h.record(0, false, false, 3);
        h.record(0, false, false, 4);
        assert_eq!(t.availability(5), Availability::Yes);
        h.record(0, false, false, 5);
        assert_eq!(t.availability(6), Availability::No);
        assert_eq!(h.why_unavailable(), Unavailable::CircuitOpen);
        // The other target is untouched.
        assert_eq!(h.target(1).availability(6), Availability::Yes);
        // Cool-down over: exactly one probe.
        assert_eq!(t.availability(105), Availability::Probe);
        assert!(t.claim_probe());
        assert!(!t.claim_probe());
        assert_eq!(t.availability(106), Availability::No);
        h.record(0, true, true, 110);
        assert_eq!(t.availability(111), Availability::Yes);
        assert_eq!(h.report(111)[0].circuit_opened, 1);
    }

    #[test]
    fn failed_probes_double_the_cool_down_up_to_the_maximum() {
        let h = UpstreamHealth::new("a".into(), &upstream(Some(breaker()))).unwrap();
        let t = h.target(0);
        for now in 0..3 {
            h.record(0, false, false, now);
        }
        let mut now = 2;
        for expected in [200, 300, 300] {
            now += 1000;
            assert!(t.claim_probe());
            h.record(0, false, true, now);
            assert_eq!(t.availability(now + expected - 1), Availability::No);
            assert_eq!(t.availability(now + expected), Availability::Probe);
        }
        // Success resets the cool-down to its base.
        now += 1000;
        assert!(t.claim_probe());
        h.record(0, true, true, now);
        for i in 0..3 {
            h.record(0, false, false, now + i);
        }
        assert_eq!(t.availability(now + 2 + 99), Availability::No);
        assert_eq!(t.availability(now + 2 + 100), Availability::Probe);
    }

    #[test]
    fn error_rate_opens_once_enough_requests_were_seen() {
        let b = CircuitBreaker {
            failures: 100,
            ..breaker()
        };
        let h = UpstreamHealth::new("a".into(), &upstream(Some(b))).unwrap();
        // Alternating success and failure: 50 %, never two failures in a row.
        for i in 0..9 {
            h.record(0, i % 2 == 1, false, i);
        }
        assert_eq!(h.target(0).availability(9), Availability::Yes);
        h.record(0, false, false, 9); // 10 requests, 6 failed
        assert_eq!(h.target(0).availability(10), Availability::No);
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let b = CircuitBreaker {
            failures: 100,
            ..breaker()
        };
        let h = UpstreamHealth::new("a".into(), &upstream(Some(b))).unwrap();
        for i in 0..9 {
            h.record(0, false, false, i);
        }
        // Ten seconds later the nine failures are history.
        h.record(0, false, false, 10_000);
        assert_eq!(h.target(0).availability(10_001), Availability::Yes);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let h = UpstreamHealth::new("a".into(), &upstream(Some(breaker()))).unwrap();
        for now in 0..3 {
            h.record(0, false, false, now);
        }
        assert!(h.target(0).claim_probe());
        h.release_probe(0, 500);
        assert_eq!(h.target(0).availability(500), Availability::Probe);
    }

    #[test]
    fn active_checks_need_thresholds_of_consecutive_results() {
        let mut up = upstream(None);
        up.health_check = Some(HealthCheck {
            path: "/health".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        });
        let check = up.health_check.clone().unwrap();
        let h = UpstreamHealth::new("a".into(), &up).unwrap();
        h.check_result(0, false, &check);
        h.check_result(0, false, &check);
        h.check_result(0, true, &check);
        h.check_result(0, false, &check);
        h.check_result(0, false, &check);
        assert_eq!(h.target(0).availability(0), Availability::Yes);
        h.check_result(0, false, &check);
        assert_eq!(h.target(0).availability(0), Availability::No);
        assert_eq!(h.why_unavailable(), Unavailable::Unhealthy);
        h.check_result(0, true, &check);
        assert_eq!(h.target(0).availability(0), Availability::No);
        h.check_result(0, true, &check);
        assert_eq!(h.target(0).availability(0), Availability::Yes);
    }

    #[test]
    fn the_budget_allows_a_floor_plus_a_share_of_requests() {
        let budget = RetryBudget::new(&Retries {
            attempts: 1,
            on: portico_model::api::RetryOn::DEFAULT,
            backoff: Duration::ZERO,
            budget_percent: 20,
        });
        for _ in 0..100 {
            budget.on_request(1_000);
        }
        // 10 + 20 % of 100.
        let granted = (0..100).filter(|_| budget.try_retry(1_500)).count();
        assert_eq!(granted, 30);
        // Ten seconds on, the window has moved past all of it.
        assert!(budget.try_retry(11_000));
        let granted = (0..100).filter(|_| budget.try_retry(11_000)).count();
        assert_eq!(granted, 9);
    }
}
