//! Spec schemas as JSON Schema 2020-12, compiled once per snapshot.
//!
//! Every schema the validator needs (each operation's parameters, request
//! bodies and responses, and every schema of `Spec::schemas` they refer
//! to) goes into **one** document per direction, under `$defs`:
//! `$defs/sN` for the spec's named schemas, `$defs/xN` for the entry
//! points. References are rewritten to `#/$defs/sN`, so they resolve
//! inside the document and nothing is ever fetched. `jsonschema` compiles
//! the document once (`build_map`), and each entry point is looked up by
//! its pointer.
//!
//! OpenAPI 3.0 schemas are converted on the way in: `nullable` becomes a
//! `null` type (and enum member), boolean `exclusiveMinimum`/`Maximum`
//! become the numeric form, `$ref` siblings are dropped (3.0 ignores
//! them), `example` is dropped. In both versions `readOnly` properties are
//! not required in requests, nor `writeOnly` ones in responses, and `$id`
//! / `$schema` inside a schema are dropped so that the rewritten
//! references keep resolving against the document.

use std::collections::BTreeMap;

use portico_model::validate::FieldError;
use portico_spec::{OpenApiVersion, Schema};
use serde_json::{Map, Value};

use super::tape::{self, Tape, TapeNode};
use super::{formats, quick};

/// A compiled schema; it checks values read into a [`super::tape::Doc`].
pub(crate) type Validator = jsonschema::Validator<Tape>;

/// Which side of the exchange a schema checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// Keywords whose value is one schema.
const ONE_SCHEMA: &[&str] = &[
    "additionalProperties",
    "additionalItems",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];
/// Keywords whose value is a list of schemas.
const SCHEMA_LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Turns spec schemas into one 2020-12 document.
pub(crate) struct DocumentBuilder<'a> {
    version: OpenApiVersion,
    direction: Direction,
    /// Spec schema key → index (`$defs/sN`).
    keys: BTreeMap<&'a str, usize>,
    named: &'a BTreeMap<String, Schema>,
    entries: Vec<Value>,
    /// Where each entry is in the spec, for errors.
    origins: Vec<String>,
}

impl<'a> DocumentBuilder<'a> {
    pub(crate) fn new(
        version: OpenApiVersion,
        direction: Direction,
        named: &'a BTreeMap<String, Schema>,
    ) -> Self {
        let keys = named
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        Self {
            version,
            direction,
            keys,
            named,
            entries: Vec::new(),
            origins: Vec::new(),
        }
    }

