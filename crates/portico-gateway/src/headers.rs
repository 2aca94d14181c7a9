//! Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1), the
//! forwarding headers (RFC 7239 and the `X-Forwarded-*` family), request ids
//! and W3C trace context.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The longest incoming request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// Removes the hop-by-hop fields: the fixed list and every field the
/// `Connection` header names.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
    ] {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// The incoming `x-request-id` if it is sane (1 to 128 visible ASCII
/// characters), else a new random one.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut id = String::with_capacity(32);
    let _ = write!(id, "{:032x}", fastrand::u128(..));
    HeaderValue::try_from(id).expect("hex is a valid header value")
}

/// The `traceparent` to send upstream: the incoming trace continued with a
/// new parent id (this hop's span), or a new sampled trace when the
/// incoming one is absent or malformed.
pub(crate) fn traceparent(headers: &HeaderMap) -> HeaderValue {
    let span = nonzero_u64();
    let value = match headers
        .get(&TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()))
    {
        Some((trace, flags)) => format!("00-{trace}-{span:016x}-{flags}"),
        None => format!("00-{:032x}-{span:016x}-01", nonzero_u128()),
    };
    HeaderValue::try_from(value).expect("hex is a valid header value")
}

fn nonzero_u64() -> u64 {
    fastrand::u64(1..)
}

fn nonzero_u128() -> u128 {
    fastrand::u128(1..)
}

/// Returns the trace id and flags of a valid version-00-compatible
/// `traceparent`. Future versions are read by their first four fields.
fn parse_traceparent(v: &[u8]) -> Option<(&str, &str)> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let mut parts = s.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    let hex = |p: &str, n: usize| {
        p.len() == n && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || rest.is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then_some((trace, flags))
}

/// Adds `Forwarded` and `X-Forwarded-For/-Proto/-Host` for a request from
/// `client` that arrived over `proto` naming `host`. `Forwarded` and
/// `X-Forwarded-For` are appended to what earlier proxies wrote; the
/// protocol and host describe this hop and replace what the client sent.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client: SocketAddr,
    proto: &'static str,
    host: Option<&str>,
) {
    let ip = client.ip();
    let mut forwarded = String::with_capacity(64);
    match ip {
        IpAddr::V4(v4) => {
            let _ = write!(forwarded, "for={v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(forwarded, "for=\"[{v6}]\"");
        }
    }
    let _ = write!(forwarded, ";proto={proto}");
    if let Some(h) = host.filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        let _ = write!(forwarded, ";host=\"{h}\"");
    }
    if let Ok(v) = HeaderValue::try_from(forwarded) {
        headers.append(&FORWARDED, v);
    }

    let mut xff = String::with_capacity(48);
    for earlier in headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        xff.push_str(earlier);
        xff.push_str(", ");
    }
    let _ = write!(xff, "{ip}");
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host.and_then(|h| HeaderValue::from_str(h).ok()) {
        Some(v) => {
            headers.insert(&X_FORWARDED_HOST, v);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_fields_and_connection_tokens_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Custom"),
            ("connection", "x-other"),
            ("x-custom", "1"),
            ("x-other", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        let sane = "abc-123_XYZ.~";
        assert_eq!(request_id(&map(&[("x-request-id", sane)])), sane);
        let long = "a".repeat(129);
        for insane in ["", "has space", long.as_str()] {
            let id = request_id(&map(&[("x-request-id", insane)]));
            assert_ne!(id, insane);
            assert_eq!(id.len(), 32);
        }
        assert_eq!(
            request_id(&map(&[("x-request-id", &"b".repeat(128))])).len(),
            128
        );
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn traceparent_is_continued_with_a_new_parent() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let out = traceparent(&map(&[("traceparent", incoming)]));
        let out = out.to_str().unwrap();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with("-01"));
        assert_ne!(&out[36..52], "00f067aa0ba902b7");
        assert_eq!(out.len(), 55);
    }

    #[test]
    fn bad_traceparents_start_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let out = traceparent(&map(&[("traceparent", bad)]));
            let out = out.to_str().unwrap();
            assert!(
                !out.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
                "{bad} was continued"
            );
            assert_eq!(out.len(), 55);
        }
        // A future version with extra fields is continued.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert!(
            traceparent(&map(&[("traceparent", future)]))
                .to_str()
                .unwrap()
                .contains("4bf92f35")
        );
    }

    #[test]
    fn forwarded_headers_append_and_replace() {
        let mut h = map(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed"),
        ]);
        add_forwarded(
            &mut h,
            "127.0.0.1:5000".parse().unwrap(),
            "http",
            Some("api.example.com:8080"),
        );
        let fwd: Vec<_> = h.get_all("forwarded").iter().collect();
        assert_eq!(
            fwd,
            vec![
                "for=192.0.2.1",
                "for=127.0.0.1;proto=http;host=\"api.example.com:8080\""
            ]
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com:8080");

        let mut h = HeaderMap::new();
        add_forwarded(&mut h, "[::1]:5000".parse().unwrap(), "http", None);
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-for"], "::1");
        assert!(!h.contains_key("x-forwarded-host"));
    }
}
