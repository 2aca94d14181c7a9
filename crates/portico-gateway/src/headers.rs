//! Header rules of a proxy: hop-by-hop removal (RFC 9110 §7.6.1), the
//! forwarding headers (RFC 7239 and the `X-Forwarded-*` family), request ids
//! and W3C trace context.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use portico_model::json::ONES;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub(crate) static X_PORTICO_APP: HeaderName = HeaderName::from_static("x-portico-app");
pub(crate) static X_PORTICO_DEVELOPER: HeaderName = HeaderName::from_static("x-portico-developer");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The longest incoming request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// The fixed hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy
/// `Keep-Alive` and `Proxy-Connection`).
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
}

/// Removes the hop-by-hop fields: the fixed list and every field the
/// `Connection` header names. One pass over the names finds the ones
/// present (none on most requests, `Connection` on most responses), so
/// only those are looked up again to be removed.
///
/// True when a `TE` field among them accepted trailers (`te_trailers`),
/// which a request keeps for an HTTP/2 upstream.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) -> bool {
    let found: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    if found.is_empty() {
        return false;
    }
    let trailers = found.contains(&header::TE) && te_trailers(headers);
    if found.contains(&header::CONNECTION) {
        // The values are cheap to copy (shared bytes); with the copies the
        // named fields are removed by their text, case-insensitively,
        // without building a `HeaderName` (an allocation for most names).
        let connection: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        for value in &connection {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',') {
                headers.remove(token.trim());
            }
        }
    }
    for name in found {
        headers.remove(name);
    }
    trailers
}

/// True when the request's `TE` field accepts trailers. `TE` is
/// hop-by-hop, but HTTP/2 allows exactly `te: trailers` (RFC 9113
/// §8.2.2), and gRPC servers expect it: it is sent again to HTTP/2
/// upstreams when the client sent it.
fn te_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    })
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
    let mut id = [0u8; 32];
    id[..16].copy_from_slice(&hex16(fastrand::u64(..)));
    id[16..].copy_from_slice(&hex16(fastrand::u64(..)));
    header_value(&id)
}

/// The sixteen lowercase hex digits of `v`, most significant first.
///
/// All at once rather than a digit at a time (this runs twice or three
/// times per request): each half's nibbles are spread one to a byte, and
/// every byte `n` becomes `'0' + n`, plus the gap from `'9' + 1` to `'a'`
/// where `n` is 10 or more (`n + 6` then reaches bit 4).
fn hex16(v: u64) -> [u8; 16] {
    let digits = |half: u32| {
        let mut x = u64::from(half);
        x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
        x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
        x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
        let letters = ((x + 6 * ONES) >> 4) & ONES;
        (x + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'9' - 1)).to_be_bytes()
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&digits((v >> 32) as u32));
    out[8..].copy_from_slice(&digits(v as u32));
    out
}

/// A header value from bytes this module produced (hex, digits, `-`).
fn header_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("generated header values are visible ASCII")
}

/// The length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;

/// The `traceparent` to send upstream: the incoming trace continued with a
/// new parent id (this hop's span), or a new sampled trace when the
/// incoming one is absent or malformed.
fn traceparent_bytes(headers: &HeaderMap) -> [u8; TRACEPARENT_LEN] {
    let span = nonzero_u64();
    // `00-` trace (32) `-` parent (16) `-` flags (2).
    let mut out = *b"00-................................-................-..";
    let incoming = headers
        .get(&TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()));
    let flags = match incoming {
        Some((trace, flags)) => {
            out[3..35].copy_from_slice(trace.as_bytes());
            flags.as_bytes()
        }
        None => {
            // Not all zeros (W3C Trace Context §3.2.2.3).
            let (high, low) = (fastrand::u64(..), fastrand::u64(..));
            out[3..19].copy_from_slice(&hex16(high));
            out[19..35].copy_from_slice(&hex16(if high | low == 0 { 1 } else { low }));
            b"01"
        }
    };
    out[36..52].copy_from_slice(&hex16(span));
    out[53..55].copy_from_slice(flags);
    out
}

