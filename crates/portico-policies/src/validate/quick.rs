//! Schema-directed acceptance: a JSON body checked against its schema in
//! the same pass that reads it, with nothing built in between.
//!
//! Most request schemas are made of a few keywords: `type`, `properties`,
//! `required`, `additionalProperties`, `items`, lengths and counts,
//! `enum`, `format`, `pattern` and numeric bounds. For those a [`Plan`]
//! is compiled next to the `jsonschema` validators, and a body is walked
//! once against it: member names are matched against the schema's
//! properties as they are read, and a string is looked at only when its
//! schema asks something of it.
//!
//! The walk answers one thing: **this body is valid**. Anything else (a
//! failed keyword, text that is not JSON, a keyword outside the set, a
//! number it cannot place) makes it give up, and the full path (tape and
//! `jsonschema`) decides and names the errors. So the walk may give up
//! on a valid body, but must never accept one the full path refuses:
//!
//! - its reading of text is the tape reader's (shared functions), which
//!   the differential tests and the `json_body` fuzz target hold to
//!   `serde_json`'s;
//! - every keyword outside the handled set either stops the walk where an
//!   instance reaches it, or (for keywords that only look at one scalar:
//!   `format`, `pattern`, numeric bounds, `const`, a non-string `enum`)
//!   is checked by a small `jsonschema` validator compiled from those
//!   keywords alone, so their meaning is `jsonschema`'s own;
//! - an object naming a member twice has both values checked, where
//!   `serde_json` keeps the last: accepting both accepts the last;
//! - a proptest compares the walk with the full path on generated schemas
//!   and values, valid and damaged.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::formats;
use super::schema::Validator;
use super::tape::{self, Doc, Scalar, Shape, after_item, length_within, plain_run, skip_space};

/// A schema node's index in [`Plan::nodes`].
pub(crate) type NodeId = u32;

/// The node that accepts anything (still read as JSON).
const ANY: NodeId = 0;
/// The node that stops the walk: a `false` schema, or keywords outside
/// the handled set.
const STOP: NodeId = 1;

/// The nesting the walk follows; the tape reader's limit, below
/// `serde_json`'s.
const MAX_DEPTH: u32 = 127;

/// How deep schemas are followed while compiling, `$ref`s aside (those
/// are compiled once each).
const MAX_SCHEMA_DEPTH: u32 = 64;

// The instance types a node admits, one bit each. `number` admits
// integers too.
const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const OBJECT: u8 = 4;
const ARRAY: u8 = 8;
const NUMBER: u8 = 16;
const INTEGER: u8 = 32;
const STRING: u8 = 64;
const ALL: u8 = 127;

/// Keywords that only annotate: `jsonschema` checks nothing for them.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "example",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "externalDocs",
    "xml",
    "discriminator",
    "nullable",
];

/// Keywords about one scalar, left to a `jsonschema` validator compiled
/// from them alone (see the module documentation).
const LEAF_KEYWORDS: &[&str] = &[
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "const",
    "enum",
];

/// OpenAPI's own formats, which `jsonschema` does not know and so ignores
/// (unknown formats are ignored by the compiled validators).
const IGNORED_FORMATS: &[&str] = &["int32", "int64", "float", "double"];

/// The compiled schemas of one document.
pub(crate) struct Plan {
    nodes: Vec<Node>,
}

enum Node {
    Check(Box<Check>),
    Stop,
}

