//! `validate`: requests (and optionally responses) checked against the
//! API's spec. Parameters (path, query, header, cookie, decoded by their
//! `style` and `explode`), the body's media type, and JSON bodies against
//! their JSON Schema; every error is listed in one 400.
//!
//! The registry builds the policy from its settings alone ([`build`]); the
//! compiler then hands it the API's spec ([`bind`]), which compiles every
//! schema and parameter decoder of every operation, once per snapshot. The
//! gateway asks the compiled [`SpecValidator`] at the validation step: it
//! owns the body, and buffers it only when the operation has a JSON schema
//! for it.

mod formats;
mod params;
mod quick;
mod schema;
mod tape;

use std::borrow::Cow;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, request};
use portico_model::policy::{Phase, Policy, Rejection};
use portico_model::units::parse_size;
use portico_model::validate::{BodyCheck, FieldError, ResponseMode, SchemaId, Validator};
use portico_model::{ApiOperation, ErrorCode};
use portico_spec::{MediaType, ParameterIn, Spec};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use params::{Decoder, Raw, Segment};
use schema::{Compiled, Direction, DocumentBuilder};
use tape::Doc;

/// The default cap on a buffered body.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Check requests (default `true`).
    request: Option<bool>,
    /// `false` (default), `true` (log and count) or `enforce` (502).
    response: Option<ResponseSetting>,
    /// The largest body buffered for a check, such as `1MiB`.
    max_body: Option<String>,
    /// Check `format` (`email`, `uri`, `date-time`, …); default `true`.
    formats: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResponseSetting {
    Flag(bool),
    Word(String),
}

/// The settings, read; waiting for the API's spec.
#[derive(Debug)]
pub struct Unbound {
    request: bool,
    response: ResponseMode,
    max_body: u64,
    formats: bool,
}

pub(crate) fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<dyn Policy>, D::Error> {
    let Settings {
        request,
        response,
        max_body,
        formats,
    } = Settings::deserialize(d)?;
    let response = match response {
        None | Some(ResponseSetting::Flag(false)) => ResponseMode::Off,
        Some(ResponseSetting::Flag(true)) => ResponseMode::Report,
        Some(ResponseSetting::Word(w)) if w == "enforce" => ResponseMode::Enforce,
        Some(ResponseSetting::Word(w)) => {
            return Err(D::Error::custom(format!(
                "`response` is `false`, `true` (log and count mismatches) or `enforce` (answer 502), not `{w}`"
            )));
        }
    };
    let max_body = match max_body {
        None => DEFAULT_MAX_BODY,
        Some(text) => parse_size(&text).map_err(D::Error::custom)?,
    };
    if max_body == 0 {
        return Err(D::Error::custom("`max_body` must be more than 0 bytes"));
    }
    let request = request.unwrap_or(true);
    if !request && response == ResponseMode::Off {
        return Err(D::Error::custom(
            "`validate` with `request: false` and `response: false` checks nothing; remove it",
        ));
    }
    Ok(Arc::new(Unbound {
        request,
        response,
        max_body,
        formats: formats.unwrap_or(true),
    }))
}

/// The policy's place in the chain before [`bind`]: it must never run.
impl Policy for Unbound {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "validate"
    }

    fn phase(&self) -> Phase {
        Phase::Validation
    }
}

/// Whether `policy` is a `validate` policy still waiting for its spec.
pub fn is_unbound(policy: &Arc<dyn Policy>) -> bool {
    let any: &dyn std::any::Any = &**policy;
    any.is::<Unbound>()
}

/// Compiles the validator of `spec` for the `validate` policy `policy`.
/// `operations` is the API's operation table, built from the same spec in
/// the same order. Errors name the spec's JSON pointers.
pub fn bind(policy: &Arc<dyn Policy>, spec: &Spec) -> Result<Arc<dyn Policy>, Vec<String>> {
    let any: &dyn std::any::Any = &**policy;
    let Some(unbound) = any.downcast_ref::<Unbound>() else {
        return Err(vec!["not a `validate` policy".to_owned()]);
    };
    let validator = SpecValidator::compile(unbound, spec)?;
    Ok(Arc::new(Validate {
        validator: Arc::new(validator),
    }))
}

