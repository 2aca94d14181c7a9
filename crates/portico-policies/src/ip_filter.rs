//! `ip_filter`: allow and deny lists of CIDR blocks. The client is the TCP
//! peer, unless the peer is a configured trusted proxy: then it is the
//! nearest address in `X-Forwarded-For` that is not a trusted proxy (the
//! rightmost untrusted entry), so a client cannot choose its own address by
//! sending the header itself.

use std::sync::Arc;

use http::request;
use portico_model::ErrorCode;
use portico_model::policy::{Flow, Phase, Policy, Rejection, RequestContext};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::net::{Cidr, TrustedProxies};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

fn blocks<E: serde::de::Error>(list: &[String]) -> Result<Vec<Cidr>, E> {
    list.iter().map(|s| s.parse().map_err(E::custom)).collect()
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        allow,
        deny,
        trusted_proxies,
    } = Settings::deserialize(d)?;
    if allow.is_empty() && deny.is_empty() {
        return Err(D::Error::custom("ip_filter needs `allow` or `deny` blocks"));
    }
    Ok(Arc::new(IpFilter {
        allow: blocks(&allow)?,
        deny: blocks(&deny)?,
        trusted: TrustedProxies::parse(&trusted_proxies).map_err(D::Error::custom)?,
    }))
}

#[derive(Debug)]
struct IpFilter {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    trusted: TrustedProxies,
}

impl Policy for IpFilter {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "ip_filter"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn on_request(&self, req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        let Some(client) = self.trusted.client(req, cx.client.ip()) else {
            return Flow::Reject(Rejection::new(
                ErrorCode::AddressDenied,
                "X-Forwarded-For from a trusted proxy is not a list of addresses.",
            ));
        };
        let denied = self.deny.iter().any(|c| c.contains(client));
        let allowed = self.allow.is_empty() || self.allow.iter().any(|c| c.contains(client));
        if denied || !allowed {
            return Flow::Reject(Rejection::new(
                ErrorCode::AddressDenied,
                format!("The address {client} is not allowed to call this API."),
            ));
        }
        Flow::Continue
    }
}
