//! Per-API upstream state: the pooled HTTP client, the balancing cursor and
//! counters, and target health.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::request;
use portico_model::api::{Balance, HashKey, stable_hash};
use portico_model::{Api, Target};

use crate::client::UpstreamClient;
use crate::health::{self, Availability, RetryBudget, Unavailable, UpstreamHealth};
use crate::metrics::ApiMetrics;

/// An API and what serving it needs at run time.
pub(crate) struct ApiRuntime {
    pub api: Arc<Api>,
    /// `api.name`, shared with every exchange record of this API.
    pub name: Arc<str>,
    pub client: UpstreamClient,
    pub metrics: Arc<ApiMetrics>,
    /// Position in `api.upstream.schedule`; shared with the runtime this one
    /// was carried over from so the rotation continues across reloads.
    cursor: Arc<AtomicUsize>,
    /// Requests in flight per target, for `least_requests`.
    inflight: Arc<[AtomicUsize]>,
    /// Target health, when the upstream has checks or a circuit breaker.
    pub health: Option<Arc<UpstreamHealth>>,
    /// The retry budget, when the upstream retries.
    pub budget: Option<Arc<RetryBudget>>,
}

/// The target chosen for one try.
pub(crate) struct Pick<'a> {
    pub index: usize,
    pub target: &'a Target,
    pub in_flight: Option<InFlight>,
    /// The try is the probe of a half-open circuit.
    pub probe: bool,
}

/// A set of target indexes (the first 64 targets; later ones are never in
/// it, which only makes a retry less picky).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TargetSet(u64);

impl TargetSet {
    #[inline]
    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }

    #[inline]
    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.0 |= 1 << i;
        }
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One request in flight to a target; counted until dropped (when the
/// exchange ends).
pub(crate) struct InFlight {
    counters: Arc<[AtomicUsize]>,
    target: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counters[self.target].fetch_sub(1, Ordering::Relaxed);
    }
}

impl ApiRuntime {
    pub fn new(api: Arc<Api>, metrics: Arc<ApiMetrics>) -> Self {
        let client = UpstreamClient::new(&api.name, &api.upstream);
        let name: Arc<str> = api.name.as_str().into();
        let health = UpstreamHealth::new(name.clone(), &api.upstream);
        if let Some(h) = &health {
            health::spawn_checks(h, &api.upstream, client.clone());
        }
        Self {
            inflight: (0..api.upstream.targets.len())
                .map(|_| AtomicUsize::new(0))
                .collect(),
            budget: api
                .upstream
                .retries
                .as_ref()
                .map(|r| Arc::new(RetryBudget::new(r))),
            health,
            name,
            api,
            client,
            metrics,
            cursor: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same pool and cursor serving a new (equal-upstream) API value.
    pub fn with_api(&self, api: Arc<Api>) -> Self {
        Self {
            api,
            name: self.name.clone(),
            client: self.client.clone(),
            metrics: self.metrics.clone(),
            cursor: self.cursor.clone(),
            inflight: self.inflight.clone(),
            health: self.health.clone(),
            budget: self.budget.clone(),
        }
    }

    /// The target for the next try, by the API's balancing, among those
    /// that can take traffic, preferring one not in `tried`.
    #[inline]
    pub fn pick(
        &self,
        req: &request::Parts,
        client: IpAddr,
        tried: TargetSet,
    ) -> Result<Pick<'_>, Unavailable> {
        let Some(health) = &self.health else {
            let retry = !tried.is_empty();
            let index = self
                .choose(req, client, retry, |i| !tried.contains(i))
                .or_else(|| self.choose(req, client, true, |_| true))
                .unwrap_or(0);
            return Ok(self.picked(index, false));
        };
        let now = health::now_ms();
        // Probe slots another request claimed first.
        let mut lost = TargetSet::default();
        let retry = !tried.is_empty();
        loop {
            let ok = |i: usize| {
                !lost.contains(i) && health.target(i).availability(now) != Availability::No
            };
            let index = match self.choose(req, client, retry, |i| ok(i) && !tried.contains(i)) {
                Some(i) => i,
                None if retry => match self.choose(req, client, true, ok) {
                    Some(i) => i,
                    None => return Err(health.why_unavailable()),
                },
                None => return Err(health.why_unavailable()),
            };
            let target = health.target(index);
            if target.availability(now) != Availability::Probe {
                return Ok(self.picked(index, false));
            }
            if target.claim_probe() {
                return Ok(self.picked(index, true));
            }
            lost.insert(index);
        }
    }

    fn picked(&self, index: usize, probe: bool) -> Pick<'_> {
        let in_flight = matches!(self.api.upstream.balance, Balance::LeastRequests).then(|| {
            self.inflight[index].fetch_add(1, Ordering::Relaxed);
            InFlight {
                counters: self.inflight.clone(),
                target: index,
            }
        });
        Pick {
            index,
            target: &self.api.upstream.targets[index],
            in_flight,
            probe,
        }
    }

    /// The target the balancing gives among those `ok` accepts.
    #[inline]
    fn choose(
        &self,
        req: &request::Parts,
        client: IpAddr,
        retry: bool,
        ok: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let upstream = &self.api.upstream;
        // First tries take turns; a retry starts anywhere, so that retries
        // do not shift the rotation of first tries onto the failing target.
        let turn = if retry {
            fastrand::usize(..)
        } else {
            self.cursor.fetch_add(1, Ordering::Relaxed)
        };
        match &upstream.balance {
            Balance::ConsistentHash { key, ring } => {
                let hash = hash_key(key, req).unwrap_or_else(|| {
                    // No key in this request: the client address decides.
                    stable_hash(client.to_string().as_bytes())
                });
                ring.walk(hash).map(|t| t as usize).find(|&t| ok(t))
            }
            Balance::RoundRobin => {
                let n = upstream.schedule.len();
                (0..n)
                    .map(|k| upstream.schedule[(turn + k) % n] as usize)
                    .find(|&t| ok(t))
            }
            Balance::LeastRequests => {
                // Fewest in flight per unit of weight; the scan starts at a
                // rotating offset so ties spread over the targets.
                let n = upstream.targets.len();
                let load = |j: usize| self.inflight[j].load(Ordering::Relaxed) as u64;
                let weight = |j: usize| u64::from(upstream.targets[j].weight);
                let mut best: Option<usize> = None;
                for step in 0..n {
                    let i = (turn + step) % n;
                    if !ok(i) {
                        continue;
                    }
                    // load(i) / weight(i) < load(best) / weight(best)
                    match best {
                        Some(b) if load(i) * weight(b) >= load(b) * weight(i) => {}
                        _ => best = Some(i),
                    }
                }
                best
            }
        }
    }
}

/// The hash of the request's key, if the request carries one.
fn hash_key(key: &HashKey, req: &request::Parts) -> Option<u64> {
    match key {
        HashKey::ClientIp => None,
        HashKey::Header(name) => req.headers.get(name).map(|v| stable_hash(v.as_bytes())),
        HashKey::Cookie(name) => req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| stable_hash(v.as_bytes())),
    }
}
