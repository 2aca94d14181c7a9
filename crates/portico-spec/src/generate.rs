//! A value made from a schema, for the mock upstream when the spec gives no
//! example. Deterministic: the same schema always gives the same value.
//!
//! In order, a schema gives: its own `example`, the first of its
//! `examples` (3.1), `default`, `const`, the first `enum` value; otherwise a
//! value of its type. Strings follow `format` (`date-time`, `email`,
//! `uuid`, …) and `minLength`/`maxLength` (not `pattern`); numbers the
//! bounds and `multipleOf`; arrays get one item (or `minItems`); objects
//! get every property but `writeOnly` ones (a response is made). `$ref`s
//! are followed; `allOf` merges its parts, `oneOf`/`anyOf` take the first
//! alternative that can be made. A schema that refers back to itself is
//! followed once more at most: after that only what is required is made,
//! and an optional recursive property or item is left out. Sizes are
//! bounded: at most 64 items and 1,024 characters however large `minItems`
//! and `minLength` are, and past 10,000 values only required parts.

use serde_json::{Map, Number, Value};

use crate::{OpenApiVersion, Spec};

/// How deep a value may nest before only required parts are made.
const MAX_DEPTH: usize = 12;
/// How often one `$ref` may be entered within itself.
const MAX_REENTRY: usize = 1;
/// Values (of any kind, nested ones included) one call may make before
/// only required parts are made; at twice as many it gives up. A spec is
/// configuration a publisher uploads: a schema whose every property refers
/// to the next one must not make a body of billions of values.
const MAX_VALUES: usize = 10_000;
/// The longest string and array made, whatever `minLength`/`minItems` ask.
const MAX_LEN: u64 = 1024;
const MAX_ITEMS: u64 = 64;

/// A value valid against `schema` (a schema of `spec`, with `$ref`s to
/// [`Spec::schemas`]); `None` when none can be made within the bounds (a
/// schema that requires itself without end, or `false`).
pub fn value_for(spec: &Spec, schema: &Value) -> Option<Value> {
    let mut g = Generator {
        spec,
        stack: Vec::new(),
        made: 0,
    };
    g.value(schema, 0, false)
}

struct Generator<'a> {
    spec: &'a Spec,
    /// The `$ref`s being followed, outermost first.
    stack: Vec<&'a str>,
    /// Values made so far.
    made: usize,
}