/// The bound policy: a carrier for its validator, which the gateway runs.
#[derive(Debug)]
struct Validate {
    validator: Arc<dyn Validator>,
}

impl Policy for Validate {
    fn handles_responses(&self) -> bool {
        false
    }

    fn name(&self) -> &'static str {
        "validate"
    }

    fn phase(&self) -> Phase {
        Phase::Validation
    }

    fn validator(&self) -> Option<&Arc<dyn Validator>> {
        Some(&self.validator)
    }
}

/// A request body media type the operation declares.
#[derive(Debug)]
struct BodyType {
    /// Lower-case essence as written (`application/json`,
    /// `application/*+json`, `*/*`).
    pattern: String,
    /// The compiled schema when the type is JSON and has one.
    schema: Option<u32>,
}

/// What is checked for one operation.
#[derive(Debug, Default)]
struct OpPlan {
    segments: Vec<Segment>,
    /// Decoders with their schema entry (in the request document).
    params: Vec<(Decoder, Option<u32>)>,
    body_required: bool,
    /// `None`: the operation declares no request body.
    body_types: Option<Vec<BodyType>>,
    /// Response status → JSON media types with their schema (in the
    /// response document).
    responses: Vec<(StatusKey, Vec<(String, u32)>)>,
}

/// A `responses` key: a code, a class (`2XX`) or `default`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusKey {
    Code(u16),
    Class(u16),
    Default,
}

impl StatusKey {
    fn parse(key: &str) -> Option<Self> {
        let upper = key.to_ascii_uppercase();
        if upper == "DEFAULT" {
            return Some(Self::Default);
        }
        if let Some(class) = upper.strip_suffix("XX") {
            return class.parse().ok().map(Self::Class);
        }
        key.parse().ok().map(Self::Code)
    }
}

/// The compiled validator of one API's spec.
#[derive(Debug)]
pub struct SpecValidator {
    request: bool,
    response: ResponseMode,
    max_body: u64,
    /// Indexed like the API's operation table.
    ops: Vec<OpPlan>,
    requests: Option<Compiled>,
    responses: Option<Compiled>,
}

/// Headers the spec may not describe as parameters (OpenAPI: `Accept`,
/// `Content-Type` and `Authorization` are ignored).
const RESERVED_HEADERS: [&str; 3] = ["accept", "content-type", "authorization"];

