//! Portico's own HTTP/1.1 exchange with plain `http://` targets: the
//! request written and the answer read in the request's task, on a
//! connection of `pool.rs`.
//!
//! hyper's client keeps a task per connection and a dispatcher between it
//! and the request: under callgrind that machinery cost more per request
//! than the proxy's own work (docs/benchmarks.md, sixth session). Here a
//! request is encoded into the connection's buffer and written with its
//! body in one `write` where the body is at hand; the answer's head is
//! parsed by `httparse` (hyper's own parser) from the connection's read
//! buffer, and the body is read from the socket as the client takes it.
//!
//! What it holds to, as hyper's client does:
//!
//! - Framing by RFC 9112 §6: a `HEAD` request's answer and 1xx, 204 and
//!   304 answers have no body; `Transfer-Encoding` with `chunked` last is
//!   decoded, any other transfer coding reads to the end of the
//!   connection; otherwise `Content-Length` (several values must agree), or
//!   to the end of the connection. An answer with both `Transfer-Encoding`
//!   and `Content-Length` is read by the former and its connection is not
//!   reused, as RFC 9112 §6.3 asks of a message that may be smuggling.
//! - Interim answers (100, 102, 103) are read and dropped. A `101` is never
//!   expected here: upgrade requests go through hyper's client (`pool.rs`).
//! - The request body is framed by what is known of it: its exact length
//!   as `Content-Length`, otherwise chunked. While it is sent, the answer is
//!   watched for: an upstream that answers early (a 413 before reading a
//!   large upload) is answered with, the rest of the body is not sent, and
//!   the connection is closed afterwards.
//! - `Connection` fields that say only `close` or `keep-alive`, and
//!   `Keep-Alive`, are consumed here: they concern this connection, and the
//!   proxy drops them anyway. A `Connection` naming other fields is kept,
//!   so that the proxy drops those too.
//! - A connection goes back to its pool only once its answer has been read
//!   to the end, the answer was HTTP/1.1 without `Connection: close`, the
//!   request did not ask to close, and nothing follows the answer.
//!
//! Limits: a head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields
//! (hyper's default field count), chunk-size lines and trailer sections of
//! at most [`MAX_LINE`] and [`MAX_TRAILERS`] bytes.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::headers::Forwarding;
use crate::pool::Home;

/// The read buffer of a connection; a head may grow it to [`MAX_HEAD`].
const READ_BUF: usize = 16 * 1024;
/// The largest answer head read.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields an answer may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with its extensions).
const MAX_LINE: usize = 4 * 1024;
/// The largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;
/// Request body bytes gathered into one write before it is made.
const WRITE_BATCH: usize = 64 * 1024;
/// Room in an answer's header map for the fields the gateway adds
/// (`x-request-id`, `RateLimit-Policy`, `RateLimit`), so that adding them
/// does not grow the map (a reallocation and a rehash, ~700 instructions).
const ANSWER_SLACK: usize = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum H1Error {
    /// Reading or writing the connection failed.
    Io(io::Error),
    /// The connection closed before the answer was complete.
    Closed,
    /// The answer is not valid HTTP/1.1 (what is wrong with it).
    Invalid(&'static str),
    /// The request body failed while it was sent.
    Body(BoxError),
}

impl fmt::Display for H1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "connection error: {e}"),
            Self::Closed => f.write_str("connection closed before the message completed"),
            Self::Invalid(what) => write!(f, "invalid HTTP/1.1 answer: {what}"),
            Self::Body(e) => write!(f, "request body failed: {e}"),
        }
    }
}

impl std::error::Error for H1Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Body(e) => Some(&**e),
            Self::Closed | Self::Invalid(_) => None,
        }
    }
}

impl From<io::Error> for H1Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// One connection to a target, with its buffers.
pub(crate) struct Conn {
    io: TcpStream,
    /// Read bytes not yet taken are `buf[start..end]`. Zeroed once, so
    /// reads go into initialised memory.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The request being written, `out[written..]` still to go.
    out: Vec<u8>,
    written: usize,
    /// The field names of the answers on this connection.
    names: FieldNames,
    /// The exchange in progress passes its answer's fields on as they
    /// came, where it can ([`RawFields`]).
    raw: bool,
}

