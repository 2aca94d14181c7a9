//! `concurrency`: at most `limit` requests in flight per key (`by`; the
//! whole API unless set). A slot is taken when the request is admitted and
//! given back when its exchange ends: the response body finished, failed,
//! or was dropped because the client went away.

use std::sync::Arc;

use portico_model::limits::{Algorithm, LimitPolicy};
use portico_model::policy::Policy;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::limits::{By, Counted, name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    limit: u64,
    /// `api` unless set.
    by: Option<String>,
    name: Option<String>,
    /// Proxies whose `X-Forwarded-For` gives the client for `by: ip`.
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        limit,
        by,
        name: label,
        trusted_proxies,
    } = Settings::deserialize(d)?;
    if limit == 0 {
        return Err(D::Error::custom("`limit` must be at least 1"));
    }
    let by = By::parse(by.as_deref().unwrap_or("api"))
        .and_then(|by| by.trusting(&trusted_proxies))
        .map_err(D::Error::custom)?;
    let name = name(label, "concurrency".into())?;
    let tag = format!("{name}:{limit}:");
    Ok(Arc::new(Counted {
        policy: "concurrency",
        kind: LimitPolicy::Concurrency,
        prefix: "cc:",
        name,
        by,
        algorithm: Algorithm::Concurrency { limit },
        tag,
    }))
}
