//! Portico's own HTTP/1.1 server side, for the exchanges APIs are made of:
//! a request head in one buffer, a body of known length that fits in
//! memory, an answer written from one buffer.
//!
//! hyper's server connection costs about 10,000 instructions per request
//! under callgrind, most of it in its dispatcher, the channel that carries
//! the request body to the handler, and the buffer queue of its writer
//! (docs/benchmarks.md, eleventh session). Here the connection's task
//! parses a head with `httparse` (hyper's parser), reads the body whole into
//! the same buffer, calls the gateway, and writes the answer's head and its
//! first bytes in one `write`.
//!
//! Anything else is hyper's: the connection is handed to hyper's server,
//! bytes already read first ([`Rewind`]), and stays with it until it
//! closes. That is every request that is not HTTP/1.1 (HTTP/1.0, the h2c
//! preface), that `httparse` refuses (hyper answers 400, or 431 for too
//! many fields), whose head is over [`MAX_HEAD`], whose method is `HEAD`,
//! `CONNECT`, `TRACE` or not a standard one, whose target is not a path,
//! that asks to upgrade, expects `100-continue`, carries `Transfer-Encoding`
//! or `TE`, or declares a body over [`MAX_BODY`] or several lengths. So the
//! edge cases of the protocol keep hyper's behaviour, and none of it is
//! written twice.
//!
//! What the answer gets, as hyper's server writes it:
//!
//! - `Content-Length` as the handler set it, or from the body's exact size;
//!   otherwise `Transfer-Encoding: chunked`. 1xx, 204 and 304 answers carry
//!   no body (and 1xx and 204 no length). Trailers are not written: only a
//!   client that sent `TE: trailers` may get them, and those go to hyper.
//! - `Date` when the handler set none, formatted once a second per thread.
//! - `Connection: close` when this answer ends the connection: the client
//!   asked to close, or the server is draining.
//!
//! A body that ends short of its `Content-Length`, or breaks off, ends the
//! connection, which tells the client the answer is incomplete.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, StatusCode, Uri, Version};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::body::{ClientBody, GatewayBody};
use crate::h1::{FieldNames, Out, content_length, encode_frame, has_token};
use crate::headers::X_REQUEST_ID;
use crate::proxy::{AddedFields, Answer};
use crate::text::push_u64;

/// The largest request head served here; a larger one goes to hyper, which
/// reads up to its own limit and answers 431 past it.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read whole before the handler runs; a larger
/// one streams through hyper.
pub(crate) const MAX_BODY: u64 = 64 * 1024;
/// Header fields a request may have here (hyper's default limit).
const MAX_HEADERS: usize = 100;
/// What a read asks for at least.
const READ_CHUNK: usize = 8 * 1024;
/// Answer bytes gathered before they are written.
const WRITE_BATCH: usize = 64 * 1024;

/// How a connection's time with this server ended.
pub(crate) enum Ended<I> {
    /// The connection is done: either side closed it, or it broke.
    Closed,
    /// The next request is hyper's to serve, and so is the rest of the
    /// connection.
    HandOff(Rewind<I>),
}

/// What the server needs of the connection's owner.
pub(crate) trait Exchanges {
    /// The guard of one exchange, dropped once its answer has been written
    /// (or given up).
    type Busy;

    /// A request has arrived whole: its head and its body.
    fn begin(&self) -> Self::Busy;

    /// Serves a request: its head, boxed (see [`request_head`]), and its
    /// body.
    fn handle(
        &self,
        head: Box<Parts>,
        body: ClientBody,
    ) -> impl std::future::Future<Output = Answer> + Send;
}