impl SpecValidator {
    fn compile(settings: &Unbound, spec: &Spec) -> Result<Self, Vec<String>> {
        let mut req_doc = DocumentBuilder::new(spec.version, Direction::Request, &spec.schemas);
        let mut resp_doc = DocumentBuilder::new(spec.version, Direction::Response, &spec.schemas);
        let formats = settings.formats;
        let mut ops = Vec::with_capacity(spec.operations.len());
        for op in &spec.operations {
            let mut plan = OpPlan {
                segments: params::template(&op.path),
                ..OpPlan::default()
            };
            if settings.request {
                for p in &op.parameters {
                    if p.location == ParameterIn::Header
                        && RESERVED_HEADERS.contains(&p.name.to_ascii_lowercase().as_str())
                    {
                        continue;
                    }
                    let origin = || {
                        format!(
                            "#{}: the {} parameter `{}`",
                            op.pointer,
                            p.location.as_str(),
                            p.name
                        )
                    };
                    let entry = p
                        .schema
                        .as_ref()
                        .map(|s| req_doc.add(&s.0, origin()) as u32);
                    plan.params.push((Decoder::new(p, &spec.schemas), entry));
                }
                if let Some(body) = &op.request_body {
                    plan.body_required = body.required;
                    let types = body
                        .content
                        .iter()
                        .map(|m| BodyType {
                            pattern: essence(&m.content_type).into_owned(),
                            schema: json_schema(m).map(|s| {
                                let origin = format!(
                                    "#{}/requestBody/content/{}/schema",
                                    op.pointer,
                                    escape(&m.content_type)
                                );
                                req_doc.add(s, origin) as u32
                            }),
                        })
                        .collect();
                    plan.body_types = Some(types);
                }
            }
            if settings.response != ResponseMode::Off {
                for r in &op.responses {
                    let types: Vec<(String, u32)> = r
                        .content
                        .iter()
                        .filter_map(|m| {
                            json_schema(m).map(|s| {
                                let origin = format!(
                                    "#{}/responses/{}/content/{}/schema",
                                    op.pointer,
                                    r.status,
                                    escape(&m.content_type)
                                );
                                (
                                    essence(&m.content_type).into_owned(),
                                    resp_doc.add(s, origin) as u32,
                                )
                            })
                        })
                        .collect();
                    if let Some(key) = StatusKey::parse(&r.status) {
                        plan.responses.push((key, types));
                    }
                }
            }
            ops.push(plan);
        }
        let mut errors = Vec::new();
        let mut compile = |doc: DocumentBuilder<'_>, what: &str| {
            if doc.len() == 0 {
                return None;
            }
            match doc.compile(formats) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(format!("{what}: {e}"));
                    None
                }
            }
        };
        let requests = compile(req_doc, "request schemas");
        let responses = compile(resp_doc, "response schemas");
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            request: settings.request,
            response: settings.response,
            max_body: settings.max_body,
            ops,
            requests,
            responses,
        })
    }

    fn plan(&self, op: &ApiOperation) -> Option<&OpPlan> {
        self.ops.get(op.index as usize)
    }

    fn check_params(&self, plan: &OpPlan, rest: &str, parts: &request::Parts) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if plan.params.is_empty() {
            return errors;
        }
        let raw = Raw::new(&plan.segments, rest, parts.uri.query(), &parts.headers);
        for (decoder, entry) in &plan.params {
            // Most parameters are one scalar, accepted as read.
            if let (Some(found), Some(entry), Some(compiled)) =
                (decoder.scalar_text(&raw), entry, &self.requests)
            {
                match found {
                    None if !decoder.required => continue,
                    Some((text, kind))
                        if compiled.accepts_scalar(*entry as usize, params::read(&text, kind)) =>
                    {
                        continue;
                    }
                    _ => {}
                }
            }
            let place = decoder.location.as_str();
            let Some(value) = decoder.extract(&raw) else {
                if decoder.required {
                    errors.push(FieldError {
                        place,
                        name: Some(decoder.name.clone()),
                        pointer: String::new(),
                        keyword: "required".into(),
                        detail: format!("The {place} parameter `{}` is required.", decoder.name),
                    });
                }
                continue;
            };
            let Some((entry, compiled)) = entry.zip(self.requests.as_ref()) else {
                continue;
            };
            if let Some(v) = compiled.validator(entry as usize) {
                let doc = Doc::from_value(&value);
                errors.extend(schema::errors(v, doc.root(), place, Some(&decoder.name)));
            }
        }
        errors
    }
}

impl Validator for SpecValidator {
    fn checks_requests(&self) -> bool {
        self.request
    }

