//! The response body type of the gateway, and the end-of-exchange record.
//!
//! The exchange is finished (metrics recorded, access log line queued) when
//! the response body ends or is dropped, so durations and byte counts cover
//! the whole response, streamed or not.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use portico_model::App;
use portico_model::json::plain_run;
use portico_model::limits::Permit;

use crate::access_log::AccessLogSink;
use crate::cache::Tee;
use crate::h1;
use crate::h1::RawFields;
use crate::metrics::ApiMetrics;
use crate::text::push_u64;
use crate::time::{wall_time, write_rfc3339_millis};
use crate::upstream::InFlight;
use crate::validate::CheckedBody;

/// A response body: fixed bytes made by the gateway, or an upstream stream.
pub struct GatewayBody {
    kind: Kind,
    exchange: Option<Box<Exchange>>,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream(UpstreamBody),
    /// An upstream body copied for the response cache.
    Cached(Box<Tee>),
    /// A body copied for `validate` to check when it ends.
    Checked(Box<CheckedBody>),
}

impl GatewayBody {
    pub fn full(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            exchange: None,
        }
    }

    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub(crate) fn upstream(body: UpstreamBody) -> Self {
        Self {
            kind: Kind::Upstream(body),
            exchange: None,
        }
    }

    /// An upstream body that the response cache copies as it streams.
    pub(crate) fn cached(tee: Tee) -> Self {
        Self {
            kind: Kind::Cached(Box::new(tee)),
            exchange: None,
        }
    }

    /// A body that `validate` checks when it ends (`response: true`).
    pub(crate) fn checked(body: CheckedBody) -> Self {
        Self {
            kind: Kind::Checked(Box::new(body)),
            exchange: None,
        }
    }

    /// Attaches the record to finish when this body ends. It comes boxed
    /// from where it was made, and is finished in its box: a record is
    /// several hundred bytes, and each move of it a copy.
    pub(crate) fn with_exchange(mut self, exchange: Box<Exchange>) -> Self {
        self.exchange = Some(exchange);
        self
    }

    /// The upstream answer's fields, where they were kept as they came
    /// (`h1::RawFields`): the response's map then holds only what the
    /// gateway added, and these are written after it.
    pub(crate) fn raw_fields(&self) -> Option<&RawFields> {
        match &self.kind {
            Kind::Upstream(UpstreamBody::H1(body)) => body.raw_fields(),
            _ => None,
        }
    }

    /// Takes the fields [`Self::raw_fields`] gives, to put them in the map.
    pub(crate) fn take_raw_fields(&mut self) -> Option<Box<RawFields>> {
        match &mut self.kind {
            Kind::Upstream(UpstreamBody::H1(body)) => body.take_raw_fields(),
            _ => None,
        }
    }

    fn finish(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish();
        }
    }
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayBody")
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match &mut this.kind {
            Kind::Full(bytes) => bytes.take().map(|b| Ok(Frame::data(b))),
            Kind::Upstream(body) => ready!(Pin::new(body).poll_frame(cx)),
            Kind::Cached(tee) => ready!(Pin::new(&mut **tee).poll_frame(cx)),
            Kind::Checked(body) => ready!(Pin::new(&mut **body).poll_frame(cx)),
        };
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(ex)) = (f.data_ref(), this.exchange.as_mut()) {
                    ex.bytes += data.len() as u64;
                }
            }
            Some(Err(_)) => {
                if let Some(ex) = this.exchange.as_mut() {
                    ex.aborted = true;
                }
                this.finish();
            }
            None => this.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Cached(tee) => tee.is_end_stream(),
            Kind::Checked(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.size_hint(),
            Kind::Cached(tee) => tee.size_hint(),
            Kind::Checked(body) => body.size_hint(),
        }
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        let ended = match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Cached(tee) => tee.is_end_stream(),
            Kind::Checked(body) => body.is_end_stream(),
        };
        if let (false, Some(ex)) = (ended, self.exchange.as_mut()) {
            // Dropped before its end: the client went away or the stream broke.
            ex.aborted = true;
        }
        self.finish();
    }
}

