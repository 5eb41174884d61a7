//! Properties of crash recovery and of every decoder that reads stored or received bytes,
//! checked on generated inputs (proptest): a torn or damaged log recovers to a prefix of its
//! batches, whole and unchanged; no input makes a decoder panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use sluice_engine::queue::codec;
use sluice_engine::record::batch::{self, build};
use sluice_engine::segment::recovery::{recover_segment, scan};
use sluice_engine::segment::{log_path, ScannedBatch};
use sluice_engine::stream::entry;

/// A segment of `sizes.len()` batches (record counts from `sizes`), offsets from `base`.
fn segment(base: i64, sizes: &[usize]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut bytes = Vec::new();
    let mut bounds = Vec::new();
    let mut offset = base;
    for (index, &records) in sizes.iter().enumerate() {
        let values: Vec<Vec<u8>> = (0..records).map(|record| vec![index as u8; 10 + record * 7]).collect();
        let pairs: Vec<(&[u8], &[u8])> = values.iter().map(|value| (&b"key"[..], &value[..])).collect();
        let mut one = build::batch(0, 1_000 + index as i64, &pairs);
        batch::set_base_offset(&mut one, offset);
        offset += records as i64;
        bounds.push((bytes.len(), bytes.len() + one.len()));
        bytes.extend_from_slice(&one);
    }
    (bytes, bounds)
}

fn scanned(bytes: &[u8], base: i64) -> Vec<ScannedBatch> {
    let mut found = Vec::new();
    scan(bytes, 0, base, &mut found);
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any prefix of a valid segment (a write torn anywhere) scans to exactly the batches
    /// that lie wholly inside it.
    #[test]
    fn any_prefix_scans_to_the_whole_batches_inside_it(
        sizes in proptest::collection::vec(1usize..6, 1..12),
        cut_fraction in 0.0f64..=1.0,
    ) {
        let (bytes, bounds) = segment(100, &sizes);
        let cut = ((bytes.len() as f64) * cut_fraction) as usize;
        let found = scanned(&bytes[..cut], 100);
        let whole: Vec<_> = bounds.iter().filter(|(_, end)| *end <= cut).collect();
        prop_assert_eq!(found.len(), whole.len());
        for (batch, (start, end)) in found.iter().zip(whole) {
            prop_assert_eq!(batch.position as usize, *start);
            prop_assert_eq!(batch.size_bytes as usize, end - start);
        }
    }

    /// One flipped byte anywhere: what survives is a prefix of whole original batches, each
    /// still valid; the batch holding the flip survives only if the flip missed everything
    /// the CRC and framing check (the leader epoch, bytes 12..16, is outside both).
    #[test]
    fn a_flipped_byte_never_survives_inside_a_checked_batch(
        sizes in proptest::collection::vec(1usize..6, 1..10),
        flip_fraction in 0.0f64..1.0,
        flip_bits in 1u8..=255,
    ) {
        let (mut bytes, bounds) = segment(0, &sizes);
        let flip = ((bytes.len() as f64) * flip_fraction) as usize;
        bytes[flip] ^= flip_bits;
        let found = scanned(&bytes, 0);
        let (hit, (hit_start, _)) = bounds.iter().enumerate().find(|(_, (start, end))| (*start..*end).contains(&flip)).unwrap();
        let unchecked = (hit_start + 12..hit_start + 16).contains(&flip);
        prop_assert!(found.len() <= bounds.len());
        prop_assert!(found.len() >= hit, "batches before the flip are kept");
        if !unchecked {
            prop_assert_eq!(found.len(), hit, "the damaged batch and everything after it are cut");
        }
        for (batch, (start, end)) in found.iter().zip(&bounds) {
            prop_assert_eq!(batch.position as usize, *start);
            prop_assert!(batch::validate(&bytes[*start..*end], usize::MAX).is_ok());
        }
    }

    /// The same through the real file path: recovery truncates the file to the valid prefix
    /// and reports the next offset after it.
    #[test]
    fn recovery_truncates_a_torn_file_to_its_whole_batches(
        sizes in proptest::collection::vec(1usize..5, 1..8),
        cut_fraction in 0.0f64..=1.0,
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, bounds) = segment(0, &sizes);
        let cut = ((bytes.len() as f64) * cut_fraction) as usize;
        let mut file = bytes[..cut].to_vec();
        file.extend_from_slice(&garbage);
        std::fs::write(log_path(dir.path(), 0), &file).unwrap();
        let recovered = recover_segment(dir.path(), 0).unwrap();
        // Garbage may begin with the very bytes the cut took off (a zero where the batch ended
        // with one): those restore the log, and count as what the file holds intact. Garbage
        // that makes up a batch of its own is impossible here: it would need a CRC match.
        let intact = file.iter().zip(&bytes).take_while(|(found, written)| found == written).count();
        let whole: Vec<_> = bounds.iter().take_while(|(_, end)| *end <= intact).collect();
        let expected_bytes = whole.last().map_or(0, |(_, end)| *end);
        prop_assert_eq!(recovered.size_bytes as usize, expected_bytes);
        let records: usize = sizes.iter().take(whole.len()).sum();
        prop_assert_eq!(recovered.next_offset, records as i64);
        prop_assert_eq!(std::fs::read(log_path(dir.path(), 0)).unwrap(), bytes[..expected_bytes].to_vec());
    }

    /// Decoders of stored and received bytes return errors, never panic.
    #[test]
    fn decoders_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = batch::validate(&input, usize::MAX);
        if let Some(records) = batch::records(&input) {
            for record in records {
                let _ = batch::headers(record.headers).count();
            }
        }
        let bytes = Bytes::from(input.clone());
        let _ = entry::entries(&bytes);
        let _ = entry::last_id(&bytes);
        let _ = codec::decode(b"group", Some(&input));
        let _ = scanned(&input, 0);
    }

    /// Valid batches with random bytes in their records: record and entry decoding stays
    /// within the batch and never panics.
    #[test]
    fn entry_decoding_of_valid_batches_with_random_records_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        count in 0i32..8,
    ) {
        let mut one = build::batch(0, 5, &[(b"k", b"v")]);
        one.truncate(batch::BATCH_HEADER_BYTES);
        one.extend_from_slice(&body);
        let length = (one.len() - batch::BATCH_LOG_OVERHEAD_BYTES) as i32;
        one[8..12].copy_from_slice(&length.to_be_bytes());
        one[23..27].copy_from_slice(&(count - 1).max(0).to_be_bytes());
        one[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&one[21..]);
        one[17..21].copy_from_slice(&crc.to_be_bytes());
        let bytes = Bytes::from(one);
        let _ = entry::entries(&bytes);
        let _ = entry::last_id(&bytes);
    }
}
