//! `quota`: at most `limit` requests per app and product in each calendar
//! `period` (minute, hour, day or month, in UTC). The product is the first
//! of the app's products that includes the API. A new period starts from
//! zero; counts survive a node restart (in Redis, or saved by the node).

use std::fmt::Write as _;
use std::sync::Arc;

use http::request;
use portico_model::limits::{Algorithm, LimitPolicy};
use portico_model::policy::{Flow, Phase, Policy, RequestContext};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::limits::{Period, name, unix_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    limit: u64,
    /// `minute`, `hour`, `day` or `month`.
    period: String,
    name: Option<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        limit,
        period,
        name: label,
    } = Settings::deserialize(d)?;
    if limit == 0 {
        return Err(D::Error::custom("`limit` must be at least 1"));
    }
    let period = Period::parse(&period).map_err(D::Error::custom)?;
    let name = name(label, "quota".into())?;
    let tag = format!("{name}:{limit}:{period:?}:");
    Ok(Arc::new(Quota {
        name,
        limit,
        period,
        tag,
    }))
}

#[derive(Debug)]
struct Quota {
    name: Arc<str>,
    limit: u64,
    period: Period,
    tag: String,
}

impl Policy for Quota {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "quota"
    }

    fn limit_name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn phase(&self) -> Phase {
        Phase::Traffic
    }

    fn needs_identity(&self) -> bool {
        true
    }

    fn on_request(&self, _req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        let Some(id) = cx.identity.as_ref() else {
            // The compiler refuses `quota` on an API without
            // authentication, and authentication requires an identity.
            return Flow::Continue;
        };
        let (start, ends_in) = self.period.at(unix_ms());
        let product = id.app.access(cx.api_index).map(|a| a.product.clone());
        let algorithm = Algorithm::Period {
            limit: self.limit,
            period: self.period.nominal(),
            ends_in,
        };
        cx.limits
            .push(&self.name, LimitPolicy::Quota, algorithm, |k| {
                k.push_str("q:");
                k.push_str(&cx.api.name);
                k.push(':');
                k.push_str(&self.tag);
                let _ = write!(k, "{start}:");
                k.push_str(product.as_deref().unwrap_or("-"));
                k.push(':');
                k.push_str(&id.app.name);
            });
        Flow::Continue
    }
}