/// What one schema asks of a value.
struct Check {
    types: u8,
    /// `properties`, and the `required` names that are not among them
    /// (checked against `additionalProperties`).
    props: Vec<Prop>,
    /// The bits of the required props.
    required: u64,
    /// The schema of members not in `props`.
    additional: NodeId,
    items: NodeId,
    /// `minItems..=maxItems`.
    items_count: (u64, u64),
    /// `minLength..=maxLength`, in characters.
    length: (u64, u64),
    /// A string-, boolean- or null-valued `enum`, checked here.
    choices: Option<Vec<Value>>,
    /// The keywords about one scalar, compiled alone.
    leaf: Option<Arc<Validator>>,
    /// Where `leaf` holds only numeric bounds, each of them exactly an
    /// `f64`: (bound, exclusive) below and above, checked here for numbers
    /// that are exactly `f64`s too (the rest go to `leaf`).
    bounds: Option<[Option<(f64, bool)>; 2]>,
    /// Where `leaf` is one common `format` or one simple `pattern`: a
    /// check that accepts most valid strings without `leaf` (and leaves
    /// the rest to it).
    quick_leaf: Option<QuickLeaf>,
    /// Whether `leaf` refuses every object and array (it holds `const` or
    /// `enum`, of scalars).
    leaf_is_scalar_only: bool,
}

impl Default for Check {
    fn default() -> Self {
        Self {
            types: ALL,
            props: Vec::new(),
            required: 0,
            additional: ANY,
            items: ANY,
            items_count: (0, u64::MAX),
            length: (0, u64::MAX),
            choices: None,
            leaf: None,
            bounds: None,
            quick_leaf: None,
            leaf_is_scalar_only: false,
        }
    }
}

/// A quick check for a leaf of one keyword (see [`formats`]): it only
/// ever accepts.
enum QuickLeaf {
    Format(fn(&str) -> bool),
    Pattern(formats::SimplePattern),
}

impl QuickLeaf {
    fn new(keyword: &str, text: &str) -> Option<Self> {
        match (keyword, text) {
            ("format", "uri") => Some(Self::Format(formats::uri)),
            ("format", "email") => Some(Self::Format(formats::email)),
            ("format", "date") => Some(Self::Format(formats::date)),
            ("pattern", pattern) => formats::SimplePattern::new(pattern).map(Self::Pattern),
            _ => None,
        }
    }

    fn accepts(&self, s: &str) -> bool {
        match self {
            Self::Format(check) => check(s),
            Self::Pattern(pattern) => pattern.matches(s),
        }
    }
}

struct Prop {
    name: Box<str>,
    /// [`tape::fingerprint`] of `name`.
    print: u64,
    /// `name` as a member name is written when it needs no escapes and
    /// fits in sixteen bytes with its quotes (most do).
    quoted: Option<Quoted>,
    node: NodeId,
    /// This prop's bit in [`Check::required`], 0 if it is optional.
    bit: u64,
}

impl Prop {
    fn new(name: &str, node: NodeId, bit: u64) -> Self {
        Self {
            name: name.into(),
            print: tape::fingerprint(name.as_bytes()),
            quoted: Quoted::new(name),
            node,
            bit,
        }
    }

    /// The index after this prop's quoted name, where the member name at
    /// `at` is written exactly so.
    #[inline]
    fn written_at(&self, bytes: &[u8], at: usize) -> Option<usize> {
        let quoted = self.quoted.as_ref()?;
        let chunk = bytes.get(at..)?.first_chunk::<16>()?;
        (u128::from_le_bytes(*chunk) & quoted.mask == quoted.text).then_some(at + quoted.len)
    }
}

/// A member name with its quotes, as the sixteen bytes at its start read
/// it: a member is matched by one compare, without scanning it for its
/// end, where it is the one the schema lists next.
struct Quoted {
    /// The quoted name in the low lanes, zero in the others.
    text: u128,
    /// `0xFF` in the lanes of the quoted name.
    mask: u128,
    len: usize,
}

impl Quoted {
    fn new(name: &str) -> Option<Self> {
        let len = name.len() + 2;
        // A name that JSON text would hold escaped is matched the long way.
        if len > 16 || plain_run(name.as_bytes(), 0) != name.len() {
            return None;
        }
        let mut lanes = [0u8; 16];
        lanes[0] = b'"';
        lanes[1..len - 1].copy_from_slice(name.as_bytes());
        lanes[len - 1] = b'"';
        Some(Self {
            text: u128::from_le_bytes(lanes),
            mask: u128::MAX >> (8 * (16 - len)),
            len,
        })
    }
}

