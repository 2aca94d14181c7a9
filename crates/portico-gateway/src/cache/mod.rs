//! The response cache on the request path (the `cache` policy).
//!
//! After the request phases up to validation, [`lookup`] answers a fresh
//! stored response (a hit), or returns a [`Forward`] that goes with the
//! request upstream. When the upstream's head arrives, [`Forward::on_response`]
//! decides (RFC 9111, [`freshness`]) whether to store it; the body is then
//! copied while it streams ([`Tee`]) and stored when it ends, unless it
//! grows past `max_entry_size`. Every answer carries `Cache-Status`
//! (RFC 9211).
//!
//! Concurrent misses on one key make one upstream request: the first
//! becomes the leader, the others wait for its stored response (bounded
//! by the API's upstream timeout) and forward on their own if it is not
//! storable.
//!
//! State that outlives a snapshot lives in [`NodeCache`]: the backends and
//! the requests in flight. Entries are keyed by API name, so they survive
//! reloads. See `docs/adr/0006-response-cache.md`.

mod freshness;
mod key;
mod tee;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, request, response};
use portico_model::cache::{CacheSettings, CacheStore, CacheStores, CachedResponse, Found, Stored};
use tokio::sync::watch;

use crate::body::GatewayBody;
use crate::metrics::{ApiMetrics, CacheResult};

pub(crate) use self::freshness::Directives;
use self::freshness::{RequestFacts, satisfies, storable, unix_ms, vary_names};
pub(crate) use self::tee::Tee;

pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The cache's name in `Cache-Status`.
const NAME: &str = "Portico";

/// Cache state of a node, kept across snapshots.
#[derive(Debug)]
pub struct NodeCache {
    stores: CacheStores,
    /// Misses being fetched, by API, generation and primary key.
    inflight: DashMap<String, Flight>,
    next_flight: AtomicU64,
}

#[derive(Debug)]
struct Flight {
    id: u64,
    tx: watch::Sender<Option<Arc<Completed>>>,
}

/// What a leader hands its waiters.
#[derive(Debug)]
pub(crate) struct Completed {
    response: Arc<CachedResponse>,
    /// The response's `Vary` names and the secondary key of the leader's
    /// request: a waiter whose headers select another variant forwards.
    variant: Option<(Arc<[HeaderName]>, String)>,
}

/// The request fetching a key for others. Dropping it (the response was
/// stored, was not storable, or failed) releases the waiters.
#[derive(Debug)]
pub(crate) struct Leader {
    node: Arc<NodeCache>,
    key: String,
    id: u64,
    tx: watch::Sender<Option<Arc<Completed>>>,
}

impl Leader {
    fn complete(&self, c: Completed) {
        self.tx.send_replace(Some(Arc::new(c)));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let id = self.id;
        self.node.inflight.remove_if(&self.key, |_, f| f.id == id);
    }
}

impl NodeCache {
    pub fn new(stores: CacheStores) -> Self {
        Self {
            stores,
            inflight: DashMap::new(),
            next_flight: AtomicU64::new(1),
        }
    }

    pub(crate) fn stores(&self) -> &CacheStores {
        &self.stores
    }

    /// Forgets every entry of `api` in every backend: one generation bump
    /// each. The Redis bump reaches every node sharing it.
    pub async fn purge(&self, api: &str) -> Result<(), portico_model::cache::CacheError> {
        self.stores.memory.purge(api).await?;
        if let Some(r) = &self.stores.redis {
            r.purge(api).await?;
        }
        Ok(())
    }
}

/// What the request path does after a lookup.
pub(crate) enum Looked {
    /// A stored response answers (head only for HEAD).
    Hit(Response<GatewayBody>),
    /// Go upstream; the forward decides about storing the answer.
    Forward(Forward),
}

/// A request on its way upstream, as the cache sees it.
pub(crate) struct Forward {
    /// `fwd` of `Cache-Status`: `uri-miss`, `vary-miss`, `stale`,
    /// `request`, `method`, `bypass`.
    fwd: &'static str,
    /// `collapsed` parameter: waited for a leader that stored nothing.
    collapsed_failed: bool,
    detail: Option<&'static str>,
    plan: Option<Box<Plan>>,
}

/// What storing the response needs.
pub(crate) struct Plan {
    store: Arc<dyn CacheStore>,
    settings: Arc<CacheSettings>,
    api: Arc<str>,
    metrics: Arc<ApiMetrics>,
    generation: u64,
    primary: String,
    /// The request's headers, for the response's `Vary`.
    req_headers: HeaderMap,
    authorization: bool,
    sent: SystemTime,
    leader: Option<Leader>,
}

