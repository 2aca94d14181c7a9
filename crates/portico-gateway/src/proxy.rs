//! The request path: route, forward, answer.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::header::HeaderName;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, Version, header};
use http_body::Body as _;
use portico_model::policy::{Rejection, RequestContext};
use portico_model::validate::ResponseMode;
use portico_model::{Api, ApiOperation, ErrorCode, OperationMatch, Routing};

use crate::body::{
    BodyHolder, ClientBody, Exchange, GatewayBody, LogContext, RequestBody, UpstreamBody,
};
use crate::headers::{
    Forwarding, X_PORTICO_APP, X_PORTICO_DEVELOPER, X_REQUEST_ID, remove_hop_by_hop, request_id,
};
use crate::health::{self, Unavailable, UpstreamHealth};
use crate::limits::{self, RateLimitFields, Refusal};
use crate::path;
use crate::pipeline::{self, Stop};
use crate::server::ConnectionInfo;
use crate::state::Gateway;
use crate::upstream::TargetSet;
use crate::{cache, client, mock, problem, upgrade, upstream::ApiRuntime, validate};
use portico_model::api::RetryOn;

/// Everything a failed exchange needs to answer and be recorded.
struct Failure {
    code: ErrorCode,
    detail: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Extension members of the problem document (`violated-policies`).
    members: Vec<(&'static str, serde_json::Value)>,
}

pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

impl Failure {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            headers: Vec::new(),
            members: Vec::new(),
        }
    }

    /// The 429 of a limit without room.
    fn limited(r: Refusal) -> Self {
        let violated = r
            .violated
            .iter()
            .map(|n| serde_json::Value::from(&**n))
            .collect();
        Self {
            code: ErrorCode::QuotaExceeded,
            detail: r.detail,
            headers: vec![(header::RETRY_AFTER, HeaderValue::from(r.retry_after))],
            members: vec![("violated-policies", serde_json::Value::Array(violated))],
        }
    }

    fn into_response(self, id: &HeaderValue) -> Response<GatewayBody> {
        let mut resp = problem::response_with(
            self.code,
            &self.detail,
            id.to_str().unwrap_or(""),
            &self.members,
        );
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp.map(GatewayBody::full)
    }
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        let members = if r.errors.is_empty() {
            Vec::new()
        } else {
            vec![("errors", validate::errors_member(&r.errors))]
        };
        Self {
            code: r.code,
            detail: r.detail,
            headers: r.headers,
            members,
        }
    }
}

/// The spec operation of a request to `api`. Under `routing: spec` an
/// undeclared path is a 404 and an undeclared method a 405, except for
/// `OPTIONS`, whose `Allow` value is handed back so that the access
/// policies (`cors`) may answer it first. Under `routing: passthrough` a
/// request that matches no operation goes on without one.
fn match_operation<'a>(
    api: &'a Api,
    method: &Method,
    path: &str,
) -> Result<(Option<&'a ApiOperation>, Option<&'a HeaderValue>), Failure> {
    let Some(table) = &api.operations else {
        return Ok((None, None));
    };
    match table.lookup(method, api.rest_of(path)) {
        OperationMatch::Found(op) => Ok((Some(op), None)),
        _ if api.routing == Routing::Passthrough => Ok((None, None)),
        OperationMatch::NoPath => Err(Failure::new(
            ErrorCode::NoOperation,
            format!("API `{}` declares no operation at {path}.", api.name),
        )),
        OperationMatch::NoMethod { allow } if method == Method::OPTIONS => Ok((None, Some(allow))),
        OperationMatch::NoMethod { allow } => Err(method_not_allowed(api, method, path, allow)),
    }
}

fn method_not_allowed(api: &Api, method: &Method, path: &str, allow: &HeaderValue) -> Failure {
    let mut f = Failure::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "API `{}` declares no {method} operation at {path}; allowed: {}.",
            api.name,
            allow.to_str().unwrap_or("")
        ),
    );
    f.headers.push((header::ALLOW, allow.clone()));
    f
}

/// An answer, and the fields the gateway gives every answer's head. They
/// are kept apart so that Portico's own HTTP/1.1 server can write them
/// straight into the head it encodes, without inserting them into the
/// answer's field map (hashing their names, and often growing the map).
pub(crate) struct Answer {
    pub response: Response<GatewayBody>,
    pub(crate) added: AddedFields,
}

