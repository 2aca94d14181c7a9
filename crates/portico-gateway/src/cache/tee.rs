//! Copies an upstream body on its way to the client, to store it when it
//! ends. The copy stops (and nothing is stored) once the body passes
//! `max_entry_size`, on trailers, and on an error; the client's stream is
//! never held back.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, response};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, UpstreamBody};

use super::freshness::Freshness;
use super::{Plan, finish, too_large};

/// An upstream body being copied for the cache.
pub(crate) struct Tee {
    inner: Option<UpstreamBody>,
    capture: Option<Box<Capture>>,
}

struct Capture {
    plan: Plan,
    status: StatusCode,
    headers: HeaderMap,
    fresh: Freshness,
    buf: BytesMut,
}

impl Tee {
    pub(super) fn capture(plan: Plan, head: &response::Parts, fresh: Freshness) -> Self {
        Self {
            inner: None,
            capture: Some(Box::new(Capture {
                plan,
                status: head.status,
                headers: head.headers.clone(),
                fresh,
                buf: BytesMut::new(),
            })),
        }
    }

    /// The body to copy.
    pub(crate) fn with_body(mut self, body: UpstreamBody) -> Self {
        if let (Some(c), Some(n)) = (self.capture.as_mut(), body.size_hint().exact()) {
            c.buf.reserve(usize::try_from(n).unwrap_or(0));
        }
        let empty = body.is_end_stream();
        self.inner = Some(body);
        if empty {
            // No body (204, or an empty one): the server may never poll it.
            self.complete();
        }
        self
    }

    /// A body already read whole (checked by `validate`): copied at once.
    pub(crate) fn store_bytes(mut self, body: &Bytes) {
        if let Some(c) = self.capture.as_mut() {
            if body.len() as u64 > c.plan.settings.max_entry_size {
                too_large(&c.plan);
                self.capture = None;
            } else {
                c.buf.extend_from_slice(body);
            }
        }
        self.complete();
    }

    fn on_frame(&mut self, frame: &Option<Result<Frame<Bytes>, BoxError>>) {
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        match frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    if (c.buf.len() + data.len()) as u64 > c.plan.settings.max_entry_size {
                        too_large(&c.plan);
                        self.capture = None;
                    } else {
                        c.buf.extend_from_slice(data);
                    }
                } else {
                    // Trailers are not stored: neither is the response.
                    self.capture = None;
                }
            }
            Some(Err(_)) => self.capture = None,
            None => self.complete(),
        }
        // A body of known length is over with its last byte: hyper stops
        // polling there, so the copy must not wait for the end frame.
        if self.inner.as_ref().is_some_and(Body::is_end_stream) {
            self.complete();
        }
    }

    fn complete(&mut self) {
        if let Some(c) = self.capture.take() {
            let Capture {
                plan,
                status,
                headers,
                fresh,
                buf,
            } = *c;
            finish(plan, status, headers, buf.freeze(), fresh);
        }
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        this.on_frame(&frame);
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        // Reported false until the copy saw the end (an empty body is
        // polled once, so that it is stored).
        self.inner.as_ref().is_none_or(Body::is_end_stream) && self.capture.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
