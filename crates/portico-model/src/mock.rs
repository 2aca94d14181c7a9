//! The mock upstream (`upstream: { mock: true }`): every operation's
//! answers, prepared when the snapshot is compiled (status, media types,
//! named examples, body bytes), so that answering a request is only a
//! choice among them. The choice follows the request's `Prefer` field
//! (`code=404`, `example=NAME`, `dynamic=true`, as Prism reads them) and
//! its `Accept` field.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

/// The prepared answers of every operation of one API, by operation index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MockTable {
    pub operations: Vec<MockOperation>,
}

impl MockTable {
    pub fn get(&self, index: u32) -> Option<&MockOperation> {
        self.operations.get(index as usize)
    }
}

/// The answers of one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MockOperation {
    /// In the order the spec's loader gives them (by status key).
    pub responses: Vec<MockResponse>,
    /// The answer without `Prefer: code=…`: the lowest 2xx code, else a
    /// `2XX` range (as 200), else the lowest other code, else `default`
    /// (as 200). `None` when the operation declares no response.
    pub default: Option<usize>,
}

/// Which statuses a response of the spec describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    Code(u16),
    /// `4XX`: the class digit.
    Range(u8),
    Default,
}

impl std::fmt::Display for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declared::Code(c) => write!(f, "{c}"),
            Declared::Range(d) => write!(f, "{d}XX"),
            Declared::Default => f.write_str("default"),
        }
    }
}

/// One response of the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockResponse {
    pub declared: Declared,
    /// One per media type of `content`, ordered by media type (the first
    /// answers a request without `Accept`); empty for a response without
    /// content (204).
    pub representations: Vec<Representation>,
}

/// One media type of a response, with its bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representation {
    /// The `Content-Type` sent: the spec's media type, with a wildcard
    /// replaced by a concrete type (`*/*` and `application/*` become
    /// `application/json`).
    pub content_type: HeaderValue,
    /// Lower case, without parameters, for matching `Accept`.
    pub media_type: Box<str>,
    /// Named examples first, ordered by name (the spec is read as JSON
    /// objects, which do not keep key order), then the media type's
    /// `example` (unnamed); when the spec gives none, one body made from
    /// the schema. Never empty; the first is the default.
    pub examples: Vec<MockExample>,
    /// The body made from the schema, for `Prefer: dynamic=true`; `None`
    /// when the media type has no schema.
    pub generated: Option<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockExample {
    pub name: Option<Arc<str>>,
    pub body: Bytes,
}

/// What the client asked for in `Prefer` (RFC 7240).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preferences {
    pub code: Option<u16>,
    pub example: Option<String>,
    pub dynamic: bool,
}

impl Preferences {
    /// Reads the `Prefer` fields' `code`, `example` and `dynamic`
    /// preferences; others, and values that do not parse, are ignored.
    pub fn parse<'a>(fields: impl Iterator<Item = &'a HeaderValue>) -> Self {
        let mut prefs = Self::default();
        for field in fields {
            let Ok(text) = field.to_str() else { continue };
            for preference in text.split(',') {
                // Parameters after `;` do not concern these preferences.
                let token = preference.split(';').next().unwrap_or("").trim();
                let (name, value) = token.split_once('=').unwrap_or((token, ""));
                let value = value.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "code" => prefs.code = value.parse().ok().filter(|c| (100..600).contains(c)),
                    "example" if !value.is_empty() => prefs.example = Some(value.to_owned()),
                    "dynamic" => prefs.dynamic = value.eq_ignore_ascii_case("true"),
                    _ => {}
                }
            }
        }
        prefs
    }
}

/// The chosen answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockAnswer<'a> {
    pub status: StatusCode,
    pub content_type: Option<&'a HeaderValue>,
    pub body: Bytes,
    /// Whether the body is the one made from the schema because the
    /// request asked for `dynamic=true`.
    pub generated: bool,
}

/// Why no answer fits the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MockMiss {
    /// `Prefer: code=…` names a status the operation declares no response for.
    NoResponse { code: u16, declared: String },
    /// `Prefer: example=…` names an example the answer does not have.
    NoExample { name: String, available: String },
    /// No media type of the answer is acceptable.
    NotAcceptable { available: String },
    /// The operation declares no response at all.
    Empty,
}

