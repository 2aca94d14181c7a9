//! A JSON document read in one pass into a flat list of entries that
//! borrows its strings from the body, and the `jsonschema` representation
//! ([`Tape`]) that validates it in place.
//!
//! Reading a body into a `serde_json::Value` allocates an owned string for
//! every key and string and a `BTreeMap` for every object, and freeing it
//! walks it all again; that was more than half of what `validate` cost per
//! request. A [`Doc`] is one vector of small entries: strings without
//! escapes are byte ranges of the body, the few with escapes are decoded
//! into one side buffer, numbers are held as the `serde_json::Number` that
//! `serde_json` would have read.
//!
//! The reader accepts exactly the documents `serde_json` accepts, with two
//! exceptions: it gives up (returns `None`) on an object that names a
//! member twice, where `serde_json` keeps the last value, and on nesting
//! deeper than `serde_json`'s limit. The caller then reads the body with
//! `serde_json`, which either names the syntax error or gives the value
//! that [`Doc::from_value`] turns into a tape. So every answer is the one
//! the `serde_json` representation would give, only cheaper in the common
//! case.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use jsonschema::json::{Array, Json, Node, NodeIdentity, Object, cmp};
use jsonschema::types::JsonType;
pub(crate) use portico_model::json::plain_run;
use portico_model::json::{ONES, word_at};
use serde_json::{Map, Number, Value};

/// `serde_json`'s nesting limit: it refuses documents with more arrays and
/// objects inside one another than this.
const MAX_DEPTH: u32 = 127;

/// Objects with at most this many members are checked for a repeated name
/// pair by pair; larger ones through a sorted list.
const PAIRWISE_NAMES: usize = 16;

/// The representation: `jsonschema` validators compiled for it check a
/// [`Doc`] through [`TapeNode`]s.
pub(crate) struct Tape;

/// One read JSON document.
#[derive(Default)]
pub(crate) struct Doc<'t> {
    text: &'t str,
    entries: Vec<Entry>,
    /// Strings that are not a plain range of `text`: those with escapes,
    /// and every string of a document built from a value.
    decoded: String,
    /// The reader's scratch: the member names of the objects being read
    /// (fingerprint, entry index), for the repeated-name check.
    names: Vec<Name>,
    /// Whether the vectors came from [`SPARE`] and go back there.
    spare: bool,
}

/// A member name being read: its fingerprint and entry index.
type Name = (u64, u32);

thread_local! {
    /// The vectors of the last document dropped on this thread, for the
    /// next one to read into: one body per request would otherwise
    /// allocate and free them every time.
    static SPARE: Cell<(Vec<Entry>, Vec<Name>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

thread_local! {
    /// The tape [`Doc::with_scalar`] fills.
    static LEAF: RefCell<Doc<'static>> = RefCell::new(Doc::default());
}

/// A lone value for [`Doc::with_scalar`].
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    Number(Number),
    Bool(bool),
    Null,
}

/// Vectors past this many entries are freed, not kept: one large body
/// must not pin its memory to a thread.
const SPARE_MAX: usize = 4096;

impl Drop for Doc<'_> {
    fn drop(&mut self) {
        if !self.spare || self.entries.capacity() > SPARE_MAX || self.names.capacity() > SPARE_MAX {
            return;
        }
        let mut entries = std::mem::take(&mut self.entries);
        let mut names = std::mem::take(&mut self.names);
        entries.clear();
        names.clear();
        // Gone only while the thread exits.
        let _ = SPARE.try_with(|spare| spare.set((entries, names)));
    }
}

/// One value, or an object member's name. A container's members follow
/// it (for an object, name then value), and `next` is the index after its
/// last descendant.
#[derive(Debug)]
enum Entry {
    Null,
    Bool(bool),
    Number(Number),
    /// `start..start + len` of `text`, or of `decoded` when `decoded`.
    /// `name` is the [`fingerprint`] of a member name, 0 for a value.
    Str {
        start: u32,
        len: u32,
        decoded: bool,
        name: u64,
    },
    Array {
        len: u32,
        next: u32,
    },
    Object {
        len: u32,
        next: u32,
    },
}

