//! `mtls`: the client certificate of a TLS connection, verified against the
//! listener's trust store (`server.proxy.tls.client_ca`), names the app: its
//! subject (`CN=client-a, O=Acme`) or one of its subject alternative names
//! (a DNS name, a SPIFFE URI) is listed in the app's `certificates`.

use std::sync::Arc;

use http::request;
use portico_model::ErrorCode;
use portico_model::policy::{Auth, Identity, Phase, Policy, Rejection, RequestContext};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {} = Option::<Settings>::deserialize(d)?.unwrap_or(Settings {});
    Ok(Arc::new(Mtls))
}

#[derive(Debug)]
struct Mtls;

impl Policy for Mtls {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "mtls"
    }

    fn phase(&self) -> Phase {
        Phase::Authentication
    }

    fn authenticate(&self, _req: &mut request::Parts, cx: &RequestContext<'_>) -> Auth {
        let Some(cert) = cx.client_cert else {
            return Auth::Absent;
        };
        let certificates = &cx.snapshot.consumers.certificates;
        let found = std::iter::once(&cert.subject)
            .chain(&cert.sans)
            .find_map(|name| certificates.get(name).map(|&app| (name, app)));
        match found {
            Some((name, app)) => Auth::Authenticated(Identity {
                app: cx.snapshot.consumers.apps[app as usize].clone(),
                credential: format!("cert:{name}").into(),
                scopes: Vec::new(),
                headers: Vec::new(),
            }),
            None => Auth::Rejected(Rejection::new(
                ErrorCode::InvalidCredential,
                format!(
                    "The client certificate ({}) is not registered to an app.",
                    cert.subject
                ),
            )),
        }
    }
}
