//! `apis[].spec` and `apis[].routing`. The spec is loaded here (a path
//! relative to the configuration file's directory, or the document inline),
//! its operations are compiled into the API's operation table, and its
//! first server gives the base path when `base_path` is absent. Spec errors
//! become diagnostics at the `spec` key, each naming the file and JSON
//! pointer inside the spec.

use std::path::Path;

use portico_model::operation::{OperationError, OperationTable, OperationTableBuilder};
use portico_spec::{LoadOptions, Spec, Value};

use crate::Diagnostic;
use crate::de::Located;
use crate::values::parse_base_path;

/// Spec errors reported per API before the rest is summarised.
const MAX_REPORTED: usize = 20;

/// Loads the spec that `raw` names or holds.
pub(crate) fn load(
    raw: &Located<Value>,
    base_dir: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<Spec> {
    // A node started without a file has no directory (``): its inline
    // specs (the demo's) read references from the working directory.
    let base_dir = if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base_dir
    };
    let (result, what) = match &raw.value {
        Value::String(text) if crate::documents::is_spec_text(text) => {
            let options = LoadOptions {
                base_dir: Some(base_dir.to_path_buf()),
                ..LoadOptions::default()
            };
            (
                portico_spec::load_str(text, options),
                "inline spec".to_owned(),
            )
        }
        Value::String(file) => {
            let path = base_dir.join(file);
            (portico_spec::load_file(&path), format!("spec `{file}`"))
        }
        Value::Object(_) => {
            let options = LoadOptions {
                base_dir: Some(base_dir.to_path_buf()),
                ..LoadOptions::default()
            };
            (
                portico_spec::load_value(raw.value.clone(), options),
                "inline spec".to_owned(),
            )
        }
        _ => {
            errors.push(raw.diag(
                "`spec` must be a file path or an OpenAPI document written inline as a mapping",
            ));
            return None;
        }
    };
    match result {
        Ok(spec) => Some(spec),
        Err(e) => {
            for err in e.iter().take(MAX_REPORTED) {
                errors.push(raw.diag(format!("{what}: {err}")));
            }
            if e.0.len() > MAX_REPORTED {
                errors.push(raw.diag(format!(
                    "{what}: {} more errors not shown",
                    e.0.len() - MAX_REPORTED
                )));
            }
            None
        }
    }
}

/// The operation table of `spec`; `place` is the `spec` key.
pub(crate) fn operations(
    spec: &Spec,
    place: &Located<Value>,
    errors: &mut Vec<Diagnostic>,
) -> Option<OperationTable> {
    let mut builder = OperationTableBuilder::new();
    let mut ok = true;
    for op in &spec.operations {
        if let Err(e) = builder.insert(&op.path, op.method.clone(), op.operation_id.as_deref()) {
            let message = match e {
                OperationError::Duplicate { other } => format!(
                    "spec #{}: `{} {}` is the same operation as `{} {}`",
                    op.pointer,
                    op.method,
                    op.path,
                    spec.operations[other as usize].method,
                    spec.operations[other as usize].path
                ),
                OperationError::Invalid(m) => {
                    format!("spec #{}: cannot be routed: {m}", op.pointer)
                }
            };
            errors.push(place.diag(message));
            ok = false;
        }
    }
    ok.then(|| builder.build())
}

/// The base path the spec's first server gives.
pub(crate) fn server_base_path(
    spec: &Spec,
    place: &Located<Value>,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    let Some(server) = spec.servers.first() else {
        errors.push(place.diag(
            "the API has no `base_path` and its spec lists no `servers` to take one from; add `base_path`",
        ));
        return None;
    };
    match parse_base_path(&server.base_path) {
        Ok(p) => Some(p),
        Err(m) => {
            errors.push(place.diag(format!(
                "spec #/servers/0: the server URL `{}` does not give a usable base path: {m}",
                server.url
            )));
            None
        }
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
