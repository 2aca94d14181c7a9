//! Parameter decoders: the raw text of a path, query, header or cookie
//! parameter turned into the JSON value its schema is checked against,
//! following the parameter's `style` and `explode` (OpenAPI "Style
//! Values"). The decoder's shape (a scalar, an array, an object, and the
//! scalar types inside) is worked out from the schema once per snapshot.
//!
//! Values that do not read as the schema's type stay strings, so the
//! schema check reports them with the `type` keyword.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;

use http::HeaderMap;
use percent_encoding::percent_decode_str;
use portico_spec::{Parameter, ParameterIn, Schema, Style};
use serde_json::{Map, Number, Value};

use super::tape;

/// What a scalar is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
    /// No type or several: numbers and booleans are recognised, anything
    /// else is a string.
    Any,
}

/// The shape a parameter value decodes into.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Shape {
    Scalar(Scalar),
    Array(Scalar),
    /// Property name → scalar type; `other` for names the schema does not
    /// list.
    Object {
        props: BTreeMap<String, Scalar>,
        other: Scalar,
    },
    /// `content: application/json`: the value is a JSON document.
    Json,
}

/// One parameter, ready to decode.
#[derive(Clone, Debug)]
pub(crate) struct Decoder {
    pub name: String,
    pub location: ParameterIn,
    pub required: bool,
    pub style: Style,
    pub explode: bool,
    pub shape: Shape,
    /// A header parameter's name, parsed once; `None` for other
    /// parameters, and for a name no header can have.
    header: Option<http::HeaderName>,
}

impl Decoder {
    pub(crate) fn new(p: &Parameter, named: &BTreeMap<String, Schema>) -> Self {
        let shape = match (&p.content_type, &p.schema) {
            (Some(ct), _) if super::is_json(ct) => Shape::Json,
            (Some(_), _) => Shape::Scalar(Scalar::String),
            (None, Some(schema)) => shape_of(&schema.0, named),
            (None, None) => Shape::Scalar(Scalar::Any),
        };
        Self {
            name: p.name.clone(),
            location: p.location,
            required: p.required,
            style: p.style,
            explode: p.explode,
            shape,
            header: (p.location == ParameterIn::Header)
                .then(|| http::HeaderName::try_from(p.name.as_str()).ok())
                .flatten(),
        }
    }

    /// The parameter's value in the request, or `None` when absent.
    pub(crate) fn extract(&self, raw: &Raw<'_>) -> Option<Value> {
        match self.location {
            ParameterIn::Path => {
                let text = raw.path_var(&self.name)?;
                Some(self.path_value(&text))
            }
            ParameterIn::Query => self.query_value(raw),
            ParameterIn::Header => {
                let values = raw.headers.get_all(self.header.as_ref()?);
                let mut values = values.iter().peekable();
                values.peek()?;
                // Field lines and list items may carry whitespace around
                // commas (RFC 9110 §5.6.1): the items of every line, each
                // trimmed, joined by single commas.
                let mut joined = String::new();
                let mut first = true;
                for line in values {
                    for item in String::from_utf8_lossy(line.as_bytes()).split(',') {
                        if !first {
                            joined.push(',');
                        }
                        first = false;
                        joined.push_str(item.trim());
                    }
                }
                Some(self.simple(&joined))
            }
            ParameterIn::Cookie => {
                let text = raw.cookie(&self.name)?;
                Some(self.delimited(&text, ','))
            }
        }
    }