/// `X-Request-Id`, and the RateLimit fields of a request under a limit.
/// Each replaces any field of the same name in the answer.
#[derive(Debug)]
pub(crate) struct AddedFields {
    pub request_id: HeaderValue,
    /// `RateLimit-Policy` and `RateLimit`.
    pub rate_limit: Option<RateLimitFields>,
}

impl AddedFields {
    /// Whether an answer's field of this name gives way to an added one.
    pub(crate) fn replaces(&self, name: &HeaderName) -> bool {
        name == X_REQUEST_ID
            || (self.rate_limit.is_some() && (name == RATELIMIT_POLICY || name == RATELIMIT))
    }

    fn insert_into(self, headers: &mut http::HeaderMap) {
        headers.insert(&X_REQUEST_ID, self.request_id);
        if let Some((policy, state)) = self.rate_limit.as_ref().and_then(RateLimitFields::values) {
            headers.insert(&RATELIMIT_POLICY, policy);
            headers.insert(&RATELIMIT, state);
        }
    }
}

impl Gateway {
    /// Serves one request. Never fails: every error becomes a problem+json
    /// response here.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<ClientBody>,
        conn: &ConnectionInfo,
    ) -> Response<GatewayBody> {
        let Answer {
            mut response,
            added,
        } = {
            let (head, body) = req.into_parts();
            self.answer(Box::new(head), body, conn).await
        };
        // hyper writes the map: fields passed on as they came go into it.
        if let Some(raw) = response.body_mut().take_raw_fields() {
            raw.fill(response.headers_mut());
        }
        added.insert_into(response.headers_mut());
        response
    }

    /// Serves one request, the added fields kept apart (see [`Answer`]).
    /// The head comes boxed: it passes on to the upstream client as a
    /// pointer (see `h1_server::request_head`).
    pub(crate) async fn answer(
        self: &Arc<Self>,
        head: Box<Parts>,
        body: ClientBody,
        conn: &ConnectionInfo,
    ) -> Answer {
        let start = Instant::now();
        let id = request_id(&head.headers);
        let log = self.access_log.as_ref().map(|sink| LogContext {
            sink: sink.clone(),
            method: head.method.clone(),
            path: head.uri.path().to_owned(),
            target: None,
            client: conn.hop.client_ip().clone(),
        });
        let mut exchange = Box::new(Exchange {
            start,
            request_id: id.clone(),
            api: None,
            operation: None,
            app: None,
            in_flight: None,
            permit: None,
            rate_limit: None,
            metrics: self.metrics.unmatched().clone(),
            log,
            status: 0,
            upstream: None,
            bytes: 0,
            aborted: false,
        });
        let result = self.forward(head, body, conn, &id, &mut exchange).await;
        let response = match result {
            Ok(resp) => resp,
            Err(f) => {
                if f.code.status() >= 500 {
                    tracing::warn!(request_id = ?id, code = f.code.code(), detail = %f.detail, "Request failed.");
                }
                f.into_response(&id)
            }
        };
        exchange.status = response.status().as_u16();
        let added = AddedFields {
            request_id: id,
            rate_limit: exchange.rate_limit.take(),
        };
        Answer {
            response: response.map(|b| b.with_exchange(exchange)),
            added,
        }
    }

    async fn forward(
        &self,
        mut parts: Box<Parts>,
        body: ClientBody,
        conn: &ConnectionInfo,
        id: &HeaderValue,
        exchange: &mut Exchange,
    ) -> Result<Response<GatewayBody>, Failure> {
        let Some(runtime) = self.runtime() else {
            return Err(Failure::new(
                ErrorCode::NotReady,
                "The node has not loaded a configuration yet.",
            ));
        };
        if parts.method == Method::CONNECT {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "CONNECT is not supported.",
            ));
        }
        if !parts.uri.path().starts_with('/') {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "The request target must be a path.",
            ));
        }
        let host = request_host(&parts)?;
        if parts
            .headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .nth(1)
            .is_some()
        {
            // A singleton field (RFC 9110 §11.6.2): two would let one
            // policy check the first while the upstream reads the second.
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "The request has more than one Authorization header.",
            ));
        }
        // Routing and the upstream must see the same path.
        match path::normalize(parts.uri.path()) {
            Ok(Cow::Borrowed(_)) => {}
            Ok(Cow::Owned(normal)) => parts.uri = with_path(&parts.uri, &normal)?,
            Err(e) => return Err(Failure::new(ErrorCode::BadRequest, e.detail())),
        }
        // Connection-named fields go now, before policies add headers of
        // their own that a client could otherwise have removed. An upgrade
        // and `te: trailers` are noted first, to be asked of the upstream.
        let mut upgrade = upgrade::take(&mut parts);
        let trailers = remove_hop_by_hop(&mut parts.headers);
        let host_str = host.as_ref().and_then(|h| h.to_str().ok());
        let route_host = host_str.map(routing_host);
        let path = path::routing_path(parts.uri.path());
        let Some(matched) = runtime.snapshot.routes.lookup(route_host.as_deref(), &path) else {
            let on = host_str.unwrap_or("(none)");
            return Err(Failure::new(
                ErrorCode::NoRoute,
                format!(
                    "No API is mounted at {} {} on host {on}.",
                    parts.method, path
                ),
            ));
        };
        let rt: &ApiRuntime = &runtime.apis[matched.api as usize];
        exchange.api = Some(rt.name.clone());
        exchange.metrics = rt.metrics.clone();
        let (operation, undeclared_options) = match_operation(&rt.api, &parts.method, &path)?;
        exchange.operation = operation.map(|op| op.label.clone());
        // Made now, while the path is at hand; rare (OPTIONS on a path that
        // declares none).
        let deferred_405 = undeclared_options
            .map(|allow| method_not_allowed(&rt.api, &parts.method, &path, allow));

        // Identity headers, and headers the API's policies set, are
        // Portico's to set, never the client's.
        let owned = || {
            [&X_PORTICO_APP, &X_PORTICO_DEVELOPER]
                .into_iter()
                .chain(rt.api.policies.owned_headers())
                .chain(rt.api.security.iter().flat_map(|s| s.owned.iter()))
        };
        // One pass over the request's few names finds whether there is
        // anything to remove (there seldom is), instead of a lookup per
        // owned name.
        let found: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|k| owned().any(|n| n == *k))
            .cloned()
            .collect();
        for name in found {
            parts.headers.remove(name);
        }
        let chain = &rt.api.policies;
        // Noted before a policy removes a credential: the cache treats
        // answers to authorized requests apart.
        let authorization = parts.headers.contains_key(header::AUTHORIZATION);
        let mut cx = RequestContext::new(conn.peer, &rt.api, &runtime.snapshot);
        cx.api_index = matched.api;
        cx.limits.arrived = Some(exchange.start);
        cx.client_cert = conn.client_cert.as_ref();
        cx.operation = operation;
        if !chain.is_empty() || rt.api.security.is_some() {
            let stopped = pipeline::on_request(
                chain,
                matched.api,
                &mut parts,
                &mut cx,
                self.counters.as_ref(),
                &rt.metrics,
                &mut exchange.permit,
            )
            .await;
            exchange.app = cx.identity.as_ref().map(|i| i.app.clone());
            if !cx.limits.is_empty() {
                // Every answer from here on carries the RateLimit fields.
                exchange.rate_limit = limits::fields(&cx.limits);
            }
            match stopped {
                Ok(()) => {}
                Err(Stop::Limited(r)) => {
                    let (mut head, body) = Failure::limited(r).into_response(id).into_parts();
                    pipeline::on_response(chain, &mut head, &cx);
                    return Ok(Response::from_parts(head, body));
                }
                Err(Stop::Reject(r)) => {
                    // A refusal still passes the response side, so that a
                    // browser can read it (CORS).
                    let (mut head, body) = Failure::from(r).into_response(id).into_parts();
                    pipeline::on_response(chain, &mut head, &cx);
                    return Ok(Response::from_parts(head, body));
                }
                Err(Stop::Respond(resp)) => return Ok((*resp).map(GatewayBody::full)),
            }
        }
        if let Some(failure) = deferred_405 {
            // No policy answered the OPTIONS request (a CORS preflight).
            let (mut head, body) = failure.into_response(id).into_parts();
            pipeline::on_response(chain, &mut head, &cx);
            return Ok(Response::from_parts(head, body));
        }
        // Validation: the gateway's own step, as the body check waits for
        // the body.
        let body = match (chain.validator().filter(|v| v.checks_requests()), operation) {
            (Some(validator), Some(op)) => {
                let routing = path::routing_path(parts.uri.path());
                let rest = rt.api.rest_of(&routing);
                let checked = validate::request(
                    validator,
                    op,
                    rest,
                    &parts,
                    body,
                    cx.body_limit,
                    &rt.metrics,
                )
                .await;
                match checked {
                    Ok(checked) => checked,
                    Err(r) => {
                        let (mut head, body) = Failure::from(r).into_response(id).into_parts();
                        pipeline::on_response(chain, &mut head, &cx);
                        return Ok(Response::from_parts(head, body));
                    }
                }
            }
            _ => validate::Checked::Streaming(body),
        };
        if let Some(table) = &rt.api.mock {
            // The mock stands in for the upstream: the answer still passes
            // the response policies, and the exchange is counted and logged.
            let op = operation
                .and_then(|op| table.get(op.index))
                .ok_or_else(|| {
                    Failure::new(
                        ErrorCode::NoOperation,
                        format!(
                            "API `{}` declares no operation at {}.",
                            rt.api.name,
                            parts.uri.path()
                        ),
                    )
                })?;
            if let Some(log) = exchange.log.as_mut() {
                log.target = Some("mock".into());
            }
            let (mut head, body) = match mock::answer(op, &parts) {
                Ok(resp) => {
                    let (head, body) = resp.into_parts();
                    (head, GatewayBody::full(body))
                }
                Err(miss) => Failure::new(miss.code, miss.detail)
                    .into_response(id)
                    .into_parts(),
            };
            pipeline::on_response(chain, &mut head, &cx);
            return Ok(Response::from_parts(head, body));
        }
        let mut cached = None;
        // An upgrade (WebSocket) is never answered from, or stored in, the cache.
        if let (Some(settings), Some(node), None) = (chain.cache(), &self.cache, &upgrade) {
            let api = cache::ApiCache {
                node,
                settings,
                api: &rt.name,
                metrics: &rt.metrics,
                wait: rt.api.upstream.timeout,
            };
            let req = cache::Request {
                parts: &parts,
                host: host_str,
                app: cx.identity.as_ref().map(|i| i.app.name.as_str()),
                authorization,
            };
            match cache::lookup(api, req).await {
                cache::Looked::Hit(resp) => {
                    let (mut head, body) = resp.into_parts();
                    pipeline::on_response(chain, &mut head, &cx);
                    return Ok(Response::from_parts(head, body));
                }
                cache::Looked::Forward(f) => cached = Some(f),
            }
        }

        // The forwarding fields, and the target's name in place of the
        // client's `Host` (which travels in `X-Forwarded-Host`), are added
        // by the upstream client: written into the head for a plain
        // HTTP/1.1 target, put in the map for the others.
        let forwarding = Forwarding::new(&mut parts.headers, &conn.hop, host.as_ref(), id)
            .with_identity(cx.identity.as_ref().map(|i| &i.app.identity_headers));
        parts.version = rt.client.version();
        if parts.version == Version::HTTP_2 {
            if trailers {
                parts
                    .headers
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
        } else if let Some(u) = &upgrade {
            u.restore(&mut parts.headers);
        }
        // Only a limited body needs the flag (and its allocation).
        let tripped = cx.body_limit.map(|_| Arc::new(AtomicBool::new(false)));
        let body = match (body, cx.body_limit, &tripped) {
            (validate::Checked::Read(bytes), _, _) => RequestBody::Full(Some(bytes)),
            (validate::Checked::Streaming(body), Some(max), Some(flag)) => RequestBody::Limited {
                inner: body,
                remaining: max,
                tripped: flag.clone(),
            },
            (validate::Checked::Streaming(body), _, _) => RequestBody::Plain(body),
        };
        let retries = rt
            .api
            .upstream
            .retries
            .as_ref()
            .filter(|_| is_idempotent(&parts.method));
        if let Some(budget) = &rt.budget {
            budget.on_request(health::now_ms());
        }
        let mut tries = Tries {
            body: match retries {
                None => Held::Once(Some(body)),
                Some(_) if body.is_end_stream() => Held::Empty,
                Some(_) => Held::Shared(BodyHolder::new(body)),
            },
            tried: TargetSet::default(),
            left: retries.map_or(0, |r| r.attempts),
        };
        let is_head = parts.method == Method::HEAD;
        // Nothing on the way back reads or changes the answer's fields: an
        // HTTP/1.1 target's are passed on as they came, without a map.
        let pass_fields = !is_head
            && upgrade.is_none()
            && cached.is_none()
            && !chain.handles_responses()
            && chain
                .validator()
                .is_none_or(|v| v.response_mode() == ResponseMode::Off);
        // The head is cloned for every try but the last, which takes it.
        let mut head = Some(parts);
        let mut attempt = 0u32;
        loop {
            let parts_now = head.as_ref().ok_or_else(|| {
                Failure::new(ErrorCode::Internal, "The request head was already sent.")
            })?;
            let pick = match rt.pick(parts_now, conn.peer.ip(), tries.tried) {
                Ok(p) => p,
                Err(why) => return Err(unavailable(why, &rt.api.name)),
            };
            tries.tried.insert(pick.index);
            let target = pick.target;
            // Replacing the previous try's record ends its count.
            exchange.in_flight = pick.in_flight;
            if let Some(log) = exchange.log.as_mut() {
                log.target = Some(target.url.clone());
            }
            let mut outcome = Outcome {
                health: rt.health.as_deref(),
                index: pick.index,
                probe: pick.probe,
                done: false,
            };

            // The URI the upstream sees: target authority, base path swapped
            // for the target's own prefix, query kept as sent (less any
            // credential).
            let upstream_path = rt.api.upstream_path(target, parts_now.uri.path());
            let pq = path_and_query(
                upstream_path.len_hint(),
                |out| upstream_path.write_to(out),
                parts_now.uri.query(),
            )?;
            let uri = Uri::from_parts({
                let mut p = http::uri::Parts::default();
                p.scheme = Some(target.scheme.clone());
                p.authority = Some(target.authority.clone());
                p.path_and_query = Some(pq);
                p
            })
            .map_err(|_| Failure::new(ErrorCode::Internal, "Could not build the upstream URI."))?;
            let mut try_parts = if tries.left == 0 {
                head.take().ok_or_else(|| {
                    Failure::new(ErrorCode::Internal, "The request head was already sent.")
                })?
            } else {
                Box::new(clone_head(parts_now))
            };
            try_parts.uri = uri;

            let sent = Instant::now();
            let timeout = rt.api.upstream.timeout;
            // The deadline from the send time already read: one clock read
            // fewer than `timeout` would make.
            let deadline = tokio::time::Instant::from_std(sent) + timeout;
            let result = tokio::time::timeout_at(
                deadline,
                rt.client
                    .send(try_parts, tries.body(), Some(&forwarding), pass_fields),
            )
            .await;
            exchange.upstream = Some(sent.elapsed());
            let (failure, kind) = match result {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    outcome.finish(status < 500);
                    let retry_on = RetryOn::status(status)
                        .filter(|s| retries.is_some_and(|r| r.on.contains(*s)));
                    match retry_on {
                        Some(_) if tries.may_retry(rt) => {
                            tracing::debug!(request_id = ?id, target = %target.url, status, "Retrying after the target's answer.");
                        }
                        _ => {
                            let report = response_check(rt, &cx, is_head, &resp, id);
                            let enforced = chain.validator().map(|v| v.response_mode())
                                == Some(ResponseMode::Enforce);
                            if let (Some(report), true) = (&report, enforced) {
                                let (head, body) = resp.into_parts();
                                let bytes = enforce(report, body).await?;
                                return Ok(self.respond_read(
                                    head,
                                    bytes,
                                    chain,
                                    &cx,
                                    cached.take(),
                                ));
                            }
                            return Ok(self.respond(
                                resp,
                                upgrade.take(),
                                conn,
                                &cx,
                                cached.take(),
                                report,
                            ));
                        }
                    }
                    attempt += 1;
                    backoff(retries, attempt).await;
                    continue;
                }
                Ok(Err(_)) if tripped.as_ref().is_some_and(|t| t.load(Ordering::Relaxed)) => {
                    return Err(Failure::new(
                        ErrorCode::PayloadTooLarge,
                        format!(
                            "The request body is larger than {} bytes.",
                            cx.body_limit.unwrap_or_default()
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    let failure = classify(&e, &target.url);
                    let kind = if e.is_connect() {
                        RetryOn::CONNECT_ERROR
                    } else if failure.code == ErrorCode::UpstreamTls {
                        // A certificate refused after the handshake: a
                        // configuration fault that another try will not fix.
                        RetryOn::default()
                    } else {
                        RetryOn::RESET
                    };
                    (failure, kind)
                }
                Err(_) => (
                    Failure::new(
                        ErrorCode::UpstreamTimeout,
                        format!(
                            "The upstream {} did not answer within {timeout:?}.",
                            target.url
                        ),
                    ),
                    RetryOn::TIMEOUT,
                ),
            };
            outcome.finish(false);
            let retry = retries.is_some_and(|r| r.on.contains(kind)) && tries.may_retry(rt);
            if !retry {
                return Err(failure);
            }
            tracing::debug!(request_id = ?id, target = %target.url, code = failure.code.code(), "Retrying after a failed try.");
            attempt += 1;
            backoff(retries, attempt).await;
        }
    }

    /// The upstream's answer on its way to the client. The API's chain is
    /// `cx.api.policies`.
    fn respond(
        &self,
        mut resp: Response<UpstreamBody>,
        upgrade: Option<upgrade::Upgrade>,
        conn: &ConnectionInfo,
        cx: &RequestContext<'_>,
        cached: Option<cache::Forward>,
        report: Option<validate::Report>,
    ) -> Response<GatewayBody> {
        let chain = &cx.api.policies;
        let switched = upgrade.and_then(|u| u.switch(&mut resp, &conn.scope));
        let _ = remove_hop_by_hop(resp.headers_mut());
        if let Some(s) = switched {
            s.restore(resp.headers_mut());
        }
        // Decided on the upstream's head, before the response policies.
        let mut tee = None;
        if let Some(f) = cached {
            let (mut head, body) = resp.into_parts();
            tee = f.on_response(&mut head);
            resp = Response::from_parts(head, body);
        }
        if chain.handles_responses() {
            let (mut head, body) = resp.into_parts();
            pipeline::on_response(chain, &mut head, cx);
            resp = Response::from_parts(head, body);
        }
        let resp = match tee {
            Some(tee) => resp.map(|b| GatewayBody::cached(tee.with_body(b))),
            None => resp.map(GatewayBody::upstream),
        };
        match (report, cx.api.policies.validator()) {
            (Some(report), Some(v)) => {
                let cap = v.max_body();
                resp.map(|b| GatewayBody::checked(validate::CheckedBody::new(b, cap, report)))
            }
            _ => resp,
        }
    }

    /// An upstream answer read whole and checked (`response: enforce`) on
    /// its way to the client: the response side of [`Gateway::respond`].
    fn respond_read(
        &self,
        mut head: http::response::Parts,
        bytes: Bytes,
        chain: &portico_model::policy::PolicyChain,
        cx: &RequestContext<'_>,
        cached: Option<cache::Forward>,
    ) -> Response<GatewayBody> {
        let _ = remove_hop_by_hop(&mut head.headers);
        if let Some(tee) = cached.and_then(|f| f.on_response(&mut head)) {
            tee.store_bytes(&bytes);
        }
        pipeline::on_response(chain, &mut head, cx);
        Response::from_parts(head, GatewayBody::full(bytes))
    }
}

/// The response check for an upstream answer, when the API validates
/// responses and the operation has a JSON schema for this one. `HEAD`
/// answers and statuses without a body are not checked.
fn response_check(
    rt: &ApiRuntime,
    cx: &RequestContext<'_>,
    is_head: bool,
    resp: &Response<UpstreamBody>,
    id: &HeaderValue,
) -> Option<validate::Report> {
    let validator = rt.api.policies.validator()?;
    let op = cx.operation?;
    let status = resp.status();
    if validator.response_mode() == ResponseMode::Off
        || is_head
        || status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
    {
        return None;
    }
    let schema = validator.response_schema(op, status.as_u16(), resp.headers())?;
    Some(validate::Report {
        validator: validator.clone(),
        schema,
        metrics: rt.metrics.clone(),
        api: rt.name.clone(),
        operation: op.label.clone(),
        status: status.as_u16(),
        request_id: id.clone(),
    })
}

/// `response: enforce`: the answer read whole and checked; a mismatch, or
/// an answer too large to check, is a 502.
async fn enforce(report: &validate::Report, body: UpstreamBody) -> Result<Bytes, Failure> {
    let cap = report.validator.max_body();
    let Some(bytes) = validate::read_response(body, cap).await else {
        report.too_large();
        return Err(Failure::new(
            ErrorCode::ResponseValidationFailed,
            format!("The upstream's answer is larger than {cap} bytes, too large to check."),
        ));
    };
    let errors = report.check(&bytes);
    if errors.is_empty() {
        return Ok(bytes);
    }
    // The differences stay in the node's log: they describe the upstream's
    // data, not the client's request.
    Err(Failure::new(
        ErrorCode::ResponseValidationFailed,
        format!(
            "The upstream's answer does not match the API's spec ({} errors); the node's log has them under this request id.",
            errors.len()
        ),
    ))
}

/// Methods a retry cannot change the effect of (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The request body across tries.
enum Held {
    /// No retries: the one try takes it.
    Once(Option<RequestBody>),
    /// The request has no body: every try sends none.
    Empty,
    /// Retryable: a later try may send it while no earlier one started to.
    Shared(BodyHolder),
}

/// The retry state of one request.
struct Tries {
    body: Held,
    tried: TargetSet,
    /// Retries still allowed by `retries.attempts`.
    left: u32,
}

impl Tries {
    fn body(&mut self) -> RequestBody {
        match &mut self.body {
            Held::Once(body) => body.take().unwrap_or(RequestBody::Empty),
            Held::Empty => RequestBody::Empty,
            Held::Shared(holder) => holder.body(),
        }
    }

    /// Whether another try may go: attempts left, the body never sent, and
    /// the API's retry budget not spent. Takes the retry when it may.
    fn may_retry(&mut self, rt: &ApiRuntime) -> bool {
        if self.left == 0 {
            return false;
        }
        let body_unsent = match &self.body {
            Held::Once(_) => false,
            Held::Empty => true,
            Held::Shared(holder) => holder.unsent(),
        };
        if !body_unsent {
            return false;
        }
        let budget = rt
            .budget
            .as_ref()
            .is_none_or(|b| b.try_retry(health::now_ms()));
        if !budget {
            rt.metrics.retry_budget_exhausted();
            return false;
        }
        rt.metrics.retried();
        self.left -= 1;
        true
    }
}

/// Reports a try's outcome to the target's circuit breaker, once; a try
/// dropped without an outcome gives back its probe slot.
struct Outcome<'a> {
    health: Option<&'a UpstreamHealth>,
    index: usize,
    probe: bool,
    done: bool,
}

