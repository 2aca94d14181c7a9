//! Policy name → builder. The one list of the policies this build has.

use std::sync::Arc;

use portico_model::policy::Policy;
use serde::Deserializer;
use serde::de::Error as _;

use crate::{
    api_key, basic_auth, cache, concurrency, cors, ip_filter, jwt, mtls, quota, rate_limit,
    request_size, spike_arrest, validate,
};

/// Policies this build can run.
pub const BUILT: &[&str] = &[
    "api_key",
    "basic_auth",
    "cache",
    "concurrency",
    "cors",
    "ip_filter",
    "jwt",
    "mtls",
    "quota",
    "rate_limit",
    "request_size",
    "spike_arrest",
    "validate",
];

/// Policies of the product contract that are not built yet. A configuration
/// naming one is refused (fail closed) rather than run without it.
pub const PLANNED: &[&str] = &[
    "oauth2",
    "headers",
    "rewrite",
    "json_to_xml",
    "xml_to_json",
    "soap",
];

/// Builds policy `name` from its settings.
pub fn build<'de, D: Deserializer<'de>>(
    name: &str,
    settings: D,
) -> Result<Arc<dyn Policy>, D::Error> {
    match name {
        "api_key" => api_key::build(settings),
        "basic_auth" => basic_auth::build(settings),
        "cache" => cache::build(settings),
        "cors" => cors::build(settings),
        "ip_filter" => ip_filter::build(settings),
        "jwt" => jwt::build(settings),
        "mtls" => mtls::build(settings),
        "request_size" => request_size::build(settings),
        "rate_limit" => rate_limit::build(settings),
        "spike_arrest" => spike_arrest::build(settings),
        "quota" => quota::build(settings),
        "concurrency" => concurrency::build(settings),
        "validate" => validate::build(settings),
        planned if PLANNED.contains(&planned) => Err(D::Error::custom(format!(
            "policy `{name}` is not available in this version of Portico yet; refusing to run the API without it"
        ))),
        _ => Err(D::Error::custom(format!(
            "unknown policy `{name}`, expected one of {}",
            BUILT
                .iter()
                .chain(PLANNED)
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
