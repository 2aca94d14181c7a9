use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Doc, Tape};

use super::assert_reads_as_serde_json as agrees;

#[test]
fn reads_what_serde_json_reads() {
    for text in [
        "0",
        "-0",
        "1.0",
        "1e2",
        "-1.5E-3",
        "9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
        "0.1",
        "31.5",
        "-0.0",
        "-12.750",
        // Decimals at the edges of the quick reading (digits up to 2^53,
        // up to 22 after the point) and just past them.
        "9007199254740.992",
        "9007199254740.993",
        "0.0000000000000000000001",
        "0.00000000000000000000001",
        "4503599627370495.5",
        "2.2250738585072011e-308",
        r#""plain""#,
        r#""caf\u00e9 \"q\" \\ \/ \b\f\n\r\t""#,
        r#""\ud83e\udd80 crab""#,
        r#""é and 🦀 raw""#,
        " [ 1 , [ ] , { } , true , false , null ] ",
        r#"{"a": {"b": [1, {"c": "d"}]}, "e": null}"#,
        r#"{"a\u0062": 1, "ab\u0063": 2}"#,
    ] {
        assert!(Doc::parse(text).is_some(), "{text:?} is read");
        agrees(text);
    }
}

#[test]
fn refuses_what_serde_json_refuses() {
    for text in [
        "",
        "   ",
        "nul",
        "truex",
        "[01]",
        "01",
        "[1,]",
        "[1 2]",
        "{,}",
        r#"{"a" 1}"#,
        r#"{"a":1,}"#,
        r#"{a:1}"#,
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "+1",
        "1e400",
        "\"\t\"",
        "\"open",
        r#""\x""#,
        r#""\u12""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud800\u0041""#,
        "[1] [2]",
        "{\"a\":1}}",
    ] {
        assert!(Doc::parse(text).is_none(), "{text:?} is refused");
        agrees(text);
    }
}

