#![no_main]

use libfuzzer_sys::fuzz_target;

// The validator's JSON reader against serde_json on the same bytes: it must
// never panic, and must read every document it accepts as serde_json does.
fuzz_target!(|data: &[u8]| portico_policies::fuzzing::json_body(data));
