//! The validation step: the `validate` policy's validator run on the
//! request head, on a buffered JSON body, and on the upstream's answer.
//!
//! Bodies are read here only when the operation has a JSON schema for
//! them, and only up to the policy's `max_body` (413 beyond it). Other
//! bodies stream through untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use portico_model::policy::Rejection;
use portico_model::validate::{BodyCheck, FieldError, SchemaId, Validator};
use portico_model::{ApiOperation, ErrorCode};

use crate::body::{BoxError, ClientBody, GatewayBody, UpstreamBody};
use crate::metrics::{ApiMetrics, ValidateOutcome};

/// The `errors` member of a validation problem document.
pub(crate) fn errors_member(errors: &[FieldError]) -> serde_json::Value {
    errors
        .iter()
        .map(|e| {
            let mut item = serde_json::Map::new();
            item.insert("in".into(), e.place.into());
            if let Some(name) = &e.name {
                item.insert("name".into(), name.as_str().into());
            }
            item.insert("pointer".into(), e.pointer.as_str().into());
            item.insert("keyword".into(), e.keyword.as_str().into());
            item.insert("detail".into(), e.detail.as_str().into());
            serde_json::Value::Object(item)
        })
        .collect()
}

/// Checks a request against its operation. Returns the body to send
/// upstream: the one given, or the bytes read for the check.
pub(crate) async fn request(
    validator: &Arc<dyn Validator>,
    op: &ApiOperation,
    rest: &str,
    parts: &request::Parts,
    body: ClientBody,
    body_limit: Option<u64>,
    metrics: &ApiMetrics,
) -> Result<Checked, Rejection> {
    let has_body = !body.is_end_stream();
    let check = validator
        .check_head(op, rest, parts, has_body)
        .inspect_err(|r| metrics.validate(outcome_of(r)))?;
    let BodyCheck::Json(schema) = check else {
        metrics.validate(ValidateOutcome::Passed);
        return Ok(Checked::Streaming(body));
    };
    // The tighter of the policy's cap and a `request_size` limit.
    let cap = body_limit.map_or(validator.max_body(), |l| l.min(validator.max_body()));
    let bytes = read(parts, body, cap).await.inspect_err(|r| {
        if r.code == ErrorCode::PayloadTooLarge {
            metrics.validate(ValidateOutcome::TooLarge);
        }
    })?;
    validator
        .check_body(schema, &bytes)
        .inspect_err(|r| metrics.validate(outcome_of(r)))?;
    metrics.validate(ValidateOutcome::Passed);
    Ok(Checked::Read(bytes))
}

fn outcome_of(r: &Rejection) -> ValidateOutcome {
    match r.code {
        ErrorCode::UnsupportedMediaType => ValidateOutcome::Unsupported,
        ErrorCode::PayloadTooLarge => ValidateOutcome::TooLarge,
        _ => ValidateOutcome::Refused,
    }
}

/// A request body after the check.
pub(crate) enum Checked {
    /// Not read: it streams to the upstream.
    Streaming(ClientBody),
    /// Read whole for the check.
    Read(Bytes),
}

/// Why [`read_capped`] gave no body.
enum ReadFailed {
    /// Past the cap.
    TooLarge,
    /// The body broke off.
    Broken(BoxError),
}

/// Reads `body` whole, stopping once it passes `cap` bytes; `expected` is
/// the length to reserve. Trailers are not kept: a body read for checking
/// is forwarded without them.
async fn read_capped<B>(mut body: B, cap: u64, expected: usize) -> Result<Bytes, ReadFailed>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    // A small body mostly comes in one frame: that frame is the body, with
    // no copy. A second frame starts a buffer.
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadFailed::Broken(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if (held + data.len()) as u64 > cap {
            return Err(ReadFailed::TooLarge);
        }
        if held == 0 && first.is_none() {
            first = Some(data);
            continue;
        }
        if let Some(first) = first.take() {
            buf.reserve(expected.max(first.len() + data.len()));
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&data);
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Reads a request body whole, refusing it once past `cap` bytes (or at
/// once when `Content-Length` says it will be).
async fn read(parts: &request::Parts, body: ClientBody, cap: u64) -> Result<Bytes, Rejection> {
    let too_large = || {
        Rejection::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than {cap} bytes, the most `validate` reads."),
        )
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    read_capped(body, cap, declared.map_or(0, |n| n as usize))
        .await
        .map_err(|e| match e {
            ReadFailed::TooLarge => too_large(),
            ReadFailed::Broken(e) => Rejection::new(
                ErrorCode::BadRequest,
                format!("The request body could not be read: {e}."),
            ),
        })
}

/// Reads an upstream answer for `response: enforce`: `None` when it is
/// over `cap` or breaks off.
pub(crate) async fn read_response(body: UpstreamBody, cap: u64) -> Option<Bytes> {
    if body.size_hint().lower() > cap {
        return None;
    }
    read_capped(body, cap, 0).await.ok()
}

/// What a response check reports with, when it ends.
pub(crate) struct Report {
    pub validator: Arc<dyn Validator>,
    pub schema: SchemaId,
    pub metrics: Arc<ApiMetrics>,
    pub api: Arc<str>,
    pub operation: Arc<str>,
    pub status: u16,
    pub request_id: http::HeaderValue,
}

impl Report {
    /// Checks `body`, counts the outcome and logs a mismatch; the errors
    /// are returned for `enforce`.
    pub(crate) fn check(&self, body: &[u8]) -> Vec<FieldError> {
        let errors = self.validator.check_response(self.schema, body);
        if errors.is_empty() {
            self.metrics.validate(ValidateOutcome::ResponsePassed);
        } else {
            self.metrics.validate(ValidateOutcome::ResponseMismatch);
            let first = &errors[0];
            tracing::warn!(
                request_id = ?self.request_id,
                api = %self.api,
                operation = %self.operation,
                status = self.status,
                errors = errors.len(),
                pointer = %first.pointer,
                keyword = %first.keyword,
                detail = %first.detail,
                "Upstream response does not match the spec."
            );
        }
        errors
    }

    pub(crate) fn too_large(&self) {
        self.metrics.validate(ValidateOutcome::ResponseTooLarge);
    }
}

/// An upstream body copied as it streams (`response: true`) and checked
/// when it ends; the client's stream is never held back. Past the cap the
/// copy stops and the answer counts as unchecked.
pub(crate) struct CheckedBody {
    inner: GatewayBody,
    buf: Option<BytesMut>,
    cap: u64,
    report: Option<Box<Report>>,
}

impl CheckedBody {
    pub(crate) fn new(inner: GatewayBody, cap: u64, report: Report) -> Self {
        let mut this = Self {
            inner,
            buf: Some(BytesMut::new()),
            cap,
            report: Some(Box::new(report)),
        };
        if this.inner.is_end_stream() {
            this.end();
        }
        this
    }

    fn end(&mut self) {
        if let (Some(report), Some(buf)) = (self.report.take(), self.buf.take()) {
            report.check(&buf);
        }
    }
}

impl Body for CheckedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(buf)) = (f.data_ref(), this.buf.as_mut()) {
                    if (buf.len() + data.len()) as u64 > this.cap {
                        this.buf = None;
                        if let Some(report) = this.report.take() {
                            report.too_large();
                        }
                    } else {
                        buf.extend_from_slice(data);
                    }
                }
                if this.inner.is_end_stream() {
                    this.end();
                }
            }
            // A broken stream is not checked.
            Some(Err(_)) => this.report = None,
            None => this.end(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
