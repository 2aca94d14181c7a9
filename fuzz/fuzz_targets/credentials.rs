#![no_main]

use libfuzzer_sys::fuzz_target;

// Basic and Bearer parsing, JWT header decoding and API-key query-parameter
// extraction on the same bytes; none of them may panic.
fuzz_target!(|data: &[u8]| portico_policies::fuzzing::credentials(data));