/// What is known about one exchange, finished when the response ends.
pub(crate) struct Exchange {
    pub start: Instant,
    pub request_id: HeaderValue,
    pub api: Option<Arc<str>>,
    /// The spec operation matched (its `operationId`, or `METHOD template`).
    pub operation: Option<Arc<str>>,
    /// The authenticated app, if any.
    pub app: Option<Arc<App>>,
    /// Counts this exchange against its target until the exchange ends.
    pub in_flight: Option<InFlight>,
    /// Concurrency slots of the API's limits, given back when the exchange
    /// ends (body finished, failed or dropped) by dropping the permit.
    pub permit: Option<Permit>,
    /// `RateLimit-Policy` and `RateLimit` for the response, when the
    /// request was under a limit.
    pub rate_limit: Option<crate::limits::RateLimitFields>,
    pub metrics: Arc<ApiMetrics>,
    pub log: Option<LogContext>,
    pub status: u16,
    pub upstream: Option<Duration>,
    pub bytes: u64,
    pub aborted: bool,
}

/// Request details kept only when the access log is on.
pub(crate) struct LogContext {
    pub sink: AccessLogSink,
    pub method: Method,
    pub path: String,
    pub target: Option<Arc<str>>,
    /// The client's IP address, as written once per connection (digits,
    /// hex letters, dots and colons: written into the line unescaped).
    pub client: HeaderValue,
}

impl Exchange {
    fn finish(self: Box<Self>) {
        let total = self.start.elapsed();
        self.metrics.record(self.status, total, self.upstream);
        if let Some(log) = &self.log {
            log.sink.write_line(|out| self.line(log, total, out));
        }
    }

    /// The access log line: a JSON object with the keys in a fixed order,
    /// appended straight to the log's buffer (the line is made for every
    /// request, so it skips a serializer's generic machinery).
    fn line(&self, log: &LogContext, total: Duration, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        write_rfc3339_millis(out, wall_time(self.start));
        out.extend_from_slice(b"\",\"request_id\":");
        json_str(out, header_text(&self.request_id));
        out.extend_from_slice(b",\"api\":");
        json_name(out, self.api.as_deref());
        out.extend_from_slice(b",\"operation\":");
        json_opt(out, self.operation.as_deref());
        out.extend_from_slice(b",\"app\":");
        json_name(out, self.app.as_deref().map(|a| a.name.as_str()));
        // A method is a token (RFC 9110 §9.1) and an IP address is digits,
        // letters, dots and colons: neither holds anything JSON escapes.
        out.extend_from_slice(b",\"method\":\"");
        out.extend_from_slice(log.method.as_str().as_bytes());
        out.push(b'"');
        out.extend_from_slice(b",\"path\":");
        json_str(out, &log.path);
        out.extend_from_slice(b",\"status\":");
        push_u64(out, u64::from(self.status));
        out.extend_from_slice(b",\"bytes\":");
        push_u64(out, self.bytes);
        out.extend_from_slice(b",\"duration_ms\":");
        push_millis(out, total);
        out.extend_from_slice(b",\"upstream_ms\":");
        match self.upstream {
            Some(d) => push_millis(out, d),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"upstream\":");
        json_opt(out, log.target.as_deref());
        out.extend_from_slice(b",\"client\":\"");
        out.extend_from_slice(log.client.as_bytes());
        out.push(b'"');
        if self.aborted {
            out.extend_from_slice(b",\"aborted\":true");
        }
        out.push(b'}');
    }
}

