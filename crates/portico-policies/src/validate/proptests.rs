//! Property tests: instances generated from a schema pass the compiled
//! validator; the same instances with one mutation that the schema forbids
//! (a required property removed, a value of the wrong type, a value
//! outside an enum or a bound) fail it, at the mutated place. Run for the
//! same shape in the 3.0 dialect (converted) and in 3.1.

use std::collections::BTreeMap;

use portico_spec::{LoadOptions, Schema};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

const THING_30: &str = r##"
openapi: 3.0.3
info: { title: t, version: "1" }
paths:
  /things:
    post:
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Thing" } } }
      responses: { "201": { description: ok } }
components:
  schemas:
    Category:
      type: object
      required: [id]
      properties:
        id: { type: integer, minimum: 1, maximum: 9999 }
        label: { type: string, maxLength: 12, nullable: true }
    Thing:
      type: object
      required: [name, status, photoUrls]
      properties:
        name: { type: string, minLength: 1, maxLength: 20 }
        count: { type: integer, minimum: 0, maximum: 1000 }
        weight: { type: number, minimum: 0, exclusiveMinimum: true, maximum: 500 }
        tag: { type: string, nullable: true }
        status: { type: string, enum: [available, pending, sold] }
        photoUrls: { type: array, items: { type: string, minLength: 1 }, maxItems: 4 }
        flags: { type: array, items: { type: boolean } }
        category: { $ref: "#/components/schemas/Category" }
"##;

const THING_31: &str = r##"
openapi: 3.1.0
info: { title: t, version: "1" }
paths:
  /things:
    post:
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Thing" } } }
      responses: { "201": { description: ok } }
components:
  schemas:
    Category:
      type: object
      required: [id]
      properties:
        id: { type: integer, minimum: 1, maximum: 9999 }
        label: { type: [string, "null"], maxLength: 12 }
    Thing:
      type: object
      required: [name, status, photoUrls]
      properties:
        name: { type: string, minLength: 1, maxLength: 20 }
        count: { type: integer, minimum: 0, maximum: 1000 }
        weight: { type: number, exclusiveMinimum: 0, maximum: 500 }
        tag: { type: [string, "null"] }
        status: { type: string, enum: [available, pending, sold] }
        photoUrls: { type: array, items: { type: string, minLength: 1 }, maxItems: 4 }
        flags: { type: array, items: { type: boolean } }
        category: { $ref: "#/components/schemas/Category" }
"##;

struct Fixture {
    spec: Spec,
    validator: SpecValidator,
    body: SchemaId,
    thing: Value,
}

fn fixture(text: &str) -> Fixture {
    let spec = portico_spec::load_str(text, LoadOptions::default()).unwrap();
    let (validator, body) = post_body_validator(&spec, "/things");
    let thing = spec.schemas["#/components/schemas/Thing"].0.clone();
    Fixture {
        spec,
        validator,
        body,
        thing,
    }
}

fn resolve<'a>(schema: &'a Value, named: &'a BTreeMap<String, Schema>) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &named[r].0,
        None => schema,
    }
}

/// The non-null type of a schema, and whether `null` is allowed.
fn type_of(schema: &Value) -> (&str, bool) {
    let nullable = schema.get("nullable") == Some(&Value::Bool(true));
    match &schema["type"] {
        Value::String(t) => (t, nullable),
        Value::Array(ts) => {
            let t = ts.iter().filter_map(Value::as_str).find(|t| *t != "null");
            (t.unwrap_or("null"), ts.iter().any(|t| t == "null"))
        }
        _ => ("any", true),
    }
}

