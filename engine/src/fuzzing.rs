//! The bodies of the engine's cargo-fuzz targets (`fuzz/fuzz_targets`), here so that the normal
//! test suite can run the same code on stable: it replays the committed fuzz corpus and
//! mutations of it (`tests/tests/fuzz_corpus.rs`). Each function takes any bytes and must
//! neither panic nor read out of bounds.
use bytes::Bytes;

use crate::record::batch;
use crate::segment::recovery::scan;
use crate::stream::entry;

/// A stored or produced batch: validation, framing, records and headers, stream entries,
/// group events, committed-offset records.
pub fn record_batch(data: &[u8]) {
    let _ = batch::validate(data, usize::MAX);
    for range in batch::split(data).map_while(Result::ok) {
        if let Some(records) = batch::records(&data[range]) {
            for record in records {
                let _ = batch::headers(record.headers).count();
            }
        }
    }
    let bytes = Bytes::copy_from_slice(data);
    let _ = entry::entries(&bytes);
    let _ = entry::last_id(&bytes);
    let _ = crate::queue::codec::decode(b"group", Some(data));
    let _ = crate::group::offsets::OffsetRecord::decode(data, Some(data));
    let _ = crate::group::offsets::OffsetRecord::decode(data, None);
}

/// Recovery's walk over a segment's bytes: whatever the file holds, the scan stops at the
/// first batch that is not whole, valid and next in offset, and never reads past the input.
pub fn segment_scan(data: &[u8]) {
    let mut found = Vec::new();
    let (consumed, _) = scan(data, 0, 0, &mut found);
    assert!(consumed <= data.len(), "the scan consumed {consumed} of {} bytes", data.len());
    let mut position = 0u64;
    for batch in &found {
        assert_eq!(batch.position, position, "batches found are contiguous");
        position += u64::from(batch.size_bytes);
    }
    assert_eq!(position as usize, consumed, "the scan consumed exactly the batches it found");
}
