use serde_json::json;

use super::value_for;
use crate::{LoadOptions, Spec, load_str};

fn spec(version: &str, schemas: serde_json::Value) -> Spec {
    let doc = json!({
        "openapi": version,
        "info": { "title": "t", "version": "1" },
        "paths": {},
        "components": { "schemas": schemas },
    });
    load_str(&doc.to_string(), LoadOptions::default()).unwrap()
}

fn make(spec: &Spec, schema: serde_json::Value) -> Option<serde_json::Value> {
    value_for(spec, &schema)
}

#[test]
fn stated_values_win() {
    let s = spec("3.1.0", json!({}));
    assert_eq!(
        make(&s, json!({"type": "string", "example": "x"})),
        Some(json!("x"))
    );
    assert_eq!(
        make(&s, json!({"type": "string", "examples": ["y", "z"]})),
        Some(json!("y"))
    );
    assert_eq!(
        make(&s, json!({"type": "integer", "default": 7})),
        Some(json!(7))
    );
    assert_eq!(make(&s, json!({"const": "c"})), Some(json!("c")));
    assert_eq!(
        make(&s, json!({"type": "string", "enum": ["b", "a"]})),
        Some(json!("b"))
    );
}

#[test]
fn types_and_formats() {
    let s = spec("3.1.0", json!({}));
    let v = make(
        &s,
        json!({
            "type": "object",
            "required": ["id", "when"],
            "properties": {
                "id": { "type": "string", "format": "uuid" },
                "when": { "type": "string", "format": "date-time" },
                "mail": { "type": "string", "format": "email" },
                "n": { "type": "integer", "minimum": 10, "maximum": 20 },
                "x": { "type": "number", "exclusiveMinimum": 0, "multipleOf": 0.25 },
                "ok": { "type": "boolean" },
                "tags": { "type": "array", "items": { "type": "string", "minLength": 8 } },
                "maybe": { "type": ["null", "integer"] },
                "secret": { "type": "string", "writeOnly": true },
                "short": { "type": "string", "maxLength": 3 }
            }
        }),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({
            "id": "00000000-0000-4000-8000-000000000000",
            "when": "2024-01-01T00:00:00Z",
            "mail": "user@example.com",
            "n": 10,
            "x": 0.25,
            "ok": true,
            "tags": ["stringxx"],
            "maybe": 1,
            "short": "str"
        })
    );
}

#[test]
fn open_api_3_0_boolean_exclusive_bounds() {
    let s = spec("3.0.3", json!({}));
    assert_eq!(
        make(
            &s,
            json!({"type": "integer", "minimum": 5, "exclusiveMinimum": true})
        ),
        Some(json!(6))
    );
    assert_eq!(
        make(
            &s,
            json!({"type": "integer", "maximum": -3, "multipleOf": 2})
        ),
        Some(json!(-4))
    );
}

#[test]
fn references_compositions_and_arrays() {
    let s = spec(
        "3.1.0",
        json!({
            "Named": { "type": "object", "required": ["name"], "properties": { "name": { "type": "string" } } },
            "Pet": {
                "allOf": [
                    { "$ref": "#/components/schemas/Named" },
                    { "type": "object", "properties": { "age": { "type": "integer", "minimum": 0 } } }
                ]
            },
            "Either": { "oneOf": [ { "$ref": "#/components/schemas/Pet" }, { "type": "string" } ] }
        }),
    );
    let v = make(
        &s,
        json!({ "type": "array", "minItems": 2, "items": { "$ref": "#/components/schemas/Either" } }),
    )
    .unwrap();
    assert_eq!(
        v,
        json!([{ "name": "string", "age": 0 }, { "name": "string", "age": 0 }])
    );
    assert_eq!(
        make(&s, json!({ "type": "array", "maxItems": 0, "items": {} })),
        Some(json!([]))
    );
}

#[test]
fn recursion_is_bounded() {
    let s = spec(
        "3.1.0",
        json!({
            "Node": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": { "type": "string" },
                    "parent": { "$ref": "#/components/schemas/Node" },
                    "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } }
                }
            },
            "Endless": {
                "type": "object",
                "required": ["next"],
                "properties": { "next": { "$ref": "#/components/schemas/Endless" } }
            }
        }),
    );
    let v = make(&s, json!({ "$ref": "#/components/schemas/Node" })).unwrap();
    assert_eq!(
        v,
        json!({
            "name": "string",
            "parent": { "name": "string" },
            "children": [{ "name": "string" }]
        })
    );
    assert_eq!(
        make(&s, json!({ "$ref": "#/components/schemas/Endless" })),
        None
    );
}

#[test]
fn sizes_are_bounded() {
    // Each level refers to the next twice: 2^40 values unbounded.
    let mut schemas = serde_json::Map::new();
    for i in 0..40 {
        let next = json!({ "$ref": format!("#/components/schemas/L{}", i + 1) });
        schemas.insert(
            format!("L{i}"),
            json!({ "type": "object", "required": ["a", "b"], "properties": { "a": next, "b": next } }),
        );
    }
    schemas.insert("L40".into(), json!({ "type": "string" }));
    let s = spec("3.1.0", serde_json::Value::Object(schemas));
    let v = make(&s, json!({ "$ref": "#/components/schemas/L0" }));
    assert!(v.is_none(), "gave up rather than make 2^40 values");

    let v = make(
        &s,
        json!({ "type": "array", "minItems": 1000000000u64, "items": { "type": "string", "minLength": 1000000000u64 } }),
    )
    .unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 64);
    assert_eq!(items[0].as_str().unwrap().len(), 1024);
}