impl Conn {
    /// Boxed: it moves between the pool, an exchange and an answer's body
    /// on every request, and a box moves in one word.
    pub(crate) fn new(io: TcpStream) -> Box<Self> {
        Box::new(Self {
            io,
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            out: Vec::with_capacity(1024),
            written: 0,
            names: FieldNames::default(),
            raw: false,
        })
    }

    /// The socket, for a connection that hyper's client will drive.
    pub(crate) fn into_stream(self) -> TcpStream {
        self.io
    }

    /// Whether an idle connection can take a request: nothing has arrived
    /// on it since its last answer (an end of stream, or bytes nobody asked
    /// for, mean it must go). Asks the runtime's readiness first, so the
    /// usual answer costs no system call.
    pub(crate) fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut byte = [0u8; 1];
                matches!(self.io.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_HEAD {
                // Only a head grows the buffer: a body is taken as it comes.
                self.buf.resize((self.buf.len() * 2).min(MAX_HEAD), 0);
            }
        }
        if self.end == self.buf.len() {
            // Callers take what is buffered, or stop at the head limit,
            // before they read more: an empty read here would pass for the
            // end of the stream.
            return Poll::Ready(Err(io::Error::other("read buffer full")));
        }
        let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }

    /// Writes what is left of `out`.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// A complete answer head in the buffer, interim answers skipped.
    fn parse_head(&mut self) -> Result<Option<Head>, H1Error> {
        loop {
            let bytes = &self.buf[self.start..self.end];
            let Some(head) = parse_head_with(bytes, &mut self.names, self.raw)? else {
                if self.end - self.start >= MAX_HEAD {
                    return Err(H1Error::Invalid("head too large"));
                }
                return Ok(None);
            };
            self.start += head.len;
            if head.status.is_informational() {
                if head.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(H1Error::Invalid("101 to a request that did not upgrade"));
                }
                continue;
            }
            return Ok(Some(head));
        }
    }
}

/// How a message body is framed on the wire: a request's here, an
/// answer's in `h1_server.rs`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Out {
    None,
    Length(u64),
    Chunked,
}

/// The fields a request's head gets on top of its own.
#[derive(Clone, Copy)]
pub(crate) struct Added<'a> {
    /// The target's name, in place of any `Host` the request has.
    pub host: &'a HeaderValue,
    /// A proxied request's forwarding fields, in place of the client's
    /// values of those this hop replaces.
    pub forwarding: Option<&'a Forwarding<'a>>,
}