    /// The text of a parameter whose value is one scalar, read from the
    /// request without decoding it into a [`Value`], and the type to read
    /// it as: `Some(None)` when the parameter is absent, `None` where it
    /// takes [`Self::extract`] (arrays, objects, JSON content, `label` and
    /// `matrix` paths, a header sent on several lines or holding commas
    /// or bytes outside ASCII). The text is the one `extract` reads.
    pub(crate) fn scalar_text<'r>(&self, raw: &Raw<'r>) -> Option<Option<(Cow<'r, str>, Scalar)>> {
        let Shape::Scalar(kind) = self.shape else {
            return None;
        };
        let text = match self.location {
            ParameterIn::Path if self.style == Style::Simple => raw.path_var(&self.name),
            ParameterIn::Path => return None,
            ParameterIn::Query => raw.query_first(&self.name),
            ParameterIn::Header => {
                let Some(name) = &self.header else {
                    return Some(None);
                };
                let mut values = raw.headers.get_all(name).iter();
                let (first, more) = (values.next(), values.next());
                match (first, more) {
                    (None, _) => None,
                    (Some(v), None) if !v.as_bytes().contains(&b',') => {
                        Some(Cow::Borrowed(v.to_str().ok()?.trim()))
                    }
                    _ => return None,
                }
            }
            ParameterIn::Cookie => raw.cookie(&self.name).map(Cow::Owned),
        };
        Some(text.map(|t| (t, kind)))
    }

    fn path_value(&self, text: &str) -> Value {
        match self.style {
            Style::Label => {
                let rest = text.strip_prefix('.').unwrap_or(text);
                match (&self.shape, self.explode) {
                    (Shape::Object { .. }, true) => self.pairs(rest.split('.')),
                    (_, true) => self.delimited(rest, '.'),
                    _ => self.delimited(rest, ','),
                }
            }
            Style::Matrix => {
                let rest = text.strip_prefix(';').unwrap_or(text);
                let prefix = format!("{}=", self.name);
                match (&self.shape, self.explode) {
                    (Shape::Object { .. }, true) => self.pairs(rest.split(';')),
                    (Shape::Array(item), true) => Value::Array(
                        rest.split(';')
                            .map(|part| scalar(part.strip_prefix(&prefix).unwrap_or(part), *item))
                            .collect(),
                    ),
                    _ => self.delimited(rest.strip_prefix(&prefix).unwrap_or(rest), ','),
                }
            }
            _ => self.simple(text),
        }
    }

    /// `simple`: comma-separated; exploded objects write `k=v`.
    fn simple(&self, text: &str) -> Value {
        match (&self.shape, self.explode) {
            (Shape::Object { .. }, true) => self.pairs(text.split(',')),
            _ => self.delimited(text, ','),
        }
    }

    fn query_value(&self, raw: &Raw<'_>) -> Option<Value> {
        let name = self.name.as_str();
        match (&self.shape, self.style, self.explode) {
            (Shape::Object { props, other }, Style::DeepObject, _) => {
                let mut obj = Map::new();
                for (k, v) in raw.pairs() {
                    let Some(key) = k
                        .strip_prefix(name)
                        .and_then(|r| r.strip_prefix('['))
                        .and_then(|r| r.strip_suffix(']'))
                    else {
                        continue;
                    };
                    let kind = props.get(key).copied().unwrap_or(*other);
                    obj.insert(key.to_owned(), scalar(v, kind));
                }
                (!obj.is_empty()).then_some(Value::Object(obj))
            }
            (Shape::Object { props, other }, Style::Form, true) => {
                // Each property is a parameter of its own name.
                let mut obj = Map::new();
                for (k, v) in raw.pairs() {
                    if let Some(kind) = props.get(k.as_ref()) {
                        obj.insert(k.to_string(), scalar(v, *kind));
                    } else if props.is_empty() && *other != Scalar::String {
                        obj.insert(k.to_string(), scalar(v, *other));
                    }
                }
                (!obj.is_empty()).then_some(Value::Object(obj))
            }
            (Shape::Array(item), Style::Form, true) => {
                let values: Vec<Value> = raw
                    .pairs()
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| scalar(v, *item))
                    .collect();
                (!values.is_empty()).then_some(Value::Array(values))
            }
            (_, style, _) => {
                let text = raw.query_first(name)?;
                let delimiter = match style {
                    Style::SpaceDelimited => ' ',
                    Style::PipeDelimited => '|',
                    _ => ',',
                };
                Some(self.delimited(&text, delimiter))
            }
        }
    }

    /// A value whose array items or object pairs are separated by
    /// `delimiter` (objects as `k,v,k,v`).
    fn delimited(&self, text: &str, delimiter: char) -> Value {
        match &self.shape {
            Shape::Scalar(kind) => scalar(text, *kind),
            Shape::Json => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
            }
            Shape::Array(item) => {
                if text.is_empty() {
                    return Value::Array(Vec::new());
                }
                Value::Array(text.split(delimiter).map(|v| scalar(v, *item)).collect())
            }
            Shape::Object { props, other } => {
                let mut obj = Map::new();
                let mut parts = text.split(delimiter);
                while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                    let kind = props.get(k).copied().unwrap_or(*other);
                    obj.insert(k.to_owned(), scalar(v, kind));
                }
                Value::Object(obj)
            }
        }
    }

    /// `k=v` items of an exploded object.
    fn pairs<'t>(&self, items: impl Iterator<Item = &'t str>) -> Value {
        let Shape::Object { props, other } = &self.shape else {
            return Value::Null;
        };
        let mut obj = Map::new();
        for item in items.filter(|i| !i.is_empty()) {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            let kind = props.get(k).copied().unwrap_or(*other);
            obj.insert(k.to_owned(), scalar(v, kind));
        }
        Value::Object(obj)
    }
}

