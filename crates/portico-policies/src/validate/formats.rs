//! Quick checks for the commonest `format`s of request bodies. Each one
//! accepts a plain subset of its format, every member of which
//! `jsonschema`'s own check accepts too, and says `false` for the rest,
//! which then goes to that check: so a quick check can only save work,
//! never change an answer. The tests hold each to `jsonschema`'s check.

/// Whether `text` is an address of the plain shape, which `jsonschema`'s
/// `email` check accepts too: an unquoted dot-atom local part of at most
/// 64 bytes, one `@`, and a domain of at least two ASCII labels (letters,
/// digits, inner hyphens but never two in a row, at most 63 bytes each,
/// 253 in all). Anything else is left to `jsonschema`.
pub(crate) fn email(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(at) = bytes.iter().position(|&b| b == b'@') else {
        return false;
    };
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local[local.len() - 1] == b'.' {
        return false;
    }
    let mut prev = 0;
    for &b in local {
        if (b == b'.' && prev == b'.') || (b != b'.' && !ATEXT[b as usize]) {
            return false;
        }
        prev = b;
    }
    if domain.len() > 253 {
        return false;
    }
    // Labels: letters, digits and inner hyphens, never two in a row.
    let (mut labels, mut len, mut prev) = (1, 0, b'.');
    for &b in domain {
        match b {
            b'.' if len > 0 && prev != b'-' => {
                labels += 1;
                len = 0;
            }
            b'-' if len > 0 && prev != b'-' => len += 1,
            b if b.is_ascii_alphanumeric() => len += 1,
            _ => return false,
        }
        if len > 63 {
            return false;
        }
        prev = b;
    }
    len > 0 && prev != b'-' && labels >= 2
}

/// RFC 5322 `atext`: the bytes of a dot-atom's words.
const ATEXT: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'/'
                    | b'='
                    | b'?'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'{'
                    | b'|'
                    | b'}'
                    | b'~'
            );
        i += 1;
    }
    table
};

/// `date` (RFC 3339 `full-date`): `YYYY-MM-DD` with a month of 01–12 and
/// a day of 01–28, which every month has; the 29th to 31st are left to
/// `jsonschema`'s calendar.
pub(crate) fn date(text: &str) -> bool {
    let b = text.as_bytes();
    let two = |at: usize| -> Option<u8> {
        let (h, l) = (b[at], b[at + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| (h - b'0') * 10 + (l - b'0'))
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    matches!((two(5), two(8)), (Some(1..=12), Some(1..=28)))
}

// Byte classes of RFC 3986, one bit for each kind of run a URI is read
// in: a byte has the bit of every run it may appear in, so that four
// bytes are tested against a run with one `&` of their entries.
/// What follows a scheme's first letter: letters, digits, `+`, `-`, `.`.
const SCHEME: u8 = 1;
/// A host name (`reg-name`): unreserved and sub-delims.
const NAME: u8 = 2;
/// A path: `pchar` (unreserved, sub-delims, `:`, `@`) and `/`.
const PATH: u8 = 4;
/// A query or fragment: a path's bytes and `?`.
const QUERY: u8 = 8;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphanumeric() {
            SCHEME | NAME | PATH | QUERY
        } else {
            match b {
                b'-' | b'.' | b'+' => SCHEME | NAME | PATH | QUERY,
                b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b',' | b';'
                | b'=' => NAME | PATH | QUERY,
                b':' | b'@' | b'/' => PATH | QUERY,
                b'?' => QUERY,
                _ => 0,
            }
        };
        i += 1;
    }
    table
};

/// The index of the first byte of `b` from `at` outside `class` (one bit
/// of [`CLASSES`]), or the end: four bytes to a test while they last.
fn run(b: &[u8], mut at: usize, class: u8) -> usize {
    while let Some(&[w, x, y, z]) = b.get(at..at + 4) {
        let all = CLASSES[usize::from(w)]
            & CLASSES[usize::from(x)]
            & CLASSES[usize::from(y)]
            & CLASSES[usize::from(z)];
        if all & class == 0 {
            break;
        }
        at += 4;
    }
    while let Some(&c) = b.get(at) {
        if CLASSES[usize::from(c)] & class == 0 {
            break;
        }
        at += 1;
    }
    at
}