/// The request as the lookup needs it.
pub(crate) struct Request<'a> {
    pub parts: &'a request::Parts,
    pub host: Option<&'a str>,
    pub app: Option<&'a str>,
    /// The client's request carried `Authorization` (before policies
    /// removed a credential).
    pub authorization: bool,
}

impl Forward {
    fn bypass(fwd: &'static str, detail: Option<&'static str>) -> Self {
        Self {
            fwd,
            collapsed_failed: false,
            detail,
            plan: None,
        }
    }

    /// Decides about the upstream's response head (before the response
    /// policies run, so per-request headers such as CORS are never
    /// stored), sets `Cache-Status`, and returns what copies the body when
    /// the response is to be stored.
    pub(crate) fn on_response(self, head: &mut response::Parts) -> Option<Tee> {
        let Forward {
            fwd,
            collapsed_failed,
            detail,
            plan,
        } = self;
        let mut status = format!("{NAME}; fwd={fwd}; fwd-status={}", head.status.as_u16());
        if collapsed_failed {
            status.push_str("; collapsed=?0");
        }
        let tee = plan.and_then(|plan| {
            let decided = storable(
                &plan.settings,
                RequestFacts {
                    authorization: plan.authorization,
                    sent: plan.sent,
                },
                head.status,
                &head.headers,
                SystemTime::now(),
            );
            let too_large = head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n > plan.settings.max_entry_size);
            match decided {
                Ok(_) if too_large => {
                    plan.metrics.cache(CacheResult::TooLarge);
                    let _ = write!(status, "; detail=too-large");
                    None
                }
                Ok(fresh) => {
                    status.push_str("; stored");
                    Some(Tee::capture(*plan, head, fresh))
                }
                Err(why) => {
                    plan.metrics.cache(CacheResult::Uncacheable);
                    let _ = write!(status, "; detail={}", why.as_str());
                    None
                }
            }
        });
        if tee.is_none()
            && let Some(d) = detail
        {
            let _ = write!(status, "; detail={d}");
        }
        append_status(&mut head.headers, &status);
        tee
    }
}

/// Appends this cache's member to `Cache-Status` (a list: caches nearer
/// the origin come first).
fn append_status(headers: &mut HeaderMap, member: &str) {
    let value = match headers.get(&CACHE_STATUS).and_then(|v| v.to_str().ok()) {
        Some(upstream) => format!("{upstream}, {member}"),
        None => member.to_owned(),
    };
    if let Ok(v) = HeaderValue::try_from(value) {
        headers.insert(&CACHE_STATUS, v);
    }
}

/// The per-API facts the lookup needs.
pub(crate) struct ApiCache<'a> {
    pub node: &'a Arc<NodeCache>,
    pub settings: &'a Arc<CacheSettings>,
    pub api: &'a Arc<str>,
    pub metrics: &'a Arc<ApiMetrics>,
    /// How long a waiter waits for its leader: the API's upstream timeout.
    pub wait: Duration,
}

