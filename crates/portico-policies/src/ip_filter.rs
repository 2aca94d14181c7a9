//! `ip_filter`: allow and deny lists of CIDR blocks. The client is the TCP
//! peer, unless the peer is a configured trusted proxy: then it is the
//! nearest address in `X-Forwarded-For` that is not a trusted proxy (the
//! rightmost untrusted entry), so a client cannot choose its own address by
//! sending the header itself.

use std::net::IpAddr;
use std::sync::Arc;

use http::request;
use portico_model::ErrorCode;
use portico_model::policy::{Flow, Phase, Policy, Rejection, RequestContext};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::net::Cidr;

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
        trusted: blocks(&trusted_proxies)?,
    }))
}

#[derive(Debug)]
struct IpFilter {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    trusted: Vec<Cidr>,
}

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

impl IpFilter {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address as far as trusted proxies vouch for it.
    fn client(&self, req: &request::Parts, peer: IpAddr) -> Option<IpAddr> {
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut hops: Vec<&str> = Vec::new();
        for v in req.headers.get_all(&X_FORWARDED_FOR) {
            hops.extend(v.to_str().ok()?.split(','));
        }
        for hop in hops.iter().rev() {
            let ip: IpAddr = hop.trim().parse().ok()?;
            if !self.is_trusted(ip) {
                return Some(ip);
            }
        }
        // Every hop is a trusted proxy: the first one is the client.
        hops.first()
            .and_then(|h| h.trim().parse().ok())
            .or(Some(peer))
    }
}

impl Policy for IpFilter {
    fn name(&self) -> &'static str {
        "ip_filter"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn on_request(&self, req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        let Some(client) = self.client(req, cx.client.ip()) else {
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