/// Compiles the keywords of one scalar (a leaf schema) with the options
/// of the full validators.
pub(crate) type LeafCompiler<'a> = &'a dyn Fn(&Value) -> Option<Validator>;

/// Builds a [`Plan`] from one document of schemas (see `schema.rs`).
pub(crate) struct Builder<'a> {
    doc: &'a Value,
    formats: bool,
    compile_leaf: LeafCompiler<'a>,
    nodes: Vec<Node>,
    /// The node of each `$ref` target, by pointer.
    targets: HashMap<String, NodeId>,
    /// Leaf validators by their schema's text: `format: date-time` and the
    /// like recur all through a spec.
    leaves: HashMap<String, Option<Arc<Validator>>>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(doc: &'a Value, formats: bool, compile_leaf: LeafCompiler<'a>) -> Self {
        Self {
            doc,
            formats,
            compile_leaf,
            nodes: vec![Node::Check(Box::default()), Node::Stop],
            targets: HashMap::new(),
            leaves: HashMap::new(),
        }
    }

    /// The node of the schema at `pointer` in the document.
    pub(crate) fn root(&mut self, pointer: &str) -> NodeId {
        self.target(pointer, 0)
    }

    pub(crate) fn finish(self) -> Plan {
        Plan { nodes: self.nodes }
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    /// The node of the schema a `$ref` names (`#` and a JSON pointer),
    /// compiled once; a reference to itself resolves to its own node.
    fn target(&mut self, pointer: &str, hops: u32) -> NodeId {
        if let Some(&id) = self.targets.get(pointer) {
            return id;
        }
        let doc = self.doc;
        let Some(schema) = pointer.strip_prefix('#').and_then(|p| doc.pointer(p)) else {
            return STOP;
        };
        // A reference to a reference is the same node.
        if let Some(next) = sole_ref(schema) {
            if hops > MAX_SCHEMA_DEPTH {
                return STOP;
            }
            let id = self.target(next, hops + 1);
            self.targets.insert(pointer.to_owned(), id);
            return id;
        }
        let id = self.push(Node::Stop);
        self.targets.insert(pointer.to_owned(), id);
        self.nodes[id as usize] = self.build(schema, 0);
        id
    }

    fn node(&mut self, schema: &Value, depth: u32) -> NodeId {
        if let Some(pointer) = sole_ref(schema) {
            return self.target(pointer, 0);
        }
        match schema {
            Value::Bool(true) => ANY,
            Value::Object(obj) if obj.keys().all(|k| is_annotation(k)) => ANY,
            _ => {
                let node = self.build(schema, depth);
                self.push(node)
            }
        }
    }

    fn build(&mut self, schema: &Value, depth: u32) -> Node {
        let Value::Object(obj) = schema else {
            return match schema {
                Value::Bool(true) => Node::Check(Box::default()),
                _ => Node::Stop,
            };
        };
        if depth > MAX_SCHEMA_DEPTH {
            return Node::Stop;
        }
        self.check(obj, depth)
            .map_or(Node::Stop, |c| Node::Check(Box::new(c)))
    }

    /// The check of a schema object; `None` if it holds a keyword outside
    /// the handled set (or one this builder cannot read).
    fn check(&mut self, obj: &Map<String, Value>, depth: u32) -> Option<Check> {
        let mut check = Check::default();
        let mut leaf = Map::new();
        let mut required: &[Value] = &[];
        let mut properties = None;
        for (key, value) in obj {
            match key.as_str() {
                "type" => check.types = types(value)?,
                "properties" => properties = Some(value.as_object()?),
                "required" => required = value.as_array()?,
                "additionalProperties" => check.additional = self.node(value, depth + 1),
                "items" if value.is_object() || value.is_boolean() => {
                    check.items = self.node(value, depth + 1);
                }
                "minItems" => check.items_count.0 = count(value)?,
                "maxItems" => check.items_count.1 = count(value)?,
                "minLength" => check.length.0 = count(value)?,
                "maxLength" => check.length.1 = count(value)?,
                "enum" => {
                    let list = value.as_array()?;
                    if list
                        .iter()
                        .all(|v| v.is_string() || v.is_boolean() || v.is_null())
                    {
                        check.choices = Some(list.clone());
                    } else if list.iter().all(|v| !v.is_object() && !v.is_array()) {
                        leaf.insert(key.clone(), value.clone());
                        check.leaf_is_scalar_only = true;
                    } else {
                        return None;
                    }
                }
                "const" => {
                    if value.is_object() || value.is_array() {
                        return None;
                    }
                    leaf.insert(key.clone(), value.clone());
                    check.leaf_is_scalar_only = true;
                }
                "format" => {
                    let known = value
                        .as_str()
                        .is_some_and(|f| !IGNORED_FORMATS.contains(&f));
                    if self.formats && known {
                        leaf.insert(key.clone(), value.clone());
                    }
                }
                k if LEAF_KEYWORDS.contains(&k) => {
                    leaf.insert(key.clone(), value.clone());
                }
                k if is_annotation(k) => {}
                _ => return None,
            }
        }
        if let Some(properties) = properties {
            for (name, schema) in properties {
                let node = self.node(schema, depth + 1);
                check.props.push(Prop::new(name, node, 0));
            }
        }
        for (i, name) in required.iter().enumerate() {
            let name = name.as_str()?;
            // A mask of 64 bits; a name listed twice gets two, and both
            // are set by the one member.
            let bit = 1u64.checked_shl(u32::try_from(i).ok()?)?;
            if let Some(prop) = check.props.iter_mut().find(|p| &*p.name == name) {
                prop.bit |= bit;
            } else {
                check.props.push(Prop::new(name, check.additional, bit));
            }
            check.required |= bit;
        }
        if leaf.len() == 1
            && let Some((keyword, Value::String(text))) = leaf.iter().next()
        {
            check.quick_leaf = QuickLeaf::new(keyword, text);
        }
        check.bounds = bounds(&leaf);
        if !leaf.is_empty() {
            check.leaf = Some(self.leaf(Value::Object(leaf))?);
        }
        Some(check)
    }

    fn leaf(&mut self, schema: Value) -> Option<Arc<Validator>> {
        let text = schema.to_string();
        if let Some(done) = self.leaves.get(&text) {
            return done.clone();
        }
        let compiled = (self.compile_leaf)(&schema).map(Arc::new);
        self.leaves.insert(text, compiled.clone());
        compiled
    }
}