/// A scalar read as `kind`; text that does not read so stays a string.
pub(crate) fn scalar(text: &str, kind: Scalar) -> Value {
    match read(text, kind) {
        tape::Scalar::Str(s) => Value::String(s.to_owned()),
        tape::Scalar::Number(n) => Value::Number(n),
        tape::Scalar::Bool(b) => Value::Bool(b),
        tape::Scalar::Null => Value::Null,
    }
}

/// [`scalar`] without making a [`Value`]: what the quick walk's nodes
/// check.
pub(crate) fn read(text: &str, kind: Scalar) -> tape::Scalar<'_> {
    let as_number = || {
        if let Ok(i) = text.parse::<i64>() {
            return Some(tape::Scalar::Number(i.into()));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(Number::from_f64)
            .map(tape::Scalar::Number)
    };
    let as_bool = || match text {
        "true" => Some(tape::Scalar::Bool(true)),
        "false" => Some(tape::Scalar::Bool(false)),
        _ => None,
    };
    let read = match kind {
        Scalar::String => None,
        Scalar::Integer | Scalar::Number => as_number(),
        Scalar::Boolean => as_bool(),
        Scalar::Any => as_number().or_else(as_bool),
    };
    read.unwrap_or(tape::Scalar::Str(text))
}

/// The decoder shape of a parameter schema; `$ref`s are followed (a few
/// steps at most).
fn shape_of(schema: &Value, named: &BTreeMap<String, Schema>) -> Shape {
    let schema = resolve(schema, named);
    match type_of(schema) {
        Some("array") => {
            let item = schema
                .get("items")
                .map(|i| scalar_of(resolve(i, named)))
                .unwrap_or(Scalar::Any);
            Shape::Array(item)
        }
        Some("object") => {
            let props = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .map(|(k, s)| (k.clone(), scalar_of(resolve(s, named))))
                        .collect()
                })
                .unwrap_or_default();
            let other = schema
                .get("additionalProperties")
                .filter(|a| a.is_object())
                .map(|a| scalar_of(resolve(a, named)))
                .unwrap_or(Scalar::Any);
            Shape::Object { props, other }
        }
        _ => Shape::Scalar(scalar_of(schema)),
    }
}

fn resolve<'s>(mut schema: &'s Value, named: &'s BTreeMap<String, Schema>) -> &'s Value {
    for _ in 0..8 {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| named.get(r))
        {
            Some(target) => schema = &target.0,
            None => break,
        }
    }
    schema
}