/// `s` as a JSON string. Only `"`, `\\` and control characters need an
/// escape (what serde_json escapes too); runs of other bytes are copied
/// as they are, found eight bytes at a time.
fn json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = plain_run(bytes, 0);
    // Nearly every string is one run: one reservation for all of it.
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(&bytes[..plain]);
    while let Some(&b) = bytes.get(plain) {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        let at = plain_run(bytes, plain + 1);
        out.extend_from_slice(&bytes[plain + 1..at]);
        plain = at;
    }
    out.push(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A header value as logged: its text where it is UTF-8 (`json_str`
/// escapes what needs it), empty otherwise. Cheaper than `to_str`, which
/// tests every byte on its own.
fn header_text(value: &HeaderValue) -> &str {
    std::str::from_utf8(value.as_bytes()).unwrap_or_default()
}

/// An entity name (an API's, an app's) as a JSON string. Names are
/// `[a-z0-9-]` by the configuration's rule (`Name`), so nothing in one
/// needs an escape and the scan for it is skipped.
fn json_name(out: &mut Vec<u8>, name: Option<&str>) {
    match name {
        Some(name) => {
            debug_assert_eq!(plain_run(name.as_bytes(), 0), name.len(), "{name}");
            out.reserve(name.len() + 2);
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn json_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// `d` in milliseconds, rounded to the microsecond, as the shortest
/// decimal that reads back the same (`12.5`, `0.042`, `3.0`).
fn push_millis(out: &mut Vec<u8>, d: Duration) {
    // In `u64` throughout: `as_nanos` is a `u128`, whose division is a
    // library call.
    let micros = d
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from((d.subsec_nanos() + 500) / 1000));
    push_u64(out, micros / 1000);
    out.push(b'.');
    let frac = micros % 1000;
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let digits = [frac / 100, frac / 10 % 10, frac % 10];
    // Trailing zeros go: `.5`, not `.500`.
    let width = if digits[2] != 0 {
        3
    } else if digits[1] != 0 {
        2
    } else {
        1
    };
    for d in &digits[..width] {
        out.push(b'0' + *d as u8);
    }
}

/// A request body on its way upstream: passed through, or counted against
/// the limit the policies set (`request_size`), failing the upstream
/// request once the limit is passed.
pub(crate) enum RequestBody {
    Plain(ClientBody),
    Limited {
        inner: ClientBody,
        remaining: u64,
        tripped: Arc<AtomicBool>,
    },
    /// No body: health checks, and retries of requests that had none.
    Empty,
    /// A body read whole (for `validate`), sent as one frame.
    Full(Option<Bytes>),
    /// A body that can be handed to another try as long as this one has
    /// not started sending it.
    Shared(SharedBody),
}

/// A client's request body: hyper's stream, or the bytes Portico's own
/// HTTP/1.1 server read whole before the handler ran (`h1_server.rs`).
#[derive(Debug)]
pub struct ClientBody(ClientKind);

#[derive(Debug)]
enum ClientKind {
    Hyper(Incoming),
    Full(Option<Bytes>),
}

impl ClientBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        Self(ClientKind::Full((!bytes.is_empty()).then_some(bytes)))
    }

    pub(crate) fn empty() -> Self {
        Self(ClientKind::Full(None))
    }
}

impl From<Incoming> for ClientBody {
    fn from(body: Incoming) -> Self {
        Self(ClientKind::Hyper(body))
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().0 {
            ClientKind::Hyper(body) => Pin::new(body).poll_frame(cx),
            ClientKind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            ClientKind::Hyper(body) => body.is_end_stream(),
            ClientKind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            ClientKind::Hyper(body) => body.size_hint(),
            ClientKind::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// A request body held for a retry: the try that first polls it takes it
/// out of the slot; a try that failed before that leaves it there for the
/// next one.
pub(crate) struct SharedBody {
    slot: Arc<BodySlot>,
    taken: Option<Box<RequestBody>>,
}

// One lock per retryable request, touched by that request's task and the
// connection task sending its body: no other request ever waits on it.
#[allow(clippy::disallowed_types)]
type BodySlot = std::sync::Mutex<Option<RequestBody>>;

/// Where a retryable request's body waits between tries.
#[derive(Clone)]
pub(crate) struct BodyHolder(Arc<BodySlot>);

impl BodyHolder {
    // The lock is this request's own: no other request ever waits on it.
    #[allow(clippy::disallowed_types)]
    pub(crate) fn new(body: RequestBody) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(body))))
    }

    /// A body for the next try.
    pub(crate) fn body(&self) -> RequestBody {
        RequestBody::Shared(SharedBody {
            slot: self.0.clone(),
            taken: None,
        })
    }

    /// True while no try has started sending the body, so another may.
    pub(crate) fn unsent(&self) -> bool {
        self.0.lock().is_ok_and(|b| b.is_some())
    }
}

impl SharedBody {
    fn body(&mut self) -> Option<&mut RequestBody> {
        if self.taken.is_none() {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            self.taken = slot.take().map(Box::new);
        }
        self.taken.as_deref_mut()
    }
}

/// The error a limited body ends with when it grows past its limit.
#[derive(Debug)]
pub(crate) struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than allowed")
    }
}