impl Outcome<'_> {
    fn finish(&mut self, ok: bool) {
        if let (Some(h), false) = (self.health, self.done) {
            h.record(self.index, ok, self.probe, health::now_ms());
        }
        self.done = true;
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if let (Some(h), false, true) = (self.health, self.done, self.probe) {
            h.release_probe(self.index, health::now_ms());
        }
    }
}

/// Waits before retry number `attempt` (from 1): the back-off doubles with
/// each retry, and a random part spreads retries of many clients apart.
async fn backoff(retries: Option<&portico_model::api::Retries>, attempt: u32) {
    let Some(r) = retries else { return };
    let full = r
        .backoff
        .saturating_mul(1 << attempt.saturating_sub(1).min(10));
    if full.is_zero() {
        return;
    }
    let half = full / 2;
    let jitter = half.mul_f64(fastrand::f64());
    tokio::time::sleep(half + jitter).await;
}

/// A copy of a request head for one more try (extensions are not carried).
fn clone_head(parts: &http::request::Parts) -> http::request::Parts {
    let (mut head, ()) = Request::new(()).into_parts();
    head.method = parts.method.clone();
    head.uri = parts.uri.clone();
    head.version = parts.version;
    head.headers = parts.headers.clone();
    head
}

/// The answer when no target can take the request.
fn unavailable(why: Unavailable, api: &str) -> Failure {
    match why {
        Unavailable::Unhealthy => Failure::new(
            ErrorCode::NoHealthyTarget,
            format!("No target of the API {api} is passing its health checks."),
        ),
        Unavailable::CircuitOpen => Failure::new(
            ErrorCode::CircuitOpen,
            format!("Every target of the API {api} has an open circuit after repeated failures."),
        ),
    }
}