/// Sends `req` with the `added` fields on `conn` and reads the answer's
/// head. The connection goes back to `home` when the answer's body has
/// been read to its end. With `raw`, the answer's fields come as
/// [`RawFields`] with its body (the map stays empty) unless one of them
/// needs the map.
pub(crate) async fn exchange(
    mut conn: Box<Conn>,
    mut parts: Box<Parts>,
    mut body: RequestBody,
    added: Added<'_>,
    home: Home,
    raw: bool,
) -> Result<Response<ResponseBody>, H1Error> {
    conn.raw = raw;
    let is_head = parts.method == Method::HEAD;
    let framing = if body.is_end_stream() {
        Out::None
    } else {
        match body.size_hint().exact() {
            Some(n) => Out::Length(n),
            None => Out::Chunked,
        }
    };
    let mut keep = !encode_head(&mut conn.out, &parts, added, framing);
    // The request's field map, emptied, is the answer's when its fields
    // stay raw: Portico's server side takes an answer's map for the next
    // request's fields, and so keeps reusing one allocation.
    let mut spare = raw.then(|| std::mem::take(&mut parts.headers));
    drop(parts);

    let early = send(&mut conn, &mut body, framing).await?;
    drop(body);
    let head = match early {
        // The answer came before the whole body went: the upstream is
        // done with this connection's request stream.
        Some(head) => {
            keep = false;
            head
        }
        None => poll_fn(|cx| poll_head(&mut conn, cx)).await?,
    };
    let Head {
        status,
        version,
        fields,
        framing: answer,
        keep_alive,
        ..
    } = head;
    let (headers, raw) = match fields {
        Fields::Map(headers) => (headers, None),
        Fields::Raw(raw) => {
            let mut headers = spare.take().unwrap_or_default();
            headers.clear();
            (headers, Some(raw))
        }
    };
    let kind = if is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED
    {
        In::Length(0)
    } else {
        answer
    };
    let mut body = ResponseBody {
        conn: Some(conn),
        home: Some(home),
        kind,
        keep: keep && keep_alive && !matches!(kind, In::Close),
        raw,
    };
    if kind == In::Length(0) {
        body.kind = In::Done;
        body.release();
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// Writes the encoded head and the body. The answer's head when it
/// arrived before the body was all sent (sending then stopped).
async fn send(
    conn: &mut Conn,
    body: &mut RequestBody,
    framing: Out,
) -> Result<Option<Head>, H1Error> {
    let mut left = match framing {
        Out::Length(n) => n,
        _ => 0,
    };
    let mut ended = framing == Out::None;
    poll_fn(|cx| {
        loop {
            // Gather what the body has at hand into the same write.
            let mut waiting = false;
            while !ended && conn.out.len() < WRITE_BATCH {
                let frame = match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                    Poll::Ready(frame) => frame,
                };
                if let Err(e) = encode_frame(&mut conn.out, frame, framing, &mut left, &mut ended) {
                    return Poll::Ready(Err(e));
                }
            }
            match conn.poll_flush_out(cx) {
                Poll::Ready(Ok(())) if ended => return Poll::Ready(Ok(None)),
                // The batch was full: gather the next one.
                Poll::Ready(Ok(())) if !waiting => continue,
                Poll::Ready(Ok(())) | Poll::Pending => {}
                Poll::Ready(Err(e)) => {
                    // An upstream that answered and closed: its answer is
                    // worth more than the write error.
                    return match poll_head(conn, cx) {
                        Poll::Ready(Ok(head)) => Poll::Ready(Ok(Some(head))),
                        _ => Poll::Ready(Err(H1Error::Io(e))),
                    };
                }
            }
            // Waiting on the body or the socket: watch for an early answer.
            let head = ready!(poll_head(conn, cx))?;
            return Poll::Ready(Ok(Some(head)));
        }
    })
    .await
}

/// Adds one polled body frame (or its end) to `out`.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    frame: Option<Result<Frame<Bytes>, BoxError>>,
    framing: Out,
    left: &mut u64,
    ended: &mut bool,
) -> Result<(), H1Error> {
    let data = match frame {
        None => {
            *ended = true;
            return match framing {
                Out::Length(_) if *left > 0 => {
                    Err(H1Error::Body("the body ended before its length".into()))
                }
                Out::Chunked => {
                    out.extend_from_slice(b"0\r\n\r\n");
                    Ok(())
                }
                _ => Ok(()),
            };
        }
        Some(Err(e)) => return Err(H1Error::Body(e)),
        // Trailers are not written: a request's are not forwarded, and an
        // answer's go only to a client that asked for them with `TE`, which
        // hyper serves.
        Some(Ok(frame)) => match frame.into_data() {
            Ok(data) if !data.is_empty() => data,
            _ => return Ok(()),
        },
    };
    if framing == Out::Chunked {
        push_chunk_size(out, data.len());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        return Ok(());
    }
    let n = data.len() as u64;
    if n > *left {
        return Err(H1Error::Body("the body is longer than its length".into()));
    }
    *left -= n;
    out.extend_from_slice(&data);
    Ok(())
}

