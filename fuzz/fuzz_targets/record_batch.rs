//! See `sluice_engine::fuzzing::record_batch`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_engine::fuzzing::record_batch(data));
