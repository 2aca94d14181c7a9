//! Cache keys: a SHA-256 of what selects a response, so keys have one
//! size, and credentials or header values never appear in Redis key names.
//!
//! The primary key covers the method class (GET and HEAD share entries),
//! the host, the path, the query with its parameters sorted by name, the
//! app when the request is authenticated, and the values of the policy's
//! `vary` headers. A response's own `Vary` adds a secondary key: the
//! primary key and the values of the headers it names.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

/// The parts of a request that select a cached response.
#[derive(Debug)]
pub(crate) struct KeyParts<'a> {
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The authenticated app, if any: one app never sees another's answer.
    pub app: Option<&'a str>,
}

/// A field, length-prefixed, so that no two different inputs hash alike.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn headers_part(h: &mut Sha256, names: &[HeaderName], headers: &HeaderMap) {
    for name in names {
        field(h, name.as_str().as_bytes());
        let mut values = headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            // Absent differs from empty.
            h.update([0xff]);
            continue;
        }
        h.update([0x01]);
        for v in values {
            field(h, v.as_bytes());
        }
    }
}

fn hex(digest: &[u8]) -> String {
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The query with its parameters in a stable order: sorted by name, the
/// values of a repeated name kept in the order sent; empty parameters
/// (`a=1&&b=2`) dropped.
pub(crate) fn normalize_query(query: &str) -> String {
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_by(|a, b| {
        let name = |p: &str| p.split_once('=').map_or(p, |(n, _)| n).to_owned();
        name(a).cmp(&name(b))
    });
    params.join("&")
}

/// The primary key of a request.
pub(crate) fn primary(parts: &KeyParts<'_>, vary: &[HeaderName], headers: &HeaderMap) -> String {
    let mut h = Sha256::new();
    h.update(b"portico-cache-v1");
    field(
        &mut h,
        parts.host.unwrap_or("").to_ascii_lowercase().as_bytes(),
    );
    field(&mut h, parts.path.as_bytes());
    match parts.query {
        Some(q) => field(&mut h, normalize_query(q).as_bytes()),
        None => h.update([0xff]),
    }
    match parts.app {
        Some(app) => field(&mut h, app.as_bytes()),
        None => h.update([0xff]),
    }
    headers_part(&mut h, vary, headers);
    hex(&h.finalize())
}

/// The key of the variant of `primary` that `headers` select, for a
/// response that varies on `names`.
pub(crate) fn secondary(primary: &str, names: &[HeaderName], headers: &HeaderMap) -> String {
    let mut h = Sha256::new();
    field(&mut h, primary.as_bytes());
    headers_part(&mut h, names, headers);
    let mut key = hex(&h.finalize());
    key.insert(0, 'v');
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parts<'a>(query: Option<&'a str>, app: Option<&'a str>) -> KeyParts<'a> {
        KeyParts {
            host: Some("API.example.com"),
            path: "/a",
            query,
            app,
        }
    }

    #[test]
    fn query_order_does_not_matter_but_values_do() {
        assert_eq!(normalize_query("b=2&a=1&&a=0"), "a=1&a=0&b=2");
        let none = HeaderMap::new();
        let k = |q| primary(&parts(Some(q), None), &[], &none);
        assert_eq!(k("a=1&b=2"), k("b=2&a=1"));
        assert_ne!(k("a=1&b=2"), k("a=1&b=3"));
        assert_ne!(k("a=1&a=2"), k("a=2&a=1"));
        assert_ne!(primary(&parts(None, None), &[], &none), k(""));
    }

    #[test]
    fn apps_and_vary_headers_split_keys() {
        let mut en = HeaderMap::new();
        en.insert("accept-language", HeaderValue::from_static("en"));
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", HeaderValue::from_static("fr"));
        let vary = [HeaderName::from_static("accept-language")];
        let p = parts(None, Some("app-a"));
        assert_ne!(primary(&p, &vary, &en), primary(&p, &vary, &fr));
        assert_ne!(
            primary(&p, &vary, &en),
            primary(&p, &vary, &HeaderMap::new())
        );
        assert_eq!(primary(&p, &[], &en), primary(&p, &[], &fr));
        assert_ne!(
            primary(&parts(None, Some("app-b")), &[], &en),
            primary(&p, &[], &en)
        );
        let k = primary(&p, &[], &en);
        assert_ne!(secondary(&k, &vary, &en), secondary(&k, &vary, &fr));
        assert_eq!(k.len(), 64);
    }
}
