//! A serde `Deserializer` over the located YAML tree. It gives serde-derived
//! raw structs (with `deny_unknown_fields`) errors that name the key path and
//! the line and column of the offending key or value, and it can hand a
//! value's place to the compiler through [`Located`].

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_saphyr::{Location, Spanned};

use crate::Diagnostic;
use crate::yaml::{Node, at};

/// A deserialization error, located once by the innermost node it passed.
#[derive(Debug)]
pub(crate) struct Error {
    message: String,
    place: Option<(String, Option<(u64, u64)>)>,
}

impl Error {
    fn locate(mut self, path: &str, loc: &Location) -> Self {
        if self.place.is_none() {
            self.place = Some((path.to_owned(), at(loc)));
        }
        self
    }

    pub(crate) fn into_diagnostic(self) -> Diagnostic {
        let (path, place) = self.place.unwrap_or_default();
        Diagnostic::new(path, self.message, place)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            place: None,
        }
    }
}

/// Deserializes `T` from `node`, whose key path is `path`.
pub(crate) fn from_node<T: de::DeserializeOwned>(
    node: &Spanned<Node>,
    path: &str,
) -> Result<T, Diagnostic> {
    T::deserialize(NodeDe::new(&node.value, node.referenced, path.to_owned()))
        .map_err(Error::into_diagnostic)
}

/// A value with the place it was written, for checks that span entities
/// (duplicate names, unknown references).
#[derive(Clone, Debug)]
pub(crate) struct Located<T> {
    pub value: T,
    pub at: Option<(u64, u64)>,
    pub path: String,
}

impl<T> Located<T> {
    pub(crate) fn diag(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.path.clone(), message, self.at)
    }

    /// The place alone, for diagnostics after the value has been taken apart.
    pub(crate) fn clone_place(&self) -> Located<()> {
        Located {
            value: (),
            at: self.at,
            path: self.path.clone(),
        }
    }
}

const LOCATED: &str = "$portico::Located";

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Located<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a located value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Located<T>, A::Error> {
                let line: u64 = a
                    .next_key::<String>()?
                    .map(|_| a.next_value())
                    .transpose()?
                    .unwrap_or(0);
                let column: u64 = a
                    .next_key::<String>()?
                    .map(|_| a.next_value())
                    .transpose()?
                    .unwrap_or(0);
                let path: String = a
                    .next_key::<String>()?
                    .map(|_| a.next_value())
                    .transpose()?
                    .unwrap_or_default();
                a.next_key::<String>()?;
                let value = a.next_value()?;
                Ok(Located {
                    value,
                    at: (line > 0).then_some((line, column)),
                    path,
                })
            }
        }
        d.deserialize_struct(
            LOCATED,
            &["line", "column", "path", "value"],
            V(std::marker::PhantomData),
        )
    }
}

#[derive(Clone, Copy)]
enum View<'a> {
    Node(&'a Node),
    Key(&'a str),
}

pub(crate) struct NodeDe<'a> {
    view: View<'a>,
    loc: Location,
    path: String,
}

impl<'a> NodeDe<'a> {
    fn new(node: &'a Node, loc: Location, path: String) -> Self {
        Self {
            view: View::Node(node),
            loc,
            path,
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn any<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let node = match self.view {
            View::Key(k) => return visitor.visit_str(k),
            View::Node(n) => n,
        };
        match node {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Int(i) => match i64::try_from(*i) {
                Ok(v) => visitor.visit_i64(v),
                Err(_) => visitor.visit_i128(*i),
            },
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Str(s) => visitor.visit_str(s),
            Node::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                index: 0,
                path: &self.path,
            }),
            Node::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                parent: &self,
            }),
        }
    }

    fn string<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.view {
            View::Node(Node::Int(i)) => visitor.visit_string(i.to_string()),
            View::Node(Node::Float(f)) => visitor.visit_string(f.to_string()),
            View::Node(Node::Bool(b)) => visitor.visit_string(b.to_string()),
            _ => self.any(visitor),
        }
    }
}