/// A random parent id: any but zero, which W3C Trace Context forbids.
fn nonzero_u64() -> u64 {
    fastrand::u64(..).max(1)
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

/// What this hop says about a client in the forwarding headers, computed
/// once per connection.
#[derive(Clone, Debug)]
pub struct Hop {
    /// `for=…;proto=…`, the start of this hop's `Forwarded` element.
    forwarded: String,
    /// The client address as an `X-Forwarded-For` element.
    ip: HeaderValue,
    proto: &'static str,
    /// The first `Host` seen on the connection and the `Forwarded` value
    /// made for it: a client sends the same host on every request of a
    /// connection, so the value is made once instead of per request.
    for_host: OnceLock<(HeaderValue, HeaderValue)>,
}

impl Hop {
    /// The client's address (the access log writes it too).
    pub(crate) fn client_ip(&self) -> &HeaderValue {
        &self.ip
    }

    pub fn new(client: SocketAddr, proto: &'static str) -> Self {
        let forwarded = match client.ip() {
            IpAddr::V4(v4) => format!("for={v4};proto={proto}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto={proto}"),
        };
        let ip = HeaderValue::try_from(client.ip().to_string())
            .expect("an IP address is a valid header value");
        Self {
            forwarded,
            ip,
            proto,
            for_host: OnceLock::new(),
        }
    }
}

/// The fields this hop adds to a request on its way upstream: `Forwarded`
/// and `X-Forwarded-For` after what earlier proxies wrote;
/// `X-Forwarded-Proto`, `X-Forwarded-Host`, `traceparent` and
/// `x-request-id` in place of what the client sent; and the caller's
/// `x-portico-app` and `x-portico-developer` when the request was
/// authenticated (the client's own were removed on arrival).
///
/// Made once per request and used for every try. Portico's HTTP/1.1
/// client writes the fields straight into the request head (`write_to`),
/// leaving out the client's values of the replaced ones (`replaces`);
/// hyper's clients (HTTP/2, TLS, upgrades) get them in the header map
/// (`apply`). Written directly, they cost the map no insertions and, on
/// most requests, no reallocation: about a tenth of a plain proxied
/// request's instructions (docs/benchmarks.md).
pub(crate) struct Forwarding<'a> {
    hop: &'a Hop,
    host: Option<&'a HeaderValue>,
    /// This hop's `Forwarded` element.
    forwarded: Option<HeaderValue>,
    /// The client sent `X-Forwarded-For`: the map already holds the list
    /// with this hop's client appended.
    merged_for: bool,
    traceparent: [u8; TRACEPARENT_LEN],
    request_id: &'a HeaderValue,
    /// `x-portico-app` and `x-portico-developer` of the authenticated
    /// caller, made once per app.
    identity: Option<&'a [HeaderValue; 2]>,
}

