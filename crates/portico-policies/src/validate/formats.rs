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

// Byte classes of RFC 3986, one bit each.
/// unreserved and sub-delims: what a host name (`reg-name`) is made of.
const NAME: u8 = 1;
const COLON: u8 = 2;
const AT: u8 = 4;
const SLASH: u8 = 8;
const QUESTION: u8 = 16;
/// A path's bytes: `pchar` and `/`.
const PATH: u8 = NAME | COLON | AT | SLASH;
/// A query's or fragment's bytes.
const QUERY: u8 = PATH | QUESTION;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphanumeric() {
            NAME
        } else {
            match b {
                b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*'
                | b'+' | b',' | b';' | b'=' => NAME,
                b':' => COLON,
                b'@' => AT,
                b'/' => SLASH,
                b'?' => QUESTION,
                _ => 0,
            }
        };
        i += 1;
    }
    table
};

/// `uri` (RFC 3986 absolute URI): a scheme, then optionally `//` and a
/// host name with an optional numeric port, then a path, query and
/// fragment, all without percent-encodings. User information, IP
/// literals and percent-encoded bytes are left to `jsonschema`.
pub(crate) fn uri(text: &str) -> bool {
    let b = text.as_bytes();
    let run = |mut at: usize, class: u8| {
        while at < b.len() && CLASSES[b[at] as usize] & class != 0 {
            at += 1;
        }
        at
    };
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut at = 1;
    while at < b.len() && (b[at].is_ascii_alphanumeric() || matches!(b[at], b'+' | b'-' | b'.')) {
        at += 1;
    }
    if b.get(at) != Some(&b':') {
        return false;
    }
    at += 1;
    if b[at..].starts_with(b"//") {
        at = run(at + 2, NAME);
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
    at = run(at, PATH);
    if b.get(at) == Some(&b'?') {
        at = run(at + 1, QUERY);
    }
    if b.get(at) == Some(&b'#') {
        at = run(at + 1, QUERY);
    }
    at == b.len()
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

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