impl<'t> Doc<'t> {
    /// Reads `text` as one JSON value; `None` where it is not JSON, names a
    /// member twice or is nested too deep (see the module documentation).
    pub(crate) fn parse(text: &'t str) -> Option<Self> {
        // Offsets are `u32`.
        u32::try_from(text.len()).ok()?;
        let bytes = text.as_bytes();
        let (mut entries, names) = SPARE.try_with(Cell::take).unwrap_or_default();
        entries.reserve(text.len() / 12 + 2);
        let mut reader = Reader {
            bytes,
            doc: Doc {
                text,
                entries,
                decoded: String::new(),
                names,
                spare: true,
            },
        };
        let end = reader.value(skip_space(bytes, 0), 0)?;
        (skip_space(bytes, end) == bytes.len()).then_some(reader.doc)
    }

    /// The tape of a value read some other way (a decoded parameter, a
    /// body `serde_json` read). A lone string is borrowed, not copied.
    pub(crate) fn from_value(value: &Value) -> Doc<'_> {
        if let Value::String(s) = value {
            return Doc {
                text: s,
                entries: vec![Entry::Str {
                    start: 0,
                    len: s.len() as u32,
                    decoded: false,
                    name: 0,
                }],
                decoded: String::new(),
                names: Vec::new(),
                spare: false,
            };
        }
        let mut doc = Doc::default();
        doc.push_value(value);
        doc
    }

    /// Runs `f` on a tape of one scalar: a string is copied into a
    /// per-thread buffer, so nothing is allocated once it has grown.
    pub(crate) fn with_scalar<T>(scalar: Scalar<'_>, f: impl FnOnce(TapeNode<'_>) -> T) -> T {
        let fill = |doc: &mut Doc<'static>| {
            doc.entries.clear();
            doc.decoded.clear();
            match scalar {
                Scalar::Str(s) => doc.push_decoded(s, false),
                Scalar::Number(n) => doc.entries.push(Entry::Number(n)),
                Scalar::Bool(b) => doc.entries.push(Entry::Bool(b)),
                Scalar::Null => doc.entries.push(Entry::Null),
            }
        };
        LEAF.with(|leaf| match leaf.try_borrow_mut() {
            Ok(mut doc) => {
                fill(&mut doc);
                f(doc.root())
            }
            // Only if `f` itself came back here.
            Err(_) => {
                let mut doc = Doc::default();
                fill(&mut doc);
                f(doc.root())
            }
        })
    }

    /// The document's root value.
    pub(crate) fn root(&self) -> TapeNode<'_> {
        TapeNode { doc: self, at: 0 }
    }

    fn push_value(&mut self, value: &Value) {
        match value {
            Value::Null => self.entries.push(Entry::Null),
            Value::Bool(b) => self.entries.push(Entry::Bool(*b)),
            Value::Number(n) => self.entries.push(Entry::Number(n.clone())),
            Value::String(s) => self.push_decoded(s, false),
            Value::Array(items) => {
                let at = self.entries.len();
                self.entries.push(Entry::Array { len: 0, next: 0 });
                for item in items {
                    self.push_value(item);
                }
                self.entries[at] = Entry::Array {
                    len: items.len() as u32,
                    next: self.entries.len() as u32,
                };
            }
            Value::Object(members) => {
                let at = self.entries.len();
                self.entries.push(Entry::Object { len: 0, next: 0 });
                for (name, member) in members {
                    self.push_decoded(name, true);
                    self.push_value(member);
                }
                self.entries[at] = Entry::Object {
                    len: members.len() as u32,
                    next: self.entries.len() as u32,
                };
            }
        }
    }

    fn push_decoded(&mut self, s: &str, is_name: bool) {
        let start = self.decoded.len() as u32;
        self.decoded.push_str(s);
        self.entries.push(Entry::Str {
            start,
            len: s.len() as u32,
            decoded: true,
            name: if is_name {
                fingerprint(s.as_bytes())
            } else {
                0
            },
        });
    }

    /// The index after the value at `at` and its descendants.
    fn next(&self, at: u32) -> u32 {
        match self.entries[at as usize] {
            Entry::Array { next, .. } | Entry::Object { next, .. } => next,
            _ => at + 1,
        }
    }

    fn str_at(&self, at: u32) -> Option<&str> {
        match self.entries[at as usize] {
            Entry::Str {
                start,
                len,
                decoded,
                ..
            } => {
                let range = start as usize..(start + len) as usize;
                Some(if decoded {
                    &self.decoded[range]
                } else {
                    &self.text[range]
                })
            }
            _ => None,
        }
    }

    fn to_value(&self, at: u32) -> Value {
        match &self.entries[at as usize] {
            Entry::Null => Value::Null,
            Entry::Bool(b) => Value::Bool(*b),
            Entry::Number(n) => Value::Number(n.clone()),
            Entry::Str { .. } => Value::String(self.str_at(at).unwrap_or_default().to_owned()),
            Entry::Array { .. } => Value::Array(
                TapeArray { doc: self, at }
                    .elements()
                    .map(|e| self.to_value(e.at))
                    .collect(),
            ),
            Entry::Object { .. } => Value::Object(
                TapeObject { doc: self, at }
                    .members()
                    .map(|(name, value)| (name.to_owned(), self.to_value(value.at)))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// The reader against `serde_json` on `text`, for the tests and the
/// `json_body` fuzz target: where the reader gives a value it must be the
/// one `serde_json` reads (numbers of the same kind included), so a text
/// `serde_json` refuses must be refused. Panics on a disagreement.
pub(crate) fn assert_reads_as_serde_json(text: &str) {
    let theirs = serde_json::from_str::<Value>(text).ok();
    // Where the reader declines, serde_json decides by design.
    if let Some(doc) = Doc::parse(text) {
        assert_eq!(
            Some(doc.to_value(0)),
            theirs,
            "the tape reads {text:?} differently"
        );
    }
}

/// The one-pass reader behind [`Doc::parse`]. Positions are passed and
/// returned by value, so that the hot loops keep them in registers.
struct Reader<'t> {
    bytes: &'t [u8],
    doc: Doc<'t>,
}

/// The index of the first byte from `at` that is not JSON whitespace.
/// Inlined: most calls find no whitespace, or one space, and leave at once.
#[inline(always)]
pub(crate) fn skip_space(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at) {
        Some(&b) if b > b' ' => at,
        None => at,
        // The space after a name's colon.
        Some(b' ') if bytes.get(at + 1).is_some_and(|&b| b > b' ') => at + 1,
        Some(_) => skip_space_run(bytes, at),
    }
}

/// [`skip_space`] from a byte that may be whitespace.
#[inline(never)]
fn skip_space_run(bytes: &[u8], mut at: usize) -> usize {
    // Pretty-printed text: a line break and the next line's indentation,
    // read in one word where the indentation is shorter than that.
    if bytes.get(at) == Some(&b'\n')
        && let Some(word) = word_at(bytes, at + 1)
    {
        let rest = word ^ (ONES * u64::from(b' '));
        if rest != 0 {
            let end = at + 1 + (rest.trailing_zeros() / 8) as usize;
            if bytes[end] > b' ' {
                return end;
            }
        }
    }
    loop {
        match bytes.get(at) {
            Some(b'\n' | b'\t' | b'\r') => at += 1,
            // Indentation comes in runs, and what ends one is mostly not
            // more whitespace.
            Some(b' ') => {
                at = space_run(bytes, at);
                if !matches!(bytes.get(at), Some(b'\n' | b'\t' | b'\r')) {
                    return at;
                }
            }
            _ => return at,
        }
    }
}

impl Reader<'_> {
    /// Reads the value starting at `at` (no whitespace before it);
    /// returns the index after it.
    fn value(&mut self, at: usize, depth: u32) -> Option<usize> {
        match *self.bytes.get(at)? {
            b'"' => self.string(at + 1, false).map(|(end, _)| end),
            b'{' => self.object(at + 1, depth + 1),
            b'[' => self.array(at + 1, depth + 1),
            b't' => self.literal(at, b"true", Entry::Bool(true)),
            b'f' => self.literal(at, b"false", Entry::Bool(false)),
            b'n' => self.literal(at, b"null", Entry::Null),
            b'-' | b'0'..=b'9' => self.number(at),
            _ => None,
        }
    }

    fn literal(&mut self, at: usize, word: &[u8], entry: Entry) -> Option<usize> {
        if !self.bytes[at..].starts_with(word) {
            return None;
        }
        self.doc.entries.push(entry);
        Some(at + word.len())
    }

    /// An array whose first byte after `[` is at `at`.
    fn array(&mut self, at: usize, depth: u32) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let entry = self.doc.entries.len();
        self.doc.entries.push(Entry::Array { len: 0, next: 0 });
        let mut len = 0u32;
        let mut at = skip_space(self.bytes, at);
        if self.bytes.get(at) == Some(&b']') {
            at += 1;
        } else {
            loop {
                at = self.value(at, depth)?;
                len += 1;
                let closed;
                (at, closed) = after_item(self.bytes, at, b']')?;
                if closed {
                    break;
                }
            }
        }
        self.doc.entries[entry] = Entry::Array {
            len,
            next: self.doc.entries.len() as u32,
        };
        Some(at)
    }

    /// An object whose first byte after `{` is at `at`.
    fn object(&mut self, at: usize, depth: u32) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        let entry = self.doc.entries.len();
        self.doc.entries.push(Entry::Object { len: 0, next: 0 });
        let names_from = self.doc.names.len();
        let mut len = 0u32;
        let mut at = skip_space(self.bytes, at);
        if self.bytes.get(at) == Some(&b'}') {
            at += 1;
        } else {
            loop {
                if self.bytes.get(at) != Some(&b'"') {
                    return None;
                }
                let name = self.doc.entries.len();
                let (end, print) = self.string(at + 1, true)?;
                self.doc.names.push((print, name as u32));
                at = skip_space(self.bytes, end);
                if self.bytes.get(at) != Some(&b':') {
                    return None;
                }
                at = skip_space(self.bytes, at + 1);
                at = self.value(at, depth)?;
                len += 1;
                let closed;
                (at, closed) = after_item(self.bytes, at, b'}')?;
                if closed {
                    break;
                }
            }
        }
        if self.repeats_a_name(names_from) {
            return None;
        }
        self.doc.names.truncate(names_from);
        self.doc.entries[entry] = Entry::Object {
            len,
            next: self.doc.entries.len() as u32,
        };
        Some(at)
    }

    /// Whether the object whose names start at `names[from]` names a
    /// member twice.
    fn repeats_a_name(&self, from: usize) -> bool {
        let names = &self.doc.names[from..];
        let name = |i: u32| self.doc.str_at(i).unwrap_or_default();
        if names.len() <= PAIRWISE_NAMES {
            // Fingerprints differ for nearly every pair of different names.
            return names.iter().enumerate().any(|(i, (print, at))| {
                names[i + 1..]
                    .iter()
                    .any(|(p, a)| p == print && (*p >> 56 < 8 || name(*a) == name(*at)))
            });
        }
        let mut sorted: Vec<(u64, &str)> = names.iter().map(|(p, a)| (*p, name(*a))).collect();
        sorted.sort_unstable();
        sorted.windows(2).any(|w| w[0] == w[1])
    }

    /// A string whose first byte after the quote is at `start`. Returns
    /// the index after the closing quote and, for a member name, its
    /// [`fingerprint`] (0 for a value).
    fn string(&mut self, start: usize, is_name: bool) -> Option<(usize, u64)> {
        let at = plain_run(self.bytes, start);
        match *self.bytes.get(at)? {
            b'"' => {
                let print = if is_name {
                    fingerprint(&self.bytes[start..at])
                } else {
                    0
                };
                self.doc.entries.push(Entry::Str {
                    start: start as u32,
                    len: (at - start) as u32,
                    decoded: false,
                    name: print,
                });
                Some((at + 1, print))
            }
            b'\\' => self.escaped_string(start, at, is_name),
            // A control character: it must be escaped.
            _ => None,
        }
    }

    /// The rest of a string from `start` that has an escape at `at`,
    /// decoded into the side buffer.
    fn escaped_string(&mut self, start: usize, at: usize, is_name: bool) -> Option<(usize, u64)> {
        let from = self.doc.decoded.len();
        let end = decode_string(self.doc.text, start, at, &mut self.doc.decoded)?;
        let print = if is_name {
            fingerprint(&self.doc.decoded.as_bytes()[from..])
        } else {
            0
        };
        self.doc.entries.push(Entry::Str {
            start: from as u32,
            len: (self.doc.decoded.len() - from) as u32,
            decoded: true,
            name: print,
        });
        Some((end, print))
    }

    fn number(&mut self, start: usize) -> Option<usize> {
        let (number, end) = read_number(self.doc.text, start)?;
        self.doc.entries.push(Entry::Number(number));
        Some(end)
    }
}

