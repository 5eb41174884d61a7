//! See `sluice_server::fuzzing::resp_frames`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_server::fuzzing::resp_frames(data));
