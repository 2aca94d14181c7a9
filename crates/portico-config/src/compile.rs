//! Raw sections → validated model. Every check runs, and every failure is
//! collected, before the caller learns the outcome.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use portico_model::api::{
    Balance, CircuitBreaker, HashKey, HashRing, HealthCheck, Retries, RetryOn, wrr_schedule,
};
use portico_model::entities::{ApiAccess, ProductLimit};
use portico_model::entities::{Approval, Limit, OAuthClient};
use portico_model::limits::RedisFailure;
use portico_model::node::{
    CertificateFiles, ClientAuth, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, FileSetting, Origin,
    RedisSettings, Storage, TlsListener,
};
use portico_model::operation::OperationTable;
use portico_model::policy::PolicyChain;
use portico_model::{
    AccessLog, Api, ApiKeyEntry, App, BasicUser, Consumers, Developer, NodeSettings, Product,
    RouteError, RouteTableBuilder, Routing, Snapshot, Target, Upstream,
};
use portico_spec::Spec;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use crate::de::{Located, from_node};
use crate::raw::{
    self, RawApi, RawApp, RawBalance, RawDeveloper, RawProduct, RawRouting, RawServer, RawTarget,
    RetryCondition, SECTIONS,
};
use crate::security;
use crate::spec;
use crate::upstream_tls;
use crate::values::{BasePath, DurationValue, Name};
use crate::yaml::{Node, at, parse};
use crate::{Diagnostic, Diagnostics};

/// Default time allowed to open a connection to a target.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed from sending a request to receiving response headers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Active health checks run this often unless `interval` is given.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// A health check answer is awaited this long unless `timeout` is given.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// The first retry waits up to this long unless `backoff` is given.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(25);
/// Retries per 100 requests unless `budget` is given.
pub const DEFAULT_RETRY_BUDGET: u32 = 20;
/// The most retries one request may make.
const MAX_RETRIES: u32 = 10;
/// Default period of the TLS file check (`server.proxy.tls.watch_interval`).
pub const DEFAULT_TLS_WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bound of a target weight, which keeps the schedule small.
const MAX_WEIGHT: u32 = 1000;

/// The result of compiling a configuration file.
#[derive(Debug, Default)]
pub struct Compiled {
    pub node: NodeSettings,
    pub snapshot: Snapshot,
}

/// Compiles a configuration file. On failure, returns every problem found.
/// Spec files are read relative to the current directory; a configuration
/// read from a file should use [`compile_in`].
pub fn compile(text: &str) -> Result<Compiled, Diagnostics> {
    compile_in(text, Path::new("."))
}

/// Compiles a configuration file whose directory is `dir`: the files that
/// `apis[].spec` names are read relative to it.
pub fn compile_in(text: &str, dir: &Path) -> Result<Compiled, Diagnostics> {
    let root = parse(text).map_err(|d| Diagnostics(vec![d]))?;
    compile_node(&root, dir)
}

/// Compiles a parsed document.
pub(crate) fn compile_node(root: &Spanned<Node>, dir: &Path) -> Result<Compiled, Diagnostics> {
    let mut cx = Cx {
        errors: Vec::new(),
        dir: dir.to_path_buf(),
    };
    let compiled = cx.document(root);
    if cx.errors.is_empty() {
        Ok(compiled)
    } else {
        cx.errors
            .sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0)));
        Err(Diagnostics(cx.errors))
    }
}

/// A file path as written, with the place that named it.
fn file_setting(path: Located<String>) -> FileSetting {
    FileSetting {
        path: PathBuf::from(path.value),
        origin: Origin {
            key: path.path,
            line: path.at.map(|(l, _)| l),
            column: path.at.map(|(_, c)| c),
        },
    }
}

struct Cx {
    errors: Vec<Diagnostic>,
    /// The configuration file's directory.
    dir: PathBuf,
}

impl Cx {
    fn push(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        node: &Spanned<Node>,
        path: &str,
    ) -> Option<T> {
        from_node(node, path).map_err(|d| self.push(d)).ok()
    }