/// The host the client addressed, as sent (with port). HTTP/2 and
/// absolute-form requests carry it in the URI; HTTP/1.1 in exactly one
/// `Host` header.
fn request_host(parts: &http::request::Parts) -> Result<Option<HeaderValue>, Failure> {
    if let Some(authority) = parts.uri.authority() {
        if !is_host(authority.as_str().as_bytes()) || authority.as_str().contains('@') {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "The request's authority is not a valid host.",
            ));
        }
        return Ok(HeaderValue::from_str(authority.as_str()).ok());
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Failure::new(
            ErrorCode::BadRequest,
            "The request has more than one Host header.",
        ));
    }
    match first {
        Some(v) if is_host(v.as_bytes()) => Ok(Some(v.clone())),
        Some(_) => Err(Failure::new(
            ErrorCode::BadRequest,
            "The Host header is not a valid host.",
        )),
        None if parts.version == Version::HTTP_11 => Err(Failure::new(
            ErrorCode::BadRequest,
            "An HTTP/1.1 request must have a Host header.",
        )),
        None => Ok(None),
    }
}

/// `uri-host [ ":" port ]` of RFC 9110 §7.2, by its characters: a reg-name,
/// IPv4 or bracketed IPv6 literal, never userinfo.
fn is_host(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| HOST_BYTES[usize::from(c)])
}