/// Looks the request up.
pub(crate) async fn lookup(c: ApiCache<'_>, req: Request<'_>) -> Looked {
    let parts = req.parts;
    let head_only = parts.method == Method::HEAD;
    if parts.method != Method::GET && !head_only {
        c.metrics.cache(CacheResult::Bypass);
        return Looked::Forward(Forward::bypass("method", None));
    }
    let directives = Directives::of(&parts.headers);
    let store = c.node.stores.pick(c.settings.backend).clone();
    let primary = key::primary(
        &key::KeyParts {
            host: req.host,
            path: parts.uri.path(),
            query: parts.uri.query(),
            app: req.app,
        },
        &c.settings.vary,
        &parts.headers,
    );
    let now = SystemTime::now();
    let plan = |generation: u64, leader: Option<Leader>| -> Option<Box<Plan>> {
        (!head_only && !directives.no_store).then(|| {
            Box::new(Plan {
                store: store.clone(),
                settings: c.settings.clone(),
                api: c.api.clone(),
                metrics: c.metrics.clone(),
                generation,
                primary: primary.clone(),
                req_headers: parts.headers.clone(),
                authorization: req.authorization,
                sent: now,
                leader,
            })
        })
    };
    if directives.no_cache || directives.no_store || directives.max_age == Some(0) {
        // The client asks for a fresh answer (or that nothing be kept);
        // a no-cache answer still refreshes the entry.
        c.metrics.cache(CacheResult::Bypass);
        let generation = if directives.no_store {
            0
        } else {
            match store.get(c.api, &primary).await {
                Ok(found) => found.generation,
                Err(_) => {
                    return Looked::Forward(Forward::bypass("request", Some("backend-error")));
                }
            }
        };
        return Looked::Forward(Forward {
            plan: plan(generation, None),
            ..Forward::bypass("request", None)
        });
    }

    let found = match store.get(c.api, &primary).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(api = %c.api, error = %e, "Cache lookup failed; a miss.");
            c.metrics.cache(CacheResult::Miss);
            return Looked::Forward(Forward::bypass("uri-miss", Some("backend-error")));
        }
    };
    let generation = found.generation;
    let mut fwd = "uri-miss";
    let entry = match found.stored {
        None => None,
        Some(Stored::Response(r)) => Some(r),
        Some(Stored::Variants(names)) => {
            // The response varies: its variants live under secondary keys.
            fwd = "vary-miss";
            let secondary = key::secondary(&primary, &names, &parts.headers);
            match store.get(c.api, &secondary).await {
                Ok(Found {
                    generation: g,
                    stored: Some(Stored::Response(r)),
                }) if g == generation => Some(r),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(api = %c.api, error = %e, "Cache lookup failed; a miss.");
                    c.metrics.cache(CacheResult::Miss);
                    return Looked::Forward(Forward::bypass(fwd, Some("backend-error")));
                }
            }
        }
    };
    if let Some(entry) = entry {
        let now_ms = unix_ms(now);
        let (age, ttl) = (entry.age(now_ms), entry.ttl(now_ms));
        if satisfies(&directives, age, ttl) {
            c.metrics.cache(CacheResult::Hit);
            let status = format!("{NAME}; hit; ttl={}", ttl.as_secs());
            return Looked::Hit(hit(&entry, age, &parts.headers, head_only, &status));
        }
        fwd = "stale";
        c.metrics.cache(CacheResult::Stale);
    } else {
        c.metrics.cache(CacheResult::Miss);
    }
    if head_only || is_conditional(&parts.headers) {
        // Its answer is not stored (HEAD) or likely a 304: it neither
        // leads nor waits.
        return Looked::Forward(Forward {
            plan: plan(generation, None),
            ..Forward::bypass(fwd, None)
        });
    }

    // Single flight: lead, or wait for the leader.
    let flight_key = format!("{}/{generation}/{primary}", c.api);
    let rx = match c.node.inflight.entry(flight_key.clone()) {
        Entry::Occupied(o) => o.get().tx.subscribe(),
        Entry::Vacant(v) => {
            let id = c.node.next_flight.fetch_add(1, Ordering::Relaxed);
            let (tx, _) = watch::channel(None);
            v.insert(Flight { id, tx: tx.clone() });
            let leader = Leader {
                node: c.node.clone(),
                key: flight_key,
                id,
                tx,
            };
            return Looked::Forward(Forward {
                plan: plan(generation, Some(leader)),
                ..Forward::bypass(fwd, None)
            });
        }
    };
    let completed = wait_for(rx, c.wait).await;
    if let Some(done) = completed {
        let selected = match &done.variant {
            None => true,
            Some((names, leader_key)) => {
                key::secondary(&primary, names, &parts.headers) == *leader_key
            }
        };
        if selected {
            let now_ms = unix_ms(SystemTime::now());
            let (age, ttl) = (done.response.age(now_ms), done.response.ttl(now_ms));
            c.metrics.cache(CacheResult::Collapsed);
            let status = format!("{NAME}; fwd={fwd}; collapsed; ttl={}", ttl.as_secs());
            return Looked::Hit(hit(&done.response, age, &parts.headers, false, &status));
        }
    }
    Looked::Forward(Forward {
        collapsed_failed: true,
        plan: plan(generation, None),
        ..Forward::bypass(fwd, None)
    })
}

async fn wait_for(
    mut rx: watch::Receiver<Option<Arc<Completed>>>,
    wait: Duration,
) -> Option<Arc<Completed>> {
    let waited = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(v)) => v.clone(),
        _ => None,
    }
}

fn is_conditional(h: &HeaderMap) -> bool {
    h.contains_key(header::IF_NONE_MATCH) || h.contains_key(header::IF_MODIFIED_SINCE)
}