impl MockOperation {
    /// Chooses the answer for a request with these preferences and this
    /// `Accept` field value.
    pub fn select(
        &self,
        prefs: &Preferences,
        accept: Option<&str>,
    ) -> Result<MockAnswer<'_>, MockMiss> {
        let (status, response) = match prefs.code {
            Some(code) => self.by_code(code)?,
            None => {
                let i = self.default.ok_or(MockMiss::Empty)?;
                let r = &self.responses[i];
                (status_of(r.declared, 200), r)
            }
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        if response.representations.is_empty() {
            return Ok(MockAnswer {
                status,
                content_type: None,
                body: Bytes::new(),
                generated: false,
            });
        }
        let rep = negotiate(&response.representations, accept).ok_or_else(|| {
            MockMiss::NotAcceptable {
                available: join(response.representations.iter().map(|r| &*r.media_type)),
            }
        })?;
        let generated = prefs.example.is_none() && prefs.dynamic && rep.generated.is_some();
        let body = match (&prefs.example, prefs.dynamic) {
            (Some(name), _) => rep
                .examples
                .iter()
                .find(|e| e.name.as_deref() == Some(name.as_str()))
                .map(|e| e.body.clone())
                .ok_or_else(|| MockMiss::NoExample {
                    name: name.clone(),
                    available: join(rep.examples.iter().filter_map(|e| e.name.as_deref())),
                })?,
            (None, true) if rep.generated.is_some() => rep.generated.clone().unwrap_or_default(),
            (None, _) => rep
                .examples
                .first()
                .map(|e| e.body.clone())
                .unwrap_or_default(),
        };
        Ok(MockAnswer {
            status,
            content_type: Some(&rep.content_type),
            body,
            generated,
        })
    }

    /// The response for `Prefer: code=N`: declared as `N`, else the range
    /// that holds it, else `default`.
    fn by_code(&self, code: u16) -> Result<(u16, &MockResponse), MockMiss> {
        let class = u8::try_from(code / 100).unwrap_or(0);
        let find = |want: Declared| self.responses.iter().find(|r| r.declared == want);
        find(Declared::Code(code))
            .or_else(|| find(Declared::Range(class)))
            .or_else(|| find(Declared::Default))
            .map(|r| (code, r))
            .ok_or_else(|| MockMiss::NoResponse {
                code,
                declared: join(self.responses.iter().map(|r| r.declared.to_string())),
            })
    }
}

/// The status a response answers with when it was not asked for by code.
fn status_of(declared: Declared, fallback: u16) -> u16 {
    match declared {
        Declared::Code(c) => c,
        Declared::Range(d) => u16::from(d) * 100,
        Declared::Default => fallback,
    }
}

fn join<S: AsRef<str>>(items: impl Iterator<Item = S>) -> String {
    let mut out = String::new();
    for s in items {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(s.as_ref());
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

/// The representation `accept` prefers (RFC 9110 §12.5.1): for each one,
/// the quality of the most specific media range that matches it; the
/// highest quality above zero wins, the spec's order breaking ties. No
/// `Accept` (or one with no usable range) accepts anything.
pub fn negotiate<'r>(
    reps: &'r [Representation],
    accept: Option<&str>,
) -> Option<&'r Representation> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return reps.first();
    };
    let ranges: Vec<(&str, &str, u16)> = accept.split(',').filter_map(media_range).collect();
    if ranges.is_empty() {
        return reps.first();
    }
    let mut best: Option<(&Representation, u16)> = None;
    for rep in reps {
        let (t, s) = rep
            .media_type
            .split_once('/')
            .unwrap_or((&rep.media_type, ""));
        // Specificity: exact 2, `type/*` 1, `*/*` 0.
        let q = ranges
            .iter()
            .filter_map(|(rt, rs, q)| {
                let specificity = match (*rt, *rs) {
                    ("*", "*") => 0,
                    (rt, "*") if rt.eq_ignore_ascii_case(t) => 1,
                    (rt, rs) if rt.eq_ignore_ascii_case(t) && rs.eq_ignore_ascii_case(s) => 2,
                    _ => return None,
                };
                Some((specificity, *q))
            })
            .max_by_key(|(specificity, _)| *specificity)
            .map_or(0, |(_, q)| q);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((rep, q));
        }
    }
    best.map(|(rep, _)| rep)
}

/// One `type/subtype;q=…` of `Accept`, its quality in thousandths.
fn media_range(item: &str) -> Option<(&str, &str, u16)> {
    let mut parts = item.split(';');
    let range = parts.next()?.trim();
    let (t, s) = range.split_once('/')?;
    if t.is_empty() || s.is_empty() || (t == "*" && s != "*") {
        return None;
    }
    let mut q = 1000;
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("q")
        {
            q = quality(v.trim())?;
        }
    }
    Some((t, s, q))
}

