//! The gateway's shared state: one atomic pointer to the current runtime.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use portico_model::Snapshot;

use crate::access_log::AccessLogSink;
use crate::metrics::Metrics;
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
        }
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
        self.runtime
            .store(Some(Arc::new(Runtime { snapshot, apis })));
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
}