/// Decodes the string of `text` whose first byte after the quote is at
/// `start` and whose first escape is at `at`, appending it to `out`;
/// returns the index after the closing quote. `None` where `serde_json`
/// would refuse the string or might judge it differently.
pub(crate) fn decode_string(
    text: &str,
    start: usize,
    mut at: usize,
    out: &mut String,
) -> Option<usize> {
    let bytes = text.as_bytes();
    out.push_str(text.get(start..at)?);
    loop {
        match *bytes.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => {
                let decoded = match *bytes.get(at + 1)? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let (c, end) = unicode_escape(bytes, at + 2)?;
                        out.push(c);
                        at = end;
                        continue;
                    }
                    _ => return None,
                };
                out.push(decoded);
                at += 2;
            }
            0..0x20 => return None,
            _ => {
                let end = plain_run(bytes, at);
                out.push_str(text.get(at..end)?);
                at = end;
            }
        }
    }
}

/// The character of a `\uXXXX` escape whose digits start at `at`, with
/// its low surrogate when it is a high one, and the index after it. Any
/// other surrogate is left to `serde_json` to judge.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let high = hex4(bytes, at)?;
    if !(0xD800..0xE000).contains(&high) {
        return Some((char::from_u32(high)?, at + 4));
    }
    if high >= 0xDC00 || !bytes[at + 4..].starts_with(b"\\u") {
        return None;
    }
    let low = hex4(bytes, at + 6)?;
    if !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    let c = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?;
    Some((c, at + 10))
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let mut n = 0;
    for &d in digits {
        n = n * 16 + char::from(d).to_digit(16)?;
    }
    Some(n)
}