impl<'a> Generator<'a> {
    /// `minimal`: make only what the schema requires (past the bounds).
    fn value(&mut self, schema: &'a Value, depth: usize, minimal: bool) -> Option<Value> {
        self.made += 1;
        if self.made > 2 * MAX_VALUES {
            return None;
        }
        let minimal = minimal || self.made > MAX_VALUES;
        let obj = match schema {
            Value::Bool(true) => return Some(Value::Null),
            Value::Object(o) => o,
            _ => return None,
        };
        if let Some(v) = given(obj) {
            return Some(v);
        }
        if let Some(Value::String(key)) = obj.get("$ref") {
            return self.reference(key, depth, minimal);
        }
        let minimal = minimal || depth >= MAX_DEPTH;
        if let Some(Value::Array(parts)) = obj.get("allOf") {
            return self.all_of(obj, parts, depth, minimal);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(alts)) = obj.get(key) {
                return alts.iter().find_map(|a| self.value(a, depth + 1, minimal));
            }
        }
        match schema_type(obj) {
            Some("object") => self.object(obj, depth, minimal),
            Some("array") => self.array(obj, depth, minimal),
            Some("string") => Some(Value::String(string(obj))),
            Some("integer") => Some(number(obj, true, self.spec.version)),
            Some("number") => Some(number(obj, false, self.spec.version)),
            Some("boolean") => Some(Value::Bool(true)),
            Some("null") => Some(Value::Null),
            // Anything is valid: an empty object is as plain as it gets.
            _ => Some(Value::Object(Map::new())),
        }
    }

    fn reference(&mut self, key: &'a str, depth: usize, minimal: bool) -> Option<Value> {
        let target = &self.spec.schemas.get(key)?.0;
        let entered = self.stack.iter().filter(|k| **k == key).count();
        let minimal = minimal || entered > MAX_REENTRY - 1;
        if entered > MAX_REENTRY {
            return None;
        }
        self.stack.push(key);
        let v = self.value(target, depth + 1, minimal);
        self.stack.pop();
        v
    }

    /// Every part made and merged: objects key by key, other values by the
    /// last part that gave one.
    fn all_of(
        &mut self,
        obj: &'a Map<String, Value>,
        parts: &'a [Value],
        depth: usize,
        minimal: bool,
    ) -> Option<Value> {
        let mut merged: Option<Value> = None;
        for part in parts {
            let v = self.value(part, depth + 1, minimal)?;
            merged = Some(merge(merged, v));
        }
        // Properties beside `allOf` are one more part.
        if schema_type(obj) == Some("object") {
            let v = self.object(obj, depth + 1, minimal)?;
            merged = Some(merge(merged, v));
        }
        merged
    }

    fn object(
        &mut self,
        obj: &'a Map<String, Value>,
        depth: usize,
        minimal: bool,
    ) -> Option<Value> {
        let required: Vec<&str> = match obj.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut out = Map::new();
        if let Some(Value::Object(props)) = obj.get("properties") {
            for (name, prop) in props {
                let needed = required.contains(&name.as_str());
                if !needed && (minimal || write_only(prop)) {
                    continue;
                }
                match self.value(prop, depth + 1, minimal) {
                    Some(v) => {
                        out.insert(name.clone(), v);
                    }
                    None if needed => return None,
                    None => {}
                }
            }
        }
        // Required names without a property schema: any value will do.
        for name in required {
            if !out.contains_key(name) {
                let extra = match obj.get("additionalProperties") {
                    Some(s @ Value::Object(_)) => self.value(s, depth + 1, minimal)?,
                    _ => Value::String("string".into()),
                };
                out.insert(name.to_owned(), extra);
            }
        }
        Some(Value::Object(out))
    }

    fn array(&mut self, obj: &'a Map<String, Value>, depth: usize, minimal: bool) -> Option<Value> {
        let min = obj
            .get("minItems")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(MAX_ITEMS);
        let max = obj.get("maxItems").and_then(Value::as_u64);
        let mut items = Vec::new();
        // 3.1 tuples: each position its own schema.
        if let Some(Value::Array(prefix)) = obj.get("prefixItems") {
            for p in prefix {
                if items.len() as u64 >= min.max(1) && (minimal || items.len() as u64 >= min) {
                    break;
                }
                items.push(self.value(p, depth + 1, minimal)?);
            }
        }
        let wanted = if minimal { min } else { min.max(1) };
        let wanted = max.map_or(wanted, |m| wanted.min(m));
        if (items.len() as u64) < wanted {
            let item_schema = obj.get("items");
            let item = match item_schema {
                Some(s) => self.value(s, depth + 1, minimal),
                None => Some(Value::String("string".into())),
            };
            match item {
                Some(item) => {
                    while (items.len() as u64) < wanted {
                        items.push(item.clone());
                    }
                }
                // An optional recursive item: an empty list, if allowed.
                None if items.len() as u64 >= min => {}
                None => return None,
            }
        }
        Some(Value::Array(items))
    }
}

/// A value the schema states itself.
fn given(obj: &Map<String, Value>) -> Option<Value> {
    if let Some(v) = obj.get("example") {
        return Some(v.clone());
    }
    if let Some(Value::Array(e)) = obj.get("examples")
        && let Some(first) = e.first()
    {
        return Some(first.clone());
    }
    for key in ["default", "const"] {
        if let Some(v) = obj.get(key) {
            return Some(v.clone());
        }
    }
    match obj.get("enum") {
        Some(Value::Array(e)) => e.first().cloned(),
        _ => None,
    }
}

/// The schema's type: the first of a list that is not `null` (3.1), or
/// what its keywords imply.
fn schema_type(obj: &Map<String, Value>) -> Option<&str> {
    match obj.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            names
                .iter()
                .find(|t| **t != "null")
                .or(names.first())
                .copied()
        }
        _ if obj.contains_key("properties") || obj.contains_key("additionalProperties") => {
            Some("object")
        }
        _ if obj.contains_key("items") || obj.contains_key("prefixItems") => Some("array"),
        _ => None,
    }
}