/// The one non-null `type` of a schema.
fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(types) => {
            let mut named = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null");
            let first = named.next()?;
            named.next().is_none().then_some(first)
        }
        _ => None,
    }
}

fn scalar_of(schema: &Value) -> Scalar {
    match type_of(schema) {
        Some("string") => Scalar::String,
        Some("integer") => Scalar::Integer,
        Some("number") => Scalar::Number,
        Some("boolean") => Scalar::Boolean,
        _ => Scalar::Any,
    }
}

/// A path template split for matching: literal segments, and segments
/// holding one variable between a literal prefix and suffix.
#[derive(Clone, Debug)]
pub(crate) enum Segment {
    Literal,
    Var {
        prefix: String,
        name: String,
        suffix: String,
    },
}

pub(crate) fn template(path: &str) -> Vec<Segment> {
    path.split('/')
        .skip(1)
        .map(|seg| {
            let Some((prefix, rest)) = seg.split_once('{') else {
                return Segment::Literal;
            };
            let Some((name, suffix)) = rest.split_once('}') else {
                return Segment::Literal;
            };
            Segment::Var {
                prefix: prefix.to_owned(),
                name: name.to_owned(),
                suffix: suffix.to_owned(),
            }
        })
        .collect()
}

/// The parts of a request the decoders read, split once per request.
pub(crate) struct Raw<'a> {
    /// Path variable → raw (still percent-encoded) value.
    vars: Vec<(&'a str, &'a str)>,
    /// The query as sent (without `?`).
    query_text: Option<&'a str>,
    /// Its decoded pairs, in order: split when a decoder first needs
    /// them all (a scalar parameter finds its pair without them).
    query: OnceCell<Vec<(Cow<'a, str>, Cow<'a, str>)>>,
    pub headers: &'a HeaderMap,
}

impl<'a> Raw<'a> {
    pub(crate) fn new(
        segments: &'a [Segment],
        rest: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> Self {
        let rest = if rest.is_empty() { "/" } else { rest };
        let mut vars = Vec::new();
        if segments.iter().any(|s| matches!(s, Segment::Var { .. })) {
            for (seg, text) in segments.iter().zip(rest.split('/').skip(1)) {
                if let Segment::Var {
                    prefix,
                    name,
                    suffix,
                } = seg
                    && let Some(v) = text
                        .strip_prefix(prefix.as_str())
                        .and_then(|t| t.strip_suffix(suffix.as_str()))
                {
                    vars.push((name.as_str(), v));
                }
            }
        }
        Self {
            vars,
            query_text: query,
            query: OnceCell::new(),
            headers,
        }
    }

    /// The query's decoded pairs, in order.
    fn pairs(&self) -> &[(Cow<'a, str>, Cow<'a, str>)] {
        self.query.get_or_init(|| {
            query_pairs(self.query_text.unwrap_or(""))
                .map(|(k, v)| (form_decode(k), form_decode(v)))
                .collect()
        })
    }

    /// The decoded value of the first query pair named `name`.
    fn query_first(&self, name: &str) -> Option<Cow<'a, str>> {
        query_pairs(self.query_text?)
            .find(|(k, _)| form_decode(k) == name)
            .map(|(_, v)| form_decode(v))
    }

    fn path_var(&self, name: &str) -> Option<Cow<'a, str>> {
        let (_, raw) = self.vars.iter().find(|(n, _)| *n == name)?;
        Some(percent_decode_str(raw).decode_utf8_lossy())
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| {
                percent_decode_str(v.trim_matches('"'))
                    .decode_utf8_lossy()
                    .into_owned()
            })
    }
}

/// The non-empty `name=value` pairs of a query, still encoded; a pair
/// without `=` has an empty value.
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        match pair.bytes().position(|b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, ""),
        }
    })
}

/// `application/x-www-form-urlencoded` decoding of one query name or
/// value: `+` is a space, then percent-decoding (invalid UTF-8 replaced).
fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}