/// A `qvalue` (`0`, `0.5`, `1.000`) in thousandths.
fn quality(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    (thousandths <= 1000).then_some(thousandths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(media: &str, examples: &[(Option<&str>, &str)]) -> Representation {
        Representation {
            content_type: HeaderValue::from_str(media).unwrap(),
            media_type: media.into(),
            examples: examples
                .iter()
                .map(|(n, b)| MockExample {
                    name: n.map(Arc::from),
                    body: Bytes::copy_from_slice(b.as_bytes()),
                })
                .collect(),
            generated: Some(Bytes::from_static(b"{\"generated\":true}")),
        }
    }

    fn op() -> MockOperation {
        MockOperation {
            responses: vec![
                MockResponse {
                    declared: Declared::Code(200),
                    representations: vec![
                        rep(
                            "application/json",
                            &[(Some("one"), "{\"n\":1}"), (Some("two"), "{\"n\":2}")],
                        ),
                        rep("text/plain", &[(None, "one")]),
                    ],
                },
                MockResponse {
                    declared: Declared::Range(4),
                    representations: vec![rep("application/problem+json", &[(None, "{}")])],
                },
                MockResponse {
                    declared: Declared::Code(204),
                    representations: vec![],
                },
            ],
            default: Some(0),
        }
    }

    fn body(a: &MockAnswer<'_>) -> String {
        String::from_utf8(a.body.to_vec()).unwrap()
    }

    #[test]
    fn default_answer_and_examples() {
        let op = op();
        let a = op.select(&Preferences::default(), None).unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(body(&a), "{\"n\":1}");
        let prefs = Preferences {
            example: Some("two".into()),
            ..Preferences::default()
        };
        assert_eq!(body(&op.select(&prefs, None).unwrap()), "{\"n\":2}");
        let prefs = Preferences {
            example: Some("three".into()),
            ..Preferences::default()
        };
        assert_eq!(
            op.select(&prefs, None),
            Err(MockMiss::NoExample {
                name: "three".into(),
                available: "one, two".into()
            })
        );
        let prefs = Preferences {
            dynamic: true,
            ..Preferences::default()
        };
        assert_eq!(
            body(&op.select(&prefs, None).unwrap()),
            "{\"generated\":true}"
        );
    }

    #[test]
    fn code_preference_uses_ranges_and_reports_misses() {
        let op = op();
        let prefs = |code| Preferences {
            code: Some(code),
            ..Preferences::default()
        };
        let a = op.select(&prefs(404), None).unwrap();
        assert_eq!(a.status, 404);
        assert_eq!(a.content_type.unwrap(), "application/problem+json");
        let a = op.select(&prefs(204), None).unwrap();
        assert_eq!(
            (a.status.as_u16(), a.content_type, a.body.len()),
            (204, None, 0)
        );
        assert_eq!(
            op.select(&prefs(500), None),
            Err(MockMiss::NoResponse {
                code: 500,
                declared: "200, 4XX, 204".into()
            })
        );
    }

    #[test]
    fn accept_picks_the_best_quality() {
        let op = op();
        let pick = |accept: &str| {
            op.select(&Preferences::default(), Some(accept))
                .map(|a| a.content_type.unwrap().to_str().unwrap().to_owned())
        };
        assert_eq!(pick("text/plain").unwrap(), "text/plain");
        assert_eq!(pick("*/*").unwrap(), "application/json");
        assert_eq!(
            pick("text/*;q=0.9, application/json;q=0.5").unwrap(),
            "text/plain"
        );
        assert_eq!(
            pick("application/*, text/plain;q=0").unwrap(),
            "application/json"
        );
        assert_eq!(
            pick("text/plain;q=0, */*;q=0.1").unwrap(),
            "application/json"
        );
        assert_eq!(
            pick("image/png"),
            Err(MockMiss::NotAcceptable {
                available: "application/json, text/plain".into()
            })
        );
        assert_eq!(pick("garbage").unwrap(), "application/json");
    }

    proptest::proptest! {
        /// `Prefer` and `Accept` are the client's: no value makes the
        /// selection panic.
        #[test]
        fn client_fields_never_panic(prefer in "\\PC{0,80}", accept in "\\PC{0,80}") {
            let op = op();
            if let Ok(v) = HeaderValue::from_str(&prefer) {
                let prefs = Preferences::parse(std::iter::once(&v));
                let _ = op.select(&prefs, Some(&accept));
            }
            let _ = negotiate(&op.responses[0].representations, Some(&accept));
        }
    }

    #[test]
    fn prefer_fields_are_read() {
        let v = [
            HeaderValue::from_static("code=404, respond-async"),
            HeaderValue::from_static("example=\"not found\"; x=1, dynamic=true"),
        ];
        let p = Preferences::parse(v.iter());
        assert_eq!(p.code, Some(404));
        assert_eq!(p.example.as_deref(), Some("not found"));
        assert!(p.dynamic);
        let p = Preferences::parse([HeaderValue::from_static("code=abc")].iter());
        assert_eq!(p, Preferences::default());
        assert_eq!(quality("0.5"), Some(500));
        assert_eq!(quality("1.0"), Some(1000));
        assert_eq!(quality("1.5"), None);
        assert_eq!(quality("0.0001"), None);
    }
}