    /// Adds an entry point; returns its index under `$defs/x`.
    /// Adds an entry point found at `origin` in the spec (for errors);
    /// returns its index (`$defs/xN`).
    pub(crate) fn add(&mut self, schema: &Value, origin: String) -> usize {
        let converted = self.convert(schema);
        self.entries.push(converted);
        self.origins.push(origin);
        self.entries.len() - 1
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Compiles the document, with every named schema converted. An error
    /// names the place in the spec of the schema that `jsonschema` refused.
    /// `formats`: whether `format` asserts (it is an annotation by default
    /// in 2020-12).
    pub(crate) fn compile(self, formats: bool) -> Result<Compiled, String> {
        let mut origins: Vec<(String, String)> = self
            .named
            .keys()
            .enumerate()
            .map(|(i, k)| (format!("/$defs/s{i}"), k.clone()))
            .collect();
        origins.extend(
            self.origins
                .iter()
                .enumerate()
                .map(|(i, o)| (format!("/$defs/x{i}"), o.clone())),
        );
        let entries = self.entries.len();
        let doc = self.finish();
        Compiled::new(&doc, entries, formats).map_err(|(at, e)| {
            let place = origins.iter().find_map(|(prefix, origin)| {
                let rest = at.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then(|| format!("{origin}{rest}"))
            });
            match place {
                Some(p) => format!("the schema at {p} cannot be compiled: {e}"),
                None => format!("a schema cannot be compiled: {e}"),
            }
        })
    }

    /// The document, with every named schema converted.
    pub(crate) fn finish(self) -> Value {
        // Each one directly under `$defs`, a schema position, so that the
        // meta-schema check reaches every one of them.
        let mut defs = Map::new();
        for (i, schema) in self.named.values().enumerate() {
            defs.insert(format!("s{i}"), self.convert(&schema.0));
        }
        for (i, entry) in self.entries.into_iter().enumerate() {
            defs.insert(format!("x{i}"), entry);
        }
        let mut doc = Map::new();
        doc.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        doc.insert("$defs".into(), Value::Object(defs));
        Value::Object(doc)
    }

    /// One schema in 2020-12, references rewritten.
    fn convert(&self, schema: &Value) -> Value {
        let Value::Object(obj) = schema else {
            // `true` / `false` schemas (3.1) stay as they are.
            return schema.clone();
        };
        if let Some(Value::String(target)) = obj.get("$ref") {
            let rewritten = self.reference(target);
            if self.version == OpenApiVersion::V3_0 {
                return serde_json::json!({ "$ref": rewritten });
            }
            let mut out = self.convert_object(obj);
            out.insert("$ref".into(), rewritten.into());
            return Value::Object(out);
        }
        Value::Object(self.convert_object(obj))
    }

    fn convert_object(&self, obj: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::with_capacity(obj.len());
        for (k, v) in obj {
            let converted = match k.as_str() {
                "$ref" | "$id" | "$schema" => continue,
                "example" | "nullable" if self.version == OpenApiVersion::V3_0 => continue,
                "items" => match v {
                    Value::Array(list) => {
                        Value::Array(list.iter().map(|s| self.convert(s)).collect())
                    }
                    other => self.convert(other),
                },
                k if ONE_SCHEMA.contains(&k) => self.convert(v),
                k if SCHEMA_LIST.contains(&k) => match v {
                    Value::Array(list) => {
                        Value::Array(list.iter().map(|s| self.convert(s)).collect())
                    }
                    other => other.clone(),
                },
                k if SCHEMA_MAP.contains(&k) => match v {
                    Value::Object(map) => Value::Object(
                        map.iter()
                            .map(|(name, s)| (name.clone(), self.convert(s)))
                            .collect(),
                    ),
                    other => other.clone(),
                },
                _ => v.clone(),
            };
            out.insert(k.clone(), converted);
        }
        if self.version == OpenApiVersion::V3_0 {
            exclusive_bound(obj, &mut out, "exclusiveMinimum", "minimum");
            exclusive_bound(obj, &mut out, "exclusiveMaximum", "maximum");
            if obj.get("nullable") == Some(&Value::Bool(true)) {
                nullable(&mut out);
            }
        }
        self.drop_one_sided_required(obj, &mut out);
        out
    }

    /// `readOnly` properties are not required in requests, `writeOnly`
    /// ones not in responses (OpenAPI 3.0 §4.7.25.4, kept for 3.1).
    fn drop_one_sided_required(&self, obj: &Map<String, Value>, out: &mut Map<String, Value>) {
        let (Some(Value::Object(props)), Some(Value::Array(required))) =
            (obj.get("properties"), out.get("required"))
        else {
            return;
        };
        let flag = match self.direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        };
        let kept: Vec<Value> = required
            .iter()
            .filter(|name| {
                let one_sided = name
                    .as_str()
                    .and_then(|n| props.get(n))
                    .and_then(|p| self.flag_of(p, flag));
                one_sided != Some(true)
            })
            .cloned()
            .collect();
        out.insert("required".into(), Value::Array(kept));
    }

    /// `readOnly`/`writeOnly` of a property schema, following one `$ref`.
    fn flag_of(&self, schema: &Value, flag: &str) -> Option<bool> {
        if let Some(b) = schema.get(flag).and_then(Value::as_bool) {
            return Some(b);
        }
        let target = schema.get("$ref")?.as_str()?;
        self.named.get(target)?.0.get(flag)?.as_bool()
    }

    fn reference(&self, target: &str) -> String {
        match self.keys.get(target) {
            Some(i) => format!("#/$defs/s{i}"),
            // The loader checked every reference; an unknown one is left
            // for the compiler to report.
            None => target.to_owned(),
        }
    }
}

/// 3.0's `exclusiveMinimum: true` + `minimum: 5` is 2020-12's
/// `exclusiveMinimum: 5`.
fn exclusive_bound(
    obj: &Map<String, Value>,
    out: &mut Map<String, Value>,
    flag: &str,
    bound: &str,
) {
    match obj.get(flag) {
        Some(Value::Bool(true)) => {
            out.remove(flag);
            if let Some(limit) = out.remove(bound) {
                out.insert(flag.into(), limit);
            }
        }
        Some(Value::Bool(false)) => {
            out.remove(flag);
        }
        _ => {}
    }
}

/// 3.0's `nullable: true`: `null` is one more allowed value.
fn nullable(out: &mut Map<String, Value>) {
    let null = Value::String("null".into());
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = Value::String(std::mem::take(t));
            out.insert("type".into(), Value::Array(vec![t, null]));
        }
        Some(Value::Array(types)) => {
            if !types.contains(&null) {
                types.push(null);
            }
        }
        _ => {
            let composed = ["allOf", "anyOf", "oneOf"]
                .iter()
                .any(|k| out.contains_key(*k));
            if composed {
                let inner = Value::Object(std::mem::take(out));
                out.insert(
                    "anyOf".into(),
                    serde_json::json!([inner, { "type": "null" }]),
                );
                return;
            }
        }
    }
    if let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
}

/// One document compiled: its entry points' validators, and their
/// [`quick`] plans.
pub(crate) struct Compiled {
    map: jsonschema::ValidatorMap<Tape>,
    /// Each entry point's key in `map`, made once.
    pointers: Vec<String>,
    quick: quick::Plan,
    /// Each entry point's node in `quick`.
    roots: Vec<quick::NodeId>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("validators", &self.map.len())
            .finish()
    }
}