    fn check_head(
        &self,
        op: &ApiOperation,
        rest: &str,
        parts: &request::Parts,
        has_body: bool,
    ) -> Result<BodyCheck, Rejection> {
        let Some(plan) = self.plan(op).filter(|_| self.request) else {
            return Ok(BodyCheck::Stream);
        };
        let mut errors = self.check_params(plan, rest, parts);
        let mut check = BodyCheck::Stream;
        match (&plan.body_types, has_body) {
            (Some(_), false) if plan.body_required => errors.push(FieldError {
                place: "body",
                name: None,
                pointer: String::new(),
                keyword: "required".into(),
                detail: "The request body is required.".into(),
            }),
            (Some(types), true) => {
                let declared = parts
                    .headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(essence);
                let Some(declared) = declared else {
                    return Err(unsupported(
                        op,
                        "The request has a body but no Content-Type.",
                    ));
                };
                let Some(found) = best_match(types.iter().map(|t| t.pattern.as_str()), &declared)
                else {
                    let allowed: Vec<&str> = types.iter().map(|t| t.pattern.as_str()).collect();
                    return Err(unsupported(
                        op,
                        &format!(
                            "The media type `{declared}` is not one the operation takes: {}.",
                            allowed.join(", ")
                        ),
                    ));
                };
                if let Some(schema) = types[found].schema
                    && is_json_essence(&declared)
                {
                    check = BodyCheck::Json(SchemaId(schema));
                }
            }
            _ => {}
        }
        if errors.is_empty() {
            Ok(check)
        } else {
            Err(refused(errors))
        }
    }

    fn check_body(&self, schema: SchemaId, body: &[u8]) -> Result<(), Rejection> {
        let Some(compiled) = &self.requests else {
            return Ok(());
        };
        let errors = body_errors(compiled, schema.0 as usize, body);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(
                Rejection::new(ErrorCode::ValidationFailed, summary(&errors, "request"))
                    .with_errors(errors),
            )
        }
    }

    fn max_body(&self) -> u64 {
        self.max_body
    }

    fn response_mode(&self) -> ResponseMode {
        self.response
    }

    fn response_schema(
        &self,
        op: &ApiOperation,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<SchemaId> {
        if self.response == ResponseMode::Off {
            return None;
        }
        let plan = self.plan(op)?;
        let types = [
            StatusKey::Code(status),
            StatusKey::Class(status / 100),
            StatusKey::Default,
        ]
        .iter()
        .find_map(|want| plan.responses.iter().find(|(s, _)| s == want))
        .map(|(_, types)| types)?;
        let declared = essence(headers.get(CONTENT_TYPE)?.to_str().ok()?);
        if !is_json_essence(&declared) {
            return None;
        }
        let found = best_match(types.iter().map(|(t, _)| t.as_str()), &declared)?;
        Some(SchemaId(types[found].1))
    }

    fn check_response(&self, schema: SchemaId, body: &[u8]) -> Vec<FieldError> {
        match &self.responses {
            Some(compiled) => body_errors(compiled, schema.0 as usize, body),
            None => Vec::new(),
        }
    }
}

/// Every error of a JSON body against entry `entry` of `compiled`. Most
/// valid bodies are accepted by the [`quick`] walk, which builds nothing.
/// The others are read into a [`Doc`] that borrows its strings; the few
/// bodies that reader leaves to `serde_json` (a syntax error to name, a
/// member named twice, deep nesting) are read by it, and validated as the
/// value it gives.
fn body_errors(compiled: &schema::Compiled, entry: usize, body: &[u8]) -> Vec<FieldError> {
    if compiled.accepts(entry, body) {
        return Vec::new();
    }
    match compiled.validator(entry) {
        Some(validator) => full_body_errors(validator, body),
        None => Vec::new(),
    }
}

/// [`body_errors`] without the quick walk.
fn full_body_errors(validator: &schema::Validator, body: &[u8]) -> Vec<FieldError> {
    let not_json = |detail: String| FieldError {
        place: "body",
        name: None,
        pointer: String::new(),
        keyword: "json".into(),
        detail: format!("The body is not valid JSON: {detail}."),
    };
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => return vec![not_json(e.to_string())],
    };
    if let Some(doc) = Doc::parse(text) {
        return schema::errors(validator, doc.root(), "body", None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => schema::errors(validator, Doc::from_value(&value).root(), "body", None),
        Err(e) => vec![not_json(e.to_string())],
    }
}