/// The number of `text` starting at `start`, read as `serde_json` reads
/// it, and the index after it: an integer that fits a `u64` (or,
/// negative, an `i64`) stays one; anything else is read by `serde_json`
/// itself, so floats round the same way.
pub(crate) fn read_number(text: &str, start: usize) -> Option<(Number, usize)> {
    let (shape, at) = number_shape(text.as_bytes(), start)?;
    let number = match shape {
        Shape::Exact(n) => n,
        Shape::Other => serde_json::from_str(&text[start..at]).ok()?,
    };
    Some((number, at))
}

/// What a number's syntax tells of its value.
pub(crate) enum Shape {
    /// A number `serde_json` reads as this one: an integer in `u64` or
    /// `i64`, or a decimal without exponent whose digits make at most
    /// 2⁵³ with at most 22 of them after the point. Such a decimal is
    /// its digits divided by a power of ten, both exact as `f64`s, so the
    /// one rounded division is the correctly rounded value, the one
    /// `serde_json` gives.
    Exact(Number),
    /// Any other float, or an integer past `u64`/`i64`: only
    /// `serde_json`'s own reading gives its value (or refuses it, out of
    /// range).
    Other,
}

/// The syntax of the number starting at `start`: its [`Shape`] and the
/// index after it; `None` where it is not a JSON number.
pub(crate) fn number_shape(bytes: &[u8], start: usize) -> Option<(Shape, usize)> {
    let negative = *bytes.get(start)? == b'-';
    let mut at = start + usize::from(negative);
    // The integer part's value, `None` past `u64`.
    let mut magnitude = Some(0u64);
    match *bytes.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => {
            while let Some(&d @ b'0'..=b'9') = bytes.get(at) {
                magnitude = magnitude
                    .and_then(|m| m.checked_mul(10))
                    .and_then(|m| m.checked_add(u64::from(d - b'0')));
                at += 1;
            }
        }
        _ => return None,
    }
    let mut integer = true;
    let mut decimal = None;
    if bytes.get(at) == Some(&b'.') {
        integer = false;
        let from = at + 1;
        at = digits(bytes, from)?;
        decimal = small_decimal(magnitude, &bytes[from..at]);
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        integer = false;
        decimal = None;
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = digits(bytes, at)?;
    }
    if let Some(value) = decimal {
        let value = if negative { -value } else { value };
        return Some((
            Number::from_f64(value).map_or(Shape::Other, Shape::Exact),
            at,
        ));
    }
    let exact = integer
        .then(|| {
            let magnitude = magnitude?;
            if !negative {
                return Some(Number::from(magnitude));
            }
            // `serde_json` reads `-0` and negatives past `i64` as floats.
            let value = (magnitude as i64).wrapping_neg();
            (value < 0).then(|| Number::from(value))
        })
        .flatten();
    Some((exact.map_or(Shape::Other, Shape::Exact), at))
}