/// Serves HTTP/1.1 requests on `io` until the connection closes or a
/// request needs hyper. `draining` set means: finish the exchange in
/// progress, then close.
pub(crate) async fn serve<I, E>(mut io: I, exchanges: &E, draining: &AtomicBool) -> Ended<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
    E: Exchanges,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut fields: Vec<Field> = Vec::new();
    // The last answer's field map, cleared, for the next request's fields:
    // one allocation fewer per exchange.
    let mut spare = HeaderMap::new();
    let mut names = FieldNames::default();
    loop {
        if draining.load(Ordering::Relaxed) {
            return Ended::Closed;
        }
        let head = loop {
            if !buf.is_empty() {
                match parse(&buf, &mut fields) {
                    Parsed::Complete(head) => break head,
                    Parsed::Partial if buf.len() < MAX_HEAD => {}
                    Parsed::Partial | Parsed::Hyper => return hand_off(io, buf),
                }
            }
            match read_more(&mut io, &mut buf).await {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            }
        };
        let head_bytes = buf.split_to(head.len).freeze();
        let Some(parts) = request_head(
            &head_bytes,
            &head,
            &fields,
            &mut names,
            std::mem::take(&mut spare),
        ) else {
            // A field `http` refuses where `httparse` did not: hyper decides.
            let mut all = BytesMut::with_capacity(head_bytes.len() + buf.len());
            all.extend_from_slice(&head_bytes);
            all.extend_from_slice(&buf);
            return hand_off(io, all);
        };
        let body = if head.body > 0 {
            // Whole before the handler runs: it is at most `MAX_BODY`.
            let want = head.body as usize;
            while buf.len() < want {
                match read_more(&mut io, &mut buf).await {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => {}
                }
            }
            ClientBody::full(buf.split_to(want).freeze())
        } else {
            ClientBody::empty()
        };
        // The exchange begins with its body at hand: until then the client
        // is still sending its request, and the connection's header
        // timeout covers the body as it covers the head (hyper's server
        // would have the upstream's timeout run meanwhile instead).
        let busy = exchanges.begin();
        // Pinned where it is made: the handler's future is large, and every
        // move of it is a copy.
        let handling = exchanges.handle(parts, body);
        let mut handling = std::pin::pin!(handling);
        let Some(response) = watching(&mut io, &mut buf, handling.as_mut()).await else {
            // The client went away: the exchange is given up.
            return Ended::Closed;
        };
        let close = head.close || draining.load(Ordering::Relaxed);
        // The head is encoded here and only the body moves on: an answer is
        // large, and every move of it is a copy. The answer's field map,
        // cleared, takes the next request's fields.
        let (parts, body) = response.response.into_parts();
        out.clear();
        let framing = encode_head(
            &mut out,
            parts.status,
            &parts.headers,
            &response.added,
            &body,
            close,
        );
        spare = parts.headers;
        spare.clear();
        let written = write_body(&mut io, &mut buf, &mut out, body, framing).await;
        drop(busy);
        if written.is_err() || close {
            let _ = io.shutdown().await;
            return Ended::Closed;
        }
    }
}

/// Hands the connection to hyper with the bytes read so far.
fn hand_off<I>(io: I, buf: BytesMut) -> Ended<I> {
    Ended::HandOff(Rewind {
        prefix: buf.freeze(),
        io,
    })
}

/// Reads what the socket has into `buf`; `Ok(0)` at its end.
async fn read_more<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    io.read_buf(buf).await
}

/// Waits for `work`, watching the client meanwhile as hyper's server does:
/// bytes that arrive (the next request of a pipelining client) are kept in
/// `buf`, and the end of the client's stream, or an error, gives `None`.
/// With bytes already buffered there is nothing to watch for.
async fn watching<I, F>(io: &mut I, buf: &mut BytesMut, work: F) -> Option<F::Output>
where
    I: AsyncRead + Unpin,
    F: std::future::Future,
{
    let mut work = std::pin::pin!(work);
    let mut watch = buf.is_empty();
    loop {
        tokio::select! {
            biased;
            out = work.as_mut() => return Some(out),
            read = read_more(io, buf), if watch => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => watch = false,
            },
        }
    }
}

/// A request head as parsed: where its parts are in the buffer.
struct Head {
    /// The head's length, blank line included.
    len: usize,
    method: Method,
    target: (usize, usize),
    /// The body's length (0 without `Content-Length`).
    body: u64,
    /// The client asked to close the connection after this exchange.
    close: bool,
}

/// A header field's name and value, as offsets into the head.
#[derive(Clone, Copy)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

enum Parsed {
    Complete(Head),
    Partial,
    /// Not one for this server.
    Hyper,
}

/// The offsets of `part`, a slice of `whole`.
fn span(whole: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    (start, start + part.len())
}

/// Parses the request head at the start of `buf`, its fields' places
/// left in `fields`, and decides whether this server serves it.
fn parse(buf: &[u8], fields: &mut Vec<Field>) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hyper,
    };
    if req.version != Some(1) {
        return Parsed::Hyper;
    }
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("DELETE") => Method::DELETE,
        Some("PATCH") => Method::PATCH,
        Some("OPTIONS") => Method::OPTIONS,
        _ => return Parsed::Hyper,
    };
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Parsed::Hyper;
    };
    let mut body: Option<u64> = None;
    let mut close = false;
    fields.clear();
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match (body, content_length(f.value)) {
                (None, Some(n)) if n <= MAX_BODY => body = Some(n),
                _ => return Parsed::Hyper,
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= has_token(f.value, b"close");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"te")
        {
            return Parsed::Hyper;
        }
        fields.push(Field {
            name: span(buf, name),
            value: span(buf, f.value),
        });
    }
    Parsed::Complete(Head {
        len,
        method,
        target: span(buf, path.as_bytes()),
        body: body.unwrap_or(0),
        close,
    })
}