#[test]
fn leaves_repeated_names_and_deep_nesting_to_serde_json() {
    // serde_json keeps the last value; the reader declines.
    assert!(Doc::parse(r#"{"a": 1, "a": 2}"#).is_none());
    assert!(Doc::parse(r#"{"a": 1, "\u0061": 2}"#).is_none());
    let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
    let unique = format!("{{{}}}", many.join(","));
    assert!(Doc::parse(&unique).is_some());
    let repeated = format!("{{{}, \"k7\": 0}}", many.join(","));
    assert!(Doc::parse(&repeated).is_none());
    // Names alike in length and first bytes are still told apart.
    let long_a = format!("{}a", "n".repeat(256));
    let long_b = format!("{}b", "n".repeat(256));
    for (a, b) in [
        ("abcdefgh1", "abcdefgh2"),
        ("abcdefg", "abcdefh"),
        (&*long_a, &*long_b),
    ] {
        let text = format!("{{\"{a}\": 1, \"{b}\": 2}}");
        let doc = Doc::parse(&text).expect("different names");
        let root = doc.root();
        let object = jsonschema::json::Node::as_object(&root).unwrap();
        let get = |name: &str| {
            let key = <Tape as jsonschema::json::Json>::prepare_key(name);
            jsonschema::json::Object::get(&object, &key).map(|n| n.at)
        };
        assert_eq!((get(a), get(b)), (Some(2), Some(4)), "{a} / {b}");
        assert_eq!(get(&a[..a.len() - 1]), None);
    }
    // The same name in two different objects is no repeat.
    assert!(Doc::parse(r#"{"a": {"a": 1}, "b": {"a": 2}}"#).is_some());

    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(Doc::parse(&nested(100)).is_some());
    agrees(&nested(100));
    assert!(Doc::parse(&nested(200)).is_none());
    assert!(serde_json::from_str::<Value>(&nested(200)).is_err());
}

#[test]
fn a_tape_from_a_value_gives_the_value_back() {
    let value = json!({"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}, "d": []});
    assert_eq!(Doc::from_value(&value).to_value(0), value);
    let lone = json!("borrowed, \"not\" copied");
    assert_eq!(Doc::from_value(&lone).to_value(0), lone);
}

/// JSON values, a few levels deep, with names that repeat across objects.
fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-d\\\\\"é]{0,3}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn written_values_read_back_as_serde_json_reads_them(value in values()) {
        let compact = serde_json::to_string(&value).unwrap();
        prop_assert!(Doc::parse(&compact).is_some());
        agrees(&compact);
        agrees(&serde_json::to_string_pretty(&value).unwrap());
    }

    /// Decimals as people write them, trailing zeros and all: read as
    /// `serde_json` reads them, to the bit.
    #[test]
    fn decimals_read_as_serde_json_reads_them(text in "-?(0|[1-9][0-9]{0,17})\\.[0-9]{1,24}") {
        prop_assert!(Doc::parse(&text).is_some());
        agrees(&text);
    }

    /// Damaged documents: whatever the reader accepts, serde_json reads
    /// the same way.
    #[test]
    fn damaged_text_never_reads_differently(
        value in values(),
        cut in any::<prop::sample::Index>(),
        byte in prop::sample::select(&b"{}[],:\"\\ 0-.eE+tfnu"[..]),
    ) {
        let text = serde_json::to_string(&value).unwrap();
        let at = cut.index(text.len() + 1);
        let mut damaged = text.as_bytes().to_vec();
        damaged.insert(at, byte);
        if let Ok(damaged) = String::from_utf8(damaged) {
            agrees(&damaged);
        }
        agrees(&text[..text.floor_char_boundary(at)]);
    }
}

/// A schema with keywords whose checks read the value in different ways
/// (lookups, member passes, equality, uniqueness, formats, patterns).
fn keywords_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "tags"],
        "minProperties": 2,
        "maxProperties": 6,
        "properties": {
            "id": {"type": "integer", "minimum": 1, "multipleOf": 1},
            "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-zé]+$"},
            "kind": {"enum": ["cat", "dog", 3, null, {"x": 1}]},
            "tags": {"type": "array", "uniqueItems": true, "items": {"type": ["string", "number"]}},
            "mail": {"type": "string", "format": "email"},
            "fixed": {"const": [1, "a"]},
            "any": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
        },
        "patternProperties": {"^x-": {"type": "boolean"}},
        "propertyNames": {"maxLength": 8},
        "additionalProperties": false
    })
}

fn instances() -> impl Strategy<Value = Value> {
    let member = prop_oneof![
        (0i64..4).prop_map(|i| ("id".to_owned(), json!(i))),
        Just(("id".to_owned(), json!(2.0))),
        prop::sample::select(vec!["ab", "é", "abcdef", "AB", "abé"])
            .prop_map(|s| ("name".to_owned(), json!(s))),
        prop::sample::select(vec![
            json!("cat"),
            json!("cow"),
            json!(3),
            json!(3.0),
            json!(null),
            json!({"x": 1}),
            json!({"x": 1.0}),
            json!({"x": 2})
        ])
        .prop_map(|v| ("kind".to_owned(), v)),
        prop::sample::select(vec![
            json!([]),
            json!(["a", "b"]),
            json!(["a", "a"]),
            json!([1, 1.0]),
            json!([1, true])
        ])
        .prop_map(|v| ("tags".to_owned(), v)),
        prop::sample::select(vec!["a@b.io", "not mail"])
            .prop_map(|s| ("mail".to_owned(), json!(s))),
        prop::sample::select(vec![json!([1, "a"]), json!([1.0, "a"]), json!([1, "b"])])
            .prop_map(|v| ("fixed".to_owned(), v)),
        prop::sample::select(vec![json!("s"), json!(4), json!(4.5)])
            .prop_map(|v| ("any".to_owned(), v)),
        prop::sample::select(vec![json!(true), json!(1)]).prop_map(|v| ("x-flag".to_owned(), v)),
        Just(("unknown".to_owned(), json!(1))),
        Just(("very-long-name".to_owned(), json!(1))),
    ];
    prop::collection::vec(member, 0..8)
        .prop_map(|members| Value::Object(members.into_iter().collect()))
}

proptest! {
    /// The same schema compiled for both representations gives the same
    /// verdict and the same errors.
    #[test]
    fn validates_as_the_serde_json_representation(instance in instances()) {
        let schema = keywords_schema();
        let options = || jsonschema::options_for::<Tape>()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true);
        let ours = options().build(&schema).unwrap();
        let theirs = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        let text = serde_json::to_string(&instance).unwrap();
        let doc = Doc::parse(&text).unwrap();
        prop_assert_eq!(ours.is_valid(doc.root()), theirs.is_valid(&instance));
        let describe = |e: jsonschema::ValidationError<'_>| {
            (e.instance_path().as_str().to_owned(), e.kind().keyword().to_owned(), e.to_string())
        };
        let our_errors: Vec<_> = ours.iter_errors(doc.root()).map(describe).collect();
        let their_errors: Vec<_> = theirs.iter_errors(&instance).map(describe).collect();
        prop_assert_eq!(our_errors, their_errors);
    }
}

#[test]
fn word_scans_stop_at_the_first_byte_that_ends_a_run() {
    for filler in ["a", "é", "\u{7f}", "🦀", "~"] {
        for n in 0..20 {
            let run = filler.repeat(n);
            for stop in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
                for tail in ["", "x", "\"\"\"\"\"\"\"\"\"\""] {
                    let text = format!("{run}{stop}{tail}");
                    assert_eq!(super::plain_run(text.as_bytes(), 0), run.len(), "{text:?}");
                }
            }
            assert_eq!(super::plain_run(run.as_bytes(), 0), run.len());
        }
    }
    for n in 0..20 {
        for next in ["", "x", "\n", "\u{21}", "\u{1f}"] {
            let text = format!("{}{next}x ", " ".repeat(n));
            assert_eq!(super::space_run(text.as_bytes(), 0), n, "{text:?}");
        }
    }
}

#[test]
fn a_fingerprint_read_in_place_is_the_fingerprint() {
    let text = "a\"photoUrls\":é{}0123456789abcdefghijk";
    let bytes = text.as_bytes();
    for start in 0..bytes.len() {
        for end in start..=bytes.len() {
            assert_eq!(
                super::fingerprint_at(bytes, start, end),
                super::fingerprint(&bytes[start..end]),
                "{start}..{end}"
            );
        }
    }
}

#[test]
fn whitespace_is_skipped_in_every_mix() {
    for text in [
        "",
        "x",
        " x",
        "\n    x",
        "\t\r\n x",
        "         \n\n        x",
        "   ",
        "  x",
        " \n x",
        "  \t  \r\n\t         x",
        " ",
        " \n",
    ] {
        let want = text
            .find(|c: char| !c.is_ascii_whitespace())
            .unwrap_or(text.len());
        assert_eq!(super::skip_space(text.as_bytes(), 0), want, "{text:?}");
    }
}