/// `uri` (RFC 3986 absolute URI): a scheme, then optionally `//` and a
/// host name with an optional numeric port, then a path, query and
/// fragment, all without percent-encodings. User information, IP
/// literals and percent-encoded bytes are left to `jsonschema`.
pub(crate) fn uri(text: &str) -> bool {
    let b = text.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut at = run(b, 1, SCHEME);
    if b.get(at) != Some(&b':') {
        return false;
    }
    at += 1;
    if b[at..].starts_with(b"//") {
        at = run(b, at + 2, NAME);
        if b.get(at) == Some(&b':') {
            at += 1;
            while at < b.len() && b[at].is_ascii_digit() {
                at += 1;
            }
        }
        if !matches!(b.get(at), None | Some(b'/' | b'?' | b'#')) {
            return false;
        }
    }
    at = run(b, at, PATH);
    if b.get(at) == Some(&b'?') {
        at = run(b, at + 1, QUERY);
    }
    if b.get(at) == Some(&b'#') {
        at = run(b, at + 1, QUERY);
    }
    at == b.len()
}

/// A `pattern` of the common anchored shape `^…$` whose pieces are ASCII
/// characters, `\d`, `\w`, escaped punctuation, and classes of those
/// (with ranges), each with an optional quantifier (`?`, `*`, `+`, `{m}`,
/// `{m,}`, `{m,n}`): `^[+0-9 ()-]{6,20}$`, `^[A-Z]{3}$`, `^\d{4}-\d{2}$`. Anything else (groups, alternation,
/// `.`, negated classes, lookarounds, text outside ASCII) is not
/// compiled, and stays with `jsonschema`'s regex.
///
/// Matching takes as many characters as each piece allows, left to
/// right, without backtracking. A match found so is a match of the
/// pattern; where none is found the pattern may still match (`^a*ab$` on
/// `aab`), so `false` means "ask `jsonschema`", like the other checks here.
#[derive(Debug, Clone)]
pub(crate) struct SimplePattern {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
struct Piece {
    /// The ASCII characters the piece takes, one bit each.
    set: u128,
    min: u32,
    max: u32,
}

impl Piece {
    #[inline]
    fn takes(&self, b: u8) -> bool {
        b < 128 && (self.set >> b) & 1 != 0
    }
}

impl SimplePattern {
    /// The pattern compiled, if it has the shape above.
    pub(crate) fn new(pattern: &str) -> Option<Self> {
        let body = pattern.strip_prefix('^')?.strip_suffix('$')?;
        let bytes = body.as_bytes();
        if !body.is_ascii() || bytes.last() == Some(&b'\\') {
            // A trailing backslash escapes the `$`.
            return None;
        }
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let set;
            (set, at) = match bytes[at] {
                b'[' => class(bytes, at + 1)?,
                b'\\' => (escape(*bytes.get(at + 1)?, false)?, at + 2),
                b'.' | b'^' | b'$' | b'|' | b'(' | b')' | b'?' | b'*' | b'+' | b'{' | b'}'
                | b']' => return None,
                b => (bit(b), at + 1),
            };
            let (min, max);
            (min, max, at) = quantifier(bytes, at)?;
            pieces.push(Piece { set, min, max });
        }
        Some(Self { pieces })
    }

    /// Whether `text` matches, found without backtracking (see above).
    pub(crate) fn matches(&self, text: &str) -> bool {
        let mut rest = text.as_bytes();
        for piece in &self.pieces {
            let limit = rest.len().min(piece.max as usize);
            let taken = rest[..limit]
                .iter()
                .position(|&b| !piece.takes(b))
                .unwrap_or(limit);
            if taken < piece.min as usize {
                return false;
            }
            rest = &rest[taken..];
        }
        rest.is_empty()
    }
}

fn bit(b: u8) -> u128 {
    1u128 << (b & 127)
}

fn range(low: u8, high: u8) -> u128 {
    (low..=high).fold(0, |set, b| set | bit(b))
}

