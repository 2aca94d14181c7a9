//! The YAML document as a tree whose every node and key knows where it is in
//! the file. serde-saphyr parses (YAML 1.2 core booleans, alias and size
//! budgets); the tree lets the compiler read each entity separately, so one
//! broken entity does not hide the errors of the others.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use crate::Diagnostic;

/// A parsed YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// What the node is, for messages ("expected a mapping, found a string").
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a sequence",
            Node::Map(_) => "a mapping",
        }
    }
}

pub(crate) fn at(loc: &Location) -> Option<(u64, u64)> {
    (loc.line() > 0).then(|| (loc.line(), loc.column()))
}

/// Parses `text` into a located tree. An empty document is `Null`.
pub(crate) fn parse(text: &str) -> Result<Spanned<Node>, Diagnostic> {
    let options = serde_saphyr::options! { strict_booleans: true };
    match serde_saphyr::from_str_with_options::<Option<Spanned<Node>>>(text, options) {
        Ok(Some(node)) => Ok(node),
        Ok(None) => Ok(Spanned {
            value: Node::Null,
            referenced: Location::UNKNOWN,
            defined: Location::UNKNOWN,
        }),
        Err(e) => {
            let message = e.without_snippet().to_string();
            // The message ends with its own "at line L, column C"; keep only
            // the description and report the place in our own format.
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .trim_start_matches("error: ");
            // serde-saphyr's advice to its own users does not apply to ours.
            let message = message
                .split_once(", set DuplicateKeyPolicy")
                .map_or(message, |(m, _)| m)
                .to_owned();
            Err(Diagnostic::new(
                "",
                message,
                e.location().as_ref().and_then(at),
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        i128::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer is too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = a.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = a.next_key::<Spanned<KeyString>>()? {
            let value = a.next_value()?;
            entries.push((
                Spanned {
                    value: key.value.0,
                    referenced: key.referenced,
                    defined: key.defined,
                },
                value,
            ));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key: scalars only, kept as their text.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyString, E> {
                Ok(KeyString(v.to_owned()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyString, E> {
                Ok(KeyString(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyString, E> {
                Ok(KeyString("null".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_typed_with_yaml_1_2_booleans() {
        let doc = parse("a: true\nb: y\nc: 0x10\nd: '1'\ne: ~\nf: 1.5\n").unwrap();
        let Node::Map(entries) = doc.value else {
            panic!()
        };
        let values: Vec<_> = entries.into_iter().map(|(_, v)| v.value).collect();
        assert_eq!(
            values,
            vec![
                Node::Bool(true),
                Node::Str("y".into()),
                Node::Int(16),
                Node::Str("1".into()),
                Node::Null,
                Node::Float(1.5)
            ]
        );
    }

    #[test]
    fn keys_and_values_carry_their_place() {
        let doc = parse("apis:\n  - name: a\n").unwrap();
        let Node::Map(entries) = &doc.value else {
            panic!()
        };
        assert_eq!(
            (
                entries[0].0.referenced.line(),
                entries[0].0.referenced.column()
            ),
            (1, 1)
        );
        let Node::Seq(items) = &entries[0].1.value else {
            panic!()
        };
        let Node::Map(api) = &items[0].value else {
            panic!()
        };
        assert_eq!(
            (api[0].1.referenced.line(), api[0].1.referenced.column()),
            (2, 11)
        );
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let err = parse("a: [1\n").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("bracket"), "{}", err.message);
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.message, "duplicate mapping key: a");
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().value, Node::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, Node::Null);
    }
}