/// The target of a schema that is a `$ref` and annotations only.
fn sole_ref(schema: &Value) -> Option<&str> {
    let obj = schema.as_object()?;
    let target = obj.get("$ref")?.as_str()?;
    obj.keys()
        .all(|k| k == "$ref" || is_annotation(k))
        .then_some(target)
}

fn is_annotation(key: &str) -> bool {
    ANNOTATIONS.contains(&key) || key.starts_with("x-")
}

/// The numeric bounds of a leaf that holds nothing else, where each is
/// exactly an `f64` (see [`Check::bounds`]).
fn bounds(leaf: &Map<String, Value>) -> Option<[Option<(f64, bool)>; 2]> {
    let mut out: [Option<(f64, bool)>; 2] = [None, None];
    if leaf.is_empty() {
        return None;
    }
    for (key, value) in leaf {
        let (side, exclusive) = match key.as_str() {
            "minimum" => (0, false),
            "exclusiveMinimum" => (0, true),
            "maximum" => (1, false),
            "exclusiveMaximum" => (1, true),
            _ => return None,
        };
        let bound = exact_f64(value.as_number()?)?;
        // Two bounds on one side: the tighter one decides, and on a tie
        // the exclusive one.
        let tighter = match out[side] {
            None => true,
            Some((old, old_exclusive)) => {
                let beyond = if side == 0 { bound > old } else { bound < old };
                beyond || (bound == old && exclusive && !old_exclusive)
            }
        };
        if tighter {
            out[side] = Some((bound, exclusive));
        }
    }
    Some(out)
}

