//! A stream entry as a record, both ways.
//!
//! XADD writes one uncompressed batch of one record per entry:
//! - key: the entry ID as text (`1700000000000-0`), so a Kafka consumer sees it;
//! - value: null;
//! - headers: the entry's fields, in order (`field` -> `value`; names may repeat);
//! - timestamp: the ID's milliseconds.
//!
//! Reading, a record whose value is null and whose key is an ID matching its timestamp is such
//! an entry. Any other record (a Kafka producer's) reads as the entry `<timestamp>-<offset>`
//! with the fields `key` and `value` (each when not null) followed by its headers.
use bytes::Bytes;

use super::id::{IdText, StreamId};
use crate::record::batch::{self, build};

/// Field names a Kafka record's key and value take in a stream entry.
pub const KAFKA_KEY_FIELD: &[u8] = b"key";
pub const KAFKA_VALUE_FIELD: &[u8] = b"value";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: StreamId,
    pub offset: i64,
    pub fields: Vec<(Bytes, Bytes)>,
}

/// The record timestamp of an ID (IDs go past what a Kafka timestamp holds; those saturate).
pub fn timestamp_of(id: StreamId) -> i64 {
    i64::try_from(id.ms).unwrap_or(i64::MAX)
}

/// The batch XADD appends for a new entry.
pub fn encode(id: StreamId, fields: &[(Bytes, Bytes)]) -> Vec<u8> {
    encode_many(&[(id, fields)])
}

/// One batch holding several new entries, IDs increasing (pipelined XADDs to one stream).
pub fn encode_many(entries: &[(StreamId, &[(Bytes, Bytes)])]) -> Vec<u8> {
    debug_assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0), "entry IDs increase");
    let keys: Vec<IdText> = entries.iter().map(|(id, _)| id.text()).collect();
    let records: Vec<build::Encoded<'_, Bytes>> = entries
        .iter()
        .zip(&keys)
        .map(|((id, fields), key)| (timestamp_of(*id), Some(key.as_bytes()), None, *fields))
        .collect();
    build::records_with_headers(&records)
}

/// New entries as batches of at most `batch_bytes_max` each (a stream's `max.message.bytes`),
/// in order, each with how many entries it holds. An entry too big alone is a batch alone,
/// which the append then refuses: only that entry fails.
pub fn encode_within(entries: &[(StreamId, &[(Bytes, Bytes)])], batch_bytes_max: usize) -> Vec<(usize, Vec<u8>)> {
    let batch = encode_many(entries);
    if batch.len() <= batch_bytes_max || entries.len() == 1 {
        return vec![(entries.len(), batch)];
    }
    let (first, second) = entries.split_at(entries.len() / 2);
    let mut batches = encode_within(first, batch_bytes_max);
    batches.extend(encode_within(second, batch_bytes_max));
    batches
}

/// The ID of a Kafka producer's record.
pub fn kafka_record_id(timestamp: i64, offset: i64) -> StreamId {
    StreamId::new(timestamp.max(0) as u64, offset.max(0) as u64)
}

/// The entry ID a record's key announces, if the record is an XADD entry.
fn xadd_id(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<StreamId> {
    if value.is_some() {
        return None;
    }
    let key = key.filter(|key| key.contains(&b'-'))?; // written as `<ms>-<seq>`, always
    StreamId::parse(key, 0).filter(|id| timestamp_of(*id) == timestamp)
}

/// A Kafka record read as an entry: `key`, `value`, then its headers (a null header value
/// reads as an empty string).
pub fn from_kafka_record<'a>(
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: impl Iterator<Item = (Bytes, Option<Bytes>)> + 'a,
) -> Entry {
    let mut fields = Vec::new();
    fields.extend(key.map(|key| (Bytes::from_static(KAFKA_KEY_FIELD), key)));
    fields.extend(value.map(|value| (Bytes::from_static(KAFKA_VALUE_FIELD), value)));
    fields.extend(headers.map(|(name, value)| (name, value.unwrap_or_default())));
    Entry { id: kafka_record_id(timestamp, offset), offset, fields }
}

/// The entries of one stored batch, sharing its memory. `None` when the batch is compressed
/// (the caller decompresses it and uses [`from_kafka_record`]); control batches (transaction
/// markers) hold no entries.
pub fn entries(batch_bytes: &Bytes) -> Option<Vec<Entry>> {
    let (header, _) = batch::frame(batch_bytes).ok()?;
    if header.is_control() {
        return Some(Vec::new());
    }
    let records = batch::records(batch_bytes)?;
    let share = |slice: &[u8]| batch_bytes.slice_ref(slice);
    Some(
        records
            .map(|record| match xadd_id(record.timestamp, record.key, record.value) {
                Some(id) => Entry {
                    id,
                    offset: record.offset,
                    fields: batch::headers(record.headers)
                        .map(|(name, value)| (share(name), value.map(share).unwrap_or_default()))
                        .collect(),
                },
                None => from_kafka_record(
                    record.offset,
                    record.timestamp,
                    record.key.map(share),
                    record.value.map(share),
                    batch::headers(record.headers).map(|(name, value)| (share(name), value.map(share))),
                ),
            })
            .collect(),
    )
}

