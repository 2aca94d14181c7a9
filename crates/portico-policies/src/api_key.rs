//! `api_key`: an API key in a header (default `x-api-key`) and/or a query
//! parameter, looked up by its SHA-256 digest in the snapshot's key index.
//! The key is removed from the request whether or not it is valid, so it
//! never reaches the upstream.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::request;
use http::uri::{PathAndQuery, Uri};
use portico_model::ErrorCode;
use portico_model::policy::{Auth, Identity, Phase, Policy, Rejection, RequestContext};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Header carrying the key; `x-api-key` unless set.
    header: Option<String>,
    /// Query parameter carrying the key, if keys may come in the URL.
    query: Option<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings { header, query } = Option::<Settings>::deserialize(d)?.unwrap_or(Settings {
        header: None,
        query: None,
    });
    let header = header.as_deref().unwrap_or("x-api-key");
    let header = HeaderName::try_from(header.to_ascii_lowercase())
        .map_err(|_| D::Error::custom(format!("invalid header name `{header}`")))?;
    if let Some(q) = &query
        && (q.is_empty() || q.contains(['&', '=', '#', ' ']))
    {
        return Err(D::Error::custom(format!(
            "invalid query parameter name `{q}`"
        )));
    }
    let mut challenge = format!("ApiKey header=\"{header}\"");
    if let Some(q) = &query {
        challenge.push_str(&format!(", query=\"{q}\""));
    }
    let challenge = HeaderValue::try_from(challenge).map_err(D::Error::custom)?;
    Ok(Arc::new(ApiKey {
        header,
        query,
        challenge,
    }))
}

#[derive(Debug)]
struct ApiKey {
    header: HeaderName,
    query: Option<String>,
    challenge: HeaderValue,
}

impl Policy for ApiKey {
    fn name(&self) -> &'static str {
        "api_key"
    }

    fn phase(&self) -> Phase {
        Phase::Authentication
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(self.challenge.clone())
    }

    fn remove_credential(&self, req: &mut request::Parts) {
        req.headers.remove(&self.header);
        if let Some(name) = self.query.as_deref() {
            take_query_param(&mut req.uri, name);
        }
    }

    fn authenticate(&self, req: &mut request::Parts, cx: &RequestContext<'_>) -> Auth {
        // Both places are emptied whichever carried the key.
        let from_header = req.headers.remove(&self.header);
        let from_query = self
            .query
            .as_deref()
            .and_then(|name| take_query_param(&mut req.uri, name));
        // aws-lc's SHA-256 uses the CPU's SHA extensions where there are
        // some; this digest is on every request of a keyed API.
        let key: &[u8] = match (&from_header, &from_query) {
            (Some(v), _) => v.as_bytes(),
            (None, Some(q)) => q,
            (None, None) => return Auth::Absent,
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key).as_ref());
        let found = cx
            .snapshot
            .consumers
            .api_keys
            .get(&digest)
            .filter(|entry| bool::from(entry.digest.ct_eq(&digest)));
        match found {
            Some(entry) => Auth::Authenticated(Identity {
                app: cx.snapshot.consumers.apps[entry.app as usize].clone(),
                credential: entry.id.clone(),
                scopes: Vec::new(),
                headers: Vec::new(),
            }),
            None => Auth::Rejected(
                Rejection::new(ErrorCode::InvalidCredential, "The API key is not valid.")
                    .with_header(WWW_AUTHENTICATE, self.challenge.clone()),
            ),
        }
    }
}

/// Removes every `name=value` pair from the query and returns the first
/// value, percent-decoded.
pub(crate) fn take_query_param(uri: &mut Uri, name: &str) -> Option<Vec<u8>> {
    let query = uri.query()?;
    let mut found = None;
    let mut kept = String::with_capacity(query.len());
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k.as_bytes()) == name.as_bytes() {
            if found.is_none() {
                found = Some(percent_decode(v.as_bytes()));
            }
        } else {
            if !kept.is_empty() {
                kept.push('&');
            }
            kept.push_str(pair);
        }
    }
    found.as_ref()?;
    let mut pq = String::with_capacity(uri.path().len() + kept.len() + 1);
    pq.push_str(uri.path());
    if !kept.is_empty() {
        pq.push('?');
        pq.push_str(&kept);
    }
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(pq)).ok();
    *uri = Uri::from_parts(parts).unwrap_or_default();
    found
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameter_is_taken_out() {
        let mut uri: Uri = "/a/b?x=1&api_key=k%2By&y=2".parse().unwrap();
        assert_eq!(take_query_param(&mut uri, "api_key"), Some(b"k+y".to_vec()));
        assert_eq!(uri.to_string(), "/a/b?x=1&y=2");
        let mut uri: Uri = "/a?api_key=k".parse().unwrap();
        assert_eq!(take_query_param(&mut uri, "api_key"), Some(b"k".to_vec()));
        assert_eq!(uri.to_string(), "/a");
        let mut uri: Uri = "/a?x=1".parse().unwrap();
        assert_eq!(take_query_param(&mut uri, "api_key"), None);
        assert_eq!(uri.to_string(), "/a?x=1");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b+c%zz%4"), b"a b c%zz%4".to_vec());
        assert_eq!(percent_decode(b"%41%42"), b"AB".to_vec());
    }
}