/// What `\c` stands for: `\d`, `\w`, or escaped ASCII punctuation (in
/// a class, `-` too). Other escapes (`\s`, `\b`, `\n`, `\u…`, …) are
/// not compiled.
fn escape(c: u8, in_class: bool) -> Option<u128> {
    match c {
        b'd' => Some(range(b'0', b'9')),
        b'w' => Some(range(b'a', b'z') | range(b'A', b'Z') | range(b'0', b'9') | bit(b'_')),
        b'-' if in_class => Some(bit(c)),
        b'.' | b'^' | b'$' | b'|' | b'(' | b')' | b'?' | b'*' | b'+' | b'{' | b'}' | b'['
        | b']' | b'\\' | b'/' => Some(bit(c)),
        _ => None,
    }
}

/// A class whose first byte after `[` is at `at`: its set and the index
/// after `]`.
fn class(bytes: &[u8], mut at: usize) -> Option<(u128, usize)> {
    let mut set = 0;
    if matches!(bytes.get(at), Some(b'^' | b']')) {
        // Negated, or `[]`/`[]…]`, which engines read differently.
        return None;
    }
    loop {
        let b = *bytes.get(at)?;
        match b {
            b']' => return Some((set, at + 1)),
            b'\\' => {
                set |= escape(*bytes.get(at + 1)?, true)?;
                at += 2;
            }
            b'[' => return None,
            _ => {
                // `a-z`; a `-` first, last or after a range is itself.
                if bytes.get(at + 1) == Some(&b'-')
                    && let Some(&high) = bytes.get(at + 2)
                    && high != b']'
                {
                    if high == b'\\' || high == b'[' || high < b {
                        return None;
                    }
                    set |= range(b, high);
                    at += 3;
                } else {
                    set |= bit(b);
                    at += 1;
                }
            }
        }
    }
}

