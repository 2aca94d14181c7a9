//! `request_size`: refuses request bodies over a size with 413. A declared
//! `Content-Length` is checked at once; a body of unknown length is counted
//! by the gateway while it streams.

use std::sync::Arc;

use http::header::CONTENT_LENGTH;
use http::request;
use portico_model::ErrorCode;
use portico_model::policy::{Flow, Phase, Policy, Rejection, RequestContext};
use portico_model::units::parse_size;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The largest accepted body, such as `1MiB`.
    max: String,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings { max } = Settings::deserialize(d)?;
    let max = parse_size(&max).map_err(D::Error::custom)?;
    Ok(Arc::new(RequestSize { max }))
}

#[derive(Debug)]
struct RequestSize {
    max: u64,
}

impl Policy for RequestSize {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "request_size"
    }

    fn phase(&self) -> Phase {
        Phase::Access
    }

    fn on_request(&self, req: &mut request::Parts, cx: &mut RequestContext<'_>) -> Flow {
        let declared = req
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max) {
            return Flow::Reject(Rejection::new(
                ErrorCode::PayloadTooLarge,
                format!("The request body is larger than {} bytes.", self.max),
            ));
        }
        cx.body_limit = Some(cx.body_limit.map_or(self.max, |l| l.min(self.max)));
        Flow::Continue
    }
}