impl Compiled {
    /// Compiles `doc`; with `formats`, the formats JSON Schema defines are
    /// checked (`date-time`, `email`, `uuid`, …), unknown ones (`int32`)
    /// ignored.
    /// Errors are (pointer into `doc`, message).
    pub(crate) fn new(
        doc: &Value,
        entries: usize,
        formats: bool,
    ) -> Result<Self, (String, String)> {
        let map = options(formats)
            .build_map(doc)
            .map_err(|e| (e.instance_path().as_str().to_owned(), e.to_string()))?;
        let pointers: Vec<String> = (0..entries).map(|i| format!("#/$defs/x{i}")).collect();
        if let Some(missing) = pointers.iter().find(|p| map.get(p).is_none()) {
            return Err((String::new(), format!("entry {missing} was not compiled")));
        }
        let leaf_options = options(formats);
        let compile_leaf = |leaf: &Value| leaf_options.build(leaf).ok();
        let mut builder = quick::Builder::new(doc, formats, &compile_leaf);
        let roots = pointers.iter().map(|p| builder.root(p)).collect();
        Ok(Self {
            map,
            pointers,
            quick: builder.finish(),
            roots,
        })
    }

    pub(crate) fn validator(&self, entry: usize) -> Option<&Validator> {
        self.map.get(self.pointers.get(entry)?)
    }

    /// Whether `body` is JSON valid against entry `entry`, by the quick
    /// walk: `false` leaves the answer to [`Self::validator`].
    pub(crate) fn accepts(&self, entry: usize, body: &[u8]) -> bool {
        self.roots
            .get(entry)
            .is_some_and(|&root| self.quick.accepts(root, body))
    }

    /// [`Self::accepts`] for a scalar parameter value.
    pub(crate) fn accepts_scalar(&self, entry: usize, value: tape::Scalar<'_>) -> bool {
        self.roots
            .get(entry)
            .is_some_and(|&root| self.quick.accepts_scalar(root, value))
    }

    /// Whether the quick walk checks entry `entry` at all (for the tests).
    #[cfg(test)]
    pub(crate) fn quick_covers(&self, entry: usize) -> bool {
        self.roots
            .get(entry)
            .is_some_and(|&root| self.quick.covers(root))
    }
}

/// The options every validator of a document is compiled with.
fn options(
    formats: bool,
) -> jsonschema::ValidationOptions<'static, std::sync::Arc<dyn jsonschema::Retrieve>, Tape> {
    let mut options = jsonschema::options_for::<Tape>()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(formats)
        .should_ignore_unknown_formats(true);
    if formats && let Some(check) = email_check() {
        options = options.with_format("email", check);
    }
    options
}

/// The `email` format as `jsonschema` checks it, answered without it for
/// the common shape ([`formats::email`]); `jsonschema`'s own check (the
/// `email_address` crate's parse, display names, quoted local parts,
/// address literals, IDNA labels) costs thousands of instructions per
/// address. `None` if the fallback cannot be built, which leaves the
/// format to `jsonschema` entirely.
fn email_check() -> Option<impl Fn(&str) -> bool + Send + Sync + 'static> {
    let full = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&serde_json::json!({ "format": "email" }))
        .ok()?;
    Some(move |text: &str| formats::email(text) || full.is_valid(&Value::String(text.to_owned())))
}

/// At most this many errors are listed per value; a document listing
/// thousands helps nobody and costs memory.
pub(crate) const MAX_ERRORS: usize = 100;
/// Details longer than this are cut (a type error quotes the value).
const MAX_DETAIL: usize = 240;

/// Every error of `instance` against `validator`, as field errors.
pub(crate) fn errors(
    validator: &Validator,
    instance: TapeNode<'_>,
    place: &'static str,
    name: Option<&str>,
) -> Vec<FieldError> {
    // The common case first: `is_valid` stops at nothing and builds no
    // error values, where `iter_errors` sets up its collection.
    if validator.is_valid(instance) {
        return Vec::new();
    }
    validator
        .iter_errors(instance)
        .take(MAX_ERRORS)
        .map(|e| FieldError {
            place,
            name: name.map(str::to_owned),
            pointer: e.instance_path().as_str().to_owned(),
            keyword: keyword(&e),
            detail: shorten(e.to_string()),
        })
        .collect()
}

/// The keyword that failed. A `false` schema has none of its own, so the
/// keyword holding it is named (`items`, `additionalProperties`).
fn keyword(e: &jsonschema::ValidationError<'_>) -> String {
    let own = e.kind().keyword();
    if own != "falseSchema" {
        return own.to_owned();
    }
    e.schema_path()
        .as_str()
        .rsplit('/')
        .find(|seg| !seg.is_empty() && !seg.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(own)
        .to_owned()
}

fn shorten(mut text: String) -> String {
    if text.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