macro_rules! located {
    ($self:ident, $body:expr) => {{
        let path = $self.path.clone();
        let loc = $self.loc;
        $body.map_err(|e: Error| e.locate(&path, &loc))
    }};
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        located!(self, self.any(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.view {
            View::Node(Node::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        located!(self, self.string(visitor))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        located!(self, self.string(visitor))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        located!(self, self.string(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == LOCATED {
            let (line, column) = at(&self.loc).unwrap_or((0, 0));
            return visitor.visit_map(LocatedAccess {
                line,
                column,
                step: 0,
                inner: Some(self),
            });
        }
        located!(self, self.any(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let result = match self.view {
            View::Key(k) => visitor.visit_enum(k.into_deserializer()),
            View::Node(Node::Str(s)) => visitor.visit_enum(s.as_str().into_deserializer()),
            View::Node(Node::Map(entries)) if entries.len() == 1 => {
                let (key, value) = &entries[0];
                visitor.visit_enum(Enum {
                    key,
                    value,
                    path: self.child_path(&key.value),
                })
            }
            View::Node(n) => Err(de::Error::custom(format!(
                "expected a name or a mapping with one key, found {}",
                n.kind()
            ))),
        };
        result.map_err(|e| e.locate(&self.path, &self.loc))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        seq tuple tuple_struct map
    }
}

struct Seq<'a, 'p> {
    items: std::slice::Iter<'a, Spanned<Node>>,
    index: usize,
    path: &'p str,
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe::new(&item.value, item.referenced, path.clone()))
            .map(Some)
            .map_err(|e| e.locate(&path, &item.referenced))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'a, 'p> {
    entries: std::slice::Iter<'a, (Spanned<String>, Spanned<Node>)>,
    value: Option<(&'a Spanned<Node>, String)>,
    parent: &'p NodeDe<'a>,
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = self.parent.child_path(&key.value);
        let key_de = NodeDe {
            view: View::Key(&key.value),
            loc: key.referenced,
            path: path.clone(),
        };
        let result = seed
            .deserialize(key_de)
            .map_err(|e| e.locate(&path, &key.referenced));
        self.value = Some((value, path));
        result.map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (value, path) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value before key"))?;
        seed.deserialize(NodeDe::new(&value.value, value.referenced, path.clone()))
            .map_err(|e| e.locate(&path, &value.referenced))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'a> {
    key: &'a Spanned<String>,
    value: &'a Spanned<Node>,
    path: String,
}

impl<'de, 'a> EnumAccess<'de> for Enum<'a> {
    type Error = Error;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), Error> {
        let key_de = NodeDe {
            view: View::Key(&self.key.value),
            loc: self.key.referenced,
            path: self.path.clone(),
        };
        let variant = seed
            .deserialize(key_de)
            .map_err(|e| e.locate(&self.path, &self.key.referenced))?;
        Ok((
            variant,
            NodeDe::new(&self.value.value, self.value.referenced, self.path),
        ))
    }
}

impl<'de> VariantAccess<'de> for NodeDe<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.view {
            View::Node(Node::Null) => Ok(()),
            _ => Err(<Error as de::Error>::custom("this variant takes no value")
                .locate(&self.path, &self.loc)),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        Deserializer::deserialize_any(self, visitor)
    }
}

/// Presents a node as `{line, column, path, value}` to [`Located`].
struct LocatedAccess<'a> {
    line: u64,
    column: u64,
    step: u8,
    inner: Option<NodeDe<'a>>,
}

impl<'de> MapAccess<'de> for LocatedAccess<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = match self.step {
            0 => "line",
            1 => "column",
            2 => "path",
            3 => "value",
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.step += 1;
        match self.step {
            1 => seed.deserialize(self.line.into_deserializer()),
            2 => seed.deserialize(self.column.into_deserializer()),
            3 => {
                let path = self
                    .inner
                    .as_ref()
                    .map(|n| n.path.clone())
                    .unwrap_or_default();
                seed.deserialize(path.into_deserializer())
            }
            _ => match self.inner.take() {
                Some(inner) => seed.deserialize(inner),
                None => Err(<Error as de::Error>::custom("located value read twice")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: Located<String>,
        #[allow(dead_code)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        port: u16,
    }

    fn de(text: &str) -> Result<Outer, Diagnostic> {
        from_node(&parse(text).unwrap(), "")
    }

    #[test]
    fn unknown_field_names_its_path_and_key_place() {
        let err = de("name: x\ninner:\n  - port: 1\n  - port: 2\n    prot: 3\n").unwrap_err();
        assert_eq!(err.path, "inner[1].prot");
        assert_eq!((err.line, err.column), (Some(5), Some(5)));
        assert!(
            err.message.starts_with("unknown field `prot`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let err = de("name: x\ninner:\n  - port: 70000\n").unwrap_err();
        assert_eq!(err.path, "inner[0].port");
        assert_eq!((err.line, err.column), (Some(3), Some(11)));
        let err = de("name: x\ninner: {}\n").unwrap_err();
        assert_eq!(err.path, "inner");
        assert!(
            err.message.contains("expected a sequence"),
            "{}",
            err.message
        );
    }

    #[test]
    fn missing_field_points_at_the_mapping() {
        let err = de("name: x\ninner:\n  - {}\n").unwrap_err();
        assert_eq!(err.path, "inner[0]");
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("missing field `port`"));
    }

    #[test]
    fn located_values_know_where_they_are() {
        let outer = de("inner: []\nname: hello\n").unwrap();
        assert_eq!(outer.name.value, "hello");
        assert_eq!(outer.name.at, Some((2, 7)));
        assert_eq!(outer.name.path, "name");
    }
}
