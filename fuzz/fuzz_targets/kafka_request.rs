//! See `sluice_server::fuzzing::kafka_request`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_server::fuzzing::kafka_request(data));
