//! `rate_limit`: at most `limit` requests per `window` for each key (`by`).
//! The window opens with the key's first request, so the count is exact:
//! `limit` requests are admitted in any `window` that starts with a first
//! request, never one more. Several limits on one API are several entries.

use std::sync::Arc;
use std::time::Duration;

use portico_model::limits::{Algorithm, LimitPolicy};
use portico_model::policy::Policy;
use portico_model::units::parse_duration;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::limits::{By, Counted, name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    limit: u64,
    window: String,
    /// `app` unless set.
    by: Option<String>,
    /// The identifier in the RateLimit fields; the `by` value unless set.
    name: Option<String>,
    /// Proxies whose `X-Forwarded-For` gives the client for `by: ip`.
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        limit,
        window,
        by,
        name: label,
        trusted_proxies,
    } = Settings::deserialize(d)?;
    if limit == 0 {
        return Err(D::Error::custom("`limit` must be at least 1"));
    }
    let window = parse_duration(&window).map_err(D::Error::custom)?;
    if window < Duration::from_secs(1) {
        return Err(D::Error::custom("`window` must be at least 1s"));
    }
    let by = By::parse(by.as_deref().unwrap_or("app"))
        .and_then(|by| by.trusting(&trusted_proxies))
        .map_err(D::Error::custom)?;
    let name = name(label, by.label())?;
    let tag = format!("{name}:{limit}:{}:", window.as_millis());
    Ok(Arc::new(Counted {
        policy: "rate_limit",
        kind: LimitPolicy::RateLimit,
        prefix: "rl:",
        name,
        by,
        algorithm: Algorithm::Window { limit, window },
        tag,
    }))
}
