//! Runs an API's policy chain on the request and response heads, in the
//! phase order of `docs/request-lifecycle.md`.

use http::header::WWW_AUTHENTICATE;
use http::{request, response};
use portico_model::ErrorCode;
use std::sync::Arc;

use portico_model::limits::{Counters, Permit};
use portico_model::policy::{Auth, Flow, Phase, PolicyChain, Rejection, RequestContext};

use crate::limits::{self, Refusal, Refused};
use crate::metrics::ApiMetrics;

/// Request phases after authentication, in order.
const LATER_REQUEST_PHASES: [Phase; 5] = [
    Phase::Authorization,
    Phase::Traffic,
    Phase::Validation,
    Phase::CacheLookup,
    Phase::RequestMediation,
];

/// Stops the request path: a refusal or an answer made by a policy.
#[derive(Debug)]
pub(crate) enum Stop {
    Reject(Rejection),
    /// A limit had no room (429).
    Limited(Refusal),
    Respond(Box<http::Response<bytes::Bytes>>),
}

fn check(flow: Flow) -> Result<(), Stop> {
    match flow {
        Flow::Continue => Ok(()),
        Flow::Reject(r) => Err(Stop::Reject(r)),
        Flow::Respond(resp) => Err(Stop::Respond(Box::new(resp))),
    }
}

/// The request side: access, authentication (any of the API's
/// authentication policies; the first that finds its credential decides),
/// the subscription check, then the later phases. On success the identity,
/// if any, is in `cx` and announced to the upstream. When the traffic phase
/// ends, the limits it asked for (and the caller's product limits) are
/// decided at once; concurrency slots land in `permit`.
pub(crate) async fn on_request(
    chain: &PolicyChain,
    api_index: u32,
    req: &mut request::Parts,
    cx: &mut RequestContext<'_>,
    counters: Option<&Arc<dyn Counters>>,
    metrics: &ApiMetrics,
    permit: &mut Option<Permit>,
) -> Result<(), Stop> {
    for p in chain.phase(Phase::Access) {
        check(p.on_request(req, cx))?;
    }
    if chain.requires_identity() {
        authenticate(chain, api_index, req, cx).await?;
    } else if let Some(security) = cx.api.security.as_deref() {
        // `cx.api` outlives the borrow of `cx`.
        crate::security::authenticate(security, api_index, req, cx).await?;
    }
    for phase in LATER_REQUEST_PHASES {
        for p in chain.phase(phase) {
            check(p.on_request(req, cx))?;
        }
        if phase == Phase::Traffic {
            limits::add_product_limits(cx);
            if !cx.limits.is_empty() {
                *permit = limits::decide(counters, cx, metrics)
                    .await
                    .map_err(|r| match r {
                        Refused::Limited(r) => Stop::Limited(r),
                        Refused::Unavailable(r) => Stop::Reject(r),
                    })?;
            }
        }
    }
    Ok(())
}

async fn authenticate(
    chain: &PolicyChain,
    api_index: u32,
    req: &mut request::Parts,
    cx: &mut RequestContext<'_>,
) -> Result<(), Stop> {
    let mut identity = None;
    for p in chain.phase(Phase::Authentication) {
        if identity.is_some() {
            // Decided already: other credentials still never go upstream.
            p.remove_credential(req);
            continue;
        }
        let mut outcome = p.authenticate(req, cx);
        while let Auth::Pending(check) = outcome {
            outcome = check.await;
        }
        match outcome {
            Auth::Absent | Auth::Pending(_) => {}
            Auth::Authenticated(id) => identity = Some(id),
            Auth::Rejected(r) => {
                for later in chain.phase(Phase::Authentication) {
                    later.remove_credential(req);
                }
                return Err(Stop::Reject(r));
            }
        }
    }
    let Some(identity) = identity else {
        let mut r = Rejection::new(
            ErrorCode::MissingCredential,
            "This API requires a credential.",
        );
        for p in chain.phase(Phase::Authentication) {
            if let Some(challenge) = p.challenge() {
                r = r.with_header(WWW_AUTHENTICATE, challenge);
            }
        }
        return Err(Stop::Reject(r));
    };
    admit(identity, api_index, req, cx)
}

/// Lets an authenticated consumer in: the subscription check, then the
/// identity for the later phases and for the upstream (the headers a
/// `jwt` policy maps from claims go into the request now).
pub(crate) fn admit(
    identity: portico_model::policy::Identity,
    api_index: u32,
    req: &mut request::Parts,
    cx: &mut RequestContext<'_>,
) -> Result<(), Stop> {
    if !identity.app.may_call(api_index) {
        return Err(Stop::Reject(Rejection::new(
            ErrorCode::NotSubscribed,
            format!(
                "App `{}` is not subscribed to a product that includes API `{}`.",
                identity.app.name, cx.api.name
            ),
        )));
    }
    // `x-portico-app` and `x-portico-developer` go with the forwarding
    // fields (`headers::Forwarding`), written straight into the upstream
    // request's head.
    for (name, value) in &identity.headers {
        req.headers.insert(name, value.clone());
    }
    cx.identity = Some(identity);
    Ok(())
}

/// The response side, in chain order: policies of the request phases that
/// also shape the answer (CORS), then response mediation, then cache store,
/// which so sees the final head.
pub(crate) fn on_response(
    chain: &PolicyChain,
    resp: &mut response::Parts,
    cx: &RequestContext<'_>,
) {
    if !chain.handles_responses() {
        return;
    }
    for p in chain.iter() {
        p.on_response(resp, cx);
    }
}