/// An upper bound of the IDs in a batch, exact when it is uncompressed: what a new entry's
/// ID must exceed. A compressed batch gives `<max timestamp>-<last offset>`, which is at
/// least every ID [`kafka_record_id`] gives its records.
pub fn last_id(batch_bytes: &Bytes) -> Option<StreamId> {
    let (header, _) = batch::frame(batch_bytes).ok()?;
    let bound = kafka_record_id(header.max_timestamp.get(), header.last_offset());
    match entries(batch_bytes) {
        Some(entries) => entries.iter().map(|entry| entry.id).max().or(Some(bound)),
        None => Some(bound),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs.iter().map(|(name, value)| (Bytes::from(name.to_string()), Bytes::from(value.to_string()))).collect()
    }

    #[test]
    fn pipelined_entries_split_into_batches_that_fit() {
        let value = Bytes::from(vec![b'v'; 100]);
        let owned: Vec<(StreamId, Vec<(Bytes, Bytes)>)> =
            (0..10).map(|n| (StreamId::new(5, n), vec![(Bytes::from("f"), value.clone())])).collect();
        let new: Vec<(StreamId, &[(Bytes, Bytes)])> = owned.iter().map(|(id, f)| (*id, &f[..])).collect();
        let whole = encode_within(&new, usize::MAX);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].0, 10);
        let one = encode(new[0].0, new[0].1).len();
        let split = encode_within(&new, one * 3);
        assert!(split.len() > 1);
        assert!(split.iter().all(|(_, batch)| batch.len() <= one * 3));
        assert_eq!(split.iter().map(|(count, _)| count).sum::<usize>(), 10);
        let ids: Vec<StreamId> = split
            .iter()
            .flat_map(|(_, batch)| entries(&Bytes::from(batch.clone())).unwrap())
            .map(|entry| entry.id)
            .collect();
        assert_eq!(ids, owned.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        assert_eq!(encode_within(&new, 10).len(), 10, "an entry too big alone is a batch alone");
    }

    #[test]
    fn an_xadd_entry_round_trips_with_repeated_fields() {
        let id = StreamId::new(1_700_000_000_123, 4);
        let written = fields(&[("job", "resize"), ("job", "crop"), ("empty", "")]);
        let mut batch = encode(id, &written);
        batch::set_base_offset(&mut batch, 42);
        batch::validate(&batch, usize::MAX).unwrap();
        let read = entries(&Bytes::from(batch.clone())).unwrap();
        assert_eq!(read, vec![Entry { id, offset: 42, fields: written }]);
        assert_eq!(last_id(&Bytes::from(batch)), Some(id));
    }

    #[test]
    fn a_kafka_record_reads_as_key_value_and_headers() {
        let mut batch = build::batch(0, 1_000, &[(b"user-1", b"clicked"), (b"user-2", b"left")]);
        batch::set_base_offset(&mut batch, 7);
        let read = entries(&Bytes::from(batch.clone())).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].id, StreamId::new(1_000, 7));
        assert_eq!(read[0].fields, fields(&[("key", "user-1"), ("value", "clicked")]));
        assert_eq!(read[1].id, StreamId::new(1_001, 8));
        assert_eq!(last_id(&Bytes::from(batch)), Some(StreamId::new(1_001, 8)));
    }

    #[test]
    fn a_key_that_looks_like_an_id_is_not_enough() {
        // The value is not null: a Kafka record whose key happens to be an ID.
        let batch = build::record_with_headers(5, Some(b"5-1"), Some(b"v"), &[]);
        let read = entries(&Bytes::from(batch)).unwrap();
        assert_eq!(read[0].id, StreamId::new(5, 0));
        assert_eq!(read[0].fields, fields(&[("key", "5-1"), ("value", "v")]));
        // The ID does not match the timestamp.
        let batch = build::record_with_headers(6, Some(b"5-1"), None, &[(b"a", b"b")]);
        let read = entries(&Bytes::from(batch)).unwrap();
        assert_eq!(read[0].id, StreamId::new(6, 0));
        assert_eq!(read[0].fields, fields(&[("key", "5-1"), ("a", "b")]));
    }

    #[test]
    fn several_entries_share_one_batch_and_keep_their_ids() {
        let first = fields(&[("a", "1")]);
        let second = fields(&[("b", "2"), ("c", "3")]);
        let ids = [StreamId::new(1_000, 0), StreamId::new(1_000, 1), StreamId::new(1_007, 0)];
        let mut batch = encode_many(&[(ids[0], &first[..]), (ids[1], &second[..]), (ids[2], &first[..])]);
        batch::set_base_offset(&mut batch, 10);
        let info = batch::validate(&batch, usize::MAX).unwrap();
        assert_eq!((info.records_count, info.max_timestamp), (3, 1_007));
        let read = entries(&Bytes::from(batch)).unwrap();
        assert_eq!(read.iter().map(|entry| entry.id).collect::<Vec<_>>(), ids);
        assert_eq!(read.iter().map(|entry| entry.offset).collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!(read[1].fields, second);
    }

    #[test]
    fn huge_ids_saturate_the_timestamp_and_still_round_trip() {
        let id = StreamId::new(u64::MAX, 3);
        let batch = encode(id, &fields(&[("a", "1")]));
        assert_eq!(entries(&Bytes::from(batch)).unwrap()[0].id, id);
    }

    #[test]
    fn compressed_batches_are_left_to_the_caller_but_bounded() {
        let mut batch = build::batch(0, 50, &[(b"k", b"v"), (b"k", b"w")]);
        batch::set_base_offset(&mut batch, 10);
        batch[22] |= 1; // gzip bit: records are opaque
        let batch = Bytes::from(batch);
        assert_eq!(entries(&batch), None);
        assert_eq!(last_id(&batch), Some(StreamId::new(51, 11)));
    }
}
