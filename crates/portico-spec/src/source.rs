//! Documents and references: parsing YAML or JSON text, loading the files
//! that references name (relative to the referring document, within the
//! limits of [`LoadOptions`]), and following `$ref` chains. Remote
//! references are refused; nothing here opens a socket.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use serde_json::Value;

use crate::error::SpecError;

/// How a spec may be loaded.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The directory relative file references are read from; `None`
    /// refuses file references (an inline spec without a home, a fuzzer).
    pub base_dir: Option<PathBuf>,
    /// Files a spec may pull in through references, the root included.
    pub max_files: usize,
    /// Bytes of all those files together.
    pub max_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            base_dir: None,
            max_files: 256,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One parsed document.
#[derive(Debug)]
pub(crate) struct Doc {
    /// How errors and schema keys name the document: `None` for the root,
    /// otherwise its path relative to the root's directory.
    pub label: Option<String>,
    /// Where relative references inside it are resolved from.
    pub dir: Option<PathBuf>,
    /// The file it came from, for de-duplication.
    pub path: Option<PathBuf>,
    pub value: Value,
}

impl Doc {
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    pub fn error(&self, pointer: &str, message: impl Into<String>) -> SpecError {
        SpecError::new(self.label(), pointer, message)
    }
}

/// Parses a document: JSON when it starts with `{`, YAML otherwise.
pub(crate) fn parse(text: &str, label: Option<&str>) -> Result<Value, SpecError> {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|e| {
            SpecError::new(
                label,
                "",
                format!(
                    "not valid JSON: {e} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })
    } else {
        let options = serde_saphyr::options! { strict_booleans: true };
        match serde_saphyr::from_str_with_options::<Option<Value>>(text, options) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(SpecError::new(label, "", "the document is empty")),
            Err(e) => {
                let place = e
                    .location()
                    .filter(|l| l.line() > 0)
                    .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                    .unwrap_or_default();
                let message = e.without_snippet().to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m)
                    .trim_start_matches("error: ");
                Err(SpecError::new(
                    label,
                    "",
                    format!("not valid YAML: {message}{place}"),
                ))
            }
        }
    }
}

/// A reference split into its file part and its JSON pointer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reference<'a> {
    /// Empty for a reference into the same document.
    pub file: &'a str,
    /// Percent-decoded JSON pointer; `""` is the whole document.
    pub pointer: String,
}

/// Splits a `$ref` value, refusing what Portico will not follow.
pub(crate) fn parse_ref(r: &str) -> Result<Reference<'_>, String> {
    if has_scheme(r) || r.starts_with("//") {
        return Err(format!(
            "remote reference `{r}` refused: Portico never fetches from the network; \
             copy the document next to the spec and refer to it by a relative path"
        ));
    }
    let (file, fragment) = r.split_once('#').unwrap_or((r, ""));
    let pointer = percent_decode(fragment)
        .ok_or_else(|| format!("reference `{r}` has an invalid percent-encoding"))?;
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "reference `{r}` names an anchor; only JSON pointers (`#/…`) are supported"
        ));
    }
    if file.is_empty() && fragment.is_empty() {
        return Err("empty reference".to_owned());
    }
    Ok(Reference { file, pointer })
}

