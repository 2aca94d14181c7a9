#![no_main]

use libfuzzer_sys::fuzz_target;

// The spec loader, and the mock's value generator on what it loads, must
// never panic on any text, YAML or JSON. No base
// directory: file references are refused, so a run never reads files.
// A spec that loads is compiled into the `validate` policy's validator
// (3.0 schemas converted, every schema compiled), whose checks then run
// on the same bytes as path, query, headers and body.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match portico_spec::load_str(text, portico_spec::LoadOptions::default()) {
        Ok(spec) => {
            for op in &spec.operations {
                let _ = portico_spec::template_names(&op.path).count();
                // The mock's bodies: bounded, never a panic.
                for media in op.responses.iter().flat_map(|r| &r.content) {
                    if let Some(schema) = &media.schema {
                        let _ = portico_spec::generate::value_for(&spec, &schema.0);
                    }
                }
            }
            portico_policies::fuzzing::validator(&spec, data);
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