/// `n` as an `f64`, if that is exactly its value: any float, and
/// integers up to 2⁵³.
fn exact_f64(n: &Number) -> Option<f64> {
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64() {
        return (u <= EXACT).then_some(u as f64);
    }
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() <= EXACT).then_some(i as f64);
    }
    n.as_f64()
}

/// `type`, as bits.
fn types(value: &Value) -> Option<u8> {
    let one = |name: &Value| {
        Some(match name.as_str()? {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "object" => OBJECT,
            "array" => ARRAY,
            "number" => NUMBER | INTEGER,
            "integer" => INTEGER,
            "string" => STRING,
            _ => return None,
        })
    };
    match value {
        Value::Array(list) => list.iter().try_fold(0, |bits, t| Some(bits | one(t)?)),
        other => one(other),
    }
}

/// A count keyword's value: a non-negative integer, which 2020-12 lets
/// be written `2.0`.
fn count(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
}

impl Plan {
    /// Whether `body` is a JSON document valid against the schema of
    /// `root`, as far as this walk can tell: `false` means "ask the full
    /// path", not "invalid".
    pub(crate) fn accepts(&self, root: NodeId, body: &[u8]) -> bool {
        if root == STOP {
            return false;
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return false;
        };
        let mut walk = Walk {
            plan: self,
            text,
            bytes: body,
            scratch: String::new(),
        };
        walk.value(skip_space(body, 0), root, 0)
            .is_some_and(|end| skip_space(body, end) == body.len())
    }

    /// Whether a scalar parameter value is valid against the schema of
    /// `root`, as [`Self::accepts`] tells it.
    pub(crate) fn accepts_scalar(&self, root: NodeId, value: Scalar<'_>) -> bool {
        let Node::Check(check) = &self.nodes[root as usize] else {
            return false;
        };
        match value {
            Scalar::Str(s) => check.string(s),
            Scalar::Number(n) => check.number(n),
            literal => check.literal(literal),
        }
        .is_some()
    }

    /// Whether the plan checks `root` itself, rather than giving up at
    /// once (for the tests).
    #[cfg(test)]
    pub(crate) fn covers(&self, root: NodeId) -> bool {
        !matches!(self.nodes[root as usize], Node::Stop)
    }
}

/// One body being walked.
struct Walk<'p, 't> {
    plan: &'p Plan,
    text: &'t str,
    bytes: &'t [u8],
    /// The last string read, decoded, where it held escapes.
    scratch: String,
}

