use portico_model::validate::Validator as _;
use portico_spec::LoadOptions;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::schema::Compiled;
use super::super::tape::Scalar;
use super::super::{full_body_errors, post_body_validator};

/// `schema` compiled alone as entry 0 of a document, with `named`
/// schemas under `$defs` for references (`#/$defs/NAME`).
fn compile(schema: &Value, named: &[(&str, Value)], formats: bool) -> Compiled {
    let mut defs = serde_json::Map::new();
    for (name, s) in named {
        defs.insert((*name).to_owned(), s.clone());
    }
    defs.insert("x0".into(), schema.clone());
    let doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": defs,
    });
    Compiled::new(&doc, 1, formats).unwrap()
}

/// The full path's verdict: tape (or `serde_json`) and `jsonschema`.
fn full(compiled: &Compiled, body: &str) -> bool {
    full_body_errors(compiled.validator(0).unwrap(), body.as_bytes()).is_empty()
}

fn quick(compiled: &Compiled, body: &str) -> bool {
    compiled.accepts(0, body.as_bytes())
}

/// Checks one body both ways: the walk must give `expected`, and never
/// accept what the full path refuses.
#[track_caller]
fn assert_walk(compiled: &Compiled, body: &str, expected: bool) {
    let walked = quick(compiled, body);
    assert_eq!(walked, expected, "the walk on {body}");
    if walked {
        assert!(
            full(compiled, body),
            "the walk accepted {body}, which is invalid"
        );
    }
}

#[test]
fn the_benchmark_pet_is_accepted_by_the_walk() {
    let spec = portico_spec::load_str(
        include_str!("../../../../bench/validate/petstore.yaml"),
        LoadOptions::default(),
    )
    .unwrap();
    let (v, id) = post_body_validator(&spec, "/pets");
    let requests = v.requests.as_ref().unwrap();
    let entry = id.0 as usize;
    assert!(requests.quick_covers(entry));
    let pet = include_str!("../../../../bench/validate/pet.json");
    assert!(requests.accepts(entry, pet.as_bytes()));
    // Each format and pattern of the pet is checked (by its leaf).
    for (from, to) in [
        ("https://img.example.com/pets/rex/2.jpg", "not a uri"),
        ("2021-04-17", "2021-02-30"),
        ("ursula@example.org", "ursula"),
        ("+1 (503) 555-0199", "call me"),
        ("\"weight\": 31.5", "\"weight\": 0"),
        ("\"id\": 7", "\"id\": 0"),
        ("\"status\": \"available\"", "\"status\": \"lost\""),
    ] {
        let damaged = pet.replacen(from, to, 1);
        assert!(!requests.accepts(entry, damaged.as_bytes()), "{to}");
        assert!(v.check_body(id, damaged.as_bytes()).is_err(), "{to}");
    }
}