impl std::error::Error for TooLarge {}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream's answer body: from Portico's own HTTP/1.1 exchange
/// (`h1.rs`), or from hyper's client (TLS and HTTP/2 targets, upgrades).
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    H1(h1::ResponseBody),
    Hyper(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::H1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::H1(body) => body.is_end_stream(),
            UpstreamBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::H1(body) => body.size_hint(),
            UpstreamBody::Hyper(body) => body.size_hint(),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Shared(shared) => match shared.body() {
                Some(body) => Pin::new(body).poll_frame(cx),
                None => Poll::Ready(None),
            },
            RequestBody::Plain(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
            RequestBody::Limited {
                inner,
                remaining,
                tripped,
            } => {
                let frame = ready!(Pin::new(inner).poll_frame(cx));
                if let Some(Ok(f)) = &frame
                    && let Some(data) = f.data_ref()
                {
                    let n = data.len() as u64;
                    if n > *remaining {
                        tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    *remaining -= n;
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Plain(inner) | RequestBody::Limited { inner, .. } => inner.is_end_stream(),
            RequestBody::Empty => true,
            RequestBody::Full(bytes) => bytes.is_none(),
            RequestBody::Shared(shared) => match &shared.taken {
                Some(body) => body.is_end_stream(),
                None => shared
                    .slot
                    .lock()
                    .map_or(true, |b| b.as_ref().is_none_or(Body::is_end_stream)),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Plain(inner) | RequestBody::Limited { inner, .. } => inner.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Shared(shared) => match &shared.taken {
                Some(body) => body.size_hint(),
                None => shared.slot.lock().map_or_else(
                    |_| SizeHint::default(),
                    |b| b.as_ref().map_or(SizeHint::with_exact(0), Body::size_hint),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_addresses_never_need_a_json_escape() {
        // The access log writes both without `json_str`.
        let needs_escape = |b: u8| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f;
        for b in 0..=255u8 {
            if Method::from_bytes(&[b, b'X']).is_ok() {
                assert!(!needs_escape(b), "method byte {b:#04x}");
            }
        }
        for ip in [
            "192.0.2.1",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.1",
        ] {
            let hop =
                crate::headers::Hop::new(std::net::SocketAddr::new(ip.parse().unwrap(), 1), "http");
            assert!(!hop.client_ip().as_bytes().iter().any(|&b| needs_escape(b)));
        }
    }

    fn as_json(s: &str) -> String {
        let mut out = Vec::new();
        json_str(&mut out, s);
        String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
    }

    #[test]
    fn strings_read_back_as_written() {
        for s in [
            "",
            "/pets/1",
            "quote \" and backslash \\",
            "line\nfeed\r\ttab \u{1} \u{1f}",
            "caf\u{e9} \u{1F600}",
            "/a/long/path/with?query=\"quoted\"&and=back\\slashes\u{7f}, caf\u{e9}\n",
            "\"\"\\\n",
            "ends with a quote\"",
            "\u{2}starts with a control character",
        ] {
            let written = as_json(s);
            let back: String = serde_json::from_str(&written).expect(&written);
            assert_eq!(back, s);
        }
        assert_eq!(as_json("a\u{1}b"), "\"a\\u0001b\"");
    }

    #[test]
    fn millis_are_the_shortest_decimal() {
        let cases = [
            (Duration::ZERO, "0.0"),
            (Duration::from_millis(3), "3.0"),
            (Duration::from_micros(12_500), "12.5"),
            (Duration::from_micros(42), "0.042"),
            (Duration::from_nanos(1_234_567), "1.235"),
            (Duration::from_nanos(499), "0.0"),
            (Duration::from_secs(90), "90000.0"),
            (Duration::from_micros(105), "0.105"),
            (Duration::from_micros(1_050), "1.05"),
            (Duration::from_micros(1_100), "1.1"),
            (Duration::from_nanos(2_999_500), "3.0"),
        ];
        for (d, want) in cases {
            let mut out = Vec::new();
            push_millis(&mut out, d);
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, want, "{d:?}");
            let n: f64 = out.parse().unwrap();
            assert_eq!(n, (d.as_secs_f64() * 1_000_000.0).round() / 1000.0);
        }
    }
}
