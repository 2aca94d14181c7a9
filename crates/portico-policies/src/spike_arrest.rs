//! `spike_arrest`: smooths bursts with GCRA. `rate: 10/s` admits one
//! request each 100 ms; `burst: N` lets N arrive at once after a quiet
//! spell. One counter for the API unless `by` says otherwise.

use std::sync::Arc;
use std::time::Duration;

use portico_model::limits::{Algorithm, LimitPolicy};
use portico_model::policy::Policy;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::limits::{By, Counted, name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `N/s`, `N/m` or `N/h`.
    rate: String,
    /// Requests admitted at once; 1 unless set.
    burst: Option<u64>,
    /// `api` unless set.
    by: Option<String>,
    name: Option<String>,
    /// Proxies whose `X-Forwarded-For` gives the client for `by: ip`.
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

/// `10/s` → (10, 1 s).
fn parse_rate(s: &str) -> Result<(u64, Duration), String> {
    let bad = || format!("invalid rate `{s}`: expected N/s, N/m or N/h, such as 10/s");
    let (n, unit) = s.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if n == 0 || n > 1_000_000 {
        return Err(format!("rate `{s}`: N must be between 1 and 1000000"));
    }
    Ok((n, per))
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        rate,
        burst,
        by,
        name: label,
        trusted_proxies,
    } = Settings::deserialize(d)?;
    let (n, per) = parse_rate(&rate).map_err(D::Error::custom)?;
    let burst = burst.unwrap_or(1);
    if !(1..=1_000_000).contains(&burst) {
        return Err(D::Error::custom("`burst` must be between 1 and 1000000"));
    }
    let interval = per / u32::try_from(n).map_err(D::Error::custom)?;
    let by = By::parse(by.as_deref().unwrap_or("api"))
        .and_then(|by| by.trusting(&trusted_proxies))
        .map_err(D::Error::custom)?;
    let name = name(label, "spike".into())?;
    let tag = format!("{name}:{}:{burst}:", interval.as_micros());
    Ok(Arc::new(Counted {
        policy: "spike_arrest",
        kind: LimitPolicy::SpikeArrest,
        prefix: "sa:",
        name,
        by,
        algorithm: Algorithm::Gcra {
            interval,
            burst,
            rate: n,
            per,
        },
        tag,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok((10, Duration::from_secs(1))));
        assert_eq!(parse_rate("30/m"), Ok((30, Duration::from_secs(60))));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("10/d").is_err());
        assert!(parse_rate("ten/s").is_err());
    }
}