#[test]
fn objects_properties_required_and_additional() {
    let c = compile(
        &json!({
            "type": "object",
            "required": ["a", "d"],
            "properties": { "a": { "type": "string" }, "b": { "type": "integer" } },
            "additionalProperties": { "type": "boolean" }
        }),
        &[],
        true,
    );
    assert_walk(&c, r#"{"a": "x", "d": true}"#, true);
    assert_walk(&c, r#"{"d": false, "b": 2, "a": ""}"#, true);
    // `d` is required but not a property: additionalProperties applies.
    assert_walk(&c, r#"{"a": "x", "d": 1}"#, false);
    assert_walk(&c, r#"{"a": "x"}"#, false);
    assert_walk(&c, r#"{"a": "x", "d": true, "e": "no"}"#, false);
    assert_walk(&c, r#"{"a": "x", "d": true, "b": 1.0}"#, true);
    assert_walk(&c, r#"{"a": "x", "d": true, "b": 1.5}"#, false);
    // An escaped name is the name it decodes to.
    assert_walk(&c, r#"{"\u0061": "x", "d": true}"#, true);
    assert_walk(&c, r#"{"\u0061": 5, "d": true}"#, false);
    assert_walk(&c, "[]", false);
    // Not JSON, or more after the value.
    assert_walk(&c, r#"{"a": "x", "d": true,}"#, false);
    assert_walk(&c, r#"{"a": "x", "d": true} {}"#, false);
    assert_walk(&c, r#"{"a": "x", "d": tru}"#, false);
}

#[test]
fn a_listed_name_is_matched_by_its_quoted_bytes() {
    let prop = super::Prop::new("name", 0, 0);
    let pad = " ".repeat(16);
    let at = |text: &str, at| prop.written_at(format!("{text}{pad}").as_bytes(), at);
    assert_eq!(at("\"name\": 1", 0), Some(6));
    assert_eq!(at("{ \"name\":1", 2), Some(8));
    for other in ["\"names\"", "\"nam\"", "\"Name\"", "\"n\\u0061me\"", "name"] {
        assert_eq!(at(&format!("{other}: 1"), 0), None, "{other}");
    }
    // Fewer than sixteen bytes from the name on: the long way.
    assert_eq!(prop.written_at(b"\"name\": 1}", 0), None);
    // A name too long for sixteen bytes with its quotes, or one that JSON
    // text holds escaped, has no quoted form.
    assert!(super::Quoted::new(&"n".repeat(14)).is_some());
    assert!(super::Quoted::new(&"n".repeat(15)).is_none());
    assert!(super::Quoted::new("a\"b").is_none());
    assert!(super::Quoted::new("tab\there").is_none());
}

#[test]
fn member_names_are_matched_whole_at_every_length() {
    // Around the sixteen bytes a listed name is compared in, quotes
    // included: the name as listed, written with an escape, cut short,
    // and run on; with the text ending soon after the name and not.
    for len in 1..=18 {
        let name: String = ('a'..='z').cycle().take(len).collect();
        let c = compile(
            &json!({
                "type": "object",
                "required": [name],
                "properties": { name.clone(): { "type": "string" } },
                "additionalProperties": { "type": "integer" }
            }),
            &[],
            true,
        );
        let escaped = format!("\\u0061{}", &name[1..]);
        let short = &name[..len - 1];
        for pad in ["", "                    "] {
            assert_walk(&c, &format!(r#"{{"{name}":"x"}}{pad}"#), true);
            assert_walk(&c, &format!(r#"{{"{name}": 1}}{pad}"#), false);
            assert_walk(&c, &format!(r#"{{"{escaped}": "x"}}{pad}"#), true);
            assert_walk(
                &c,
                &format!(r#"{{"{name}x": 1, "{name}": "x"}}{pad}"#),
                true,
            );
            assert_walk(
                &c,
                &format!(r#"{{"{name}x": "x", "{name}": "x"}}{pad}"#),
                false,
            );
            assert_walk(&c, &format!(r#"{{"{short}": "x"}}{pad}"#), false);
            assert_walk(
                &c,
                &format!(r#"{{"{short}": 2, "{name}": "y"}}{pad}"#),
                true,
            );
        }
    }
}

#[test]
fn a_member_named_twice_is_accepted_only_if_both_values_are() {
    let c = compile(
        &json!({ "properties": { "a": { "type": "string" } } }),
        &[],
        true,
    );
    assert_walk(&c, r#"{"a": "x", "a": "y"}"#, true);
    // serde_json keeps the last value, which is valid: the walk gives up,
    // and the full path accepts.
    assert_walk(&c, r#"{"a": 1, "a": "y"}"#, false);
    assert!(full(&c, r#"{"a": 1, "a": "y"}"#));
    assert_walk(&c, r#"{"a": "x", "a": 1}"#, false);
}

#[test]
fn arrays_strings_and_scalars() {
    let c = compile(
        &json!({
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": ["string", "null"],
                "minLength": 2,
                "maxLength": 3,
                "enum": ["ab", "é€x", "a\"b", null]
            }
        }),
        &[],
        true,
    );
    assert_walk(&c, r#"["ab", null]"#, true);
    assert_walk(&c, r#"["é€x"]"#, true);
    assert_walk(&c, r#"["a\"b", "\u00e9\u20acx"]"#, true);
    assert_walk(&c, "[]", false);
    assert_walk(&c, r#"["ab", "ab", "ab", "ab"]"#, false);
    assert_walk(&c, r#"["abc"]"#, false);
    assert_walk(&c, "[true]", false);
    // A raw control character in a string is not JSON.
    assert_walk(&c, "[\"a\u{1}\"]", false);
}

#[test]
fn numbers_are_read_as_serde_json_reads_them() {
    let c = compile(&json!({ "type": "integer" }), &[], true);
    for (body, valid) in [
        ("7", true),
        ("-7", true),
        ("7.0", true),
        ("-0", true),
        ("1e2", true),
        ("7.5", false),
        ("12345678901234567890123", true),
        ("1e400", false),
        ("01", false),
        ("\"7\"", false),
    ] {
        assert_walk(&c, body, valid);
        assert_eq!(full(&c, body), valid, "{body}");
    }
    let c = compile(
        &json!({ "type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5 }),
        &[],
        true,
    );
    assert_walk(&c, "31.5", true);
    assert_walk(&c, "0", false);
    assert_walk(&c, "0.3", false);
}

#[test]
fn formats_are_checked_only_when_enabled() {
    let schema = json!({ "type": "string", "format": "date" });
    assert_walk(&compile(&schema, &[], true), r#""2021-02-30""#, false);
    assert_walk(&compile(&schema, &[], true), r#""2021-02-28""#, true);
    assert_walk(&compile(&schema, &[], false), r#""2021-02-30""#, true);
    // OpenAPI's own formats mean nothing to jsonschema.
    let c = compile(&json!({ "type": "integer", "format": "int32" }), &[], true);
    assert_walk(&c, "99999999999", true);
}

#[test]
fn references_and_recursion() {
    let node = json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": { "type": "string" },
            "children": { "type": "array", "items": { "$ref": "#/$defs/node" } }
        }
    });
    let c = compile(&json!({ "$ref": "#/$defs/node" }), &[("node", node)], true);
    assert_walk(
        &c,
        r#"{"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}"#,
        true,
    );
    assert_walk(
        &c,
        r#"{"name": "a", "children": [{"name": "b", "children": [{}]}]}"#,
        false,
    );
    // Nesting past the reader's limit is left to the full path.
    let deep = format!(
        "{}{}",
        r#"{"name": "a", "children": ["#.repeat(130),
        "]}".repeat(130)
    );
    assert!(!quick(&c, &deep));
}

#[test]
fn keywords_outside_the_set_leave_the_answer_to_the_full_path() {
    for schema in [
        json!({ "allOf": [{ "type": "string" }] }),
        json!({ "type": "object", "patternProperties": { "^x": {} } }),
        json!({ "type": "array", "uniqueItems": true }),
        json!({ "$ref": "#/$defs/s", "type": "object" }),
    ] {
        let c = compile(&schema, &[("s", json!({}))], true);
        assert!(!c.quick_covers(0), "{schema}");
        assert!(!quick(&c, "\"x\""));
    }
    // Reached only where an instance goes there.
    let c = compile(
        &json!({ "properties": { "a": { "anyOf": [{ "type": "string" }] }, "b": false } }),
        &[],
        true,
    );
    assert!(c.quick_covers(0));
    assert_walk(&c, r#"{"c": 1}"#, true);
    assert_walk(&c, r#"{"a": "x"}"#, false);
    assert!(full(&c, r#"{"a": "x"}"#));
    assert_walk(&c, r#"{"b": 1}"#, false);
}

// Generated schemas of the handled keywords, and JSON texts made of the
// same names and values, so that many match: the walk must agree with the
// full path on every text that names no member twice, and never accept
// one the full path refuses.

const NAMES: &[&str] = &["a", "b", "é", "a\"b"];

fn names() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_owned)
}

fn scalar_schema() -> impl Strategy<Value = Value> {
    let string = (
        prop::option::of(0u64..3),
        prop::option::of(1u64..5),
        prop::option::of(prop::sample::subsequence(
            vec![json!("a"), json!("é"), json!("a\"b"), json!(null)],
            1..3,
        )),
        prop::option::of(prop::sample::select(vec!["uri", "date", "email", "int32"])),
        prop::option::of(Just("^[ab]+$")),
        any::<bool>(),
    )
        .prop_map(|(min, max, choices, format, pattern, nullable)| {
            let mut s = json!({ "type": if nullable { json!(["string", "null"]) } else { json!("string") } });
            if let Some(min) = min {
                s["minLength"] = json!(min);
            }
            if let Some(max) = max {
                s["maxLength"] = json!(max);
            }
            if let Some(choices) = choices {
                s["enum"] = Value::Array(choices);
            }
            if let Some(format) = format {
                s["format"] = json!(format);
            }
            if let Some(pattern) = pattern {
                s["pattern"] = json!(pattern);
            }
            s
        });
    let number = (
        prop::sample::select(vec!["integer", "number"]),
        prop::option::of(prop::sample::select(vec![json!(0), json!(-1), json!(1.5)])),
        prop::option::of(prop::sample::select(vec![json!(2), json!(1e20)])),
        prop::option::of(prop::sample::select(vec![json!(0.5), json!(2)])),
        prop::option::of(prop::sample::select(vec![json!(1), json!(-0.5)])),
        prop::option::of(prop::sample::select(vec![
            json!(3),
            json!(9_007_199_254_740_993u64),
        ])),
    )
        .prop_map(|(kind, min, max, multiple, inclusive_min, exclusive_max)| {
            let mut s = json!({ "type": kind });
            if let Some(b) = inclusive_min {
                s["minimum"] = b;
            }
            if let Some(b) = exclusive_max {
                s["exclusiveMaximum"] = b;
            }
            if let Some(min) = min {
                s["exclusiveMinimum"] = min;
            }
            if let Some(max) = max {
                s["maximum"] = max;
            }
            if let Some(multiple) = multiple {
                s["multipleOf"] = multiple;
            }
            s
        });
    prop_oneof![
        string,
        number,
        Just(json!({})),
        Just(json!(true)),
        Just(json!({ "type": "boolean" })),
        Just(json!({ "type": "null" })),
        Just(json!({ "const": 1 })),
        Just(json!({ "enum": [1, 2.5, "a", true] })),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    scalar_schema().prop_recursive(3, 24, 4, |inner| {
        let object = (
            any::<bool>(),
            prop::collection::btree_map(names(), inner.clone(), 0..4),
            prop::collection::btree_set(prop::sample::select(vec!["a", "b", "é", "z"]), 0..3),
            prop::option::of(prop_oneof![Just(json!(false)), inner.clone()]),
        )
            .prop_map(|(typed, props, required, additional)| {
                let mut s = json!({ "properties": props, "required": required });
                if typed {
                    s["type"] = json!("object");
                }
                if let Some(additional) = additional {
                    s["additionalProperties"] = additional;
                }
                s
            });
        let array = (
            any::<bool>(),
            inner,
            prop::option::of(0u64..2),
            prop::option::of(1u64..4),
        )
            .prop_map(|(typed, items, min, max)| {
                let mut s = json!({ "items": items });
                if typed {
                    s["type"] = json!("array");
                }
                if let Some(min) = min {
                    s["minItems"] = json!(min);
                }
                if let Some(max) = max {
                    s["maxItems"] = json!(max);
                }
                s
            });
        prop_oneof![object, array]
    })
}

fn text() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "1.0",
        "2.5",
        "1e3",
        "-0",
        "3",
        "12345678901234567890123",
        "9007199254740993",
        "-9007199254740993",
        "2.9999999999999999",
        "1e400",
        "\"a\"",
        "\"ab\"",
        "\"é\"",
        "\"\"",
        "\"a\\\"b\"",
        "\"\\u00e9\"",
        "\"https://x.org/a\"",
        "\"2021-04-17\"",
        "\"u@example.org\"",
        "\"abab\"",
        "\"a\\nb\"",
        "tru",
        "\"\\ud800\"",
    ])
    .prop_map(str::to_owned);
    leaf.prop_recursive(3, 24, 4, |inner| {
        let name = prop::sample::select(vec![
            "\"a\"",
            "\"b\"",
            "\"é\"",
            "\"a\\\"b\"",
            "\"\\u0061\"",
            "\"z\"",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((name, inner), 0..4).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(n, v)| format!("{n}: {v}")).collect();
                format!("{{\n  {}\n}}", members.join(",\n  "))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_walk_agrees_with_the_full_path(schema in schema(), body in text()) {
        let c = compile(&schema, &[], true);
        let walked = quick(&c, &body);
        let verdict = full(&c, &body);
        prop_assert!(!walked || verdict, "the walk accepted {body} against {schema}");
        // Without repeated names (where serde_json keeps the last value)
        // and `false` schemas (which stop the walk), it decides alone.
        // A decoded parameter is checked by the same nodes.
        if let Ok(value) = serde_json::from_str::<Value>(&body)
            && !value.is_array()
            && !value.is_object()
        {
            let scalar = match &value {
                Value::String(s) => Scalar::Str(s),
                Value::Number(n) => Scalar::Number(n.clone()),
                Value::Bool(b) => Scalar::Bool(*b),
                _ => Scalar::Null,
            };
            prop_assert_eq!(c.accepts_scalar(0, scalar), walked, "{} against {}", body, schema);
        }
        let repeats = super::super::tape::Doc::parse(&body).is_none();
        let has_false = schema.to_string().contains("false");
        if !repeats && !has_false {
            prop_assert_eq!(walked, verdict, "{} against {}", body, schema);
        }
    }
}

#[test]
fn the_fuzz_check_holds_on_its_seeds_and_their_prefixes() {
    for seed in [
        include_bytes!("../../../../fuzz/seeds/json_body/pet.json").as_slice(),
        include_bytes!("../../../../fuzz/seeds/json_body/escapes.json"),
        include_bytes!("../../../../fuzz/seeds/json_body/repeated.json"),
        br#"{"name": "Rex", "tags": [{}, {"a": 1}], "status": null, "extra": {"x": true}}"#,
    ] {
        for end in 0..=seed.len() {
            super::super::fuzz_json(&seed[..end]);
        }
    }
}
