//! The policy contract: what a compiled policy is and how it takes part in
//! a request. Policies are built once per snapshot (by `portico-policies`,
//! from the configuration) and run by the gateway in a fixed phase order,
//! whatever order the file lists them in.
//!
//! Every method has a default that does nothing, so a policy implements only
//! the phase it belongs to. Request-side methods answer with a [`Flow`]:
//! carry on, or answer the client now (which skips the remaining request
//! phases and the upstream).

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, request, response};

use crate::cache::CacheSettings;
use crate::limits::Limits;
use crate::validate::{FieldError, Validator};
use crate::{Api, ApiOperation, App, ErrorCode, Snapshot};

/// The phases of DESIGN.md "Policies", in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Access,
    Authentication,
    Authorization,
    Traffic,
    Validation,
    CacheLookup,
    RequestMediation,
    ResponseMediation,
    CacheStore,
}

/// A refusal, rendered as problem+json by the gateway (the one place that
/// renders errors), with extra headers such as `WWW-Authenticate`.
#[derive(Clone, Debug)]
pub struct Rejection {
    pub code: ErrorCode,
    pub detail: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Every difference from the spec, rendered as the document's
    /// `errors` member (validation refusals only).
    pub errors: Vec<FieldError>,
}

impl Rejection {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            headers: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// What a request-side phase decides.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next policy, phase, and eventually the upstream.
    Continue,
    /// Refuse the request with a problem document.
    Reject(Rejection),
    /// Answer with this response (a CORS preflight, a cache hit).
    Respond(http::Response<Bytes>),
}

/// A check that has to wait (a password hash on the blocking pool, a key
/// set being fetched). It owns what it needs: it outlives the borrow of the
/// request.
pub type AuthFuture = Pin<Box<dyn Future<Output = Auth> + Send + 'static>>;

/// What an authentication policy found.
pub enum Auth {
    /// This policy's credential is not in the request; the next
    /// authentication policy may look for its own.
    Absent,
    /// The credential is valid and names this consumer.
    Authenticated(Identity),
    /// The credential is present and wrong: the request is refused, and no
    /// other authentication policy is tried.
    Rejected(Rejection),
    /// The credential is present and its check has to wait; the future
    /// resolves to one of the other outcomes. Only the request that needs
    /// it waits.
    Pending(AuthFuture),
}

impl Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Absent => f.write_str("Absent"),
            Auth::Authenticated(id) => f.debug_tuple("Authenticated").field(id).finish(),
            Auth::Rejected(r) => f.debug_tuple("Rejected").field(r).finish(),
            Auth::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// The consumer a request was authenticated as.
#[derive(Clone, Debug)]
pub struct Identity {
    pub app: Arc<App>,
    /// Which credential matched, for logs and analytics; never the secret
    /// (for an API key: the key's id).
    pub credential: Arc<str>,
    /// OAuth/JWT scopes granted to this request.
    pub scopes: Vec<String>,
    /// Headers the upstream gets for this identity besides
    /// `x-portico-app`/`-developer` (token claims mapped by `jwt`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The verified client certificate of a TLS connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject distinguished name as printed by RFC 4514 rules,
    /// such as `CN=client-a, O=Acme`.
    pub subject: String,
    /// Subject alternative names: DNS names, URIs (SPIFFE ids), e-mail
    /// addresses and IP addresses, as text.
    pub sans: Vec<String>,
}

/// What policies can see besides the request itself.
#[derive(Debug)]
pub struct RequestContext<'a> {
    /// The TCP peer. Policies that trust forwarding headers (behind a load
    /// balancer) work out the client from this and their own settings.
    pub client: SocketAddr,
    pub api: &'a Api,
    /// The API's index in `snapshot.apis` (set by the gateway; `u32::MAX`
    /// until then).
    pub api_index: u32,
    /// The spec operation the request matched, when the API has a spec
    /// (always, under `routing: spec`, except for an `OPTIONS` request to a
    /// path that declares no `OPTIONS` operation: it reaches the access
    /// phase so that `cors` can answer a preflight).
    pub operation: Option<&'a ApiOperation>,
    /// Behind its `Arc`, so a pending check can keep it.
    pub snapshot: &'a Arc<Snapshot>,
    pub identity: Option<Identity>,
    /// The verified client certificate, on TLS connections that sent one.
    pub client_cert: Option<&'a ClientCert>,
    /// The most request body bytes the upstream may receive; policies lower
    /// it, the gateway enforces it while streaming (413 when exceeded).
    pub body_limit: Option<u64>,
    /// Per-request data a policy keeps between its request and response
    /// methods (the CORS origin, for one). Allocates only when used.
    pub extensions: http::Extensions,
    /// Limits the traffic phase asks for; the gateway checks them all at
    /// once when the phase ends and keeps the outcomes for the RateLimit
    /// fields. Allocates only when used.
    pub limits: Limits,
}

impl<'a> RequestContext<'a> {
    pub fn new(client: SocketAddr, api: &'a Api, snapshot: &'a Arc<Snapshot>) -> Self {
        Self {
            client,
            api,
            api_index: u32::MAX,
            operation: None,
            snapshot,
            identity: None,
            client_cert: None,
            body_limit: None,
            extensions: http::Extensions::new(),
            limits: Limits::default(),
        }
    }
}

