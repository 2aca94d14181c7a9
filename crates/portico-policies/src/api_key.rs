//! `api_key`: an API key in a header (default `x-api-key`) and/or a query
//! parameter, looked up by its SHA-256 digest in the snapshot's key index.
//! The key is removed from the request whether or not it is valid, so it
//! never reaches the upstream.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{COOKIE, HeaderName, HeaderValue, WWW_AUTHENTICATE};
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
    /// Cookie carrying the key, if keys may come in a cookie.
    cookie: Option<String>,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        header,
        query,
        cookie,
    } = Option::<Settings>::deserialize(d)?.unwrap_or(Settings {
        header: None,
        query: None,
        cookie: None,
    });
    let header = header.unwrap_or_else(|| "x-api-key".to_owned());
    ApiKey::new(Some(&header), query, cookie)
        .map(|p| Arc::new(p) as Arc<dyn Policy>)
        .map_err(D::Error::custom)
}

/// Where a key named by an OpenAPI `apiKey` security scheme is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyIn {
    Header,
    Query,
    Cookie,
}

/// The `api_key` policy for an OpenAPI `apiKey` security scheme: the key
/// is looked for in that one place only.
pub fn for_scheme(location: KeyIn, name: &str) -> Result<Arc<dyn Policy>, String> {
    let policy = match location {
        KeyIn::Header => ApiKey::new(Some(name), None, None),
        KeyIn::Query => ApiKey::new(None, Some(name.to_owned()), None),
        KeyIn::Cookie => ApiKey::new(None, None, Some(name.to_owned())),
    }?;
    Ok(Arc::new(policy))
}

#[derive(Debug)]
struct ApiKey {
    header: Option<HeaderName>,
    query: Option<String>,
    cookie: Option<String>,
    challenge: HeaderValue,
}

impl ApiKey {
    fn new(
        header: Option<&str>,
        query: Option<String>,
        cookie: Option<String>,
    ) -> Result<Self, String> {
        let header = header
            .map(|h| {
                HeaderName::try_from(h.to_ascii_lowercase())
                    .map_err(|_| format!("invalid header name `{h}`"))
            })
            .transpose()?;
        if let Some(q) = &query
            && (q.is_empty() || q.contains(['&', '=', '#', ' ']))
        {
            return Err(format!("invalid query parameter name `{q}`"));
        }
        // A cookie name is an RFC 6265 token.
        if let Some(c) = &cookie
            && (c.is_empty()
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)))
        {
            return Err(format!("invalid cookie name `{c}`"));
        }
        let mut places = Vec::new();
        if let Some(h) = &header {
            places.push(format!("header=\"{h}\""));
        }
        if let Some(q) = &query {
            places.push(format!("query=\"{q}\""));
        }
        if let Some(c) = &cookie {
            places.push(format!("cookie=\"{c}\""));
        }
        let challenge = HeaderValue::try_from(format!("ApiKey {}", places.join(", ")))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            header,
            query,
            cookie,
            challenge,
        })
    }
}

impl Policy for ApiKey {
    fn handles_responses(&self) -> bool {
        false
    }

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
        if let Some(h) = &self.header {
            req.headers.remove(h);
        }
        if let Some(name) = self.query.as_deref() {
            take_query_param(&mut req.uri, name);
        }
        if let Some(name) = self.cookie.as_deref() {
            take_cookie(&mut req.headers, name);
        }
    }

    fn authenticate(&self, req: &mut request::Parts, cx: &RequestContext<'_>) -> Auth {
        // Every place is emptied whichever carried the key.
        let from_header = self.header.as_ref().and_then(|h| req.headers.remove(h));
        let from_query = self
            .query
            .as_deref()
            .and_then(|name| take_query_param(&mut req.uri, name));
        let from_cookie = self
            .cookie
            .as_deref()
            .and_then(|name| take_cookie(&mut req.headers, name));
        let key: &[u8] = match (&from_header, &from_query, &from_cookie) {
            (Some(v), _, _) => v.as_bytes(),
            (None, Some(q), _) => q,
            (None, None, Some(c)) => c,
            (None, None, None) => return Auth::Absent,
        };
        // aws-lc's SHA-256 uses the CPU's SHA extensions where there are
        // some; this digest is on every request of a keyed API.
        let mut digest = [0u8; 32];
        digest.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key).as_ref());
        let found = cx
            .snapshot
            .consumers
            .api_keys
            .get(&digest)
            .filter(|entry| same_digest(&entry.digest, &digest));
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

/// Whether two digests are equal, in time that does not depend on where
/// they differ: compared as four words (a byte at a time costs a hundred
/// instructions more on every keyed request).
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let words = |d: &[u8; 32]| -> [u64; 4] {
        std::array::from_fn(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&d[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        })
    };
    let (a, b) = (words(a), words(b));
    let same = a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1]) & a[2].ct_eq(&b[2]) & a[3].ct_eq(&b[3]);
    bool::from(same)
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

/// Removes every cookie called `name` from the `Cookie` fields (RFC 6265
/// §5.4: `name=value` pairs joined by `; `) and returns the first value.
/// A field left without cookies is removed.
pub(crate) fn take_cookie(headers: &mut http::HeaderMap, name: &str) -> Option<Vec<u8>> {
    if !headers.contains_key(COOKIE) {
        return None;
    }
    let mut found = None;
    let mut kept = Vec::new();
    for field in headers.get_all(COOKIE) {
        let mut rest = Vec::new();
        let mut changed = false;
        for pair in field.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            if k.trim_ascii() == name.as_bytes() {
                changed = true;
                if found.is_none() {
                    let v = v.trim_ascii();
                    let v = v
                        .strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .unwrap_or(v);
                    found = Some(v.to_vec());
                }
            } else {
                rest.push(pair);
            }
        }
        if !changed {
            kept.push(field.clone());
        } else if !rest.is_empty()
            && let Ok(v) = HeaderValue::from_bytes(&rest.join(&b"; "[..]))
        {
            kept.push(v);
        }
    }
    found.as_ref()?;
    headers.remove(COOKIE);
    for v in kept {
        headers.append(COOKIE, v);
    }
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
    fn cookie_is_taken_out() {
        let mut h = http::HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; key=\"k1\"; b=2"));
        h.append(COOKIE, HeaderValue::from_static("key=k2"));
        h.append(COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(take_cookie(&mut h, "key"), Some(b"k1".to_vec()));
        let left: Vec<_> = h
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["a=1; b=2", "c=3"]);
        assert_eq!(take_cookie(&mut h, "key"), None);
        assert_eq!(h.get_all(COOKIE).iter().count(), 2);
    }

    #[test]
    fn scheme_policies_look_in_one_place() {
        let p = for_scheme(KeyIn::Query, "api_key").unwrap();
        assert_eq!(p.challenge().unwrap(), "ApiKey query=\"api_key\"");
        let p = for_scheme(KeyIn::Cookie, "session").unwrap();
        assert_eq!(p.challenge().unwrap(), "ApiKey cookie=\"session\"");
        assert!(for_scheme(KeyIn::Cookie, "a;b").is_err());
        assert!(for_scheme(KeyIn::Header, "bad header").is_err());
    }

    #[test]
    fn digests_are_the_same_only_when_every_byte_is() {
        let a = [7u8; 32];
        assert!(same_digest(&a, &a));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!same_digest(&a, &b), "{i}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"a%20b+c%zz%4"), b"a b c%zz%4".to_vec());
        assert_eq!(percent_decode(b"%41%42"), b"AB".to_vec());
    }
}