fn refused(errors: Vec<FieldError>) -> Rejection {
    Rejection::new(ErrorCode::ValidationFailed, summary(&errors, "request")).with_errors(errors)
}

/// The `detail` of a refusal: how many errors, and the first.
pub fn summary(errors: &[FieldError], what: &str) -> String {
    let n = errors.len();
    let first = errors.first().map_or("", |e| e.detail.as_str());
    if n == 1 {
        format!("The {what} does not match the API's spec: {first}")
    } else {
        format!("The {what} does not match the API's spec in {n} places; the first: {first}")
    }
}

fn unsupported(op: &ApiOperation, detail: &str) -> Rejection {
    Rejection::new(
        ErrorCode::UnsupportedMediaType,
        format!("{detail} (operation {})", op.label),
    )
}

/// `text` as a JSON pointer token.
fn escape(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

/// The schema of a JSON media type entry.
fn json_schema(m: &MediaType) -> Option<&Value> {
    let schema = m.schema.as_ref()?;
    is_json(&m.content_type).then_some(&schema.0)
}

/// `type/subtype`, lower case, without parameters.
fn essence(content_type: &str) -> Cow<'_, str> {
    // One pass to the parameters, noting upper case on the way.
    let mut end = content_type.len();
    let mut upper = false;
    for (i, b) in content_type.bytes().enumerate() {
        if b == b';' {
            end = i;
            break;
        }
        upper |= b.is_ascii_uppercase();
    }
    let essence = content_type[..end].trim();
    if upper {
        Cow::Owned(essence.to_ascii_lowercase())
    } else {
        Cow::Borrowed(essence)
    }
}

/// JSON media types: `application/json`, `…+json`, and the patterns that
/// name them (`application/*+json`); `*/*` and `application/*` are
/// treated as JSON too when the request says JSON.
pub(crate) fn is_json(content_type: &str) -> bool {
    is_json_essence(&essence(content_type))
}

/// [`is_json`] of a type already reduced to its [`essence`].
fn is_json_essence(essence: &str) -> bool {
    essence == "application/json"
        || essence.ends_with("+json")
        || essence == "*/*"
        || essence == "application/*"
}

/// The index of the declared pattern that best matches `actual`: an exact
/// type first, then `type/*+suffix`, `type/*`, `*/*`.
fn best_match<'p>(patterns: impl Iterator<Item = &'p str> + Clone, actual: &str) -> Option<usize> {
    // The usual case, and the best rank there is.
    if let Some(exact) = patterns.clone().position(|p| p == actual) {
        return Some(exact);
    }
    let (kind, _) = actual.split_once('/')?;
    let suffix = actual.rsplit_once('+').map(|(_, s)| s);
    let mut best: Option<(u8, usize)> = None;
    for (i, p) in patterns.enumerate() {
        let rank = if p == actual {
            4
        } else if let Some(rest) = p.strip_prefix(kind).and_then(|r| r.strip_prefix("/*+")) {
            if suffix == Some(rest) { 3 } else { 0 }
        } else if p.strip_prefix(kind) == Some("/*") {
            2
        } else if p == "*/*" {
            1
        } else {
            0
        };
        if rank > 0 && best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, i));
        }
    }
    best.map(|(_, i)| i)
}

/// See [`crate::fuzzing::json_body`].
pub(crate) fn fuzz_json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        tape::assert_reads_as_serde_json(text);
    }
    let schemas = FUZZ_SCHEMAS.get_or_init(|| {
        let pet = serde_json::json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": { "type": "string", "minLength": 1, "maxLength": 64 },
                "id": { "type": "integer", "minimum": 1 },
                "weight": { "type": "number", "exclusiveMinimum": 0 },
                "tags": { "type": "array", "maxItems": 4, "items": { "$ref": "#/$defs/x0" } },
                "status": { "enum": ["available", "sold", null] },
                "photo": { "type": "string", "format": "uri" },
                "phone": { "type": ["string", "null"], "pattern": "^[+0-9 ()-]{6,20}$" },
                "extra": { "additionalProperties": { "type": "boolean" } }
            }
        });
        let doc = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": { "x0": {}, "x1": pet }
        });
        schema::Compiled::new(&doc, 2, true).expect("the fuzz schemas compile")
    });
    for entry in 0..2 {
        assert_walk_within_full(schemas, entry, data);
    }
}

