//! See `sluice_server::fuzzing::stored_batch`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_server::fuzzing::stored_batch(data));