/// The answer from a stored response: its head with `Age` and
/// `Cache-Status`, and its body unless the request was HEAD. A request
/// whose `If-None-Match` names the stored `ETag` gets 304.
fn hit(
    entry: &CachedResponse,
    age: Duration,
    req: &HeaderMap,
    head_only: bool,
    status: &str,
) -> Response<GatewayBody> {
    let not_modified = match (
        req.get(header::IF_NONE_MATCH),
        entry.headers.get(header::ETAG),
    ) {
        (Some(inm), Some(etag)) => etag_matches(inm, etag),
        _ => false,
    };
    let mut resp = if not_modified {
        let mut r = Response::new(GatewayBody::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [
            header::CACHE_CONTROL,
            header::CONTENT_LOCATION,
            header::DATE,
            header::ETAG,
            header::EXPIRES,
            header::VARY,
        ] {
            for v in entry.headers.get_all(&name) {
                r.headers_mut().append(name.clone(), v.clone());
            }
        }
        r
    } else {
        let body = if head_only {
            GatewayBody::empty()
        } else {
            GatewayBody::full(entry.body.clone())
        };
        let mut r = Response::new(body);
        *r.status_mut() = entry.status;
        *r.headers_mut() = entry.headers.clone();
        r
    };
    resp.headers_mut()
        .insert(header::AGE, HeaderValue::from(age.as_secs()));
    append_status(resp.headers_mut(), status);
    resp
}

/// Weak comparison (RFC 9110 §13.1.2) of `If-None-Match` with an `ETag`.
fn etag_matches(inm: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(inm), Ok(etag)) = (inm.to_str(), etag.to_str()) else {
        return false;
    };
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = weak(etag);
    inm.trim() == "*" || inm.split(',').any(|t| weak(t) == etag)
}

/// Called by the body copy when the whole body has arrived.
fn finish(
    plan: Plan,
    status: StatusCode,
    mut headers: HeaderMap,
    body: Bytes,
    fresh: freshness::Freshness,
) {
    let Plan {
        store,
        api,
        metrics,
        generation,
        primary,
        req_headers,
        leader,
        ..
    } = plan;
    let vary = match vary_names(&headers) {
        Ok(v) => v,
        Err(()) => return,
    };
    headers.remove(header::AGE);
    if status == StatusCode::NO_CONTENT {
        // RFC 9110 §8.6: never on a 204.
        headers.remove(header::CONTENT_LENGTH);
    } else {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let entry = Arc::new(CachedResponse {
        status,
        headers,
        body,
        stored_at_ms: unix_ms(SystemTime::now()),
        initial_age: fresh.initial_age,
        lifetime: fresh.lifetime,
    });
    let ttl = fresh.ttl();
    let (variant, marker) = if vary.is_empty() {
        (None, None)
    } else {
        let names: Arc<[HeaderName]> = vary.into();
        let secondary = key::secondary(&primary, &names, &req_headers);
        (
            Some((names.clone(), secondary)),
            Some(Stored::Variants(names)),
        )
    };
    let key = variant.as_ref().map_or(primary.clone(), |(_, k)| k.clone());
    if let Some(l) = &leader {
        l.complete(Completed {
            response: entry.clone(),
            variant,
        });
    }
    metrics.cache(CacheResult::Stored);
    // Made now: the in-process store inserts when called, so the entry is
    // there before the client has read the end of the body.
    let marker = marker.map(|m| store.put(&api, generation, &primary, m, ttl));
    let put = store.put(&api, generation, &key, Stored::Response(entry), ttl);
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let stored = match marker {
            Some(m) => match m.await {
                Ok(()) => put.await,
                Err(e) => Err(e),
            },
            None => put.await,
        };
        if let Err(e) = stored {
            tracing::debug!(api = %api, error = %e, "A cache entry could not be stored.");
        }
        // Held until stored: a request arriving meanwhile waits for this
        // one instead of going upstream.
        drop(leader);
    });
}

/// Why a store was not attempted, for the metrics of the body copy.
pub(crate) fn too_large(plan: &Plan) {
    plan.metrics.cache(CacheResult::TooLarge);
}

#[cfg(test)]
mod tests {
    use super::freshness::NotStored;
    use super::*;

    #[test]
    fn etags_compare_weakly() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(etag_matches(&v("\"a\""), &v("W/\"a\"")));
        assert!(etag_matches(&v("\"x\", W/\"a\""), &v("\"a\"")));
        assert!(etag_matches(&v("*"), &v("\"a\"")));
        assert!(!etag_matches(&v("\"b\""), &v("\"a\"")));
    }

    #[test]
    fn cache_status_appends_to_the_upstream_list() {
        let mut h = HeaderMap::new();
        append_status(&mut h, "Portico; hit");
        assert_eq!(h[&CACHE_STATUS], "Portico; hit");
        h.insert(&CACHE_STATUS, HeaderValue::from_static("Origin; hit"));
        append_status(&mut h, "Portico; fwd=uri-miss");
        assert_eq!(h[&CACHE_STATUS], "Origin; hit, Portico; fwd=uri-miss");
    }

    #[test]
    fn not_stored_reasons_are_tokens() {
        for r in [
            NotStored::NoStore,
            NotStored::Private,
            NotStored::NoCache,
            NotStored::SetCookie,
            NotStored::Authorization,
            NotStored::VaryStar,
            NotStored::Status,
            NotStored::NoFreshness,
        ] {
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-')
            );
        }
    }
}
