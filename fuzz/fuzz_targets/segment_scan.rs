//! See `sluice_engine::fuzzing::segment_scan`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_engine::fuzzing::segment_scan(data));
