//! `cache`: the response cache for safe methods. The policy only carries
//! its compiled settings; the gateway looks responses up (in the cache
//! lookup phase) and stores them (after the response side), because a
//! lookup may wait on Redis. See `docs/policies.md` "cache".

use std::sync::Arc;

use http::HeaderName;
use portico_model::cache::{
    CacheBackend, CacheSettings, DEFAULT_CACHE_TTL, DEFAULT_MAX_ENTRY_SIZE,
};
use portico_model::policy::{Phase, Policy};
use portico_model::units::{parse_duration, parse_size};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The largest `max_entry_size`: one entry is held in memory whole.
const MAX_ENTRY_SIZE_CAP: u64 = 64 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Freshness when the response states none, such as `60s`.
    ttl: Option<String>,
    /// Larger bodies pass through uncached, such as `1MiB`.
    max_entry_size: Option<String>,
    /// Request headers every key includes.
    #[serde(default)]
    vary: Vec<String>,
    #[serde(default)]
    authorization: bool,
    #[serde(default)]
    cookies: bool,
    backend: Option<RawBackend>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawBackend {
    Memory,
    Redis,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        ttl,
        max_entry_size,
        vary,
        authorization,
        cookies,
        backend,
    } = Settings::deserialize(d)?;
    let ttl = match ttl {
        Some(t) => parse_duration(&t).map_err(D::Error::custom)?,
        None => DEFAULT_CACHE_TTL,
    };
    if ttl.is_zero() {
        return Err(D::Error::custom("`ttl` must be greater than zero"));
    }
    let max_entry_size = match max_entry_size {
        Some(s) => parse_size(&s).map_err(D::Error::custom)?,
        None => DEFAULT_MAX_ENTRY_SIZE,
    };
    if max_entry_size == 0 || max_entry_size > MAX_ENTRY_SIZE_CAP {
        return Err(D::Error::custom(
            "`max_entry_size` must be between 1B and 64MiB",
        ));
    }
    let mut names = Vec::with_capacity(vary.len());
    for v in vary {
        let name = HeaderName::from_bytes(v.trim().as_bytes())
            .map_err(|_| D::Error::custom(format!("`vary`: `{v}` is not a header name")))?;
        if name == http::header::AUTHORIZATION {
            return Err(D::Error::custom(
                "`vary`: `authorization` cannot be a key part; set `authorization: true` to cache authorized requests (keys include the app)",
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(Arc::new(Cache {
        settings: Arc::new(CacheSettings {
            ttl,
            max_entry_size,
            vary: names.into(),
            authorization,
            cookies,
            backend: match backend {
                None => CacheBackend::Auto,
                Some(RawBackend::Memory) => CacheBackend::Memory,
                Some(RawBackend::Redis) => CacheBackend::Redis,
            },
        }),
    }))
}

#[derive(Debug)]
struct Cache {
    settings: Arc<CacheSettings>,
}

impl Policy for Cache {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "cache"
    }

    fn phase(&self) -> Phase {
        Phase::CacheLookup
    }

    fn cache(&self) -> Option<&Arc<CacheSettings>> {
        Some(&self.settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: Vec<(&'static str, serde_json::Value)>) -> Result<CacheSettings, String> {
        let map: serde_json::Map<String, serde_json::Value> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let p = build(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
        Ok((**p.cache().unwrap()).clone())
    }

    #[test]
    fn defaults_and_vary() {
        let s = settings(vec![(
            "vary",
            serde_json::json!(["Accept-Language", "accept"]),
        )])
        .unwrap();
        assert_eq!(s.ttl, DEFAULT_CACHE_TTL);
        assert_eq!(s.max_entry_size, DEFAULT_MAX_ENTRY_SIZE);
        assert_eq!(
            &*s.vary,
            &[
                HeaderName::from_static("accept"),
                HeaderName::from_static("accept-language")
            ]
        );
        assert_eq!(s.backend, CacheBackend::Auto);
        assert!(!s.authorization && !s.cookies);
    }

    #[test]
    fn refusals() {
        assert!(settings(vec![("ttl", serde_json::json!("0s"))]).is_err());
        assert!(settings(vec![("max_entry_size", serde_json::json!("1TiB"))]).is_err());
        assert!(settings(vec![("vary", serde_json::json!(["bad header"]))]).is_err());
        assert!(settings(vec![("vary", serde_json::json!(["Authorization"]))]).is_err());
        assert!(settings(vec![("backend", serde_json::json!("disk"))]).is_err());
        let e = settings(vec![("tll", serde_json::json!("1s"))]).unwrap_err();
        assert!(e.contains("tll"), "{e}");
    }
}