/// A compiled policy.
///
/// `Any` lets the compiler find a policy it must finish with data the
/// registry does not have (the `validate` policy gets the API's spec).
pub trait Policy: std::any::Any + Send + Sync + Debug {
    /// The name used in configuration files (`api_key`).
    fn name(&self) -> &'static str;

    /// The phase this policy runs in.
    fn phase(&self) -> Phase;

    /// Whether this policy needs an authenticated consumer (it counts per
    /// app, say). The compiler refuses it on an API without authentication.
    fn needs_identity(&self) -> bool {
        false
    }

    /// Request phases other than authentication.
    fn on_request(&self, _req: &mut request::Parts, _cx: &mut RequestContext<'_>) -> Flow {
        Flow::Continue
    }

    /// The authentication phase: look for this policy's credential.
    fn authenticate(&self, _req: &mut request::Parts, _cx: &RequestContext<'_>) -> Auth {
        Auth::Absent
    }

    /// Request headers this policy sets for the upstream. The gateway
    /// removes them from every incoming request to the API before any
    /// policy runs, so a client can never supply them itself.
    fn owned_headers(&self) -> &[HeaderName] {
        &[]
    }

    /// Removes this policy's credential from the request without checking
    /// it: another authentication policy decided, and credentials never
    /// reach the upstream.
    fn remove_credential(&self, _req: &mut request::Parts) {}

    /// The `WWW-Authenticate` challenge for a 401 when no authentication
    /// policy found its credential.
    fn challenge(&self) -> Option<HeaderValue> {
        None
    }

    /// Response phases: adjust the upstream's (or a policy's) response head.
    fn on_response(&self, _resp: &mut response::Parts, _cx: &RequestContext<'_>) {}

    /// Whether [`Self::on_response`] reads or changes anything. Where no
    /// policy of a chain does, the gateway passes the upstream's answer
    /// fields on as they came, without a field map: so `true` (the safe
    /// answer) unless the policy leaves responses alone.
    fn handles_responses(&self) -> bool {
        true
    }

    /// The response cache settings, for the `cache` policy: the gateway
    /// looks up and stores responses itself (the lookup may wait on Redis).
    fn cache(&self) -> Option<&Arc<CacheSettings>> {
        None
    }

    /// For a traffic limit, the identifier it has in the `RateLimit-Policy`
    /// and `RateLimit` fields and in `violated-policies`; one API's limits
    /// must not share one.
    fn limit_name(&self) -> Option<&str> {
        None
    }

    /// The compiled validator, for the `validate` policy: the gateway
    /// checks requests itself, because a body check waits for the body.
    fn validator(&self) -> Option<&Arc<dyn Validator>> {
        None
    }
}

/// An API's policies, sorted by phase once per snapshot; file order is kept
/// within a phase.
#[derive(Clone, Debug)]
pub struct PolicyChain {
    policies: Arc<[Arc<dyn Policy>]>,
    /// Whether any policy authenticates: then an identity is required.
    has_auth: bool,
    /// Every policy's owned headers.
    owned: Arc<[HeaderName]>,
    /// The `cache` policy's settings, if the chain has one.
    cache: Option<Arc<CacheSettings>>,
    /// The `validate` policy's validator, if the chain has one.
    validator: Option<Arc<dyn Validator>>,
    /// Whether any policy has a response side.
    handles_responses: bool,
}

impl PolicyChain {
    pub fn new(mut policies: Vec<Arc<dyn Policy>>) -> Self {
        policies.sort_by_key(|p| p.phase());
        let has_auth = policies.iter().any(|p| p.phase() == Phase::Authentication);
        let owned: Vec<HeaderName> = policies
            .iter()
            .flat_map(|p| p.owned_headers().iter().cloned())
            .collect();
        let cache = policies.iter().find_map(|p| p.cache().cloned());
        let validator = policies.iter().find_map(|p| p.validator().cloned());
        let handles_responses = policies.iter().any(|p| p.handles_responses());
        Self {
            policies: policies.into(),
            has_auth,
            owned: owned.into(),
            cache,
            validator,
            handles_responses,
        }
    }

    /// Whether a policy of the chain reads or changes response heads.
    pub fn handles_responses(&self) -> bool {
        self.handles_responses
    }

    /// The request/response validator, when the chain has a `validate`
    /// policy.
    pub fn validator(&self) -> Option<&Arc<dyn Validator>> {
        self.validator.as_ref()
    }

    /// The response cache settings, when the chain has a `cache` policy.
    pub fn cache(&self) -> Option<&Arc<CacheSettings>> {
        self.cache.as_ref()
    }

    /// Headers the chain's policies set for the upstream.
    pub fn owned_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.owned.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether the API asks for an authenticated consumer.
    pub fn requires_identity(&self) -> bool {
        self.has_auth
    }

    /// The policies of `phase`, in order.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &Arc<dyn Policy>> {
        self.policies.iter().filter(move |p| p.phase() == phase)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Policy>> {
        self.policies.iter()
    }
}

impl Default for PolicyChain {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl PartialEq for PolicyChain {
    /// Chains compare by identity: a rebuilt chain is a new chain.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.policies, &other.policies)
    }
}

impl Eq for PolicyChain {}

/// Headers a consumer may never send upstream in its own name.
pub const IDENTITY_HEADERS: [&str; 2] = ["x-portico-app", "x-portico-developer"];