impl<'a> Forwarding<'a> {
    /// The fields for a request that arrived over `hop` naming `host`,
    /// continuing the trace in its `traceparent`. An incoming
    /// `X-Forwarded-For` (rare) gets this hop's client appended in place.
    pub(crate) fn new(
        headers: &mut HeaderMap,
        hop: &'a Hop,
        host: Option<&'a HeaderValue>,
        request_id: &'a HeaderValue,
    ) -> Self {
        let forwarded = match (host, hop.for_host.get()) {
            (Some(host), Some((seen, value))) if host == seen => Some(value.clone()),
            _ => {
                let value = forwarded_value(hop, host);
                if let (Some(host), Some(value)) = (host, &value) {
                    let _ = hop.for_host.set((host.clone(), value.clone()));
                }
                value
            }
        };
        let merged_for = headers.contains_key(&X_FORWARDED_FOR);
        if merged_for {
            let mut xff = Vec::with_capacity(64);
            for earlier in headers.get_all(&X_FORWARDED_FOR) {
                xff.extend_from_slice(earlier.as_bytes());
                xff.extend_from_slice(b", ");
            }
            xff.extend_from_slice(hop.ip.as_bytes());
            if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
                headers.insert(&X_FORWARDED_FOR, v);
            }
        }
        Self {
            hop,
            host,
            forwarded,
            merged_for,
            traceparent: traceparent_bytes(headers),
            request_id,
            identity: None,
        }
    }

    /// Announces the authenticated caller (its app's identity fields).
    pub(crate) fn with_identity(mut self, identity: Option<&'a [HeaderValue; 2]>) -> Self {
        self.identity = identity;
        self
    }

    /// True for the fields whose client values this hop's replace. `Host`
    /// is one: the target is addressed by its own name (the client's is
    /// in `X-Forwarded-Host`), which the upstream client sets.
    #[inline]
    pub(crate) fn replaces(name: &HeaderName) -> bool {
        name == header::HOST
            || matches!(
                name.as_str(),
                "x-forwarded-proto" | "x-forwarded-host" | "traceparent" | "x-request-id"
            )
    }

    /// Puts the fields in `headers`, replacing the client's, and removes
    /// `Host` for the client to set.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        headers.remove(header::HOST);
        if let Some(v) = &self.forwarded {
            headers.append(&FORWARDED, v.clone());
        }
        if !self.merged_for {
            headers.insert(&X_FORWARDED_FOR, self.hop.ip.clone());
        }
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(self.hop.proto));
        match self.host {
            Some(v) => {
                headers.insert(&X_FORWARDED_HOST, v.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
        headers.insert(&TRACEPARENT, header_value(&self.traceparent));
        headers.insert(&X_REQUEST_ID, self.request_id.clone());
        if let Some([app, developer]) = self.identity {
            headers.insert(&X_PORTICO_APP, app.clone());
            headers.insert(&X_PORTICO_DEVELOPER, developer.clone());
        }
    }

    /// Writes the fields as HTTP/1.1 field lines. The head they go into
    /// leaves out the client's fields that `replaces` names.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if let Some(v) = &self.forwarded {
            line(b"forwarded: ", v.as_bytes());
        }
        if !self.merged_for {
            line(b"x-forwarded-for: ", self.hop.ip.as_bytes());
        }
        line(b"x-forwarded-proto: ", self.hop.proto.as_bytes());
        if let Some(v) = self.host {
            line(b"x-forwarded-host: ", v.as_bytes());
        }
        line(b"traceparent: ", &self.traceparent);
        line(b"x-request-id: ", self.request_id.as_bytes());
        if let Some([app, developer]) = self.identity {
            line(b"x-portico-app: ", app.as_bytes());
            line(b"x-portico-developer: ", developer.as_bytes());
        }
    }
}

