//! Loading errors. Each names the document it was found in (none for an
//! inline root document) and the JSON pointer of the offending value.

use std::fmt;

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The file, relative to the root document's directory as the
    /// reference named it; `None` for the root document.
    pub file: Option<String>,
    /// JSON pointer (RFC 6901) of the value at fault, `""` for the whole
    /// document.
    pub pointer: String,
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(file: Option<&str>, pointer: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.map(str::to_owned),
            pointer: pointer.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            f.write_str(file)?;
        }
        write!(f, "#{}: {}", self.pointer, self.message)
    }
}

impl std::error::Error for SpecError {}

/// Every problem found in a spec; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub fn iter(&self) -> impl Iterator<Item = &SpecError> {
        self.0.iter()
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl From<SpecError> for SpecErrors {
    fn from(e: SpecError) -> Self {
        Self(vec![e])
    }
}

/// Appends a reference token to a JSON pointer, escaping `~` and `/`.
pub(crate) fn push_token(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped() {
        assert_eq!(push_token("/paths", "/pets/{id}"), "/paths/~1pets~1{id}");
        assert_eq!(push_token("", "a~b"), "/a~0b");
    }

    #[test]
    fn display_names_file_and_pointer() {
        let e = SpecError::new(Some("common.yaml"), "/components", "broken");
        assert_eq!(e.to_string(), "common.yaml#/components: broken");
        let e = SpecError::new(None, "", "broken");
        assert_eq!(e.to_string(), "#: broken");
    }
}
