//! The gateway's shared state: one atomic pointer to the current runtime.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use portico_model::Snapshot;
use portico_model::cache::{CacheBackend, CacheError, CacheStores};
use portico_model::limits::Counters;

use std::fmt::Write as _;

use portico_model::api::Balance;
use serde::Serialize;

use crate::access_log::AccessLogSink;
use crate::cache::NodeCache;
use crate::health::{self, TargetReport};
use crate::metrics::{Metrics, family, names};
use crate::upstream::ApiRuntime;

/// What a request needs, built from one [`Snapshot`]: the snapshot itself
/// and, index for index with `snapshot.apis`, each API's upstream pool and
/// metric handles. Swapped as one unit, so a request never sees the routes
/// of one configuration with the pools of another.
pub struct Runtime {
    pub snapshot: Arc<Snapshot>,
    pub(crate) apis: Box<[ApiRuntime]>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("apis", &self.apis.len())
            .finish()
    }
}

/// The data plane of one node.
pub struct Gateway {
    runtime: ArcSwapOption<Runtime>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) access_log: Option<AccessLogSink>,
    /// The node's counters for limits: made by the node, kept across
    /// snapshots so counts survive reloads.
    pub(crate) counters: Option<Arc<dyn Counters>>,
    /// The response cache: backends and misses in flight, kept across
    /// snapshots so entries survive reloads.
    pub(crate) cache: Option<Arc<NodeCache>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Gateway {
    /// A gateway with no configuration yet: it answers 503 until
    /// [`Gateway::install`] is called.
    pub fn new(metrics: Arc<Metrics>, access_log: Option<AccessLogSink>) -> Self {
        Self {
            runtime: ArcSwapOption::empty(),
            metrics,
            access_log,
            counters: None,
            cache: None,
        }
    }

    /// The response cache backends. Without them, `cache` policies stand
    /// aside (`Cache-Status: Portico; fwd=bypass`).
    pub fn with_cache(mut self, stores: CacheStores) -> Self {
        self.cache = Some(Arc::new(NodeCache::new(stores)));
        self
    }

    /// Forgets every cached response of API `name` in every backend.
    /// `None` when the live configuration has no such API.
    pub async fn purge_cache(&self, name: &str) -> Option<Result<(), CacheError>> {
        let runtime = self.runtime()?;
        if !runtime.apis.iter().any(|rt| rt.api.name == name) {
            return None;
        }
        let purged = match &self.cache {
            Some(cache) => cache.purge(name).await,
            None => Ok(()),
        };
        match &purged {
            Ok(()) => tracing::info!(api = %name, "Response cache purged."),
            Err(e) => tracing::warn!(api = %name, error = %e, "Response cache purge failed."),
        }
        Some(purged)
    }

    /// The counters limits count in. Without them, a request to an API
    /// with limits is refused (503 `limits-unavailable`): fail closed.
    pub fn with_counters(mut self, counters: Arc<dyn Counters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Builds the runtime for `snapshot` off the request path and publishes
    /// it in one atomic swap. Connection pools of APIs whose upstream did not
    /// change are kept.
    pub fn install(&self, snapshot: Arc<Snapshot>) {
        let previous = self.runtime.load_full();
        // By name, so a reload of N APIs costs O(N), not O(N²).
        let reusable: HashMap<&str, &ApiRuntime> = previous
            .as_ref()
            .map(|p| p.apis.iter().map(|r| (r.api.name.as_str(), r)).collect())
            .unwrap_or_default();
        let apis = snapshot
            .apis
            .iter()
            .map(|api| match reusable.get(api.name.as_str()) {
                Some(old) if old.api.upstream == api.upstream => old.with_api(api.clone()),
                _ => ApiRuntime::new(api.clone(), self.metrics.api(&api.name)),
            })
            .collect();
        self.metrics.set_apis(snapshot.apis.len());
        self.warn_cache_backends(&snapshot);
        self.runtime
            .store(Some(Arc::new(Runtime { snapshot, apis })));
    }

    /// Says once per install which APIs ask for a cache this node cannot
    /// give them as asked.
    fn warn_cache_backends(&self, snapshot: &Snapshot) {
        for api in snapshot.apis.iter() {
            let Some(settings) = api.policies.cache() else {
                continue;
            };
            match &self.cache {
                None => {
                    tracing::warn!(api = %api.name, "The API has a cache policy but the node has no response cache; responses are not cached.")
                }
                Some(c)
                    if settings.backend == CacheBackend::Redis && c.stores().redis.is_none() =>
                {
                    tracing::warn!(api = %api.name, "The API's cache asks for Redis but the node has no `redis:`; it caches in memory.");
                }
                Some(_) => {}
            }
        }
    }

    /// The runtime requests are served from, if any.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.load_full()
    }

    /// True once a configuration is installed.
    pub fn is_ready(&self) -> bool {
        self.runtime.load().is_some()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The health of every API's targets, in configuration order.
    pub fn upstream_reports(&self) -> Vec<UpstreamReport> {
        let Some(runtime) = self.runtime() else {
            return Vec::new();
        };
        let now = health::now_ms();
        runtime.apis.iter().map(|rt| report(rt, now)).collect()
    }

    /// The health of one API's targets, if the API exists.
    pub fn upstream_report(&self, api: &str) -> Option<UpstreamReport> {
        let runtime = self.runtime()?;
        let rt = runtime.apis.iter().find(|rt| rt.api.name == api)?;
        Some(report(rt, health::now_ms()))
    }

    /// The Prometheus exposition: the node's counters, then a gauge per
    /// target of the live configuration.
    pub fn render_metrics(&self) -> String {
        let mut out = self.metrics.render();
        if let Some(c) = &self.counters {
            crate::metrics::render_backend(&mut out, &c.stats());
        }
        if let Some(c) = &self.cache {
            let stores = c.stores();
            let mut stats = vec![stores.memory.stats()];
            stats.extend(stores.redis.as_ref().map(|r| r.stats()));
            crate::metrics::render_cache_backends(&mut out, &stats);
        }
        let reports = self.upstream_reports();
        let gauges = [
            (
                names::TARGET_AVAILABLE,
                "gauge",
                "1 when the target takes traffic: healthy and its circuit not open.",
            ),
            (
                names::TARGET_HEALTHY,
                "gauge",
                "The verdict of the target's active health checks (1 without checks).",
            ),
            (
                names::CIRCUIT_OPENED,
                "counter",
                "Times the target's circuit opened.",
            ),
        ];
        for (name, kind, help) in gauges {
            family(&mut out, name, kind, help);
            for r in &reports {
                for t in &r.targets {
                    let value = match name {
                        names::TARGET_AVAILABLE => u64::from(t.available),
                        names::TARGET_HEALTHY => u64::from(t.healthy),
                        _ => t.circuit_opened,
                    };
                    let _ = writeln!(
                        out,
                        "{name}{{api=\"{}\",target=\"{}\"}} {value}",
                        r.api,
                        escape_label(&t.url)
                    );
                }
            }
        }
        out
    }
}

/// Label values escape backslash, `"` and newline (Prometheus text format).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One API's targets as the admin API shows them.
#[derive(Clone, Debug, Serialize)]
pub struct UpstreamReport {
    pub api: String,
    /// `round_robin`, `least_requests` or `consistent_hash`.
    pub balance: &'static str,
    pub health_check: bool,
    pub circuit_breaker: bool,
    pub targets: Vec<TargetReport>,
}

fn report(rt: &ApiRuntime, now: u64) -> UpstreamReport {
    let upstream = &rt.api.upstream;
    let targets = match &rt.health {
        Some(h) => h.report(now),
        None => upstream
            .targets
            .iter()
            .map(|t| TargetReport {
                url: t.url.to_string(),
                available: true,
                healthy: true,
                circuit: "closed",
                reopens_in_ms: None,
                circuit_opened: 0,
            })
            .collect(),
    };
    UpstreamReport {
        api: rt.api.name.clone(),
        balance: match upstream.balance {
            Balance::RoundRobin => "round_robin",
            Balance::LeastRequests => "least_requests",
            Balance::ConsistentHash { .. } => "consistent_hash",
        },
        health_check: upstream.health_check.is_some(),
        circuit_breaker: upstream.circuit_breaker.is_some(),
        targets,
    }
}