impl<'p> Walk<'p, '_> {
    /// Walks the value starting at `at` (no whitespace before it) against
    /// `node`; the index after it, or `None` to give up.
    fn value(&mut self, at: usize, node: NodeId, depth: u32) -> Option<usize> {
        let check: &'p Check = match &self.plan.nodes[node as usize] {
            Node::Check(check) => check,
            Node::Stop => return None,
        };
        match *self.bytes.get(at)? {
            b'"' => self.string_value(at, check),
            b'{' => {
                check.container(OBJECT)?;
                self.object(at + 1, check, depth + 1)
            }
            b'[' => {
                check.container(ARRAY)?;
                self.array(at + 1, check, depth + 1)
            }
            b't' => self.literal(at, b"true", check, Scalar::Bool(true)),
            b'f' => self.literal(at, b"false", check, Scalar::Bool(false)),
            b'n' => self.literal(at, b"null", check, Scalar::Null),
            b'-' | b'0'..=b'9' => {
                let (shape, end) = tape::number_shape(self.bytes, at)?;
                let number: Number = match shape {
                    Shape::Exact(n) => n,
                    // Floats and integers past 64 bits: `serde_json` reads
                    // them (or refuses them, out of range) as it would the
                    // whole body.
                    Shape::Other => serde_json::from_str(&self.text[at..end]).ok()?,
                };
                check.number(number)?;
                Some(end)
            }
            _ => None,
        }
    }

    /// A value that is most often a string: read here when it is one,
    /// without the call to [`Self::value`] (members and items are mostly
    /// strings).
    #[inline]
    fn item(&mut self, at: usize, node: NodeId, depth: u32) -> Option<usize> {
        match (&self.plan.nodes[node as usize], self.bytes.get(at)) {
            (Node::Check(check), Some(b'"')) => self.string_value(at, check),
            _ => self.value(at, node, depth),
        }
    }

    /// The string value whose opening quote is at `at`, against `check`.
    #[inline]
    fn string_value(&mut self, at: usize, check: &Check) -> Option<usize> {
        let (end, escaped) = self.string(at + 1)?;
        let s = if escaped {
            self.scratch.as_str()
        } else {
            &self.text[at + 1..end - 1]
        };
        check.string(s)?;
        Some(end)
    }

    fn literal(&self, at: usize, word: &[u8], check: &Check, value: Scalar<'_>) -> Option<usize> {
        if !self.bytes[at..].starts_with(word) {
            return None;
        }
        check.literal(value)?;
        Some(at + word.len())
    }

    /// A string whose first byte after the quote is at `start`: the index
    /// after its closing quote, and whether it held escapes (its decoded
    /// text is then in `scratch`; otherwise it is the body's bytes).
    #[inline]
    fn string(&mut self, start: usize) -> Option<(usize, bool)> {
        let at = plain_run(self.bytes, start);
        match *self.bytes.get(at)? {
            b'"' => Some((at + 1, false)),
            b'\\' => self.escaped_string(start, at),
            // A control character: it must be escaped.
            _ => None,
        }
    }

    #[cold]
    fn escaped_string(&mut self, start: usize, at: usize) -> Option<(usize, bool)> {
        self.scratch.clear();
        let end = tape::decode_string(self.text, start, at, &mut self.scratch)?;
        Some((end, true))
    }

    /// The array whose first byte after `[` is at `at`.
    fn array(&mut self, at: usize, check: &Check, depth: u32) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut count = 0u64;
        let mut at = skip_space(self.bytes, at);
        if self.bytes.get(at) == Some(&b']') {
            at += 1;
        } else {
            loop {
                at = self.item(at, check.items, depth)?;
                count += 1;
                let closed;
                (at, closed) = after_item(self.bytes, at, b']')?;
                if closed {
                    break;
                }
            }
        }
        (check.items_count.0..=check.items_count.1)
            .contains(&count)
            .then_some(at)
    }

    /// The object whose first byte after `{` is at `at`.
    fn object(&mut self, at: usize, check: &'p Check, depth: u32) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut seen = 0u64;
        // Members mostly come in the order of `properties`: the prop
        // after the last one found is tried first.
        let mut next = 0;
        let mut at = skip_space(self.bytes, at);
        if self.bytes.get(at) == Some(&b'}') {
            at += 1;
        } else {
            loop {
                // The member the schema lists next, written as expected,
                // in one compare; any other member the long way.
                let hinted = check
                    .props
                    .get(next)
                    .and_then(|p| Some((p, p.written_at(self.bytes, at)?)));
                let (node, end) = match hinted {
                    Some((prop, end)) => {
                        seen |= prop.bit;
                        next += 1;
                        (prop.node, end)
                    }
                    None => self.member_name(at, check, &mut seen, &mut next)?,
                };
                at = skip_space(self.bytes, end);
                if self.bytes.get(at) != Some(&b':') {
                    return None;
                }
                at = skip_space(self.bytes, at + 1);
                at = self.item(at, node, depth)?;
                let closed;
                (at, closed) = after_item(self.bytes, at, b'}')?;
                if closed {
                    break;
                }
            }
        }
        (seen & check.required == check.required).then_some(at)
    }

    /// The member name whose opening quote is at `at`, looked up in
    /// `check`'s props (the one at `next` first): the node of its value
    /// and the index after the name. `seen` and `next` are updated for a
    /// prop found.
    fn member_name(
        &mut self,
        at: usize,
        check: &Check,
        seen: &mut u64,
        next: &mut usize,
    ) -> Option<(NodeId, usize)> {
        if self.bytes.get(at) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = self.string(at + 1)?;
        let found = if escaped {
            let name = self.scratch.as_bytes();
            check.prop(name, tape::fingerprint(name), *next)
        } else {
            let name = &self.bytes[at + 1..end - 1];
            check.prop(
                name,
                tape::fingerprint_at(self.bytes, at + 1, end - 1),
                *next,
            )
        };
        let node = match found {
            Some((i, prop)) => {
                *seen |= prop.bit;
                *next = i + 1;
                prop.node
            }
            None => check.additional,
        };
        Some((node, end))
    }
}

