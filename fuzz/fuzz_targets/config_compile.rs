#![no_main]

use libfuzzer_sys::fuzz_target;

// `compile` must never panic; on failure, also render every diagnostic.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diagnostics) = portico_config::compile(text) {
        for d in diagnostics.iter() {
            let _ = d.to_string();
        }
        let _ = diagnostics.to_string();
    }
});
