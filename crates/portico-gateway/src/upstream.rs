//! Per-API upstream state: the pooled HTTP client and the round-robin cursor.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::request;
use portico_model::api::{Balance, HashKey, stable_hash};
use portico_model::{Api, Target};

use crate::client::UpstreamClient;
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
        Self {
            inflight: (0..api.upstream.targets.len())
                .map(|_| AtomicUsize::new(0))
                .collect(),
            name: api.name.as_str().into(),
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
        }
    }

    /// The target for the next request, by the API's balancing, and the
    /// in-flight record when the balancing counts requests.
    #[inline]
    pub fn next_target(&self, req: &request::Parts, client: IpAddr) -> (&Target, Option<InFlight>) {
        let upstream = &self.api.upstream;
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
        match &upstream.balance {
            Balance::ConsistentHash { key, ring } => {
                let hash = hash_key(key, req).unwrap_or_else(|| {
                    // No key in this request: the client address decides.
                    stable_hash(client.to_string().as_bytes())
                });
                (&upstream.targets[ring.target(hash) as usize], None)
            }
            Balance::RoundRobin => {
                let slot = upstream.schedule[turn % upstream.schedule.len()];
                (&upstream.targets[slot as usize], None)
            }
            Balance::LeastRequests => {
                // Fewest in flight per unit of weight; the scan starts at a
                // rotating offset so ties spread over the targets.
                let n = upstream.targets.len();
                let mut best = turn % n;
                let load = |j: usize| self.inflight[j].load(Ordering::Relaxed) as u64;
                let weight = |j: usize| u64::from(upstream.targets[j].weight);
                for step in 1..n {
                    let i = (turn + step) % n;
                    // load(i) / weight(i) < load(best) / weight(best)
                    if load(i) * weight(best) < load(best) * weight(i) {
                        best = i;
                    }
                }
                self.inflight[best].fetch_add(1, Ordering::Relaxed);
                let record = InFlight {
                    counters: self.inflight.clone(),
                    target: best,
                };
                (&upstream.targets[best], Some(record))
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
