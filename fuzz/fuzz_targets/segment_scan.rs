//! Recovery's walk over a segment's bytes: whatever the file holds, the scan stops at the
//! first batch that is not whole, valid and next in offset, and never reads past the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_engine::segment::recovery::scan;

fuzz_target!(|data: &[u8]| {
    let mut found = Vec::new();
    let (consumed, _) = scan(data, 0, 0, &mut found);
    assert!(consumed <= data.len());
    let mut position = 0u64;
    for batch in &found {
        assert_eq!(batch.position, position);
        position += u64::from(batch.size_bytes);
    }
    assert_eq!(position as usize, consumed);
});
