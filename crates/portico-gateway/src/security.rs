//! Authentication by the spec's security requirements (an API with a spec
//! and no authentication policy of its own). The requirements of the
//! matched operation were compiled with the snapshot; here each scheme the
//! operation names looks for its credential once, and the first
//! alternative (a requirement object) whose schemes all passed, with their
//! scopes, admits the request.
//!
//! - An open operation (`security: []`) looks for nothing.
//! - An invalid credential refuses the request (401), whatever else the
//!   request carries, as with the API's own policies.
//! - Schemes of one alternative must name the same app.
//! - Scopes are checked for schemes whose credentials carry them (OAuth
//!   2.0, OpenID Connect, bearer); a missing one is 403 `insufficient_scope`
//!   when no other alternative admits the request.
//! - An empty alternative (`{}`) admits a request without credentials.
//! - Every scheme's credential is removed before the upstream sees the
//!   request.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, request};
use portico_model::ErrorCode;
use portico_model::policy::{Auth, Identity, Rejection, RequestContext};
use portico_model::security::{Requirements, SpecSecurity};

use crate::pipeline::{Stop, admit};

/// What one scheme found in the request.
enum Found {
    Absent,
    Valid(Identity),
}

pub(crate) async fn authenticate(
    security: &SpecSecurity,
    api_index: u32,
    req: &mut request::Parts,
    cx: &mut RequestContext<'_>,
) -> Result<(), Stop> {
    let reqs: &Requirements = security.requirements(cx.operation);
    let mut found: Vec<(u16, Found)> = Vec::with_capacity(reqs.needed.len());
    for &i in &reqs.needed {
        let policy = &security.schemes[i as usize].policy;
        let mut outcome = policy.authenticate(req, cx);
        while let Auth::Pending(check) = outcome {
            outcome = check.await;
        }
        match outcome {
            Auth::Absent | Auth::Pending(_) => found.push((i, Found::Absent)),
            Auth::Authenticated(id) => found.push((i, Found::Valid(id))),
            Auth::Rejected(r) => {
                remove_all(security, req);
                return Err(Stop::Reject(r));
            }
        }
    }
    // Credentials of schemes this operation does not name never go
    // upstream either.
    for (i, scheme) in security.schemes.iter().enumerate() {
        if reqs.needed.binary_search(&(i as u16)).is_err() {
            scheme.policy.remove_credential(req);
        }
    }
    if reqs.is_open() {
        return Ok(());
    }
    let identity_of = |scheme: u16| {
        found.iter().find_map(|(i, f)| match f {
            Found::Valid(id) if *i == scheme => Some(id),
            _ => None,
        })
    };
    let mut lacking: Option<Vec<&str>> = None;
    for alt in &reqs.alternatives {
        if alt.schemes.is_empty() {
            continue;
        }
        let mut ids = Vec::with_capacity(alt.schemes.len());
        let mut missing_scopes = Vec::new();
        for (scheme, scopes) in &alt.schemes {
            let Some(id) = identity_of(*scheme) else {
                break;
            };
            if security.schemes[*scheme as usize].scoped {
                missing_scopes.extend(
                    scopes
                        .iter()
                        .filter(|s| !id.scopes.contains(s))
                        .map(String::as_str),
                );
            }
            ids.push(id);
        }
        if ids.len() < alt.schemes.len() {
            continue;
        }
        if !missing_scopes.is_empty() {
            lacking.get_or_insert(missing_scopes);
            continue;
        }
        let first = ids[0];
        if ids.iter().any(|id| id.app.name != first.app.name) {
            return Err(Stop::Reject(Rejection::new(
                ErrorCode::InvalidCredential,
                "The credentials of this request belong to different apps.",
            )));
        }
        let identity = first.clone();
        return admit(identity, api_index, req, cx);
    }
    if let Some(scopes) = lacking {
        let scope = scopes.join(" ");
        let mut r = Rejection::new(
            ErrorCode::InsufficientScope,
            format!("The token does not grant every scope this operation requires: {scope}."),
        );
        if let Ok(v) = HeaderValue::try_from(format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
        )) {
            r = r.with_header(WWW_AUTHENTICATE, v);
        }
        return Err(Stop::Reject(r));
    }
    if reqs.anonymous {
        return Ok(());
    }
    let mut r = Rejection::new(
        ErrorCode::MissingCredential,
        "This operation requires a credential.",
    );
    for &i in &reqs.needed {
        if let Some(challenge) = security.schemes[i as usize].policy.challenge() {
            r = r.with_header(WWW_AUTHENTICATE, challenge);
        }
    }
    Err(Stop::Reject(r))
}

fn remove_all(security: &SpecSecurity, req: &mut request::Parts) {
    for scheme in &security.schemes {
        scheme.policy.remove_credential(req);
    }
}