fn write_only(schema: &Value) -> bool {
    schema.get("writeOnly") == Some(&Value::Bool(true))
}

fn merge(into: Option<Value>, v: Value) -> Value {
    match (into, v) {
        (Some(Value::Object(mut a)), Value::Object(b)) => {
            for (k, v) in b {
                let merged = merge(a.remove(&k), v);
                a.insert(k, merged);
            }
            Value::Object(a)
        }
        (_, v) => v,
    }
}

fn string(obj: &Map<String, Value>) -> String {
    let format = obj.get("format").and_then(Value::as_str).unwrap_or("");
    let s = match format {
        "date-time" => "2024-01-01T00:00:00Z",
        "date" => "2024-01-01",
        "time" => "00:00:00Z",
        "duration" => "P1D",
        "email" | "idn-email" => "user@example.com",
        "hostname" | "idn-hostname" => "example.com",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "uri" | "iri" | "url" => "https://example.com/",
        "uri-reference" | "iri-reference" => "/example",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "byte" => "c3RyaW5n",
        "password" => "password",
        "json-pointer" => "/example",
        "regex" => ".*",
        _ => "string",
    };
    let mut s = s.to_owned();
    let min = obj
        .get("minLength")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(MAX_LEN);
    let max = obj.get("maxLength").and_then(Value::as_u64);
    // Lengths count characters; the values above are ASCII.
    while (s.len() as u64) < min {
        s.push('x');
    }
    if let Some(max) = max
        && (s.len() as u64) > max
    {
        s.truncate(usize::try_from(max).unwrap_or(usize::MAX));
    }
    s
}

/// The number closest to zero (or one, for integers with no bounds, which
/// reads better than zero in an example) within the bounds.
fn number(obj: &Map<String, Value>, integer: bool, version: OpenApiVersion) -> Value {
    let f = |k: &str| obj.get(k).and_then(Value::as_f64);
    let flag = |k: &str| obj.get(k) == Some(&Value::Bool(true));
    // Bounds as (value, exclusive).
    let (mut low, mut high) = (
        f("minimum").map(|v| (v, false)),
        f("maximum").map(|v| (v, false)),
    );
    match version {
        OpenApiVersion::V3_0 => {
            if flag("exclusiveMinimum") {
                low = low.map(|(v, _)| (v, true));
            }
            if flag("exclusiveMaximum") {
                high = high.map(|(v, _)| (v, true));
            }
        }
        OpenApiVersion::V3_1 => {
            if let Some(v) = f("exclusiveMinimum") {
                low = Some(low.map_or((v, true), |l| if v >= l.0 { (v, true) } else { l }));
            }
            if let Some(v) = f("exclusiveMaximum") {
                high = Some(high.map_or((v, true), |h| if v <= h.0 { (v, true) } else { h }));
            }
        }
    }
    let step = f("multipleOf").filter(|m| *m > 0.0);
    let unit = match (integer, step) {
        (_, Some(m)) => m,
        (true, None) => 1.0,
        (false, None) => 0.5,
    };
    let mut x = if integer && low.is_none() && high.is_none() {
        1.0
    } else {
        0.0
    };
    if let Some((l, excl)) = low
        && (x < l || (excl && x <= l))
    {
        x = (l / unit).floor() * unit;
        while x < l || (excl && x <= l) {
            x += unit;
        }
    }
    if let Some((h, excl)) = high
        && (x > h || (excl && x >= h))
    {
        x = (h / unit).ceil() * unit;
        while x > h || (excl && x >= h) {
            x -= unit;
        }
    }
    if let Some(m) = step {
        x = (x / m).round() * m;
    }
    if integer {
        // Bounds and steps of an integer schema are integers in practice;
        // the cast saturates on anything else.
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number((x.round() as i64).into());
    }
    Number::from_f64(x).map_or(Value::Number(0.into()), Value::Number)
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