/// The quantifier at `at`, if any: (min, max, the index after it).
fn quantifier(bytes: &[u8], at: usize) -> Option<(u32, u32, usize)> {
    let (min, max, end) = match bytes.get(at) {
        Some(b'?') => (0, 1, at + 1),
        Some(b'*') => (0, u32::MAX, at + 1),
        Some(b'+') => (1, u32::MAX, at + 1),
        Some(b'{') => {
            let close = at + bytes[at..].iter().position(|&b| b == b'}')?;
            let inner = std::str::from_utf8(&bytes[at + 1..close]).ok()?;
            let digits = |t: &str| {
                (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse::<u32>().ok())
                    .flatten()
            };
            let (min, max) = match inner.split_once(',') {
                None => {
                    let n = digits(inner)?;
                    (n, n)
                }
                Some((low, "")) => (digits(low)?, u32::MAX),
                Some((low, high)) => (digits(low)?, digits(high)?),
            };
            if min > max {
                return None;
            }
            (min, max, close + 1)
        }
        _ => (1, 1, at),
    };
    // A lazy or possessive mark, or a quantifier on a quantifier.
    if end > at && matches!(bytes.get(end), Some(b'?' | b'*' | b'+' | b'{')) {
        return None;
    }
    Some((min, max, end))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// `jsonschema`'s own check of `format`.
    fn full(format: &str) -> impl Fn(&str) -> bool {
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&json!({ "format": format }))
            .unwrap();
        move |text| v.is_valid(&Value::String(text.to_owned()))
    }

    #[test]
    fn common_values_take_the_quick_path() {
        for u in [
            "https://img.example.com/pets/rex/1.jpg",
            "http://localhost:8080/a?b=c&d=e#f",
            "urn:isbn:0451450523",
            "mailto:a@example.org",
            "https://example.com",
        ] {
            assert!(super::uri(u), "{u}");
        }
        for u in [
            "https://a@example.com/",
            "http://[::1]/",
            "https://x/%20",
            "/relative",
        ] {
            assert!(!super::uri(u), "{u}");
        }
        assert!(super::date("2021-04-17"));
        assert!(!super::date("2021-04-29"));
        assert!(!super::date("2021-13-01"));
    }

    /// Every edge of the date rule, both ways.
    #[test]
    fn the_date_check_agrees_where_it_answers() {
        let full = full("date");
        for y in ["2000", "1900", "2024", "0000", "9999", "20a4"] {
            for m in ["00", "01", "02", "09", "12", "13", "1a"] {
                for d in ["00", "01", "09", "28", "29", "30", "31", "32", "2x"] {
                    let text = format!("{y}-{m}-{d}");
                    if super::date(&text) {
                        assert!(full(&text), "{text}");
                    }
                }
            }
        }
    }

    /// `jsonschema`'s own check of `pattern`.
    fn full_pattern(pattern: &str) -> Option<impl Fn(&str) -> bool> {
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&json!({ "pattern": pattern }))
            .ok()?;
        Some(move |text: &str| v.is_valid(&Value::String(text.to_owned())))
    }

    #[test]
    fn simple_patterns_are_compiled_and_matched() {
        use super::SimplePattern;
        for (pattern, yes, no) in [
            (
                "^[+0-9 ()-]{6,20}$",
                "+1 (503) 555-0199",
                "+1 (503) 555-0199 ext",
            ),
            ("^[A-Z]{3}$", "EUR", "EURO"),
            ("^\\d{4}-\\d{2}$", "2024-05", "2024-5"),
            ("^[a-z0-9-]+$", "my-api-2", "My-api"),
            ("^[\\w.]{1,}@x\\.org$", "a.b@x.org", "a.b@xorg"),
            ("^a?b*c$", "abbc", "aac"),
        ] {
            let quick = SimplePattern::new(pattern).expect(pattern);
            assert!(quick.matches(yes), "{pattern} on {yes}");
            assert!(!quick.matches(no), "{pattern} on {no}");
            let full = full_pattern(pattern).unwrap();
            assert!(full(yes) && !full(no), "{pattern}");
        }
        for pattern in [
            "[a-z]+",
            "^[a-z]+",
            "^(a|b)$",
            "^.*$",
            "^[^a]$",
            "^a+?$",
            "^a{2,1}$",
            "^\\s+$",
            "^a\\$",
            "^caf\u{e9}$",
            "^[]a]$",
            "^[z-a]$",
        ] {
            assert!(SimplePattern::new(pattern).is_none(), "{pattern}");
        }
        // Greedy without backtracking: a real match it cannot find is left
        // to `jsonschema`.
        let quick = SimplePattern::new("^a*ab$").unwrap();
        assert!(!quick.matches("aab"));
        assert!(full_pattern("^a*ab$").unwrap()("aab"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn simple_patterns_never_accept_what_jsonschema_refuses(
            pieces in proptest::collection::vec(
                ("[ab0_.-]|\\\\d|\\\\w|\\\\.|\\[[ab0-9_-]{1,4}\\]|\\[a-c\\\\d-\\]", "|\\?|\\*|\\+|\\{[0-3]\\}|\\{[0-2],[0-3]?\\}"),
                0..5,
            ),
            text in "[ab0-9_.-]{0,8}",
        ) {
            let pattern: String = std::iter::once("^".to_owned())
                .chain(pieces.iter().map(|(atom, q)| format!("{atom}{q}")))
                .chain(std::iter::once("$".to_owned()))
                .collect();
            if let Some(quick) = super::SimplePattern::new(&pattern)
                && quick.matches(&text)
            {
                let full = full_pattern(&pattern).expect("a simple pattern compiles");
                prop_assert!(full(&text), "{pattern} on {text:?}");
            }
        }

        #[test]
        fn the_uri_check_never_accepts_what_jsonschema_refuses(
            text in "[a-zA-Z][a-zA-Z0-9+.-]{0,4}:(//[a-zA-Z0-9._~!$&'()*+,;=:@%\\[\\]-]{0,12})?[a-zA-Z0-9/?#:@._~!$&'()*+,;=% -]{0,20}",
        ) {
            if super::uri(&text) {
                prop_assert!(full("uri")(&text), "{text}");
            }
        }

        #[test]
        fn the_uri_check_takes_plain_urls(
            scheme in "[a-z][a-z0-9+.-]{0,5}",
            host in "[a-z0-9.-]{1,12}",
            port in proptest::option::of(0u16..),
            path in "(/[a-zA-Z0-9._~!$&'()*+,;=:@-]{0,6}){0,3}",
            query in proptest::option::of("[a-z0-9=&/?]{0,8}"),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            let text = format!("{scheme}://{host}{port}{path}{query}");
            prop_assert!(super::uri(&text), "{text}");
            prop_assert!(full("uri")(&text), "{text}");
        }

        #[test]
        fn the_date_check_never_accepts_what_jsonschema_refuses(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}|.{0,12}") {
            if super::date(&text) {
                prop_assert!(full("date")(&text), "{text}");
            }
        }
    }
}