/// The schemas [`fuzz_json`] walks bodies against: anything, and an
/// object of the keywords the quick walk handles.
static FUZZ_SCHEMAS: std::sync::OnceLock<schema::Compiled> = std::sync::OnceLock::new();

/// Panics if the quick walk accepts `body` where the full path finds an
/// error: the walk may only ever say "valid" when the full path agrees.
pub(crate) fn assert_walk_within_full(compiled: &schema::Compiled, entry: usize, body: &[u8]) {
    if !compiled.accepts(entry, body) {
        return;
    }
    let errors = compiled
        .validator(entry)
        .map(|v| full_body_errors(v, body))
        .unwrap_or_default();
    assert!(
        errors.is_empty(),
        "the quick walk accepted {:?}, which has errors: {errors:?}",
        String::from_utf8_lossy(body)
    );
}

/// See [`crate::fuzzing::validator`].
pub(crate) fn fuzz(spec: &Spec, data: &[u8]) {
    let settings = Unbound {
        request: true,
        response: ResponseMode::Report,
        max_body: DEFAULT_MAX_BODY,
        formats: true,
    };
    let Ok(v) = SpecValidator::compile(&settings, spec) else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let path = format!("/{}", text.replace(['?', '#', ' '], "/"));
    let mut builder = portico_model::OperationTableBuilder::new();
    for op in &spec.operations {
        if builder
            .insert(&op.path, op.method.clone(), op.operation_id.as_deref())
            .is_err()
        {
            return;
        }
    }
    let table = builder.build();
    let uri = format!(
        "/x?{}",
        percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
    )
    .replace("%3D", "=")
    .replace("%26", "&");
    let mut req = http::Request::builder()
        .uri(uri)
        .header(CONTENT_TYPE, "application/json");
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        for p in spec.operations.iter().flat_map(|o| &o.parameters) {
            if p.location == ParameterIn::Header
                && let Ok(name) = http::HeaderName::try_from(p.name.as_str())
            {
                req = req.header(name, value.clone());
            }
        }
        req = req.header(http::header::COOKIE, value);
    }
    let Ok(req) = req.body(()) else { return };
    let (parts, ()) = req.into_parts();
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for op in table.operations() {
        if let Ok(BodyCheck::Json(schema)) = v.check_head(op, &path, &parts, true) {
            let _ = v.check_body(schema, data);
        }
        for status in [200, 404, 500] {
            if let Some(schema) = v.response_schema(op, status, &headers) {
                let _ = v.check_response(schema, data);
            }
        }
    }
}

/// For the tests: the validator of `spec` (requests only, formats on) and
/// the body schema of `POST path`, an operation whose body is JSON.
#[cfg(test)]
pub(crate) fn post_body_validator(spec: &Spec, path: &str) -> (SpecValidator, SchemaId) {
    let settings = Unbound {
        request: true,
        response: ResponseMode::Off,
        max_body: DEFAULT_MAX_BODY,
        formats: true,
    };
    let validator = SpecValidator::compile(&settings, spec).unwrap();
    let mut b = portico_model::OperationTableBuilder::new();
    b.insert(path, http::Method::POST, None).unwrap();
    let table = b.build();
    let parts = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let BodyCheck::Json(body) = validator
        .check_head(&table.operations()[0], path, &parts, true)
        .unwrap()
    else {
        panic!("the body of POST {path} is JSON");
    };
    (validator, body)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "proptests.rs"]
mod proptests;