    /// Reads a sequence section element by element, so one bad element does
    /// not hide the errors of its siblings.
    fn read_list<T: serde::de::DeserializeOwned>(
        &mut self,
        node: Option<&Spanned<Node>>,
        path: &str,
    ) -> Vec<T> {
        let Some(node) = node else { return Vec::new() };
        match &node.value {
            Node::Null => Vec::new(),
            Node::Seq(items) => {
                // Sized up front: raw entries are large, and growing a
                // vector of 10,000 of them by doubling copied tens of
                // megabytes on every reload.
                let mut out = Vec::with_capacity(items.len());
                out.extend(
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| self.read(item, &format!("{path}[{i}]"))),
                );
                out
            }
            other => {
                self.push(Diagnostic::new(
                    path,
                    format!("expected a sequence, found {}", other.kind()),
                    at(&node.referenced),
                ));
                Vec::new()
            }
        }
    }

    fn document(&mut self, root: &Spanned<Node>) -> Compiled {
        let mut sections: HashMap<&str, &Spanned<Node>> = HashMap::new();
        match &root.value {
            Node::Null => {}
            Node::Map(entries) => {
                for (key, value) in entries {
                    match SECTIONS.iter().find(|s| **s == key.value) {
                        Some(s) => {
                            sections.insert(s, value);
                        }
                        None => self.push(Diagnostic::new(
                            key.value.clone(),
                            format!(
                                "unknown field `{}`, expected one of {}",
                                key.value,
                                quoted(SECTIONS)
                            ),
                            at(&key.referenced),
                        )),
                    }
                }
            }
            other => self.push(Diagnostic::new(
                "",
                format!(
                    "the configuration must be a mapping, found {}",
                    other.kind()
                ),
                at(&root.referenced),
            )),
        }

        let mut node = NodeSettings::default();
        if let Some(server) = sections
            .get("server")
            .and_then(|n| self.read::<Option<RawServer>>(n, "server"))
        {
            self.server(server.unwrap_or_default(), &mut node);
        }
        if let Some(storage) = sections
            .get("storage")
            .and_then(|n| self.read::<Located<String>>(n, "storage"))
        {
            match parse_storage(&storage.value) {
                Ok(s) => node.storage = s,
                Err(m) => self.push(storage.diag(m)),
            }
        }
        if let Some(node_redis) = sections.get("redis") {
            node.redis = self.redis(node_redis);
        }

        let raw_apis: Vec<RawApi> = self.read_list(sections.get("apis").copied(), "apis");
        let raw_products: Vec<RawProduct> =
            self.read_list(sections.get("products").copied(), "products");
        let raw_developers: Vec<RawDeveloper> =
            self.read_list(sections.get("developers").copied(), "developers");
        let raw_apps: Vec<RawApp> = self.read_list(sections.get("apps").copied(), "apps");

        let apis = self.apis(raw_apis, node.redis.is_some());
        let mut routes = RouteTableBuilder::new();
        for (i, (api, places)) in apis.iter().enumerate() {
            let index = u32::try_from(i).expect("fewer than 2^32 APIs");
            let hosts: Vec<Option<&str>> = if api.hosts.is_empty() {
                vec![None]
            } else {
                api.hosts.iter().map(|h| Some(h.as_str())).collect()
            };
            for host in hosts {
                if let Err(e) = routes.insert(host, &api.base_path, index) {
                    let on =
                        host.map_or_else(|| "every host".to_owned(), |h| format!("host `{h}`"));
                    let message = match e {
                        RouteError::Taken { other } => format!(
                            "base path `{}` on {on} is already used by API `{}`",
                            api.base_path, apis[other as usize].0.name
                        ),
                        RouteError::Invalid(m) => {
                            format!("base path `{}` cannot be routed: {m}", api.base_path)
                        }
                    };
                    self.push(places.base_path.diag(message));
                }
            }
        }
        let products = self.products(raw_products, &apis);
        let developers = self.developers(raw_developers);
        let consumers = self.apps(raw_apps, &products, &developers, &apis);

        Compiled {
            node,
            snapshot: Snapshot {
                apis: apis.into_iter().map(|(a, _)| Arc::new(a)).collect(),
                routes: routes.build(),
                products,
                developers,
                consumers,
            },
        }
    }

    /// `redis:` as a URL, or a mapping with the URL and its settings.
    fn redis(&mut self, node: &Spanned<Node>) -> Option<RedisSettings> {
        let (url, failure, key_prefix, timeout) = match &node.value {
            Node::Map(_) => {
                let raw::RawRedis {
                    url,
                    failure,
                    key_prefix,
                    timeout,
                } = self.read::<raw::RawRedis>(node, "redis")?;
                (url, failure, key_prefix, timeout)
            }
            _ => (
                self.read::<Option<Located<String>>>(node, "redis")??,
                None,
                None,
                None,
            ),
        };
        let mut ok = true;
        match url.value.split_once("://") {
            Some(("redis", rest)) if !rest.is_empty() => {}
            Some(("rediss", _)) => {
                self.push(url.diag("TLS to Redis (`rediss://`) is not supported by this version of Portico yet; use `redis://` on a trusted network"));
                ok = false;
            }
            _ => {
                self.push(url.diag(format!(
                    "invalid Redis URL `{}`: expected redis://HOST[:PORT][/DB]",
                    url.value
                )));
                ok = false;
            }
        }
        let timeout = match timeout {
            Some(t) if t.value.0.is_zero() => {
                self.push(t.diag("a Redis timeout must be greater than zero"));
                ok = false;
                DEFAULT_REDIS_TIMEOUT
            }
            Some(t) => t.value.0,
            None => DEFAULT_REDIS_TIMEOUT,
        };
        let key_prefix = match key_prefix {
            Some(p) if p.value.chars().any(|c| c.is_control() || c == ' ') => {
                self.push(p.diag("a key prefix has no spaces or control characters"));
                ok = false;
                String::new()
            }
            Some(p) => p.value,
            None => DEFAULT_REDIS_PREFIX.to_owned(),
        };
        ok.then_some(RedisSettings {
            url: url.value,
            failure: match failure {
                None | Some(raw::RawRedisFailure::Local) => RedisFailure::Local,
                Some(raw::RawRedisFailure::Deny) => RedisFailure::Deny,
                Some(raw::RawRedisFailure::Allow) => RedisFailure::Allow,
            },
            key_prefix,
            timeout,
        })
    }

    fn server(&mut self, raw: RawServer, node: &mut NodeSettings) {
        let RawServer {
            proxy,
            admin,
            portal,
            access_log,
            workers,
            shutdown_timeout,
            max_connections,
            header_timeout,
            cache,
        } = raw;
        if let Some(raw::RawNodeCache { max_size: Some(m) }) = cache {
            if m.value.0 < 1024 * 1024 {
                self.push(m.diag("server.cache.max_size must be at least 1MiB"));
            } else {
                node.cache_max_size = m.value.0;
            }
        }
        if let Some(t) = header_timeout {
            if t.value.0.is_zero() {
                self.push(t.diag("header_timeout must be greater than zero"));
            } else {
                node.header_timeout = t.value.0;
            }
        }
        if let Some(m) = max_connections {
            if (1..=1_000_000).contains(&m.value) {
                node.max_connections = m.value;
            } else {
                self.push(m.diag("max_connections must be between 1 and 1000000"));
            }
        }
        if let Some(t) = shutdown_timeout {
            node.shutdown_timeout = t.0;
        }
        if let Some(raw::RawProxyListener { listen, tls }) = proxy {
            if let Some(l) = listen {
                node.proxy_listen = l.0;
            }
            node.proxy_tls = tls.and_then(|t| self.tls(t));
        }
        if let Some(l) = admin {
            node.admin_listen = l.listen.0;
        }
        if let Some(raw::RawPortal { listen, title }) = portal {
            if let Some(l) = listen {
                node.portal_listen = l.0;
            }
            if let Some(t) = title {
                node.portal_title = t;
            }
        }
        if let Some(log) = access_log {
            node.access_log = match log.as_str() {
                "stdout" => AccessLog::Stdout,
                "off" => AccessLog::Off,
                path => AccessLog::File(PathBuf::from(path)),
            };
        }
        if let Some(w) = workers {
            if (1..=1024).contains(&w.value) {
                node.workers = Some(w.value);
            } else {
                self.push(w.diag("workers must be between 1 and 1024"));
            }
        }
    }

    fn tls(&mut self, raw: Located<raw::RawTls>) -> Option<TlsListener> {
        let place = raw.clone_place();
        let raw::RawTls {
            listen,
            cert,
            key,
            certificates,
            client_ca,
            client_auth,
            watch_interval,
        } = raw.value;
        let mut ok = true;
        let auth = match (&client_auth, &client_ca) {
            (None, None) => ClientAuth::None,
            // A trust store alone means: verify certificates that are sent.
            (None, Some(_)) => ClientAuth::Optional,
            (Some(a), ca) => {
                let auth = match a.value {
                    raw::RawClientAuth::None => ClientAuth::None,
                    raw::RawClientAuth::Optional => ClientAuth::Optional,
                    raw::RawClientAuth::Required => ClientAuth::Required,
                };
                if auth != ClientAuth::None && ca.is_none() {
                    self.push(a.diag("client certificates need a `client_ca` trust store"));
                    ok = false;
                }
                auth
            }
        };
        // The single `cert`/`key` pair comes first, so it is the default.
        let mut pairs = Vec::new();
        match (cert, key) {
            (Some(cert), Some(key)) => pairs.push(CertificateFiles {
                cert: file_setting(cert),
                key: file_setting(key),
            }),
            (Some(cert), None) => {
                self.push(cert.diag("`cert` needs a `key`"));
                ok = false;
            }
            (None, Some(key)) => {
                self.push(key.diag("`key` needs a `cert`"));
                ok = false;
            }
            (None, None) => {}
        }
        for raw::RawCertificate { cert, key } in certificates.unwrap_or_default() {
            pairs.push(CertificateFiles {
                cert: file_setting(cert),
                key: file_setting(key),
            });
        }
        if pairs.is_empty() && ok {
            self.push(
                place.diag(
                    "a TLS listener needs a certificate: `cert` and `key`, or `certificates`",
                ),
            );
            ok = false;
        }
        let watch_interval = match watch_interval {
            None => Some(DEFAULT_TLS_WATCH_INTERVAL),
            Some(w) if w.value.0.is_zero() => None,
            Some(w) if w.value.0 < Duration::from_secs(1) => {
                self.push(w.diag("watch_interval must be at least 1s, or 0s to turn it off"));
                ok = false;
                None
            }
            Some(w) => Some(w.value.0),
        };
        ok.then(|| TlsListener {
            listen: listen.0,
            certificates: pairs,
            client_ca: client_ca.map(file_setting),
            client_auth: auth,
            watch_interval,
        })
    }

    /// `has_redis`: the node has `redis:`, which `cache` with
    /// `backend: redis` needs.
    fn apis(&mut self, raw: Vec<RawApi>, has_redis: bool) -> Vec<(Api, ApiPlaces)> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for api in raw {
            let RawApi {
                name,
                base_path,
                hosts,
                spec,
                routing,
                upstream,
                policies,
                security_schemes,
            } = api;
            let mut ok = true;
            if !seen.insert(name.value.0.clone()) {
                self.push(name.diag(format!("duplicate API name `{}`", name.value.0)));
                ok = false;
            }
            let has_spec = spec.is_some();
            let spec_place = spec.as_ref().map(Located::clone_place);
            let (loaded, operations, routing, base_path) =
                match self.api_spec(&name, spec, routing, base_path) {
                    Some(s) => s,
                    None => {
                        ok = false;
                        (None, None, Routing::Passthrough, None)
                    }
                };
            let mut policies = policies;
            for p in &mut policies {
                if !portico_policies::validate::is_unbound(&p.value.0) {
                    continue;
                }
                match &loaded {
                    Some(spec) => match portico_policies::validate::bind(&p.value.0, spec) {
                        Ok(bound) => p.value.0 = bound,
                        Err(errors) => {
                            for e in errors {
                                self.push(p.diag(format!("`validate`: {e}")));
                            }
                            ok = false;
                        }
                    },
                    // The spec's own errors are reported already.
                    None if has_spec => {}
                    None => {
                        self.push(p.diag(
                            "`validate` checks requests against the API's spec, and this API has no `spec`",
                        ));
                        ok = false;
                    }
                }
            }
            let mut host_names = Vec::new();
            for h in hosts {
                if host_names.contains(&h.value.0) {
                    self.push(h.diag(format!("host `{}` is listed twice", h.value.0)));
                    ok = false;
                } else {
                    host_names.push(h.value.0);
                }
            }
            let own_auth = policies
                .iter()
                .any(|p| p.value.0.phase() == portico_model::policy::Phase::Authentication);
            let security = match (&loaded, security_schemes) {
                (_, Some(s)) if own_auth => {
                    self.push(s.diag(
                        "`security_schemes` maps the spec's security, which applies only when `policies` lists no authentication policy; the API's own policies replace it",
                    ));
                    ok = false;
                    None
                }
                (None, Some(s)) => {
                    if spec_place.is_some() {
                        // The spec did not load; its errors are reported.
                    } else {
                        self.push(s.diag("`security_schemes` applies to an API with a `spec`"));
                    }
                    ok = false;
                    None
                }
                (Some(_), _) if own_auth => None,
                (Some(loaded), overrides) => {
                    match spec_place.as_ref().and_then(|place| {
                        security::compile(loaded, overrides, place, &mut self.errors)
                    }) {
                        Some(s) => s.map(Arc::new),
                        None => {
                            ok = false;
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            let authenticates = own_auth || security.is_some();
            for p in &policies {
                if p.value.0.needs_identity() && !authenticates {
                    self.push(p.diag(format!(
                        "`{}` counts per app, developer or credential, so the API needs an authentication policy (`api_key`, `basic_auth`, `jwt`, `mtls`)",
                        p.value.0.name()
                    )));
                    ok = false;
                }
            }
            let mut limit_names: Vec<&str> = Vec::new();
            for p in &policies {
                let Some(limit) = p.value.0.limit_name() else {
                    continue;
                };
                if limit_names.contains(&limit) {
                    self.push(p.diag(format!(
                        "two limits of this API are named `{limit}`: the RateLimit fields could not tell them apart; give one a `name`"
                    )));
                    ok = false;
                } else {
                    limit_names.push(limit);
                }
            }
            for p in &policies {
                let wants_redis = p
                    .value
                    .0
                    .cache()
                    .is_some_and(|c| c.backend == portico_model::cache::CacheBackend::Redis);
                if wants_redis && !has_redis {
                    self.push(p.diag(
                        "`cache` with `backend: redis` needs the node's `redis:` setting (or use `backend: memory`)",
                    ));
                    ok = false;
                }
            }
            let Some((upstream, mock_place)) = self.upstream(upstream) else {
                continue;
            };
            let mock = match mock_place {
                None => None,
                Some(place) => match self.mock(
                    &place,
                    loaded.as_ref(),
                    spec_place.is_some(),
                    routing,
                    &policies,
                ) {
                    Some(table) => Some(Arc::new(table)),
                    None => {
                        ok = false;
                        None
                    }
                },
            };
            let Some(base_path) = base_path.filter(|_| ok) else {
                continue;
            };
            out.push((
                Api {
                    name: name.value.0.clone(),
                    base_path: base_path.value.clone(),
                    hosts: host_names,
                    upstream,
                    policies: PolicyChain::new(policies.into_iter().map(|p| p.value.0).collect()),
                    operations: operations.map(Arc::new),
                    routing,
                    security,
                    mock,
                },
                ApiPlaces { base_path },
            ));
        }
        out
    }

    /// The prepared answers of a mock upstream; `place` is `mock: true`.
    fn mock(
        &mut self,
        place: &Located<()>,
        spec: Option<&Spec>,
        has_spec: bool,
        routing: Routing,
        policies: &[Located<raw::RawPolicy>],
    ) -> Option<portico_model::mock::MockTable> {
        let mut ok = true;
        for p in policies.iter().filter(|p| p.value.0.cache().is_some()) {
            self.push(p.diag(
                "`cache` has nothing to save on a mock upstream (`mock: true`), which answers at once; remove it",
            ));
            ok = false;
        }
        let Some(spec) = spec else {
            if !has_spec {
                self.push(place.diag(
                    "a mock upstream answers from the API's spec; add a `spec` (or give `targets`)",
                ));
            }
            return None;
        };
        if routing == Routing::Passthrough {
            self.push(place.diag(
                "a mock upstream answers the spec's operations only, so `routing: passthrough` has nothing to pass through to; remove `routing` or give `targets`",
            ));
            ok = false;
        }
        ok.then(|| crate::mock::table(spec))
    }

    /// The spec side of an API: its operation table, its routing, and its
    /// base path (written, or from the spec's first server). `None` when
    /// something is wrong (already reported).
    #[allow(clippy::type_complexity)]
    fn api_spec(
        &mut self,
        name: &Located<Name>,
        spec: Option<Located<serde_json::Value>>,
        routing: Option<Located<RawRouting>>,
        base_path: Option<Located<BasePath>>,
    ) -> Option<(
        Option<Spec>,
        Option<OperationTable>,
        Routing,
        Option<Located<String>>,
    )> {
        let written = base_path.map(|b| b.map(|b| b.0));
        let Some(spec) = spec else {
            if let Some(r) = &routing {
                self.push(r.diag("`routing` applies to an API with a `spec`"));
                return None;
            }
            let Some(written) = written else {
                let api = name.path.strip_suffix(".name").unwrap_or(&name.path);
                self.push(Diagnostic::new(
                    format!("{api}.base_path"),
                    "missing field `base_path` (it may be left out only when a `spec` gives one through `servers`)",
                    name.at,
                ));
                return None;
            };
            return Some((None, None, Routing::Passthrough, Some(written)));
        };
        let loaded = spec::load(&spec, &self.dir, &mut self.errors)?;
        let table = spec::operations(&loaded, &spec, &mut self.errors)?;
        let base_path = match written {
            Some(w) => w,
            None => {
                let from_server = spec::server_base_path(&loaded, &spec, &mut self.errors)?;
                Located {
                    value: from_server,
                    at: spec.at,
                    path: spec.path.clone(),
                }
            }
        };
        let routing = match routing.map(|r| r.value) {
            None | Some(RawRouting::Spec) => Routing::Spec,
            Some(RawRouting::Passthrough) => Routing::Passthrough,
        };
        Some((Some(loaded), Some(table), routing, Some(base_path)))
    }

    /// The upstream, and the place of `mock: true` when it is a mock.
    fn upstream(
        &mut self,
        raw: Located<raw::RawUpstream>,
    ) -> Option<(Upstream, Option<Located<()>>)> {
        let place = raw.clone_place();
        let raw::RawUpstream {
            targets,
            balance,
            hash_key,
            connect_timeout,
            timeout,
            retries,
            health_check,
            circuit_breaker,
            mock,
            protocol,
            tls,
        } = raw.value;
        if let Some(m) = mock.filter(|m| m.value) {
            // A mock answers by itself: every setting about targets is a
            // mistake rather than something to ignore.
            let mut ok = true;
            let mut refuse = |key: Option<Located<()>>| {
                if let Some(k) = key {
                    let name = k.path.rsplit('.').next().unwrap_or("").to_owned();
                    self.errors.push(k.diag(format!(
                        "`{name}` has no effect on a mock upstream (`mock: true`); remove it"
                    )));
                    ok = false;
                }
            };
            refuse(targets.as_ref().map(Located::clone_place));
            refuse(balance.as_ref().map(Located::clone_place));
            refuse(hash_key.as_ref().map(Located::clone_place));
            refuse(connect_timeout.as_ref().map(Located::clone_place));
            refuse(timeout.as_ref().map(Located::clone_place));
            refuse(retries.as_ref().map(Located::clone_place));
            refuse(health_check.as_ref().map(Located::clone_place));
            refuse(circuit_breaker.as_ref().map(Located::clone_place));
            refuse(protocol.as_ref().map(Located::clone_place));
            refuse(tls.as_ref().map(Located::clone_place));
            let upstream = Upstream {
                targets: Vec::new(),
                schedule: Vec::new(),
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                timeout: DEFAULT_TIMEOUT,
                balance: Balance::RoundRobin,
                health_check: None,
                circuit_breaker: None,
                retries: None,
                protocol: portico_model::api::UpstreamProtocol::Http1,
                tls: None,
            };
            return ok.then(|| (upstream, Some(m.clone_place())));
        }
        let Some(targets) = targets else {
            self.push(place.diag(
                "missing field `targets` (an upstream needs targets unless it is `mock: true`)",
            ));
            return None;
        };
        let mut ok = true;
        let balance_kind = balance.as_ref().map(|b| b.value);
        if let (Some(k), false) = (&hash_key, balance_kind == Some(RawBalance::ConsistentHash)) {
            self.push(k.diag("`hash_key` applies to `balance: consistent_hash` only"));
            ok = false;
        }
        let key = match &hash_key {
            None => Some(HashKey::ClientIp),
            Some(k) => match k.value.split_once(':') {
                None if k.value == "ip" => Some(HashKey::ClientIp),
                Some(("header", name)) => http::HeaderName::try_from(name.to_ascii_lowercase())
                    .ok()
                    .map(HashKey::Header),
                Some(("cookie", name)) if !name.is_empty() => {
                    Some(HashKey::Cookie(name.to_owned()))
                }
                _ => None,
            }
            .or_else(|| {
                self.push(k.diag(format!(
                    "invalid hash_key `{}`: expected `ip`, `header:NAME` or `cookie:NAME`",
                    k.value
                )));
                ok = false;
                None
            }),
        };
        let health_check = health_check.and_then(|h| {
            self.health_check(h.value)
                .ok_or(())
                .map_err(|()| ok = false)
                .ok()
        });
        let circuit_breaker = circuit_breaker.and_then(|c| {
            self.circuit_breaker(c.value)
                .ok_or(())
                .map_err(|()| ok = false)
                .ok()
        });
        let retries = retries.and_then(|r| {
            self.retries(r.value)
                .ok_or(())
                .map_err(|()| ok = false)
                .ok()
        });
        let mut durations = [DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT];
        for (slot, raw) in durations.iter_mut().zip([connect_timeout, timeout]) {
            if let Some(d) = raw {
                if d.value.0.is_zero() {
                    self.push(d.diag("a timeout must be greater than zero"));
                    ok = false;
                } else {
                    *slot = d.value.0;
                }
            }
        }
        if targets.value.is_empty() {
            self.push(targets.diag("an upstream needs at least one target"));
            ok = false;
        }
        let mut parsed = Vec::new();
        let listed = targets.value.len();
        for t in targets.value {
            match parse_target(&t.value) {
                Ok(target) => parsed.push(target),
                Err(m) => {
                    let place = match (&t.value.weight, m.starts_with("weight")) {
                        (Some(w), true) => w.diag(m),
                        _ => t.diag(m),
                    };
                    self.push(place);
                    ok = false;
                }
            }
        }
        // Protocol and TLS are checked against the schemes of all targets,
        // so only when every target parsed.
        if parsed.len() < listed {
            return None;
        }
        let protocol = upstream_tls::protocol(protocol.as_ref(), &parsed, &mut self.errors);
        let tls = upstream_tls::tls(tls, &parsed, &mut self.errors);
        let (Some(protocol), Ok(tls), true) = (protocol, tls, ok) else {
            return None;
        };
        let weights: Vec<u32> = parsed.iter().map(|t| t.weight).collect();
        let balance = match (balance_kind, key) {
            (Some(RawBalance::LeastRequests), _) => Balance::LeastRequests,
            (Some(RawBalance::ConsistentHash), Some(key)) => Balance::ConsistentHash {
                key,
                ring: HashRing::new(&parsed),
            },
            _ => Balance::RoundRobin,
        };
        Some((
            Upstream {
                schedule: wrr_schedule(&weights),
                targets: parsed,
                connect_timeout: durations[0],
                timeout: durations[1],
                balance,
                health_check,
                circuit_breaker,
                retries,
                protocol,
                tls,
            },
            None,
        ))
    }

    /// A positive duration, or `default` when absent.
    fn positive(
        &mut self,
        raw: Option<Located<DurationValue>>,
        default: Duration,
    ) -> Option<Duration> {
        match raw {
            None => Some(default),
            Some(d) if d.value.0.is_zero() => {
                self.push(d.diag("the duration must be greater than zero"));
                None
            }
            Some(d) => Some(d.value.0),
        }
    }

    /// A count of at least one, or `default` when absent.
    fn at_least_one(&mut self, raw: Option<Located<u32>>, default: u32) -> Option<u32> {
        match raw {
            None => Some(default),
            Some(n) if n.value == 0 => {
                self.push(n.diag("the value must be at least 1"));
                None
            }
            Some(n) => Some(n.value),
        }
    }

    fn health_check(&mut self, raw: raw::RawHealthCheck) -> Option<HealthCheck> {
        let raw::RawHealthCheck {
            path,
            interval,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
        } = raw;
        let mut ok = true;
        if !path.value.starts_with('/')
            || http::uri::PathAndQuery::try_from(path.value.as_str()).is_err()
        {
            self.push(path.diag(format!(
                "invalid health check path `{}`: expected an absolute path such as `/health`",
                path.value
            )));
            ok = false;
        }
        let timeout_place = timeout.as_ref().map(|t| t.diag(""));
        let interval = self.positive(interval, DEFAULT_HEALTH_INTERVAL);
        // Left out, the timeout shrinks to fit a short interval.
        let timeout = self.positive(
            timeout,
            interval.map_or(DEFAULT_HEALTH_TIMEOUT, |i| i.min(DEFAULT_HEALTH_TIMEOUT)),
        );
        let healthy = self.at_least_one(healthy_threshold, 2);
        let unhealthy = self.at_least_one(unhealthy_threshold, 3);
        let (Some(interval), Some(timeout), Some(healthy), Some(unhealthy), true) =
            (interval, timeout, healthy, unhealthy, ok)
        else {
            return None;
        };
        if let Some(mut d) = timeout_place.filter(|_| timeout > interval) {
            d.message = format!(
                "the health check timeout ({timeout:?}) must not be longer than its interval ({interval:?})"
            );
            self.push(d);
            return None;
        }
        Some(HealthCheck {
            path: path.value,
            interval,
            timeout,
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
        })
    }

    fn circuit_breaker(&mut self, raw: raw::RawCircuitBreaker) -> Option<CircuitBreaker> {
        let raw::RawCircuitBreaker {
            failures,
            error_rate,
            min_requests,
            window,
            cool_down,
            max_cool_down,
        } = raw;
        let mut ok = true;
        let error_rate = match error_rate {
            Some(r) if r.value.0 == 0 => {
                self.push(r.diag("`error_rate` must be above 0%"));
                ok = false;
                None
            }
            r => r.map(|r| r.value.0),
        };
        let max_place = max_cool_down.as_ref().map(|m| m.diag(""));
        let failures = self.at_least_one(failures, 5);
        let min_requests = self.at_least_one(min_requests, 20);
        let window = self.positive(window, Duration::from_secs(10));
        let cool_down = self.positive(cool_down, Duration::from_secs(10));
        let max_cool_down = self.positive(max_cool_down, Duration::from_secs(300));
        let (
            Some(failures),
            Some(min_requests),
            Some(window),
            Some(cool_down),
            Some(max_cool_down),
            true,
        ) = (failures, min_requests, window, cool_down, max_cool_down, ok)
        else {
            return None;
        };
        // An explicit maximum below the cool-down is a mistake; the default
        // maximum simply rises to meet a long cool-down.
        let max_cool_down = match max_place {
            Some(mut d) if max_cool_down < cool_down => {
                d.message = format!(
                    "`max_cool_down` ({max_cool_down:?}) must not be shorter than `cool_down` ({cool_down:?})"
                );
                self.push(d);
                return None;
            }
            _ => max_cool_down.max(cool_down),
        };
        Some(CircuitBreaker {
            failures,
            error_rate,
            min_requests,
            window,
            cool_down,
            max_cool_down,
        })
    }

    fn retries(&mut self, raw: raw::RawRetries) -> Option<Retries> {
        let raw::RawRetries {
            attempts,
            on,
            backoff,
            budget,
        } = raw;
        let mut ok = true;
        if !(1..=MAX_RETRIES).contains(&attempts.value) {
            self.push(attempts.diag(format!(
                "`attempts` must be from 1 to {MAX_RETRIES}: it counts the retries after the first try"
            )));
            ok = false;
        }
        let mut set = RetryOn::default();
        match on {
            None => set = RetryOn::DEFAULT,
            Some(list) => {
                if list.value.is_empty() {
                    self.push(list.diag(
                        "`on` is empty: list at least one condition, or leave it out for the default",
                    ));
                    ok = false;
                }
                for c in list.value {
                    match c.value {
                        RetryCondition::Named(flag) => set = set.with(flag),
                        RetryCondition::Status(n) => {
                            match u16::try_from(n).ok().and_then(RetryOn::status) {
                                Some(flag) => set = set.with(flag),
                                None => {
                                    self.push(c.diag(format!(
                                        "status {n} cannot be retried: only 502, 503 and 504 say the request was not processed"
                                    )));
                                    ok = false;
                                }
                            }
                        }
                    }
                }
            }
        }
        let backoff = match backoff {
            None => Some(DEFAULT_RETRY_BACKOFF),
            Some(b) if b.value.0 > Duration::from_secs(10) => {
                self.push(b.diag("`backoff` must be at most 10s"));
                None
            }
            Some(b) => Some(b.value.0),
        };
        let budget_percent = budget.map_or(DEFAULT_RETRY_BUDGET, |b| b.value.0);
        let (Some(backoff), true) = (backoff, ok) else {
            return None;
        };
        Some(Retries {
            attempts: attempts.value,
            on: set,
            backoff,
            budget_percent,
        })
    }

    fn products(&mut self, raw: Vec<RawProduct>, apis: &[(Api, ApiPlaces)]) -> Vec<Product> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for p in raw {
            let RawProduct {
                name,
                apis: api_refs,
                quota,
                rate_limit,
                approval,
                description,
            } = p;
            let mut ok = names.insert(name.value.0.clone());
            if !ok {
                self.push(name.diag(format!("duplicate product name `{}`", name.value.0)));
            }
            for r in &api_refs {
                if !apis.iter().any(|(a, _)| a.name == r.value) {
                    self.push(r.diag(format!("unknown API `{}`", r.value)));
                    ok = false;
                }
            }
            let quota = quota.and_then(|l| self.limit(l));
            let rate_limit = rate_limit.and_then(|l| self.limit(l));
            if ok {
                out.push(Product {
                    name: name.value.0,
                    description,
                    apis: api_refs.into_iter().map(|r| r.value).collect(),
                    quota,
                    rate_limit,
                    approval: match approval {
                        raw::RawApproval::Auto => Approval::Auto,
                        raw::RawApproval::Manual => Approval::Manual,
                    },
                });
            }
        }
        out
    }

    fn limit(&mut self, raw: raw::RawLimit) -> Option<Limit> {
        let raw::RawLimit { limit, window } = raw;
        if limit.value == 0 {
            self.push(limit.diag("a limit must be at least 1"));
            return None;
        }
        if window.value.0.is_zero() {
            self.push(window.diag("a window must be greater than zero"));
            return None;
        }
        Some(Limit {
            limit: limit.value,
            window: window.value.0,
        })
    }

    fn developers(&mut self, raw: Vec<RawDeveloper>) -> Vec<Developer> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for d in raw {
            let RawDeveloper { email, name } = d;
            let normalised = email.value.to_ascii_lowercase();
            if !is_email(&normalised) {
                self.push(email.diag(format!("invalid e-mail address `{}`", email.value)));
            } else if !seen.insert(normalised.clone()) {
                self.push(email.diag(format!("duplicate developer `{}`", email.value)));
            } else {
                out.push(Developer {
                    email: normalised,
                    name,
                });
            }
        }
        out
    }

    fn apps(
        &mut self,
        raw: Vec<RawApp>,
        products: &[Product],
        developers: &[Developer],
        apis: &[(Api, ApiPlaces)],
    ) -> Consumers {
        let mut names = HashSet::new();
        let mut keys: HashSet<[u8; 32]> = HashSet::new();
        let mut client_ids = HashSet::new();
        let mut out = Consumers::default();
        for a in raw {
            let RawApp {
                name,
                developer,
                products: product_refs,
                api_keys,
                api_key_hashes: key_digests,
                oauth_clients,
                basic_auth,
                certificates,
            } = a;
            let mut ok = names.insert(name.value.0.clone());
            if !ok {
                self.push(name.diag(format!("duplicate app name `{}`", name.value.0)));
            }
            let owner = developer.value.to_ascii_lowercase();
            if !developers.iter().any(|d| d.email == owner) {
                self.push(developer.diag(format!("unknown developer `{}`", developer.value)));
                ok = false;
            }
            for r in &product_refs {
                if !products.iter().any(|p| p.name == r.value) {
                    self.push(r.diag(format!("unknown product `{}`", r.value)));
                    ok = false;
                }
            }
            let mut api_key_hashes = Vec::new();
            for k in &api_keys {
                if k.value.len() < 8 || k.value.chars().any(|c| !c.is_ascii_graphic()) {
                    self.push(k.diag("an API key must be at least 8 visible ASCII characters"));
                    ok = false;
                    continue;
                }
                let hash: [u8; 32] = Sha256::digest(k.value.as_bytes()).into();
                if !keys.insert(hash) {
                    self.push(
                        k.diag("this API key is already used by another app or listed twice"),
                    );
                    ok = false;
                }
                api_key_hashes.push(hash);
            }
            for k in &key_digests {
                let Some(hash) = parse_sha256_hex(&k.value) else {
                    self.push(k.diag("an API key hash is a SHA-256 digest: 64 hexadecimal digits"));
                    ok = false;
                    continue;
                };
                if !keys.insert(hash) {
                    self.push(
                        k.diag("this API key is already used by another app or listed twice"),
                    );
                    ok = false;
                }
                api_key_hashes.push(hash);
            }
            let mut clients = Vec::new();
            for c in oauth_clients {
                let raw::RawOAuthClient {
                    client_id,
                    client_secret,
                    client_secret_hash,
                } = c;
                if client_id.value.is_empty() || !client_ids.insert(client_id.value.clone()) {
                    self.push(client_id.diag(format!(
                        "client id `{}` is empty or already used",
                        client_id.value
                    )));
                    ok = false;
                }
                let secret_hash =
                    match (client_secret, client_secret_hash) {
                        (Some(s), None) if s.value.len() >= 8 => {
                            Some(Sha256::digest(s.value.as_bytes()).into())
                        }
                        (Some(s), None) => {
                            self.push(s.diag("a client secret must be at least 8 characters"));
                            None
                        }
                        (None, Some(h)) => match parse_sha256_hex(&h.value) {
                            Some(digest) => Some(digest),
                            None => {
                                self.push(h.diag(
                                "a client secret hash is a SHA-256 digest: 64 hexadecimal digits",
                            ));
                                None
                            }
                        },
                        _ => {
                            self.push(client_id.diag(
                                "give exactly one of `client_secret` and `client_secret_hash`",
                            ));
                            None
                        }
                    };
                let Some(secret_hash) = secret_hash else {
                    ok = false;
                    continue;
                };
                clients.push(OAuthClient {
                    client_id: client_id.value,
                    secret_hash,
                });
            }
            let mut basic = Vec::new();
            for c in basic_auth {
                let raw::RawBasicCredential {
                    username,
                    password,
                    password_hash,
                } = c;
                let user = username.value.clone();
                if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                    self.push(
                        username
                            .diag("a user name is not empty and has no `:` or control characters"),
                    );
                    ok = false;
                    continue;
                }
                if out.basic_users.contains_key(&user) || basic.iter().any(|(u, _)| u == &user) {
                    self.push(username.diag(format!("user name `{user}` is already used")));
                    ok = false;
                    continue;
                }
                let hash = match (password, password_hash) {
                    (Some(p), None) if p.value.len() >= 8 => {
                        portico_policies::basic_auth::hash_password(&p.value)
                            .map_err(|e| p.diag(format!("cannot hash the password: {e}")))
                    }
                    (Some(p), None) => Err(p.diag("a password must be at least 8 characters")),
                    (None, Some(h)) => portico_policies::basic_auth::check_password_hash(&h.value)
                        .map(|()| h.value.clone())
                        .map_err(|e| h.diag(e)),
                    _ => Err(username.diag("give exactly one of `password` and `password_hash`")),
                };
                match hash {
                    Ok(h) => basic.push((user, h)),
                    Err(d) => {
                        self.push(d);
                        ok = false;
                    }
                }
            }
            for c in &certificates {
                if c.value.trim().is_empty() || out.certificates.contains_key(&c.value) {
                    self.push(c.diag(format!(
                        "certificate name `{}` is empty or already used",
                        c.value
                    )));
                    ok = false;
                }
            }
            if ok {
                let index = u32::try_from(out.apps.len()).expect("fewer than 2^32 apps");
                for c in certificates {
                    out.certificates.insert(c.value, index);
                }
                for c in &clients {
                    out.clients.insert(c.client_id.clone(), index);
                }
                for (user, hash) in basic {
                    out.basic_users.insert(
                        user,
                        BasicUser {
                            app: index,
                            password_hash: hash.into(),
                        },
                    );
                }
                // Subscriptions in the file are granted: the file is the
                // operator's own word, so `approval: manual` does not hold them.
                let mut callable: Vec<u32> = products
                    .iter()
                    .filter(|p| product_refs.iter().any(|r| r.value == p.name))
                    .flat_map(|p| p.apis.iter())
                    .filter_map(|api| apis.iter().position(|(a, _)| &a.name == api))
                    .map(|i| u32::try_from(i).expect("fewer than 2^32 APIs"))
                    .collect();
                callable.sort_unstable();
                callable.dedup();
                let access = callable
                    .iter()
                    .filter_map(|&api| {
                        let api_name = &apis[api as usize].0.name;
                        let granting: Vec<&Product> = product_refs
                            .iter()
                            .filter_map(|r| products.iter().find(|p| p.name == r.value))
                            .filter(|p| p.apis.contains(api_name))
                            .collect();
                        let first = granting.first()?;
                        let limits = granting
                            .iter()
                            .flat_map(|p| {
                                let product: Arc<str> = p.name.as_str().into();
                                [(false, p.rate_limit), (true, p.quota)]
                                    .into_iter()
                                    .filter_map(move |(quota, l)| {
                                        let limit = l?;
                                        let kind = if quota { "quota" } else { "rate_limit" };
                                        Some(ProductLimit {
                                            name: format!("{}.{kind}", p.name).into(),
                                            product: product.clone(),
                                            quota,
                                            limit,
                                        })
                                    })
                            })
                            .collect();
                        Some(ApiAccess {
                            api,
                            product: first.name.as_str().into(),
                            limits,
                        })
                    })
                    .collect();
                for digest in &api_key_hashes {
                    out.api_keys
                        .insert(*digest, ApiKeyEntry::new(*digest, index));
                }
                // Names and e-mails are validated visible ASCII.
                let identity_headers = [name.value.0.as_str(), owner.as_str()]
                    .map(|v| http::HeaderValue::from_str(v).expect("validated header-safe"));
                out.apps.push(Arc::new(App {
                    identity_headers,
                    name: name.value.0,
                    developer: owner,
                    products: product_refs.into_iter().map(|r| r.value).collect(),
                    api_key_hashes,
                    oauth_clients: clients,
                    apis: callable,
                    access,
                }));
            }
        }
        out
    }
}

