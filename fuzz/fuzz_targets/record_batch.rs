//! A stored or produced batch: validation, framing, records and headers, stream entries.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_engine::record::batch;
use sluice_engine::stream::entry;

fuzz_target!(|data: &[u8]| {
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
    let _ = sluice_engine::queue::codec::decode(b"group", Some(data));
});
