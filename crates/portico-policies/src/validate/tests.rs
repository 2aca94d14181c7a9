use std::path::Path;

use http::Request;
use portico_model::OperationTableBuilder;
use portico_model::validate::{BodyCheck, ResponseMode};

use super::*;

fn fixture(name: &str) -> Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portico-spec/tests/fixtures")
        .join(name);
    portico_spec::load_file(&path).unwrap()
}

fn validator(spec: &Spec, response: ResponseMode) -> SpecValidator {
    let settings = Unbound {
        request: true,
        response,
        max_body: DEFAULT_MAX_BODY,
        formats: true,
    };
    SpecValidator::compile(&settings, spec).unwrap()
}

fn op(spec: &Spec, id: &str) -> ApiOperation {
    let mut b = OperationTableBuilder::new();
    for o in &spec.operations {
        b.insert(&o.path, o.method.clone(), o.operation_id.as_deref())
            .unwrap();
    }
    let table = b.build();
    let index = spec
        .operations
        .iter()
        .position(|o| o.operation_id.as_deref() == Some(id))
        .unwrap();
    table.get(index as u32).unwrap().clone()
}

fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(()).unwrap().into_parts().0
}

/// The keywords and places of a refusal, for compact assertions.
fn shape(r: &Rejection) -> Vec<(String, String, String)> {
    r.errors
        .iter()
        .map(|e| {
            (
                format!(
                    "{}{}",
                    e.place,
                    e.name.as_ref().map_or(String::new(), |n| format!(":{n}"))
                ),
                e.pointer.clone(),
                e.keyword.clone(),
            )
        })
        .collect()
}

fn t(place: &str, pointer: &str, keyword: &str) -> (String, String, String) {
    (place.into(), pointer.into(), keyword.into())
}

#[test]
fn petstore_parameters_are_decoded_and_checked() {
    let spec = fixture("petstore-3.0.yaml");
    let v = validator(&spec, ResponseMode::Off);
    let list = op(&spec, "listPets");
    let ok = head("GET", "/pets?limit=99&tags=a,b", &[]);
    assert_eq!(
        v.check_head(&list, "/pets", &ok, false).unwrap(),
        BodyCheck::Stream
    );
    // 3.0's boolean exclusiveMaximum: 100 itself is out.
    let bad = head("GET", "/pets?limit=100", &[]);
    let r = v.check_head(&list, "/pets", &bad, false).unwrap_err();
    assert_eq!(r.code, ErrorCode::ValidationFailed);
    assert_eq!(shape(&r), vec![t("query:limit", "", "exclusiveMaximum")]);
    let bad = head("GET", "/pets?limit=ten", &[]);
    let r = v.check_head(&list, "/pets", &bad, false).unwrap_err();
    assert_eq!(shape(&r), vec![t("query:limit", "", "type")]);

    let show = op(&spec, "showPet");
    let ok = head("GET", "/pets/7", &[]);
    v.check_head(&show, "/pets/7", &ok, false).unwrap();
    let bad = head("GET", "/pets/0", &[]);
    let r = v.check_head(&show, "/pets/0", &bad, false).unwrap_err();
    assert_eq!(shape(&r), vec![t("path:petId", "", "minimum")]);
}