fn bound(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

/// Instances valid for `schema` (the subset of keywords the fixtures use).
fn valid(schema: &Value, named: &BTreeMap<String, Schema>) -> BoxedStrategy<Value> {
    let schema = resolve(schema, named).clone();
    let (kind, nullable) = type_of(&schema);
    let strategy = match kind {
        "string" => {
            if let Some(Value::Array(options)) = schema.get("enum") {
                prop::sample::select(options.clone()).boxed()
            } else {
                let min = bound(&schema, "minLength").unwrap_or(0.0) as usize;
                let max = bound(&schema, "maxLength").unwrap_or(16.0) as usize;
                proptest::string::string_regex(&format!("[a-zA-Z0-9 é]{{{min},{max}}}"))
                    .unwrap()
                    .prop_map(Value::String)
                    .boxed()
            }
        }
        "integer" => {
            let min = bound(&schema, "minimum").unwrap_or(-1e6) as i64;
            let max = bound(&schema, "maximum").unwrap_or(1e6) as i64;
            (min..=max).prop_map(|i| json!(i)).boxed()
        }
        "number" => {
            let min = bound(&schema, "minimum")
                .or_else(|| bound(&schema, "exclusiveMinimum"))
                .unwrap_or(-1e6);
            let max = bound(&schema, "maximum").unwrap_or(1e6);
            // Strictly above the minimum: valid whether it is exclusive or not.
            (1u32..=1000)
                .prop_map(move |k| json!(min + (max - min) * f64::from(k) / 1000.0))
                .boxed()
        }
        "boolean" => any::<bool>().prop_map(Value::Bool).boxed(),
        "array" => {
            let item = valid(&schema["items"], named);
            let max = bound(&schema, "maxItems").unwrap_or(5.0) as usize;
            prop::collection::vec(item, 0..=max)
                .prop_map(Value::Array)
                .boxed()
        }
        "object" => {
            let required: Vec<String> = schema["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
            for (name, prop_schema) in schema["properties"].as_object().into_iter().flatten() {
                let value = valid(prop_schema, named);
                let name = name.clone();
                if required.contains(&name) {
                    fields.push(value.prop_map(move |v| Some((name.clone(), v))).boxed());
                } else {
                    fields.push(
                        proptest::option::of(value.prop_map(move |v| (name.clone(), v))).boxed(),
                    );
                }
            }
            fields
                .prop_map(|fields| {
                    Value::Object(fields.into_iter().flatten().collect::<Map<_, _>>())
                })
                .boxed()
        }
        _ => Just(Value::Null).boxed(),
    };
    if nullable && kind != "any" {
        prop_oneof![4 => strategy, 1 => Just(Value::Null)].boxed()
    } else {
        strategy
    }
}

/// Every single change the schema forbids, as (pointer, new instance);
/// `None` as the value removes the property.
fn mutations(
    instance: &Value,
    schema: &Value,
    named: &BTreeMap<String, Schema>,
    pointer: &str,
    out: &mut Vec<(String, Option<Value>)>,
) {
    let schema = resolve(schema, named);
    let (kind, nullable) = type_of(schema);
    let wrong = match kind {
        "string" | "array" | "object" if !nullable => json!(7),
        "string" | "array" | "object" => json!(true),
        _ => json!("seven"),
    };
    out.push((pointer.to_owned(), Some(wrong)));
    if schema.get("enum").is_some() {
        out.push((pointer.to_owned(), Some(json!("lost"))));
    }
    if let Some(max) = bound(schema, "maximum") {
        out.push((pointer.to_owned(), Some(json!(max + 1.0))));
    }
    match (kind, instance) {
        ("object", Value::Object(obj)) => {
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                out.push((format!("{pointer}/{name}"), None));
            }
            for (name, value) in obj {
                let sub = &schema["properties"][name];
                mutations(value, sub, named, &format!("{pointer}/{name}"), out);
            }
        }
        ("array", Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                mutations(
                    item,
                    &schema["items"],
                    named,
                    &format!("{pointer}/{i}"),
                    out,
                );
            }
        }
        _ => {}
    }
}

fn apply(instance: &Value, pointer: &str, change: Option<Value>) -> Value {
    let mut out = instance.clone();
    if pointer.is_empty() {
        return change.unwrap_or(Value::Null);
    }
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let target = out.pointer_mut(parent).unwrap();
    match (target, change) {
        (Value::Object(obj), None) => {
            obj.remove(last);
        }
        (Value::Object(obj), Some(v)) => {
            obj.insert(last.to_owned(), v);
        }
        (Value::Array(items), Some(v)) => items[last.parse::<usize>().unwrap()] = v,
        _ => unreachable!("only object properties are removed"),
    }
    out
}

fn check(fx: &Fixture, instance: &Value) -> Result<(), Rejection> {
    fx.validator
        .check_body(fx.body, instance.to_string().as_bytes())
}

fn property(fx: &Fixture) {
    let named = &fx.spec.schemas;
    let strategy = valid(&fx.thing, named);
    proptest!(ProptestConfig::with_cases(256), |(instance in strategy, pick in any::<prop::sample::Index>())| {
        prop_assert!(check(fx, &instance).is_ok(), "valid instance refused: {instance}");
        let mut all = Vec::new();
        mutations(&instance, &fx.thing, named, "", &mut all);
        let (pointer, change) = all[pick.index(all.len())].clone();
        let removed = change.is_none();
        let mutated = apply(&instance, &pointer, change);
        let refused = check(fx, &mutated);
        prop_assert!(refused.is_err(), "mutation at {pointer} passed: {mutated}");
        let errors = refused.unwrap_err().errors;
        // A removed property is reported on its parent object.
        let at = if removed { pointer.rsplit_once('/').unwrap().0.to_owned() } else { pointer.clone() };
        prop_assert!(
            errors.iter().any(|e| e.pointer == at),
            "no error at {at} for {mutated}: {errors:?}"
        );
    });
}

#[test]
fn generated_instances_pass_and_mutations_fail_3_0() {
    property(&fixture(THING_30));
}

#[test]
fn generated_instances_pass_and_mutations_fail_3_1() {
    property(&fixture(THING_31));
}