/// The bytes `is_host` allows, by value: one load per byte instead of a
/// search of the punctuation list for each non-alphanumeric one.
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    let punctuation = b"-._~!$&'()*+,;=:%[]";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

/// `uri` with its path replaced by `path` (query kept).
fn with_path(uri: &Uri, path: &str) -> Result<Uri, Failure> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query(
        path.len(),
        |out| out.push_str(path),
        uri.query(),
    )?);
    Uri::from_parts(parts).map_err(|_| unforwardable())
}

/// A path written by `write_path`, then `?query` if there is one, as one
/// validated `PathAndQuery` in one allocation.
fn path_and_query(
    path_len: usize,
    write_path: impl FnOnce(&mut String),
    query: Option<&str>,
) -> Result<PathAndQuery, Failure> {
    let mut pq = String::with_capacity(path_len + query.map_or(0, |q| q.len() + 1));
    write_path(&mut pq);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    PathAndQuery::from_maybe_shared(Bytes::from(pq)).map_err(|_| unforwardable())
}

fn unforwardable() -> Failure {
    Failure::new(
        ErrorCode::BadRequest,
        "The request path cannot be forwarded.",
    )
}

/// The host as routes know it: lower case, without port or IPv6 brackets'
/// port.
fn routing_host(host: &str) -> Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        host.split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()])
    } else {
        let h = host.rsplit_once(':').map_or(host, |(h, _)| h);
        // `api.example.com.` is the same name, fully qualified.
        h.strip_suffix('.').unwrap_or(h)
    };
    if without_port.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(without_port.to_ascii_lowercase())
    } else {
        Cow::Borrowed(without_port)
    }
}

