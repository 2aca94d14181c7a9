//! `upstream: { mock: true }`: each operation's answers, prepared from the
//! spec when the configuration is compiled. Bodies come from the spec's
//! named `examples`, then its `example`, and otherwise from the response
//! schema (`portico_spec::generate`), encoded once into the bytes the
//! gateway sends.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use portico_model::mock::{
    Declared, MockExample, MockOperation, MockResponse, MockTable, Representation,
};
use portico_spec::{MediaType, Operation, Spec, Value};

/// The answers of every operation of `spec`, by operation index (the
/// operation table's indexes follow the spec's order).
pub(crate) fn table(spec: &Spec) -> MockTable {
    MockTable {
        operations: spec
            .operations
            .iter()
            .map(|op| operation(spec, op))
            .collect(),
    }
}

fn operation(spec: &Spec, op: &Operation) -> MockOperation {
    let responses: Vec<MockResponse> = op
        .responses
        .iter()
        .filter_map(|r| {
            Some(MockResponse {
                declared: declared(&r.status)?,
                representations: r.content.iter().map(|m| representation(spec, m)).collect(),
            })
        })
        .collect();
    let default = default_response(&responses);
    MockOperation { responses, default }
}

/// A response key: `200`, `2XX` (either case) or `default`.
fn declared(status: &str) -> Option<Declared> {
    if status == "default" {
        return Some(Declared::Default);
    }
    let b = status.as_bytes();
    match b {
        [d @ b'1'..=b'5', b'X' | b'x', b'X' | b'x'] => Some(Declared::Range(d - b'0')),
        _ => status
            .parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .map(Declared::Code),
    }
}

/// The lowest 2xx code, else a `2XX` range, else the lowest other code,
/// else `default`.
fn default_response(responses: &[MockResponse]) -> Option<usize> {
    let lowest = |keep: &dyn Fn(u16) -> bool| {
        responses
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r.declared {
                Declared::Code(c) if keep(c) => Some((c, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i)
    };
    let position = |want: Declared| responses.iter().position(|r| r.declared == want);
    lowest(&|c| (200..300).contains(&c))
        .or_else(|| position(Declared::Range(2)))
        .or_else(|| lowest(&|_| true))
        .or_else(|| position(Declared::Default))
}

fn representation(spec: &Spec, media: &MediaType) -> Representation {
    let content_type = concrete(&media.content_type);
    let media_type: Box<str> = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .into();
    let json = is_json(&media_type);
    let generated = media.schema.as_ref().map(|s| {
        // A schema no finite value satisfies (it requires itself without
        // end) gives `null`.
        let value = portico_spec::generate::value_for(spec, &s.0).unwrap_or(Value::Null);
        encode(json, &value)
    });
    let mut examples: Vec<MockExample> = media
        .examples
        .iter()
        .map(|(name, value)| MockExample {
            name: Some(Arc::from(name.as_str())),
            body: encode(json, value),
        })
        .collect();
    if let Some(value) = &media.example {
        examples.push(MockExample {
            name: None,
            body: encode(json, value),
        });
    }
    if examples.is_empty() {
        examples.push(MockExample {
            name: None,
            body: generated.clone().unwrap_or_default(),
        });
    }
    Representation {
        content_type: HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        media_type,
        examples,
        generated,
    }
}

/// The media type to send for one the spec may write with wildcards.
fn concrete(written: &str) -> String {
    let essence = written.split(';').next().unwrap_or("").trim();
    let (t, s) = essence.split_once('/').unwrap_or((essence, ""));
    match (t, s) {
        ("*", _) => "application/json".to_owned(),
        ("application", "*") => "application/json".to_owned(),
        ("text", "*") => "text/plain".to_owned(),
        (_, "*") | ("", _) | (_, "") => "application/octet-stream".to_owned(),
        (t, s) if s.starts_with("*+") => format!("{t}/{}", &s[2..]),
        _ => written.trim().to_owned(),
    }
}

fn is_json(media_type: &str) -> bool {
    let subtype = media_type.split_once('/').map_or("", |(_, s)| s);
    subtype == "json" || subtype.ends_with("+json")
}

/// JSON media types get JSON text; others get a string example as it is,
/// and any other value as JSON text.
fn encode(json: bool, value: &Value) -> Bytes {
    match value {
        Value::String(s) if !json => Bytes::copy_from_slice(s.as_bytes()),
        v => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_keys() {
        assert_eq!(declared("200"), Some(Declared::Code(200)));
        assert_eq!(declared("4XX"), Some(Declared::Range(4)));
        assert_eq!(declared("5xx"), Some(Declared::Range(5)));
        assert_eq!(declared("default"), Some(Declared::Default));
        assert_eq!(declared("600"), None);
        assert_eq!(declared("6XX"), None);
    }

    #[test]
    fn wildcard_media_types_become_concrete() {
        assert_eq!(concrete("*/*"), "application/json");
        assert_eq!(concrete("application/*"), "application/json");
        assert_eq!(concrete("text/*"), "text/plain");
        assert_eq!(concrete("image/*"), "application/octet-stream");
        assert_eq!(concrete("application/*+json"), "application/json");
        assert_eq!(
            concrete("application/json; charset=utf-8"),
            "application/json; charset=utf-8"
        );
    }

    #[test]
    fn the_default_answer_is_the_lowest_success() {
        let r = |d| MockResponse {
            declared: d,
            representations: Vec::new(),
        };
        let list = [
            r(Declared::Default),
            r(Declared::Code(404)),
            r(Declared::Code(201)),
            r(Declared::Code(200)),
        ];
        assert_eq!(default_response(&list), Some(3));
        let list = [r(Declared::Code(404)), r(Declared::Range(2))];
        assert_eq!(default_response(&list), Some(1));
        let list = [r(Declared::Default), r(Declared::Code(404))];
        assert_eq!(default_response(&list), Some(1));
        assert_eq!(default_response(&[r(Declared::Default)]), Some(0));
        assert_eq!(default_response(&[]), None);
    }
}