/// This hop's `Forwarded` element for a request naming `host`.
fn forwarded_value(hop: &Hop, host: Option<&HeaderValue>) -> Option<HeaderValue> {
    let host_str = host.and_then(|h| h.to_str().ok()).filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    });
    let mut forwarded =
        String::with_capacity(hop.forwarded.len() + host_str.map_or(0, |h| h.len() + 8));
    forwarded.push_str(&hop.forwarded);
    if let Some(h) = host_str {
        forwarded.push_str(";host=\"");
        forwarded.push_str(h);
        forwarded.push('"');
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn te_trailers_is_found_among_other_codings() {
        assert!(te_trailers(&map(&[("te", "trailers")])));
        assert!(te_trailers(&map(&[("te", "gzip;q=0.5, Trailers")])));
        assert!(te_trailers(&map(&[("te", "gzip"), ("te", "trailers")])));
        assert!(!te_trailers(&map(&[("te", "gzip")])));
        assert!(!te_trailers(&map(&[("trailer", "grpc-status")])));
    }

    fn traceparent(headers: &HeaderMap) -> String {
        String::from_utf8(traceparent_bytes(headers).to_vec()).unwrap()
    }

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
        assert!(remove_hop_by_hop(&mut h), "te: trailers was there");
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(!remove_hop_by_hop(&mut map(&[("te", "gzip")])));
        assert!(!remove_hop_by_hop(&mut map(&[
            ("connection", "te"),
            ("x", "1")
        ])));
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn hex_digits_are_lowercase_and_most_significant_first() {
        assert_eq!(&hex16(0), b"0000000000000000");
        assert_eq!(&hex16(u64::MAX), b"ffffffffffffffff");
        assert_eq!(&hex16(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&hex16(0xfedc_ba98_7654_3210), b"fedcba9876543210");
        for _ in 0..10_000 {
            let v = fastrand::u64(..);
            assert_eq!(hex16(v), *format!("{v:016x}").as_bytes(), "{v:#x}");
        }
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
            assert!(
                !out.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
                "{bad} was continued"
            );
            assert_eq!(out.len(), 55);
        }
        // A future version with extra fields is continued.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert!(traceparent(&map(&[("traceparent", future)])).contains("4bf92f35"));
    }

    /// The fields `forwarding` gives a request with `headers`, both ways:
    /// put in the map, and written into an HTTP/1.1 head that leaves out
    /// the replaced fields. Both must give the upstream the same fields.
    fn forwarded(headers: &HeaderMap, hop: &Hop, host: Option<&HeaderValue>) -> HeaderMap {
        let id = HeaderValue::from_static("id-1");
        let mut applied = headers.clone();
        let fwd = Forwarding::new(&mut applied, hop, host, &id);
        let mut written = applied.clone();
        fwd.apply(&mut applied);

        let mut out = Vec::new();
        for (name, value) in &written {
            if !Forwarding::replaces(name) {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        fwd.write_to(&mut out);
        written.clear();
        for line in String::from_utf8(out).unwrap().split_terminator("\r\n") {
            let (name, value) = line.split_once(": ").unwrap();
            written.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let sorted = |h: &HeaderMap| {
            let mut v: Vec<_> = h.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&applied), sorted(&written));
        applied
    }

    #[test]
    fn forwarded_headers_append_and_replace() {
        let h = map(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed"),
            ("x-request-id", "spoofed"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("accept", "*/*"),
        ]);
        let host = HeaderValue::from_static("api.example.com:8080");
        let hop = Hop::new("127.0.0.1:5000".parse().unwrap(), "http");
        let h = forwarded(&h, &hop, Some(&host));
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
        assert_eq!(h["x-request-id"], "id-1");
        let tp = h["traceparent"].to_str().unwrap();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert_eq!(h["accept"], "*/*");
        assert_eq!(h.len(), 8, "{h:?}");

        let hop = Hop::new("[::1]:5000".parse().unwrap(), "http");
        let h = forwarded(&map(&[("x-forwarded-host", "spoofed")]), &hop, None);
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-for"], "::1");
        assert!(!h.contains_key("x-forwarded-host"));
    }

    #[test]
    fn forwarded_follows_the_host_of_each_request_on_a_connection() {
        let hop = Hop::new("127.0.0.1:5000".parse().unwrap(), "http");
        let forwarded = |host: &'static str| {
            let h = forwarded(
                &HeaderMap::new(),
                &hop,
                Some(&HeaderValue::from_static(host)),
            );
            h["forwarded"].to_str().unwrap().to_owned()
        };
        let a = "for=127.0.0.1;proto=http;host=\"a.example\"";
        assert_eq!(forwarded("a.example"), a);
        assert_eq!(forwarded("a.example"), a, "the kept value");
        assert_eq!(
            forwarded("b.example"),
            "for=127.0.0.1;proto=http;host=\"b.example\""
        );
        assert_eq!(forwarded("a.example"), a);
    }
}
