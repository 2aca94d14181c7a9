//! The request path: route, forward, answer.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::HeaderName;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, Version, header};
use hyper::body::Incoming;
use portico_model::ErrorCode;
use portico_model::policy::{Rejection, RequestContext};

use crate::body::{Exchange, GatewayBody, LogContext, RequestBody};
use crate::headers::{
    TRACEPARENT, X_REQUEST_ID, add_forwarded, remove_hop_by_hop, request_id, te_trailers,
    traceparent,
};
use crate::path;
use crate::pipeline::{self, Stop, X_PORTICO_APP, X_PORTICO_DEVELOPER};
use crate::server::ConnectionInfo;
use crate::state::Gateway;
use crate::{client, problem, upgrade, upstream::ApiRuntime};

/// Everything a failed exchange needs to answer and be recorded.
struct Failure {
    code: ErrorCode,
    detail: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Failure {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    fn into_response(self, id: &HeaderValue) -> Response<GatewayBody> {
        let mut resp = problem::response(self.code, &self.detail, id.to_str().unwrap_or(""));
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp.map(GatewayBody::full)
    }
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Self {
            code: r.code,
            detail: r.detail,
            headers: r.headers,
        }
    }
}

impl Gateway {
    /// Serves one request. Never fails: every error becomes a problem+json
    /// response here.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        conn: &ConnectionInfo,
    ) -> Response<GatewayBody> {
        let start = Instant::now();
        let id = request_id(req.headers());
        let log = self.access_log.as_ref().map(|sink| LogContext {
            started_at: SystemTime::now(),
            sink: sink.clone(),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            target: None,
        });
        let mut exchange = Exchange {
            start,
            request_id: id.clone(),
            api: None,
            app: None,
            in_flight: None,
            metrics: self.metrics.unmatched().clone(),
            log,
            status: 0,
            upstream: None,
            bytes: 0,
            aborted: false,
            client: conn.peer,
        };
        let result = self.forward(req, conn, &id, &mut exchange).await;
        let mut response = match result {
            Ok(resp) => resp,
            Err(f) => {
                if f.code.status() >= 500 {
                    tracing::warn!(request_id = ?id, code = f.code.code(), detail = %f.detail, "Request failed.");
                }
                f.into_response(&id)
            }
        };
        exchange.status = response.status().as_u16();
        response.headers_mut().insert(&X_REQUEST_ID, id);
        response.map(|b| b.with_exchange(exchange))
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
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
        let (mut parts, body) = req.into_parts();
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
        let upgrade = upgrade::take(&mut parts);
        let trailers = te_trailers(&parts.headers);
        remove_hop_by_hop(&mut parts.headers);
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

        // Identity headers, and headers the API's policies set, are
        // Portico's to set, never the client's.
        for name in [&X_PORTICO_APP, &X_PORTICO_DEVELOPER]
            .into_iter()
            .chain(rt.api.policies.owned_headers())
        {
            if parts.headers.contains_key(name) {
                parts.headers.remove(name);
            }
        }
        let chain = &rt.api.policies;
        let mut cx = RequestContext::new(conn.peer, &rt.api, &runtime.snapshot);
        cx.client_cert = conn.client_cert.as_ref();
        if !chain.is_empty() {
            let stopped = pipeline::on_request(chain, matched.api, &mut parts, &mut cx).await;
            exchange.app = cx.identity.as_ref().map(|i| i.app.clone());
            match stopped {
                Ok(()) => {}
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

        let (target, in_flight) = rt.next_target(&parts, conn.peer.ip());
        exchange.in_flight = in_flight;
        if let Some(log) = exchange.log.as_mut() {
            log.target = Some(target.url.clone());
        }

        // The URI the upstream sees: target authority, base path swapped for
        // the target's own prefix, query kept as sent (less any credential).
        let upstream_path = rt.api.upstream_path(target, parts.uri.path());
        let pq = path_and_query(
            upstream_path.len_hint(),
            |out| upstream_path.write_to(out),
            parts.uri.query(),
        )?;
        let mut uri = Uri::from_parts({
            let mut p = http::uri::Parts::default();
            p.scheme = Some(target.scheme.clone());
            p.authority = Some(target.authority.clone());
            p.path_and_query = Some(pq);
            p
        })
        .map_err(|_| Failure::new(ErrorCode::Internal, "Could not build the upstream URI."))?;

        let headers = &mut parts.headers;
        add_forwarded(headers, &conn.hop, host.as_ref());
        let tp = traceparent(headers);
        headers.insert(&TRACEPARENT, tp);
        headers.insert(&X_REQUEST_ID, id.clone());
        // The client sets Host from the URI: the upstream is addressed by its
        // own name; the original host travels in X-Forwarded-Host.
        headers.remove(header::HOST);
        std::mem::swap(&mut parts.uri, &mut uri);
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
        let body = match (cx.body_limit, &tripped) {
            (Some(max), Some(flag)) => RequestBody::Limited {
                inner: body,
                remaining: max,
                tripped: flag.clone(),
            },
            _ => RequestBody::Plain(body),
        };
        let upstream_req = Request::from_parts(parts, body);

        let sent = Instant::now();
        let timeout = rt.api.upstream.timeout;
        let result = tokio::time::timeout(timeout, rt.client.request(upstream_req)).await;
        exchange.upstream = Some(sent.elapsed());
        let mut resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(_)) if tripped.as_ref().is_some_and(|t| t.load(Ordering::Relaxed)) => {
                return Err(Failure::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "The request body is larger than {} bytes.",
                        cx.body_limit.unwrap_or_default()
                    ),
                ));
            }
            Ok(Err(e)) => return Err(classify(&e, &target.url)),
            Err(_) => {
                return Err(Failure::new(
                    ErrorCode::UpstreamTimeout,
                    format!(
                        "The upstream {} did not answer within {timeout:?}.",
                        target.url
                    ),
                ));
            }
        };
        let switched = upgrade.and_then(|u| u.switch(&mut resp));
        remove_hop_by_hop(resp.headers_mut());
        if let Some(s) = switched {
            s.restore(resp.headers_mut());
        }
        if !chain.is_empty() {
            let (mut head, body) = resp.into_parts();
            pipeline::on_response(chain, &mut head, &cx);
            resp = Response::from_parts(head, body);
        }
        Ok(resp.map(GatewayBody::upstream))
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
    !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(&c))
}

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
fn classify(e: &hyper_util::client::legacy::Error, target: &str) -> Failure {
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
    fn routing_host_strips_port_and_lowercases() {
        assert_eq!(routing_host("API.example.com:8080"), "api.example.com");
        assert_eq!(routing_host("api.example.com"), "api.example.com");
        assert_eq!(routing_host("[::1]:8080"), "[::1]");
        assert_eq!(routing_host("[::1]"), "[::1]");
        assert_eq!(routing_host("api.example.com.:443"), "api.example.com");
    }
}