/// The value of a decimal whose integer part is `whole` and whose digits
/// after the point are `fraction`, where [`Shape::Exact`] allows it.
fn small_decimal(whole: Option<u64>, fraction: &[u8]) -> Option<f64> {
    /// Powers of ten up to 10²², each exactly an `f64`.
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let scale = *POW10.get(fraction.len())?;
    let mut digits = whole?;
    for &d in fraction {
        digits = digits.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (digits <= 1 << 53).then(|| digits as f64 / scale)
}

/// The index after one or more decimal digits from `at`.
fn digits(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(b'0'..=b'9') = bytes.get(at) {
        at += 1;
    }
    (at > from).then_some(at)
}

impl Json for Tape {
    type Node<'a> = TapeNode<'a>;
    type PreparedKey = Key;
    type StringBuffer = Doc<'static>;

    fn prepare_key(key: &str) -> Key {
        Key {
            print: fingerprint(key.as_bytes()),
            name: key.into(),
        }
    }

    fn with_string_node<T>(
        buffer: &mut Doc<'static>,
        string: &str,
        f: impl FnOnce(TapeNode<'_>) -> T,
    ) -> T {
        buffer.entries.clear();
        buffer.decoded.clear();
        buffer.push_decoded(string, false);
        f(buffer.root())
    }
}

/// A member name `jsonschema` looks up, prepared once per schema.
pub(crate) struct Key {
    print: u64,
    name: Box<str>,
}

/// The index of the first byte from `at` that is not a space.
fn space_run(bytes: &[u8], mut at: usize) -> usize {
    while let Some(word) = word_at(bytes, at) {
        // Spaces become zero bytes; the lowest other byte is the end.
        let rest = word ^ (ONES * u64::from(b' '));
        if rest != 0 {
            return at + (rest.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    at
}

/// A member name's length and first seven bytes in one word: two names
/// with the same fingerprint are most likely the same, and certainly when
/// they are shorter than eight bytes.
pub(crate) fn fingerprint(name: &[u8]) -> u64 {
    // The length saturates, so that only a short name reads as short.
    let len = (name.len().min(255) as u64) << 56;
    if let Some(word) = word_at(name, 0) {
        return len | (word & 0x00FF_FFFF_FFFF_FFFF);
    }
    let mut print = len;
    for (i, &b) in name.iter().enumerate() {
        print |= u64::from(b) << (8 * i);
    }
    print
}

/// [`fingerprint`] of `bytes[start..end]`, read in one load from the
/// text around it where the text goes on for eight bytes from `start`.
#[inline]
pub(crate) fn fingerprint_at(bytes: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    match word_at(bytes, start) {
        Some(word) => {
            let mask = (1u64 << (8 * len.min(7))) - 1;
            ((len.min(255) as u64) << 56) | (word & mask)
        }
        None => fingerprint(&bytes[start..end]),
    }
}

/// `minLength`/`maxLength`: whether `s` has `min..=max` characters. A
/// character takes one to four bytes: the byte length often decides
/// without counting.
pub(crate) fn length_within(s: &str, min: u64, max: u64) -> bool {
    let bytes = s.len() as u64;
    if bytes < min || bytes.div_ceil(4) > max {
        return false;
    }
    if min <= bytes.div_ceil(4) && bytes <= max {
        return true;
    }
    (min..=max).contains(&(s.chars().count() as u64))
}

/// What follows an array element or object member ending at `at`: a
/// comma (the index after it and its space, `false`) or `close` (the
/// index after it, `true`); `None` for anything else.
#[inline]
pub(crate) fn after_item(bytes: &[u8], at: usize, close: u8) -> Option<(usize, bool)> {
    let at = skip_space(bytes, at);
    match *bytes.get(at)? {
        b',' => Some((skip_space(bytes, at + 1), false)),
        b if b == close => Some((at + 1, true)),
        _ => None,
    }
}

/// A value of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct TapeNode<'a> {
    doc: &'a Doc<'a>,
    at: u32,
}

impl<'a> TapeNode<'a> {
    fn entry(&self) -> &'a Entry {
        &self.doc.entries[self.at as usize]
    }

    fn str(&self) -> Option<&'a str> {
        self.doc.str_at(self.at)
    }
}

impl<'a> Node<'a, Tape> for TapeNode<'a> {
    type Object = TapeObject<'a>;
    type Array = TapeArray<'a>;
    type Number = &'a Number;

    fn as_object(&self) -> Option<TapeObject<'a>> {
        matches!(self.entry(), Entry::Object { .. }).then_some(TapeObject {
            doc: self.doc,
            at: self.at,
        })
    }

    fn as_array(&self) -> Option<TapeArray<'a>> {
        matches!(self.entry(), Entry::Array { .. }).then_some(TapeArray {
            doc: self.doc,
            at: self.at,
        })
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        self.str().map(Cow::Borrowed)
    }

    fn as_number(&self) -> Option<&'a Number> {
        match self.entry() {
            Entry::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.entry() {
            Entry::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.entry(), Entry::Null)
    }

    fn json_type(&self) -> JsonType {
        match self.entry() {
            Entry::Null => JsonType::Null,
            Entry::Bool(_) => JsonType::Boolean,
            Entry::Number(_) => JsonType::Number,
            Entry::Str { .. } => JsonType::String,
            Entry::Array { .. } => JsonType::Array,
            Entry::Object { .. } => JsonType::Object,
        }
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        Some(length_within(self.str()?, min, max))
    }

    fn equals_value(&self, expected: &Value) -> bool {
        match (self.entry(), expected) {
            (Entry::Str { .. }, Value::String(s)) => self.str() == Some(s.as_str()),
            (Entry::Null, Value::Null) => true,
            (Entry::Bool(a), Value::Bool(b)) => a == b,
            (Entry::Number(n), Value::Number(_)) => cmp::equal(&Value::Number(n.clone()), expected),
            (Entry::Array { .. } | Entry::Object { .. }, Value::Array(_) | Value::Object(_)) => {
                cmp::equal(&self.doc.to_value(self.at), expected)
            }
            _ => false,
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.doc.to_value(self.at))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::tagged(
            std::ptr::from_ref::<Doc<'_>>(self.doc) as usize,
            self.at,
        ))
    }
}