#[test]
fn petstore_bodies_list_every_error() {
    let spec = fixture("petstore-3.0.yaml");
    let v = validator(&spec, ResponseMode::Off);
    let create = op(&spec, "createPet");
    let json = [("content-type", "application/json; charset=utf-8")];
    let BodyCheck::Json(schema) = v
        .check_head(&create, "/pets", &head("POST", "/pets", &json), true)
        .unwrap()
    else {
        panic!("a JSON body is checked");
    };
    v.check_body(schema, br#"{"name":"Rex","tag":null}"#)
        .unwrap();
    v.check_body(schema, br#"{"name":"Rex","parent":{"id":1,"name":"Mum"}}"#)
        .unwrap();
    let r = v
        .check_body(schema, br#"{"name":"","tag":5,"parent":{"name":"Mum"}}"#)
        .unwrap_err();
    let mut got = shape(&r);
    got.sort();
    assert_eq!(
        got,
        vec![
            t("body", "/name", "minLength"),
            t("body", "/parent", "required"),
            t("body", "/tag", "type"),
        ]
    );
    let r = v.check_body(schema, b"{not json").unwrap_err();
    assert_eq!(shape(&r), vec![t("body", "", "json")]);

    // A required body that is missing; a media type the operation lacks.
    let r = v
        .check_head(&create, "/pets", &head("POST", "/pets", &json), false)
        .unwrap_err();
    assert_eq!(shape(&r), vec![t("body", "", "required")]);
    let text = [("content-type", "text/plain")];
    let r = v
        .check_head(&create, "/pets", &head("POST", "/pets", &text), true)
        .unwrap_err();
    assert_eq!(r.code, ErrorCode::UnsupportedMediaType);
    let r = v
        .check_head(&create, "/pets", &head("POST", "/pets", &[]), true)
        .unwrap_err();
    assert_eq!(r.code, ErrorCode::UnsupportedMediaType);
}

#[test]
fn library_3_1_deep_objects_paths_and_siblings() {
    let spec = fixture("library-3.1.json");
    let v = validator(&spec, ResponseMode::Report);
    let list = op(&spec, "listBooks");
    let ok = head(
        "GET",
        "/books?filter[author]=Le%20Guin&filter[year]=1969",
        &[],
    );
    v.check_head(&list, "/books", &ok, false).unwrap();

    let chapter = op(&spec, "chapter");
    let rest = "/books/978-0-441-01340/chapters/3";
    v.check_head(&chapter, rest, &head("GET", rest, &[]), false)
        .unwrap();
    let rest = "/books/xyz/chapters/0";
    let r = v
        .check_head(&chapter, rest, &head("GET", rest, &[]), false)
        .unwrap_err();
    let mut got = shape(&r);
    got.sort();
    assert_eq!(
        got,
        vec![
            t("path:isbn", "", "pattern"),
            t("path:n", "", "exclusiveMinimum")
        ]
    );

    let add = op(&spec, "addBook");
    let json = [("content-type", "application/json")];
    let BodyCheck::Json(schema) = v
        .check_head(&add, "/books", &head("POST", "/books", &json), true)
        .unwrap()
    else {
        panic!("a JSON body is checked");
    };
    v.check_body(
        schema,
        br#"{"isbn":"1","title":"A","subtitle":null,"$ref":"x","series":{"isbn":"2","title":"B"}}"#,
    )
    .unwrap();
    let r = v
        .check_body(schema, br#"{"isbn":"1","title":"A","series":{"isbn":2}}"#)
        .unwrap_err();
    let mut got = shape(&r);
    got.sort();
    assert_eq!(
        got,
        vec![
            t("body", "/series", "required"),
            t("body", "/series/isbn", "type")
        ]
    );
}

#[test]
fn responses_are_matched_by_status_range_and_default() {
    let spec = fixture("petstore-3.0.yaml");
    let v = validator(&spec, ResponseMode::Enforce);
    let show = op(&spec, "showPet");
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
    let ok = v.response_schema(&show, 200, &h).unwrap();
    assert!(v.check_response(ok, br#"{"id":1,"name":"Rex"}"#).is_empty());
    let errors = v.check_response(ok, br#"{"name":"Rex"}"#);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].keyword, "required");
    // 404 falls under 4XX, whose media type is problem+json.
    h.insert(CONTENT_TYPE, "application/problem+json".parse().unwrap());
    let problem = v.response_schema(&show, 404, &h).unwrap();
    assert!(v.check_response(problem, br#"{"status":404}"#).is_empty());
    assert!(!v.check_response(problem, br#"{"status":"x"}"#).is_empty());
    // No 5XX or default response: nothing to check.
    assert!(v.response_schema(&show, 500, &h).is_none());
    // The list's `default` covers any status.
    let list = op(&spec, "listPets");
    assert!(v.response_schema(&list, 503, &h).is_some());
    // Not JSON: not checked.
    h.insert(CONTENT_TYPE, "text/html".parse().unwrap());
    assert!(v.response_schema(&show, 200, &h).is_none());
}

#[test]
fn settings_are_checked() {
    let build = |yaml: &str| {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        super::build(value).map(|p| p.name())
    };
    assert_eq!(build("{}").unwrap(), "validate");
    assert_eq!(
        build("{ request: true, response: enforce, max_body: 64KiB, formats: false }").unwrap(),
        "validate"
    );
    let e = build("{ response: sometimes }").unwrap_err().to_string();
    assert!(e.contains("`enforce`"), "{e}");
    let e = build("{ body: true }").unwrap_err().to_string();
    assert!(e.contains("unknown field"), "{e}");
    let e = build("{ request: false }").unwrap_err().to_string();
    assert!(e.contains("checks nothing"), "{e}");
    let e = build("{ max_body: 0B }").unwrap_err().to_string();
    assert!(e.contains("max_body"), "{e}");
}

#[test]
fn media_types_match_most_specific_first() {
    let patterns = [
        "*/*",
        "application/*",
        "application/*+json",
        "application/json",
    ];
    let best = |actual: &str| best_match(patterns.iter().copied(), actual).map(|i| patterns[i]);
    assert_eq!(best("application/json"), Some("application/json"));
    assert_eq!(
        best("application/merge-patch+json"),
        Some("application/*+json")
    );
    assert_eq!(best("application/xml"), Some("application/*"));
    assert_eq!(best("text/plain"), Some("*/*"));
    assert_eq!(
        best_match(["application/json"].into_iter(), "text/plain"),
        None
    );
}

mod styles {
    use std::collections::BTreeMap;

    use http::HeaderMap;
    use portico_spec::{Parameter, ParameterIn, Schema, Style};
    use serde_json::{Value, json};

    use super::super::params::{Decoder, Raw, scalar, template};

    fn decoder(location: ParameterIn, style: Style, explode: bool, schema: Value) -> Decoder {
        let p = Parameter {
            name: "p".into(),
            location,
            required: false,
            style,
            explode,
            allow_empty_value: false,
            deprecated: false,
            schema: Some(Schema(schema)),
            content_type: None,
        };
        Decoder::new(&p, &BTreeMap::new())
    }

    fn path(style: Style, explode: bool, schema: Value, raw: &str) -> Option<Value> {
        let d = decoder(ParameterIn::Path, style, explode, schema);
        let segments = template("/x/{p}");
        let rest = format!("/x/{raw}");
        let headers = HeaderMap::new();
        d.extract(&Raw::new(&segments, &rest, None, &headers))
    }

    fn query(style: Style, explode: bool, schema: Value, q: &str) -> Option<Value> {
        let d = decoder(ParameterIn::Query, style, explode, schema);
        let headers = HeaderMap::new();
        d.extract(&Raw::new(&[], "/", Some(q), &headers))
    }

    fn ints() -> Value {
        json!({ "type": "array", "items": { "type": "integer" } })
    }

    fn obj() -> Value {
        json!({ "type": "object", "properties": { "r": { "type": "integer" }, "g": { "type": "string" } } })
    }

    #[test]
    fn path_styles() {
        let int = json!({ "type": "integer" });
        assert_eq!(path(Style::Simple, false, int.clone(), "5"), Some(json!(5)));
        assert_eq!(path(Style::Simple, false, int, "five"), Some(json!("five")));
        assert_eq!(
            path(Style::Simple, false, ints(), "3,4,5"),
            Some(json!([3, 4, 5]))
        );
        assert_eq!(
            path(Style::Simple, false, obj(), "r,100,g,x"),
            Some(json!({ "r": 100, "g": "x" }))
        );
        assert_eq!(
            path(Style::Simple, true, obj(), "r=100,g=x"),
            Some(json!({ "r": 100, "g": "x" }))
        );
        assert_eq!(
            path(Style::Label, false, ints(), ".3,4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            path(Style::Label, true, ints(), ".3.4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            path(Style::Matrix, false, ints(), ";p=3,4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            path(Style::Matrix, true, ints(), ";p=3;p=4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            path(Style::Matrix, true, obj(), ";r=1;g=y"),
            Some(json!({ "r": 1, "g": "y" }))
        );
        // Percent-encoded values are decoded.
        let s = json!({ "type": "string" });
        assert_eq!(path(Style::Simple, false, s, "a%20b"), Some(json!("a b")));
    }

    #[test]
    fn query_styles() {
        assert_eq!(
            query(Style::Form, true, ints(), "p=3&q=x&p=4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            query(Style::Form, false, ints(), "p=3,4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            query(Style::SpaceDelimited, false, ints(), "p=3%204"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            query(Style::PipeDelimited, false, ints(), "p=3|4"),
            Some(json!([3, 4]))
        );
        assert_eq!(
            query(Style::DeepObject, true, obj(), "p[r]=1&p[g]=a+b&other=1"),
            Some(json!({ "r": 1, "g": "a b" }))
        );
        assert_eq!(
            query(Style::Form, true, obj(), "r=1&g=x&z=2"),
            Some(json!({ "r": 1, "g": "x" }))
        );
        assert_eq!(query(Style::Form, true, ints(), "q=1"), None);
        let b = json!({ "type": "boolean" });
        assert_eq!(
            query(Style::Form, true, b.clone(), "p=true"),
            Some(json!(true))
        );
        assert_eq!(query(Style::Form, true, b, "p=yes"), Some(json!("yes")));
        assert_eq!(
            query(Style::Form, true, json!({ "type": "string" }), "p="),
            Some(json!(""))
        );
    }

    #[test]
    fn headers_and_cookies() {
        let d = decoder(ParameterIn::Header, Style::Simple, false, ints());
        let mut headers = HeaderMap::new();
        headers.insert("p", "1, 2".parse().unwrap());
        headers.append("p", "3".parse().unwrap());
        headers.insert("cookie", "a=1; p=7,8".parse().unwrap());
        assert_eq!(
            d.extract(&Raw::new(&[], "/", None, &headers)),
            Some(json!([1, 2, 3]))
        );
        let d = decoder(ParameterIn::Cookie, Style::Form, false, ints());
        assert_eq!(
            d.extract(&Raw::new(&[], "/", None, &headers)),
            Some(json!([7, 8]))
        );
    }

    /// Where a scalar's text is read straight from the request, it is the
    /// text `extract` decodes: the same value, and absent together.
    fn agrees(d: &Decoder, raw: &Raw<'_>) -> bool {
        let extracted = d.extract(raw);
        match d.scalar_text(raw) {
            None => true,
            Some(None) => extracted.is_none(),
            Some(Some((text, kind))) => extracted == Some(scalar(&text, kind)),
        }
    }

    #[test]
    fn scalars_are_read_as_extract_reads_them() {
        let int = json!({ "type": "integer" });
        let mut headers = HeaderMap::new();
        headers.insert("p", " 12 ".parse().unwrap());
        headers.insert("cookie", "a=1; p=%37".parse().unwrap());
        let segments = template("/x/{p}");
        let raw = Raw::new(&segments, "/x/4%32", Some("q=1&p=-3&p=4"), &headers);
        let expect = |location, style, value: Value| {
            let d = decoder(location, style, false, int.clone());
            assert!(agrees(&d, &raw));
            let (text, kind) = d.scalar_text(&raw).unwrap().unwrap();
            assert_eq!(scalar(&text, kind), value);
        };
        expect(ParameterIn::Path, Style::Simple, json!(42));
        expect(ParameterIn::Query, Style::Form, json!(-3));
        expect(ParameterIn::Header, Style::Simple, json!(12));
        expect(ParameterIn::Cookie, Style::Form, json!(7));
        // Label paths, arrays, and header values that need joining take
        // `extract`.
        let label = decoder(ParameterIn::Path, Style::Label, false, int.clone());
        assert!(label.scalar_text(&raw).is_none());
        let array = decoder(ParameterIn::Query, Style::Form, false, ints());
        assert!(array.scalar_text(&raw).is_none());
        let header = decoder(ParameterIn::Header, Style::Simple, false, int.clone());
        for lines in [&["1", "2"][..], &["1,2"]] {
            let mut headers = HeaderMap::new();
            for line in lines {
                headers.append("p", line.parse().unwrap());
            }
            let raw = Raw::new(&[], "/", None, &headers);
            assert!(header.scalar_text(&raw).is_none(), "{lines:?}");
            assert!(agrees(&header, &raw));
        }
        // Absent everywhere.
        let empty = HeaderMap::new();
        let raw = Raw::new(&segments, "/x", Some("q=1"), &empty);
        for (location, style) in [
            (ParameterIn::Query, Style::Form),
            (ParameterIn::Header, Style::Simple),
            (ParameterIn::Cookie, Style::Form),
        ] {
            let d = decoder(location, style, false, int.clone());
            assert!(matches!(d.scalar_text(&raw), Some(None)));
            assert!(agrees(&d, &raw));
        }
    }

    proptest::proptest! {
        #[test]
        fn scalar_texts_agree_with_extract(
            query in "[pq=&%+2a0-9]{0,16}",
            header in "[ ,a1.]{0,6}",
            kind in 0..4usize,
        ) {
            let schema = [
                json!({ "type": "string" }),
                json!({ "type": "integer" }),
                json!({ "type": "boolean" }),
                json!({}),
            ][kind].clone();
            let mut headers = HeaderMap::new();
            if let Ok(value) = header.parse() {
                headers.insert("p", value);
            }
            let raw = Raw::new(&[], "/", Some(&query), &headers);
            for location in [ParameterIn::Query, ParameterIn::Header] {
                let d = decoder(location, Style::Form, false, schema.clone());
                proptest::prop_assert!(agrees(&d, &raw), "{query:?} {header:?}");
            }
        }
    }
}

#[test]
fn openapi_3_0_schemas_become_2020_12() {
    use super::schema::{Direction, DocumentBuilder};
    use portico_spec::{OpenApiVersion, Schema};
    let mut named = std::collections::BTreeMap::new();
    named.insert(
        "#/components/schemas/Id".to_owned(),
        Schema(serde_json::json!({ "type": "integer", "readOnly": true })),
    );
    let mut doc = DocumentBuilder::new(OpenApiVersion::V3_0, Direction::Request, &named);
    let entry = doc.add(&serde_json::json!({
        "type": "object",
        "required": ["id", "kind", "n"],
        "properties": {
            "id": { "$ref": "#/components/schemas/Id", "description": "ignored in 3.0" },
            "kind": { "type": "string", "enum": ["a", "b"], "nullable": true, "example": "a" },
            "n": { "type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false },
            "any": { "allOf": [{ "type": "string" }], "nullable": true }
        }
    }), "#/test".into());
    let doc = doc.finish();
    let x = &doc["$defs"][format!("x{entry}")];
    assert_eq!(
        x,
        &serde_json::json!({
            "type": "object",
            "required": ["kind", "n"],
            "properties": {
                "id": { "$ref": "#/$defs/s0" },
                "kind": { "type": ["string", "null"], "enum": ["a", "b", null] },
                "n": { "type": "number", "exclusiveMinimum": 0, "maximum": 9 },
                "any": { "anyOf": [{ "allOf": [{ "type": "string" }] }, { "type": "null" }] }
            }
        })
    );
    assert_eq!(
        doc["$defs"]["s0"],
        serde_json::json!({ "type": "integer", "readOnly": true })
    );
}

#[test]
fn a_schema_jsonschema_refuses_is_named_by_its_place_in_the_spec() {
    let text = r##"
openapi: 3.1.0
info: { title: t, version: "1" }
paths:
  /things:
    post:
      parameters:
        - { name: q, in: query, schema: { type: strin } }
      requestBody:
        content: { application/json: { schema: { $ref: "#/components/schemas/Thing" } } }
      responses: { "200": { description: ok } }
components:
  schemas:
    Thing: { type: object, properties: { name: { type: string, minLength: -1 } } }
"##;
    let spec = portico_spec::load_str(text, portico_spec::LoadOptions::default()).unwrap();
    let settings = Unbound {
        request: true,
        response: ResponseMode::Off,
        max_body: DEFAULT_MAX_BODY,
        formats: true,
    };
    let errors = SpecValidator::compile(&settings, &spec).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(
        e.starts_with("request schemas: the schema at ")
            && (e.contains("#/components/schemas/Thing/properties/name/minLength")
                || e.contains("#/paths/~1things/post: the query parameter `q`")),
        "{e}"
    );
}

#[test]
fn formats_assert_unless_turned_off() {
    let text = r##"
openapi: 3.1.0
info: { title: t, version: "1" }
paths:
  /things:
    post:
      requestBody:
        content: { application/json: { schema: { type: object, properties: { at: { type: string, format: date } } } } }
      responses: { "200": { description: ok } }
"##;
    let spec = portico_spec::load_str(text, portico_spec::LoadOptions::default()).unwrap();
    let check = |formats: bool| {
        let settings = Unbound {
            request: true,
            response: ResponseMode::Off,
            max_body: DEFAULT_MAX_BODY,
            formats,
        };
        let v = SpecValidator::compile(&settings, &spec).unwrap();
        v.requests.as_ref().and_then(|c| c.validator(0)).map(|val| {
            let value = serde_json::json!({ "at": "yesterday" });
            let doc = super::tape::Doc::from_value(&value);
            super::schema::errors(val, doc.root(), "body", None).len()
        })
    };
    assert_eq!(check(true), Some(1));
    assert_eq!(check(false), Some(0));
}

mod email {
    use proptest::prelude::*;

    use super::super::formats::email as quick_email;

    /// `jsonschema`'s own `email` check, which the quick one must never
    /// contradict when it says yes.
    fn builtin(text: &str) -> bool {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&serde_json::json!({ "format": "email" }))
            .unwrap()
            .is_valid(&serde_json::json!(text))
    }

    #[test]
    fn the_quick_check_takes_common_addresses_and_leaves_the_rest() {
        for plain in [
            "rex@example.com",
            "rex.owner+pets@mail.example.co.uk",
            "a_b-c!#$%&'*/=?^`{|}~@x1.io",
            "1@2.3",
        ] {
            assert!(quick_email(plain), "{plain}");
            assert!(builtin(plain), "{plain}");
        }
        for other in [
            "\"quoted\"@example.com",
            "Rex <rex@example.com>",
            "rex@[127.0.0.1]",
            "rex@localhost",
            "rex@xn--bcher-kva.example",
            "rex@-example.com",
            "rex@example-.com",
            "rex@example..com",
            "rex@example.com.",
            ".rex@example.com",
            "r..x@example.com",
            "rex@@example.com",
            "rex@exa_mple.com",
            "réx@example.com",
        ] {
            assert!(!quick_email(other), "{other}");
        }
    }

    proptest! {
        /// Whatever the quick check accepts, `jsonschema` accepts.
        #[test]
        fn the_quick_check_never_accepts_what_jsonschema_refuses(
            local in "[a-zA-Z0-9.+_'!#~-]{0,70}",
            domain in "[a-zA-Z0-9.-]{0,12}|[a-z-]{55,70}\\.[a-z]{2,3}|([a-z0-9]{1,63}\\.){3,5}[a-z]{2,10}",
        ) {
            let text = format!("{local}@{domain}");
            if quick_email(&text) {
                prop_assert!(builtin(&text), "{}", text);
            }
        }
    }
}

#[test]
fn a_media_type_is_reduced_to_its_lower_case_essence() {
    for (text, want, borrowed) in [
        ("application/json", "application/json", true),
        ("application/json; charset=utf-8", "application/json", true),
        ("Application/JSON;charset=UTF-8", "application/json", false),
        (
            " application/problem+json ; q=1",
            "application/problem+json",
            true,
        ),
        ("text/plain;A=B", "text/plain", true),
        ("\tTEXT/CSV", "text/csv", false),
        ("", "", true),
    ] {
        let got = essence(text);
        assert_eq!(got, want, "{text:?}");
        assert_eq!(matches!(got, Cow::Borrowed(_)), borrowed, "{text:?}");
    }
}