/// The request head of a parsed head, its fields sharing the head's
/// bytes; `None` when `http` refuses the target or a field. Boxed here, it
/// goes to the gateway and on to the upstream client as a pointer: a
/// request head is about 200 bytes, and it would otherwise be copied at
/// every call and `await` it passes.
fn request_head(
    bytes: &Bytes,
    head: &Head,
    fields: &[Field],
    names: &mut FieldNames,
    mut headers: HeaderMap,
) -> Option<Box<Parts>> {
    let uri = Uri::from_maybe_shared(bytes.slice(head.target.0..head.target.1)).ok()?;
    headers.reserve(fields.len());
    for (at, f) in fields.iter().enumerate() {
        let name = names.name(at, &bytes[f.name.0..f.name.1]).ok()?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(f.value.0..f.value.1)).ok()?;
        headers.append(name, value);
    }
    let mut parts = Box::new(Request::new(()).into_parts().0);
    parts.method = head.method.clone();
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Some(parts)
}

/// Writes an answer's body after its head, gathered in `out`, on `io`. An
/// error means the connection cannot go on.
async fn write_body<I: AsyncRead + AsyncWrite + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    out: &mut Vec<u8>,
    mut body: GatewayBody,
    framing: Out,
) -> io::Result<()> {
    if framing == Out::None {
        // No body may follow: whatever the handler gave is dropped.
        drop(body);
        return flush(io, out).await;
    }
    let mut left = match framing {
        Out::Length(n) => n,
        _ => 0,
    };
    let mut ended = false;
    while !ended {
        // Whatever is ready goes with what is gathered; a body that has to
        // wait gets what is gathered written first, so a stream is never
        // held back.
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                flush(io, out).await?;
                let next = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
                watching(io, buf, next)
                    .await
                    .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionAborted))?
            }
        };
        let mut framed = encode_frame(out, frame, framing, &mut left, &mut ended);
        if framed.is_ok() && !ended && body.is_end_stream() {
            // Its end is known without another poll.
            framed = encode_frame(out, None, framing, &mut left, &mut ended);
        }
        if let Err(e) = framed {
            if ended {
                // Short of its length: what there is goes out first.
                flush(io, out).await?;
            }
            return Err(io::Error::other(e));
        }
        if out.len() >= WRITE_BATCH {
            flush(io, out).await?;
        }
    }
    flush(io, out).await?;
    // The exchange is recorded when the body is dropped: after its last
    // byte was written.
    drop(body);
    Ok(())
}

async fn flush<I: AsyncWrite + Unpin>(io: &mut I, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        io.flush().await?;
        out.clear();
    }
    Ok(())
}

/// Writes the status line and fields, the `added` ones in place of any of
/// the same name; the body's framing, `Out::None` for an answer with no
/// body to write.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    added: &AddedFields,
    body: &GatewayBody,
    close: bool,
) -> Out {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut length: Option<u64> = None;
    let mut date = false;
    let mut says_close = false;
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH {
            // One length: the first that parses (an upstream's several
            // equal values were checked when they were read).
            if length.is_some() || bodiless {
                continue;
            }
            let Some(n) = content_length(value.as_bytes()) else {
                continue;
            };
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // The framing is this server's to choose.
            continue;
        } else if name == header::CONNECTION {
            says_close |= has_token(value.as_bytes(), b"close");
        } else if name == header::DATE {
            date = true;
        } else if added.replaces(name) {
            continue;
        }
        push_field(out, name, value);
    }
    // An upstream's fields passed on as they came: its framing, hop-by-hop
    // fields and request id were left out when they were read.
    if let Some(raw) = body.raw_fields() {
        raw.write_to(out, added.rate_limit.is_some());
        date |= raw.has_date();
        if length.is_none() && !bodiless {
            length = raw.length();
            if let Some(n) = length {
                out.extend_from_slice(b"content-length: ");
                push_u64(out, n);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    push_field(out, &X_REQUEST_ID, &added.request_id);
    if let Some(fields) = &added.rate_limit {
        // Text the gateway wrote itself, names checked (`limits::fields`).
        out.extend_from_slice(b"ratelimit-policy: ");
        out.extend_from_slice(fields.policy());
        out.extend_from_slice(b"\r\nratelimit: ");
        out.extend_from_slice(fields.state());
        out.extend_from_slice(b"\r\n");
    }
    let framing = if bodiless {
        Out::None
    } else if let Some(n) = length {
        Out::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        out.extend_from_slice(b"content-length: ");
        push_u64(out, n);
        out.extend_from_slice(b"\r\n");
        Out::Length(n)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Out::Chunked
    };
    if close && !says_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !date {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if framing == Out::Length(0) {
        Out::None
    } else {
        framing
    }
}

#[inline]
fn push_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends the current time as an HTTP date (RFC 9110 §5.6.7), formatted
/// once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, text)| {
        if *cached != secs {
            *text = httpdate::fmt_http_date(now);
            *cached = secs;
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// A connection handed to hyper: the bytes already read, then the socket.
pub(crate) struct Rewind<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Rewind<I> {
    /// A connection with nothing read yet.
    pub(crate) fn new(io: I) -> Self {
        Self {
            prefix: Bytes::new(),
            io,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "h1_server_tests.rs"]
mod tests;
