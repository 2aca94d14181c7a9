//! `concurrency`: at most `limit` requests in flight per key (`by`; the
//! whole API unless set). A slot is taken when the request is admitted and
//! given back when its exchange ends: the response body finished, failed,
//! or was dropped because the client went away.

use std::sync::Arc;

use http::request;
use portico_model::limits::{Algorithm, LimitPolicy};
use portico_model::policy::{Flow, Phase, Policy, RequestContext};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::limits::{By, name};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    limit: u64,
    /// `api` unless set.
    by: Option<String>,
    name: Option<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        limit,
        by,
        name: label,
    } = Settings::deserialize(d)?;
    if limit == 0 {
        return Err(D::Error::custom("`limit` must be at least 1"));
    }
    let by = By::parse(by.as_deref().unwrap_or("api")).map_err(D::Error::custom)?;
    let name = name(label, "concurrency".into())?;
    let tag = format!("{name}:{limit}:");
    Ok(Arc::new(Concurrency {
        name,
        by,
        limit,
        tag,
    }))
}

#[derive(Debug)]
struct Concurrency {
    name: Arc<str>,
    by: By,
    limit: u64,
    tag: String,
}

impl Policy for Concurrency {
    fn name(&self) -> &'static str {
        "concurrency"
    }

    fn phase(&self) -> Phase {
        Phase::Traffic
    }

    fn needs_identity(&self) -> bool {
        self.by.needs_identity()
    }

    fn on_request(&self, req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        let algorithm = Algorithm::Concurrency { limit: self.limit };
        let mut limits = std::mem::take(&mut cx.limits);
        limits.push(&self.name, LimitPolicy::Concurrency, algorithm, |k| {
            k.push_str("cc:");
            k.push_str(&cx.api.name);
            k.push(':');
            k.push_str(&self.tag);
            self.by.write(k, req, cx);
        });
        cx.limits = limits;
        Flow::Continue
    }
}