/// Maps a client error to the answer: TLS failures (during or just after
/// the handshake) are 502 `upstream-tls`, connect failures 502 (504 when
/// the connect timed out), anything after is 502.
fn classify(e: &client::ClientError, target: &str) -> Failure {
    if let Some(reason) = client::tls_failure(e) {
        return Failure::new(
            ErrorCode::UpstreamTls,
            format!("The TLS handshake with the upstream {target} failed: {reason}."),
        );
    }
    let timed_out = std::iter::successors(std::error::Error::source(e), |s| s.source())
        .filter_map(|s| s.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if e.is_connect() && timed_out {
        Failure::new(
            ErrorCode::UpstreamTimeout,
            format!("Connecting to the upstream {target} timed out."),
        )
    } else if e.is_connect() {
        Failure::new(
            ErrorCode::UpstreamConnect,
            format!("Could not connect to the upstream {target}."),
        )
    } else {
        Failure::new(
            ErrorCode::UpstreamFailed,
            format!("The upstream {target} closed the connection or sent an invalid response."),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bytes_are_those_of_rfc_9110() {
        let allowed = |c: u8| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(&c);
        for c in 0..=255u8 {
            assert_eq!(is_host(&[c]), allowed(c), "byte {c:#04x}");
        }
        assert!(is_host(b"api.example.com:8080"));
        assert!(is_host(b"[::1]:443"));
        assert!(!is_host(b""));
        assert!(!is_host(b"a b"));
        assert!(!is_host(b"a/b"));
    }

    #[test]
    fn routing_host_strips_port_and_lowercases() {
        assert_eq!(routing_host("API.example.com:8080"), "api.example.com");
        assert_eq!(routing_host("api.example.com"), "api.example.com");
        assert_eq!(routing_host("[::1]:8080"), "[::1]");
        assert_eq!(routing_host("[::1]"), "[::1]");
        assert_eq!(routing_host("api.example.com.:443"), "api.example.com");
    }
}