impl Check {
    /// The prop named `name`, whose [`tape::fingerprint`] is `print`, and
    /// its index, if any; the one at `hint` is tried first. Fingerprints
    /// rule out nearly every other name without comparing it.
    #[inline]
    fn prop(&self, name: &[u8], print: u64, hint: usize) -> Option<(usize, &Prop)> {
        let named = |p: &Prop| p.print == print && (name.len() < 8 || p.name.as_bytes() == name);
        if let Some(p) = self.props.get(hint)
            && named(p)
        {
            return Some((hint, p));
        }
        self.props.iter().enumerate().find(|(_, p)| named(p))
    }

    /// An object or array (`kind`) may be here.
    fn container(&self, kind: u8) -> Option<()> {
        (self.types & kind != 0 && self.choices.is_none() && !self.leaf_is_scalar_only)
            .then_some(())
    }

    #[inline]
    fn string(&self, s: &str) -> Option<()> {
        if self.types & STRING == 0 {
            return None;
        }
        if self.length != (0, u64::MAX) && !length_within(s, self.length.0, self.length.1) {
            return None;
        }
        if let Some(choices) = &self.choices
            && !choices.iter().any(|c| c.as_str() == Some(s))
        {
            return None;
        }
        if let Some(quick) = &self.quick_leaf
            && quick.accepts(s)
        {
            return Some(());
        }
        self.leaf(Scalar::Str(s))
    }

    fn number(&self, number: Number) -> Option<()> {
        let admitted =
            self.types & NUMBER != 0 || (self.types & INTEGER != 0 && is_integer(&number));
        if !admitted || self.choices.is_some() {
            return None;
        }
        if let Some([low, high]) = self.bounds
            && let Some(x) = exact_f64(&number)
        {
            let above = low.is_none_or(|(b, exclusive)| if exclusive { x > b } else { x >= b });
            let below = high.is_none_or(|(b, exclusive)| if exclusive { x < b } else { x <= b });
            return (above && below).then_some(());
        }
        self.leaf(Scalar::Number(number))
    }

    /// `true`, `false` or `null`.
    fn literal(&self, value: Scalar<'_>) -> Option<()> {
        let (kind, as_value) = match value {
            Scalar::Bool(b) => (BOOLEAN, Value::Bool(b)),
            _ => (NULL, Value::Null),
        };
        if self.types & kind == 0 {
            return None;
        }
        if let Some(choices) = &self.choices
            && !choices.contains(&as_value)
        {
            return None;
        }
        self.leaf(value)
    }

    #[inline]
    fn leaf(&self, scalar: Scalar<'_>) -> Option<()> {
        match &self.leaf {
            Some(leaf) => Doc::with_scalar(scalar, |node| leaf.is_valid(node)).then_some(()),
            None => Some(()),
        }
    }
}

/// `jsonschema`'s integer test (drafts 6 and later): floats with no
/// fractional part are integers.
fn is_integer(n: &Number) -> bool {
    n.is_u64() || n.is_i64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

#[cfg(test)]
#[path = "quick_tests.rs"]
mod tests;
