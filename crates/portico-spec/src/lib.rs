//! OpenAPI documents loaded into Portico's spec model.
//!
//! One code path reads OpenAPI 3.0.x and 3.1.x, written as YAML or JSON:
//! the text is parsed into JSON values (YAML through serde-saphyr), every
//! reference outside schemas is followed, schema references are checked and
//! collected under stable keys, and the result is a [`Spec`]. See
//! `docs/adr/0005-openapi-model.md` for why Portico does not use a typed
//! OpenAPI crate per version.
//!
//! References may point into the same document (`#/components/…`) or to a
//! file relative to the referring document (`common.yaml#/…`); recursive
//! schemas are fine, reference cycles between non-schema objects are errors,
//! and remote references (`http://…`) are refused: loading never touches the
//! network. Every error names its file and JSON pointer.

mod build;
mod error;
pub mod generate;
mod model;
mod source;

use std::path::Path;

pub use build::template_names;
pub use error::{SpecError, SpecErrors};
pub use model::*;
pub use serde_json::Value;
pub use source::LoadOptions;

use source::{Doc, Docs};

/// Loads the spec in the file at `path`; references are read relative to
/// the file's directory.
pub fn load_file(path: &Path) -> Result<Spec, SpecErrors> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::new(Some(&label), "", format!("cannot read the spec: {e}")))?;
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let options = LoadOptions {
        base_dir: dir.map(Path::to_path_buf),
        ..LoadOptions::default()
    };
    let value = source::parse(&text, Some(&label)).map_err(SpecErrors::from)?;
    // The root's own path, so that a reference back into it by file name
    // reaches the root rather than a second copy.
    let canonical = std::fs::canonicalize(path).ok();
    load(value, options, text.len() as u64, canonical)
}

/// Loads a spec from its text (YAML or JSON).
pub fn load_str(text: &str, options: LoadOptions) -> Result<Spec, SpecErrors> {
    let value = source::parse(text, None).map_err(SpecErrors::from)?;
    load(value, options, text.len() as u64, None)
}

/// Reads a spec's text (YAML or JSON) as a JSON value, without loading
/// it: what tells whether two texts say the same thing.
pub fn parse_text(text: &str) -> Result<Value, SpecError> {
    source::parse(text, None)
}

/// Loads a spec that is already a JSON value (inline in a configuration).
pub fn load_value(value: Value, options: LoadOptions) -> Result<Spec, SpecErrors> {
    load(value, options, 0, None)
}

fn load(
    value: Value,
    mut options: LoadOptions,
    bytes: u64,
    path: Option<std::path::PathBuf>,
) -> Result<Spec, SpecErrors> {
    // Canonical directories make file labels and de-duplication agree.
    if let Some(dir) = &options.base_dir {
        options.base_dir = Some(std::fs::canonicalize(dir).map_err(|e| {
            SpecError::new(
                None,
                "",
                format!("cannot open the spec's directory `{}`: {e}", dir.display()),
            )
        })?);
    }
    let root = Doc {
        label: None,
        dir: options.base_dir.clone(),
        path,
        value,
    };
    let mut builder = build::Builder::new(Docs::new(root, options, bytes));
    let spec = builder.spec();
    match spec {
        Some(spec) if builder.errors.is_empty() => Ok(spec),
        _ => Err(SpecErrors(builder.errors)),
    }
}