/// Places of an API's fields that later checks report against.
struct ApiPlaces {
    base_path: Located<String>,
}

impl<T> Located<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            value: f(self.value),
            at: self.at,
            path: self.path,
        }
    }
}

/// A SHA-256 digest written as 64 hexadecimal digits (either case).
fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn parse_target(raw: &RawTarget) -> Result<Target, String> {
    let weight = raw.weight.as_ref().map_or(1, |w| w.value);
    if !(1..=MAX_WEIGHT).contains(&weight) {
        return Err(format!("weight must be between 1 and {MAX_WEIGHT}"));
    }
    let url = raw.url.trim();
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid target URL `{url}`: {e}"))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| format!("invalid target URL `{url}`: expected http://HOST[:PORT][/PATH]"))?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(format!(
            "invalid target URL `{url}`: the scheme must be http or https"
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| format!("invalid target URL `{url}`: it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "invalid target URL `{url}`: credentials in the URL are not allowed"
        ));
    }
    let after_host = authority
        .as_str()
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, rest)| rest);
    if after_host.contains(':') && authority.port().is_none() {
        return Err(format!(
            "invalid target URL `{url}`: the port is not a number from 0 to 65535"
        ));
    }
    if uri.query().is_some() {
        return Err(format!(
            "invalid target URL `{url}`: a target cannot have a query"
        ));
    }
    let path_prefix = uri.path().trim_end_matches('/').to_owned();
    Ok(Target {
        url: url.into(),
        scheme,
        authority,
        path_prefix,
        weight,
    })
}

fn parse_storage(s: &str) -> Result<Storage, String> {
    match s.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(Storage::Sqlite(PathBuf::from(path))),
        Some(("postgres" | "postgresql", rest)) if !rest.is_empty() => {
            Ok(Storage::Postgres(s.to_owned()))
        }
        _ => Err(format!(
            "invalid storage `{s}`: expected sqlite://PATH or postgres://USER@HOST/DB"
        )),
    }
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            // ASCII only: the address travels in an HTTP header upstream.
            s.is_ascii()
                && !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
                && !domain.contains('@')
        }
        None => false,
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "limits_tests.rs"]
mod limits_tests;

#[cfg(test)]
#[path = "cache_tests.rs"]
mod cache_tests;

#[cfg(test)]
#[path = "security_tests.rs"]
mod security_tests;

#[cfg(test)]
#[path = "mock_tests.rs"]
mod mock_tests;