/// An object of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct TapeObject<'a> {
    doc: &'a Doc<'a>,
    at: u32,
}

/// An object's members: (name, value).
pub(crate) struct Members<'a> {
    doc: &'a Doc<'a>,
    /// The next member's name.
    at: u32,
    left: u32,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TapeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let name = self.doc.str_at(self.at).unwrap_or_default();
        let value = self.at + 1;
        self.at = self.doc.next(value);
        Some((
            name,
            TapeNode {
                doc: self.doc,
                at: value,
            },
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl<'a> Object<'a, Tape> for TapeObject<'a> {
    type Node = TapeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        match self.doc.entries[self.at as usize] {
            Entry::Object { len, .. } => len as usize,
            _ => 0,
        }
    }

    fn get(&self, key: &Key) -> Option<TapeNode<'a>> {
        // Names are unique (the reader made sure), so the first match is
        // the only one. Fingerprints rule out nearly every other name
        // without reading it.
        let mut at = self.at + 1;
        for _ in 0..self.len() {
            if let Entry::Str { name, .. } = self.doc.entries[at as usize]
                && name == key.print
                && (key.name.len() < 8 || self.doc.str_at(at) == Some(&*key.name))
            {
                return Some(TapeNode {
                    doc: self.doc,
                    at: at + 1,
                });
            }
            at = self.doc.next(at + 1);
        }
        None
    }

    fn members(&self) -> Members<'a> {
        Members {
            doc: self.doc,
            at: self.at + 1,
            left: self.len() as u32,
        }
    }
}

/// An array of a [`Doc`].
#[derive(Clone, Copy)]
pub(crate) struct TapeArray<'a> {
    doc: &'a Doc<'a>,
    at: u32,
}

/// An array's elements.
pub(crate) struct Elements<'a> {
    doc: &'a Doc<'a>,
    at: u32,
    left: u32,
}

impl<'a> Iterator for Elements<'a> {
    type Item = TapeNode<'a>;

    fn next(&mut self) -> Option<TapeNode<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let node = TapeNode {
            doc: self.doc,
            at: self.at,
        };
        self.at = self.doc.next(self.at);
        Some(node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl<'a> Array<'a, Tape> for TapeArray<'a> {
    type Node = TapeNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        match self.doc.entries[self.at as usize] {
            Entry::Array { len, .. } => len as usize,
            _ => 0,
        }
    }

    fn elements(&self) -> Elements<'a> {
        Elements {
            doc: self.doc,
            at: self.at + 1,
            left: self.len() as u32,
        }
    }
}

#[cfg(test)]
#[path = "tape_tests.rs"]
mod tests;