/// `scheme:` as in RFC 3986 §3.1, before any `/`.
fn has_scheme(r: &str) -> bool {
    let Some((scheme, _)) = r.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Removes `.` and resolves `..` lexically, for stable labels.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The documents of one spec: the root first, then every file a
/// reference pulled in, each loaded once.
#[derive(Debug)]
pub(crate) struct Docs {
    docs: Vec<Rc<Doc>>,
    options: LoadOptions,
    bytes: u64,
}

impl Docs {
    pub fn new(root: Doc, options: LoadOptions, bytes: u64) -> Self {
        Self {
            docs: vec![Rc::new(root)],
            options,
            bytes,
        }
    }

    pub fn root(&self) -> Rc<Doc> {
        self.docs[0].clone()
    }

    /// The document a reference's file part names, loaded on first use.
    fn document(&mut self, from: &Doc, file: &str) -> Result<Rc<Doc>, String> {
        if file.is_empty() {
            return self
                .docs
                .iter()
                .find(|d| std::ptr::eq(d.as_ref(), from))
                .cloned()
                .ok_or_else(|| "internal: unknown document".to_owned());
        }
        let Some(dir) = from.dir.as_ref() else {
            return Err(format!(
                "file reference `{file}` refused: this spec has no directory to read files from"
            ));
        };
        let path = dir.join(file);
        let canonical =
            std::fs::canonicalize(&path).map_err(|e| format!("cannot read `{file}`: {e}"))?;
        if let Some(doc) = self
            .docs
            .iter()
            .find(|d| d.path.as_deref() == Some(&canonical))
        {
            return Ok(doc.clone());
        }
        if self.docs.len() >= self.options.max_files {
            return Err(format!(
                "`{file}` would be file number {} of this spec; at most {} are read",
                self.docs.len() + 1,
                self.options.max_files
            ));
        }
        let text = std::fs::read_to_string(&canonical)
            .map_err(|e| format!("cannot read `{file}`: {e}"))?;
        self.bytes += text.len() as u64;
        if self.bytes > self.options.max_bytes {
            return Err(format!(
                "reading `{file}` passes the limit of {} bytes for one spec",
                self.options.max_bytes
            ));
        }
        let base = self.options.base_dir.as_deref().unwrap_or(dir);
        let relative = normalize(&path);
        let label = relative
            .strip_prefix(normalize(base))
            .unwrap_or(&relative)
            .to_string_lossy()
            .into_owned();
        let value = parse(&text, Some(&label)).map_err(|e| e.message)?;
        let doc = Rc::new(Doc {
            dir: canonical.parent().map(Path::to_path_buf),
            path: Some(canonical),
            label: Some(label),
            value,
        });
        self.docs.push(doc.clone());
        Ok(doc)
    }

    /// The target of one reference found in `from` at `at`.
    pub fn target(&mut self, from: &Rc<Doc>, at: &str, r: &str) -> Result<Target, SpecError> {
        let parsed = parse_ref(r).map_err(|m| from.error(at, m))?;
        let doc = self
            .document(from, parsed.file)
            .map_err(|m| from.error(at, m))?;
        if doc.value.pointer(&parsed.pointer).is_none() {
            return Err(from.error(at, format!("`$ref` target `{r}` does not exist")));
        }
        Ok(Target {
            doc,
            pointer: parsed.pointer,
        })
    }

    /// Follows `$ref` until a value that is not a reference. `at` is the
    /// pointer of `value` in `doc`.
    pub fn deref(&mut self, doc: &Rc<Doc>, at: &str) -> Result<Target, SpecError> {
        let mut here = Target {
            doc: doc.clone(),
            pointer: at.to_owned(),
        };
        let mut seen: HashSet<(usize, String)> = HashSet::new();
        loop {
            let r = match here.value().and_then(|v| v.get("$ref")) {
                None => return Ok(here),
                Some(Value::String(r)) => r.clone(),
                Some(_) => {
                    return Err(here
                        .doc
                        .error(&format!("{}/$ref", here.pointer), "`$ref` must be a string"));
                }
            };
            let key = (Rc::as_ptr(&here.doc) as usize, here.pointer.clone());
            if !seen.insert(key) || seen.len() > 64 {
                return Err(doc.error(at, format!("reference cycle through `{r}`")));
            }
            let at = format!("{}/$ref", here.pointer);
            here = self.target(&here.doc.clone(), &at, &r)?;
        }
    }
}

/// A value inside one of the documents.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub doc: Rc<Doc>,
    pub pointer: String,
}

impl Target {
    pub fn value(&self) -> Option<&Value> {
        self.doc.value.pointer(&self.pointer)
    }

    /// A stable name for the value across the whole spec: `#/pointer` in the
    /// root document, `file#/pointer` elsewhere.
    pub fn key(&self) -> String {
        format!("{}#{}", self.doc.label().unwrap_or(""), self.pointer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_split_and_checked() {
        assert_eq!(
            parse_ref("#/components/schemas/Pet").unwrap(),
            Reference {
                file: "",
                pointer: "/components/schemas/Pet".into()
            }
        );
        assert_eq!(
            parse_ref("common.yaml").unwrap(),
            Reference {
                file: "common.yaml",
                pointer: String::new()
            }
        );
        assert_eq!(
            parse_ref("a.json#/x%7By%7D").unwrap().pointer,
            "/x{y}".to_owned()
        );
        for remote in [
            "http://example.com/a.yaml",
            "https://x/y#/a",
            "//host/a",
            "urn:x:y",
            "file:///etc/passwd",
        ] {
            let e = parse_ref(remote).unwrap_err();
            assert!(e.contains("remote reference"), "{remote}: {e}");
        }
        assert!(parse_ref("#anchor").unwrap_err().contains("anchor"));
        assert!(parse_ref("#/a%zz").is_err());
        assert!(parse_ref("").is_err());
    }

    #[test]
    fn yaml_integer_keys_become_strings() {
        let v = parse("responses:\n  200: { description: ok }\n", None).unwrap();
        assert_eq!(v["responses"]["200"]["description"], "ok");
    }

    #[test]
    fn json_and_yaml_errors_carry_a_place() {
        let e = parse("{\"a\": }", None).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse("a: [1, 2\n", None).unwrap_err();
        assert!(e.message.contains("not valid YAML"), "{}", e.message);
    }

    #[test]
    fn labels_are_normalised() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.yaml")),
            PathBuf::from("a/c.yaml")
        );
        assert_eq!(
            normalize(Path::new("../x.yaml")),
            PathBuf::from("../x.yaml")
        );
    }
}