/// Reads until the answer's final head is complete (interim answers are
/// dropped) and takes it out of the buffer; `Pending` until then, with the
/// socket's readiness registered. Used while the request is still going
/// out, too, to notice an early answer.
fn poll_head(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<Result<Head, H1Error>> {
    loop {
        if let Some(head) = conn.parse_head()? {
            return Poll::Ready(Ok(head));
        }
        match ready!(conn.poll_fill(cx)) {
            Err(e) => return Poll::Ready(Err(H1Error::Io(e))),
            Ok(0) => return Poll::Ready(Err(H1Error::Closed)),
            Ok(_) => {}
        }
    }
}

/// Whether the comma-separated list `value` holds `token` (ASCII case
/// ignored).
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The request line, the target's `Host`, the request's fields, the
/// forwarding fields, and the framing fields of `framing` in place of any
/// the request had. True when the request's `Connection` field has
/// `close` (found on the way through the fields).
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    added: Added<'_>,
    framing: Out,
) -> bool {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(added.host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut had_length = false;
    let mut close = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            had_length = true;
            continue;
        }
        if name == header::CONNECTION {
            close |= has_token(value.as_bytes(), b"close");
        }
        if name == header::TRANSFER_ENCODING
            || name == header::HOST
            || (added.forwarding.is_some() && Forwarding::replaces(name))
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(f) = added.forwarding {
        f.write_to(out);
    }
    match framing {
        Out::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            crate::text::push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Out::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        // An empty body is announced where the request announced one, and
        // for the methods whose requests are expected to carry one.
        Out::None
            if had_length
                || matches!(parts.method, Method::POST | Method::PUT)
                || parts.method == Method::PATCH =>
        {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        Out::None => {}
    }
    out.extend_from_slice(b"\r\n");
    close
}

/// A chunk's size line: the size in lower-case hex, then CRLF.
pub(crate) fn push_chunk_size(out: &mut Vec<u8>, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// A parsed answer head.
struct Head {
    /// Its length in the buffer.
    len: usize,
    status: StatusCode,
    version: Version,
    fields: Fields,
    framing: In,
    /// The answer lets the connection be reused (HTTP/1.1, no `close`, no
    /// framing that may be smuggling).
    keep_alive: bool,
}

/// The field names of a connection's last message, as sent and as parsed.
/// A peer sends the same names in the same order message after message, so
/// the name at a position is mostly the one there last time: comparing its
/// bytes is cheaper than `HeaderName::from_bytes`, which looks the name up
/// among the standard ones and allocates any other.
#[derive(Debug, Default)]
pub(crate) struct FieldNames {
    last: Vec<(Box<[u8]>, HeaderName, Class)>,
}

/// What a field of an answer is to the proxy that passes it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Plain,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    Date,
    /// `X-Request-Id`: the gateway's own replaces it.
    RequestId,
    /// `RateLimit-Policy` and `RateLimit`: the gateway's replace them
    /// when the request was under a limit.
    RateLimit,
    /// Another hop-by-hop field (`TE`, `Trailer`, `Upgrade`,
    /// `Proxy-*`): the proxy's removal of those needs the field map.
    HopByHop,
}

impl Class {
    fn of(name: &HeaderName) -> Self {
        if name == header::CONTENT_LENGTH {
            Self::ContentLength
        } else if name == header::TRANSFER_ENCODING {
            Self::TransferEncoding
        } else if name == header::CONNECTION {
            Self::Connection
        } else if name == KEEP_ALIVE {
            Self::KeepAlive
        } else if name == header::DATE {
            Self::Date
        } else if name == crate::headers::X_REQUEST_ID {
            Self::RequestId
        } else if name == crate::proxy::RATELIMIT_POLICY || name == crate::proxy::RATELIMIT {
            Self::RateLimit
        } else if crate::headers::is_hop_by_hop(name) {
            Self::HopByHop
        } else {
            Self::Plain
        }
    }
}

impl FieldNames {
    /// Names remembered per connection; fields past these are parsed each
    /// time.
    const KEPT: usize = 32;

    /// The name of the field at position `at` of a message, sent as `raw`.
    pub(crate) fn name(
        &mut self,
        at: usize,
        raw: &[u8],
    ) -> Result<HeaderName, http::header::InvalidHeaderName> {
        self.named(at, raw).map(|(name, _)| name)
    }

    /// [`Self::name`] with its [`Class`].
    fn named(
        &mut self,
        at: usize,
        raw: &[u8],
    ) -> Result<(HeaderName, Class), http::header::InvalidHeaderName> {
        if let Some((sent, name, class)) = self.last.get(at)
            && **sent == *raw
        {
            return Ok((name.clone(), *class));
        }
        let name = HeaderName::from_bytes(raw)?;
        let class = self.remember(at, raw, &name);
        Ok((name, class))
    }

    /// The [`Class`] of the field at position `at`, sent as `raw`: its
    /// name is checked, but not copied where it was seen there before.
    fn class(&mut self, at: usize, raw: &[u8]) -> Result<Class, http::header::InvalidHeaderName> {
        if let Some((sent, _, class)) = self.last.get(at)
            && **sent == *raw
        {
            return Ok(*class);
        }
        let name = HeaderName::from_bytes(raw)?;
        Ok(self.remember(at, raw, &name))
    }

    /// Keeps `name` as the one at `at`; its class.
    fn remember(&mut self, at: usize, raw: &[u8], name: &HeaderName) -> Class {
        let class = Class::of(name);
        if at < Self::KEPT {
            let entry = (Box::from(raw), name.clone(), class);
            // Positions fill in order: a message's fields are named first
            // to last.
            if at < self.last.len() {
                self.last[at] = entry;
            } else if at == self.last.len() {
                self.last.push(entry);
            }
        }
        class
    }
}

/// An answer's fields as the upstream sent them, passed on by the proxy
/// without a field map (see [`exchange`]). The hop-by-hop fields, the
/// framing (`Content-Length`, `Transfer-Encoding`) and `X-Request-Id` are
/// left out; the rest are written on as they came, the names' case
/// included.
#[derive(Debug)]
pub(crate) struct RawFields {
    /// The answer's head; each line a range of it.
    head: Bytes,
    lines: SmallVec<[RawLine; 12]>,
    /// The answer's `Content-Length`.
    length: Option<u64>,
}

/// One field line of [`RawFields`]: the name from `start` to `name_end`,
/// the value from `value` to `end`.
#[derive(Clone, Copy, Debug)]
struct RawLine {
    start: u32,
    name_end: u32,
    value: u32,
    end: u32,
    class: Class,
}

impl RawFields {
    /// The `Content-Length` the upstream sent.
    pub(crate) fn length(&self) -> Option<u64> {
        self.length
    }

    /// Whether there is a `Date` field.
    pub(crate) fn has_date(&self) -> bool {
        self.lines.iter().any(|l| l.class == Class::Date)
    }

    /// Writes each line (`name: value` and a line break) but the
    /// RateLimit fields when `rate_limited` (the gateway's replace them).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>, rate_limited: bool) {
        for line in &self.lines {
            if rate_limited && line.class == Class::RateLimit {
                continue;
            }
            out.extend_from_slice(&self.head[line.start as usize..line.name_end as usize]);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&self.head[line.value as usize..line.end as usize]);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The fields put into `headers`, as the field map of the answer
    /// would have held them (for a client that hyper serves).
    pub(crate) fn fill(&self, headers: &mut HeaderMap) {
        for line in &self.lines {
            let name =
                HeaderName::from_bytes(&self.head[line.start as usize..line.name_end as usize]);
            let value = HeaderValue::from_maybe_shared(
                self.head.slice(line.value as usize..line.end as usize),
            );
            // Both were checked when the answer was read.
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        if let Some(n) = self.length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
}

/// An answer's fields: a map, or passed on as they came.
enum Fields {
    Map(HeaderMap),
    Raw(Box<RawFields>),
}

#[cfg(test)]
impl Head {
    /// The field map of a head read without `raw`.
    fn headers(&self) -> &HeaderMap {
        match &self.fields {
            Fields::Map(map) => map,
            Fields::Raw(_) => panic!("the fields were kept raw"),
        }
    }

    fn into_headers(self) -> HeaderMap {
        match self.fields {
            Fields::Map(map) => map,
            Fields::Raw(_) => panic!("the fields were kept raw"),
        }
    }
}

/// Parses a complete answer head at the start of `bytes`; `None` when more
/// is needed.
#[cfg(test)]
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, H1Error> {
    parse_head_with(bytes, &mut FieldNames::default(), false)
}

/// [`parse_head`], the names looked up in `names` first; the fields kept
/// as [`RawFields`] when `raw` and nothing among them needs the map.
fn parse_head_with(
    bytes: &[u8],
    names: &mut FieldNames,
    raw: bool,
) -> Result<Option<Head>, H1Error> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let status = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut parsed, bytes, &mut fields)
        .map_err(|e| {
            H1Error::Invalid(match e {
                httparse::Error::TooManyHeaders => "too many header fields",
                httparse::Error::Version => "not HTTP/1.x",
                httparse::Error::Status => "invalid status",
                _ => "malformed head",
            })
        })?;
    let httparse::Status::Complete(len) = status else {
        return Ok(None);
    };
    let code = parsed.code.ok_or(H1Error::Invalid("invalid status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| H1Error::Invalid("invalid status"))?;
    let version = if parsed.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    // One copy of the head; the field values are slices of it.
    let head = Bytes::copy_from_slice(&bytes[..len]);
    let base = bytes.as_ptr() as usize;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut coded = false;
    let mut close = version != Version::HTTP_11;
    // The framing, and the lines to pass on while they can be, or the
    // map.
    let mut lines: Option<SmallVec<[RawLine; 12]>> = raw.then(SmallVec::new);
    let mut map = (!raw).then(|| HeaderMap::with_capacity(parsed.headers.len() + ANSWER_SLACK));
    for (at, field) in parsed.headers.iter().enumerate() {
        let class = match map.as_mut() {
            None => names
                .class(at, field.name.as_bytes())
                .map_err(|_| H1Error::Invalid("invalid field name"))?,
            Some(map) => {
                let (name, class) = names
                    .named(at, field.name.as_bytes())
                    .map_err(|_| H1Error::Invalid("invalid field name"))?;
                map_field(map, name, class, field, &head, base)?;
                class
            }
        };
        // `httparse` admits the value bytes `HeaderValue` does (tab,
        // visible ASCII, obs-text), so a passed-on value is one the map
        // would have taken.
        let mut pass = true;
        match class {
            Class::ContentLength => {
                for item in field.value.split(|&b| b == b',') {
                    let n = parse_length(item.trim_ascii())?;
                    if length.is_some_and(|l| l != n) {
                        return Err(H1Error::Invalid("conflicting Content-Length values"));
                    }
                    length = Some(n);
                }
                pass = false;
            }
            Class::TransferEncoding => {
                coded = true;
                // The last coding decides: `chunked` must be last to be read.
                chunked = field
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                pass = false;
            }
            Class::Connection => {
                if has_token(field.value, b"close") {
                    close = true;
                } else if version == Version::HTTP_10 && has_token(field.value, b"keep-alive") {
                    close = false;
                }
                // One that names other fields: the proxy drops those
                // from the map.
                if !only_connection_options(field.value) {
                    lines = None;
                }
                pass = false;
            }
            Class::KeepAlive | Class::RequestId => pass = false,
            Class::HopByHop => lines = None,
            Class::Plain | Class::Date | Class::RateLimit => {}
        }
        if let (Some(lines), true) = (lines.as_mut(), pass) {
            let start = field.name.as_ptr() as usize - base;
            let value = field.value.as_ptr() as usize - base;
            lines.push(RawLine {
                start: start as u32,
                name_end: (start + field.name.len()) as u32,
                value: value as u32,
                end: (value + field.value.len()) as u32,
                class,
            });
        }
    }
    let fields = match (lines, map) {
        (Some(lines), _) => Fields::Raw(Box::new(RawFields {
            head,
            lines,
            length: if coded { None } else { length },
        })),
        (None, Some(map)) => Fields::Map(map),
        // Read to be passed on, but a field needs the map.
        (None, None) => Fields::Map(field_map(&parsed, &head, base, names)?),
    };
    let framing = match (coded, chunked, length) {
        (true, true, _) => In::Chunked(Chunk::Size),
        (true, false, _) => In::Close,
        (false, _, Some(n)) => In::Length(n),
        (false, _, None) => In::Close,
    };
    // Both framings in one answer: read by `Transfer-Encoding`, never reuse.
    let keep_alive = !(close || (coded && length.is_some()));
    Ok(Some(Head {
        len,
        status,
        version,
        fields,
        framing,
        keep_alive,
    }))
}

/// The field map of a parsed answer head whose copy is `head` (`base` the
/// address of the parsed bytes), for an answer read to be passed on raw
/// that turned out to need the map.
fn field_map(
    parsed: &httparse::Response<'_, '_>,
    head: &Bytes,
    base: usize,
    names: &mut FieldNames,
) -> Result<HeaderMap, H1Error> {
    let mut headers = HeaderMap::with_capacity(parsed.headers.len() + ANSWER_SLACK);
    for (at, field) in parsed.headers.iter().enumerate() {
        let (name, class) = names
            .named(at, field.name.as_bytes())
            .map_err(|_| H1Error::Invalid("invalid field name"))?;
        map_field(&mut headers, name, class, field, head, base)?;
    }
    Ok(headers)
}

/// Puts one field of an answer head into its map, its value a slice of
/// `head`. `Connection` is left out when it only says `close` or
/// `keep-alive`, as is `Keep-Alive`: both are about this connection
/// alone, as the proxy would drop them (RFC 9110 section 7.6.1). A
/// `Connection` that names other fields stays, for the proxy to drop those
/// too.
fn map_field(
    headers: &mut HeaderMap,
    name: HeaderName,
    class: Class,
    field: &httparse::Header<'_>,
    head: &Bytes,
    base: usize,
) -> Result<(), H1Error> {
    if (class == Class::Connection && only_connection_options(field.value))
        || class == Class::KeepAlive
    {
        return Ok(());
    }
    let at = field.value.as_ptr() as usize - base;
    let value = HeaderValue::from_maybe_shared(head.slice(at..at + field.value.len()))
        .map_err(|_| H1Error::Invalid("invalid field value"))?;
    headers.append(name, value);
    Ok(())
}

/// `Keep-Alive` (RFC 7230 appendix A.1.2): parameters of this connection.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether a `Connection` value holds only `close` and `keep-alive`.
fn only_connection_options(value: &[u8]) -> bool {
    value.split(|&b| b == b',').all(|t| {
        let t = t.trim_ascii();
        t.is_empty() || t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive")
    })
}

fn parse_length(digits: &[u8]) -> Result<u64, H1Error> {
    content_length(digits).ok_or(H1Error::Invalid("invalid Content-Length"))
}

/// A `Content-Length` value: digits only (RFC 9110 §8.6), at most 19 of
/// them so that it fits.
pub(crate) fn content_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// How the rest of an answer's body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum In {
    /// This many bytes more.
    Length(u64),
    Chunked(Chunk),
    /// To the end of the connection.
    Close,
    /// Read to its end.
    Done,
}

/// Where a chunked body's decoding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// At a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes more.
    Data(u64),
    /// At the line break after a chunk's data.
    DataEnd,
    /// At the trailer section, after the last chunk.
    Trailers,
    /// The trailers were given; nothing follows.
    End,
}

/// An answer's body, read from its connection as it is polled.
pub(crate) struct ResponseBody {
    conn: Option<Box<Conn>>,
    home: Option<Home>,
    kind: In,
    /// The connection may serve another request once the body has ended.
    keep: bool,
    /// The answer's fields, where they are passed on as they came (see
    /// [`exchange`]): they travel with the body, which is what reaches
    /// the server side that writes them.
    raw: Option<Box<RawFields>>,
}

impl ResponseBody {
    /// The answer's fields, when they were kept as they came.
    pub(crate) fn raw_fields(&self) -> Option<&RawFields> {
        self.raw.as_deref()
    }

    /// Takes the answer's fields kept as they came, to put them in a map.
    pub(crate) fn take_raw_fields(&mut self) -> Option<Box<RawFields>> {
        self.raw.take()
    }

    /// The body has ended: the connection goes home, or is closed.
    fn release(&mut self) {
        let (Some(conn), Some(home)) = (self.conn.take(), self.home.take()) else {
            return;
        };
        // Bytes past the answer: the upstream sent something unasked for.
        if self.keep && conn.start == conn.end {
            home.put_back(conn);
        }
    }

    fn frame_from(conn: &mut Conn, n: usize) -> Frame<Bytes> {
        let data = Bytes::copy_from_slice(&conn.buf[conn.start..conn.start + n]);
        conn.start += n;
        Frame::data(data)
    }

    fn poll_chunked(
        conn: &mut Conn,
        state: &mut Chunk,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Frame<Bytes>>, H1Error>> {
        loop {
            let buffered = conn.buffered();
            match *state {
                Chunk::End => return Poll::Ready(Ok(None)),
                Chunk::Size => {
                    if let Some(eol) = find_crlf(buffered) {
                        let size = parse_chunk_size(&buffered[..eol])?;
                        conn.start += eol + 2;
                        *state = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                        continue;
                    }
                    if buffered.len() > MAX_LINE {
                        return Poll::Ready(Err(H1Error::Invalid("chunk-size line too long")));
                    }
                }
                Chunk::Data(left) => {
                    if !buffered.is_empty() {
                        let n = (left.min(buffered.len() as u64)) as usize;
                        *state = if n as u64 == left {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left - n as u64)
                        };
                        return Poll::Ready(Ok(Some(Self::frame_from(conn, n))));
                    }
                }
                Chunk::DataEnd => {
                    if buffered.len() >= 2 {
                        if &buffered[..2] != b"\r\n" {
                            return Poll::Ready(Err(H1Error::Invalid("chunk not ended by CRLF")));
                        }
                        conn.start += 2;
                        *state = Chunk::Size;
                        continue;
                    }
                }
                Chunk::Trailers => {
                    if buffered.starts_with(b"\r\n") {
                        conn.start += 2;
                        return Poll::Ready(Ok(None));
                    }
                    if buffered.len() >= 2 {
                        let mut fields = [httparse::EMPTY_HEADER; 32];
                        match httparse::parse_headers(buffered, &mut fields) {
                            Ok(httparse::Status::Complete((len, fields))) => {
                                let mut trailers = HeaderMap::with_capacity(fields.len());
                                for f in fields.iter() {
                                    let (Ok(name), Ok(value)) = (
                                        HeaderName::from_bytes(f.name.as_bytes()),
                                        HeaderValue::from_bytes(f.value),
                                    ) else {
                                        return Poll::Ready(Err(H1Error::Invalid(
                                            "invalid trailer field",
                                        )));
                                    };
                                    trailers.append(name, value);
                                }
                                conn.start += len;
                                *state = Chunk::End;
                                return Poll::Ready(Ok(Some(Frame::trailers(trailers))));
                            }
                            Ok(httparse::Status::Partial) => {
                                if buffered.len() > MAX_TRAILERS {
                                    return Poll::Ready(Err(H1Error::Invalid(
                                        "trailer section too large",
                                    )));
                                }
                            }
                            Err(_) => {
                                return Poll::Ready(Err(H1Error::Invalid(
                                    "invalid trailer section",
                                )));
                            }
                        }
                    }
                }
            }
            if ready!(conn.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(H1Error::Closed));
            }
        }
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line: hexadecimal digits, then optional extensions (`;`
/// after optional whitespace), which are ignored.
fn parse_chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(H1Error::Invalid("invalid chunk size"));
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if !(rest.is_empty() || ext.starts_with(b";")) || rest.iter().any(|&b| b == b'\n' || b == b'\r')
    {
        return Err(H1Error::Invalid("invalid chunk size"));
    }
    Ok(line[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        (n << 4) | u64::from(v)
    }))
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = H1Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, H1Error>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let result = match &mut this.kind {
            In::Done => Ok(None),
            In::Length(0) => Ok(None),
            In::Length(left) => loop {
                let buffered = conn.end - conn.start;
                if buffered > 0 {
                    let n = (*left).min(buffered as u64) as usize;
                    *left -= n as u64;
                    break Ok(Some(Self::frame_from(conn, n)));
                }
                match ready!(conn.poll_fill(cx)) {
                    Ok(0) => break Err(H1Error::Closed),
                    Ok(_) => {}
                    Err(e) => break Err(H1Error::Io(e)),
                }
            },
            In::Chunked(state) => ready!(Self::poll_chunked(conn, state, cx)),
            In::Close => loop {
                let buffered = conn.end - conn.start;
                if buffered > 0 {
                    break Ok(Some(Self::frame_from(conn, buffered)));
                }
                match ready!(conn.poll_fill(cx)) {
                    Ok(0) => break Ok(None),
                    Ok(_) => {}
                    Err(e) => break Err(H1Error::Io(e)),
                }
            },
        };
        match result {
            Ok(Some(frame)) => {
                if this.kind == In::Length(0) {
                    this.kind = In::Done;
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Ok(None) => {
                this.kind = In::Done;
                this.release();
                Poll::Ready(None)
            }
            Err(e) => {
                this.kind = In::Done;
                this.keep = false;
                this.conn = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, In::Done | In::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.kind {
            In::Length(n) => SizeHint::with_exact(n),
            In::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("kind", &self.kind)
            .finish()
    }
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
