//! Reading the records inside Kafka's compressed batches (gzip, snappy, lz4, zstd), with the
//! bytes they expand to bounded.
//!
//! Batches are stored as producers compressed them and sent to Kafka consumers unchanged; the
//! broker opens one only where it needs the records themselves: a Redis client reading a
//! Kafka-produced stream, and ListOffsets by timestamp. The codecs are the ones
//! `kafka-protocol` uses, called directly because its decompressors read to the end whatever
//! the size (a 1 MiB batch of zeros can claim gigabytes).
use std::io::Read;

use sluice_engine::record::batch::{self, BATCH_HEADER_BYTES};

use crate::limits::DECOMPRESSED_BATCH_BYTES_MAX;

/// Kafka's compression codes (the low 3 bits of a batch's attributes).
const GZIP: i16 = 1;
const SNAPPY: i16 = 2;
const LZ4: i16 = 3;
const ZSTD: i16 = 4;

/// The stream header of snappy-java's framing, which Kafka's Java producer writes; a batch
/// without it holds one raw snappy block (librdkafka reads both, as the Java client does).
const XERIAL_SNAPPY_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

#[derive(Debug, PartialEq, Eq)]
pub enum DecompressError {
    /// The records would expand past the limit.
    TooLarge {
        limit_bytes: usize,
    },
    UnknownCodec(i16),
    Codec(String),
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { limit_bytes } => write!(f, "records expand past {limit_bytes} bytes"),
            Self::UnknownCodec(code) => write!(f, "unknown compression code {code}"),
            Self::Codec(reason) => write!(f, "{reason}"),
        }
    }
}

/// The records section of a compressed batch, decompressed: at most `limit_bytes`.
pub fn decompress_records(compression: i16, compressed: &[u8], limit_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let codec_error = |error: std::io::Error| DecompressError::Codec(error.to_string());
    match compression {
        GZIP => read_bounded(flate2::read::MultiGzDecoder::new(compressed), limit_bytes),
        LZ4 => read_bounded(lz4::Decoder::new(compressed).map_err(codec_error)?, limit_bytes),
        ZSTD => read_bounded(zstd::stream::read::Decoder::new(compressed).map_err(codec_error)?, limit_bytes),
        SNAPPY => snappy(compressed, limit_bytes),
        other => Err(DecompressError::UnknownCodec(other)),
    }
}

fn read_bounded(reader: impl Read, limit_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut records = Vec::new();
    reader
        .take(limit_bytes as u64 + 1)
        .read_to_end(&mut records)
        .map_err(|error| DecompressError::Codec(error.to_string()))?;
    if records.len() > limit_bytes {
        return Err(DecompressError::TooLarge { limit_bytes });
    }
    Ok(records)
}

/// Snappy blocks announce their length before they are expanded, so the limit is checked
/// before anything is allocated for them.
fn snappy(compressed: &[u8], limit_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let codec_error = |error: snap::Error| DecompressError::Codec(error.to_string());
    let mut records = Vec::new();
    let block = |block: &[u8], records: &mut Vec<u8>| {
        let length = snap::raw::decompress_len(block).map_err(codec_error)?;
        if records.len() + length > limit_bytes {
            return Err(DecompressError::TooLarge { limit_bytes });
        }
        // Zeroed by the allocator (fresh pages for a large block, not written zeros), so a
        // block that claims much and decodes to nothing costs little.
        let decoded = snap::raw::Decoder::new().decompress_vec(block).map_err(codec_error)?;
        if records.is_empty() {
            *records = decoded;
        } else {
            records.extend_from_slice(&decoded);
        }
        Ok(())
    };
    let Some(mut rest) = compressed.strip_prefix(XERIAL_SNAPPY_HEADER) else {
        block(compressed, &mut records)?;
        return Ok(records);
    };
    while !rest.is_empty() {
        let truncated = || DecompressError::Codec("snappy block cut short".to_string());
        let length_bytes = rest.get(..4).ok_or_else(truncated)?;
        let length = u32::from_be_bytes([length_bytes[0], length_bytes[1], length_bytes[2], length_bytes[3]]) as usize;
        let compressed_block = rest.get(4..4 + length).ok_or_else(truncated)?;
        block(compressed_block, &mut records)?;
        rest = &rest[4 + length..];
    }
    Ok(records)
}

/// An uncompressed copy of a compressed batch (the engine's `Decompress`): the same header
/// with the compression bits cleared and the length and CRC of the new size, then the records.
/// `None` when it cannot be made (logged: the callers fall back to what the header says).
pub fn uncompressed_batch(compressed_batch: &[u8]) -> Option<Vec<u8>> {
    match uncompressed_copy(compressed_batch, DECOMPRESSED_BATCH_BYTES_MAX) {
        Ok(copy) => Some(copy),
        Err(error) => {
            tracing::warn!(%error, "a stored batch could not be decompressed");
            None
        }
    }
}

fn uncompressed_copy(compressed_batch: &[u8], limit_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let (header, total_bytes) =
        batch::frame(compressed_batch).map_err(|error| DecompressError::Codec(error.to_string()))?;
    let records =
        decompress_records(header.compression(), &compressed_batch[BATCH_HEADER_BYTES..total_bytes], limit_bytes)?;
    let mut copy = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    copy.extend_from_slice(&compressed_batch[..BATCH_HEADER_BYTES]);
    copy.extend_from_slice(&records);
    batch::rewrite_as_uncompressed(&mut copy).map_err(|error| DecompressError::Codec(error.to_string()))?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;

    use super::*;
    use sluice_engine::record::batch::build;

    fn compress(compression: i16, records: &[u8]) -> Vec<u8> {
        match compression {
            GZIP => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(records).unwrap();
                encoder.finish().unwrap()
            }
            LZ4 => {
                let mut encoder = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                encoder.write_all(records).unwrap();
                encoder.finish().0
            }
            ZSTD => zstd::encode_all(records, 1).unwrap(),
            SNAPPY => {
                // snappy-java's framing, in two blocks.
                let mut framed = XERIAL_SNAPPY_HEADER.to_vec();
                for half in records.chunks(records.len().div_ceil(2)) {
                    let block = snap::raw::Encoder::new().compress_vec(half).unwrap();
                    framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    framed.extend_from_slice(&block);
                }
                framed
            }
            _ => unreachable!(),
        }
    }

    /// `plain` with its records section compressed by `compression` (CRC left stale: the
    /// copy computes its own).
    fn compressed_batch(plain: &[u8], compression: i16) -> Vec<u8> {
        let mut batch = plain[..BATCH_HEADER_BYTES].to_vec();
        batch.extend_from_slice(&compress(compression, &plain[BATCH_HEADER_BYTES..]));
        let batch_length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
        batch[22] |= compression as u8;
        batch
    }

    /// Writes the seed corpus of the `stored_batch` fuzz target (`fuzz/corpus/stored_batch`):
    /// batches of each codec, and a codec's code followed by a compressed records section.
    /// Run with `--ignored` after changing what a stored batch may hold.
    #[test]
    #[ignore]
    fn write_stored_batch_seed_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/stored_batch");
        std::fs::create_dir_all(&dir).unwrap();
        let long = b"a longer value that repeats, a longer value that repeats".repeat(8);
        let record_sets: [&[(&[u8], &[u8])]; 4] = [
            &[(b"k", b"v")],
            &[(b"k1", b"first value"), (b"k2", b"second value"), (b"", b"third")],
            &[(b"key", &long), (b"key", b"short")],
            &[(b"1700000000000-0", b""), (b"1700000000000-1", b"x")],
        ];
        for compression in [GZIP, SNAPPY, LZ4, ZSTD] {
            for (set, records) in record_sets.iter().enumerate() {
                let plain = build::batch(set as i64 * 10, 1_700_000_000_000, records);
                let batch = compressed_batch(&plain, compression);
                std::fs::write(dir.join(format!("seed-batch-{compression}-{set}")), &batch).unwrap();
                let mut section = vec![compression as u8];
                section.extend_from_slice(&batch[BATCH_HEADER_BYTES..]);
                std::fs::write(dir.join(format!("seed-section-{compression}-{set}")), section).unwrap();
            }
        }
        let raw = snap::raw::Encoder::new().compress_vec(&long).unwrap();
        std::fs::write(dir.join("seed-section-raw-snappy"), [&[SNAPPY as u8][..], &raw].concat()).unwrap();
    }

    #[test]
    fn each_codec_gives_back_the_batch_it_compressed() {
        let plain = build::batch(7, 1_000, &[(b"k1", b"first value"), (b"k2", b"second value"), (b"", b"third")]);
        for compression in [GZIP, SNAPPY, LZ4, ZSTD] {
            let copy = uncompressed_copy(&compressed_batch(&plain, compression), DECOMPRESSED_BATCH_BYTES_MAX).unwrap();
            assert_eq!(copy, plain, "codec {compression}");
            batch::check_crc(&copy).unwrap();
        }
    }

    #[test]
    fn a_raw_snappy_block_is_read_too() {
        let records = b"records of a batch from a producer writing raw snappy".repeat(3);
        let raw = snap::raw::Encoder::new().compress_vec(&records).unwrap();
        assert_eq!(decompress_records(SNAPPY, &raw, 1 << 20).unwrap(), records);
    }

    #[test]
    fn records_expanding_past_the_limit_are_refused() {
        let zeros = vec![0u8; 1 << 20];
        for compression in [GZIP, SNAPPY, LZ4, ZSTD] {
            let compressed = compress(compression, &zeros);
            assert!(compressed.len() < 64 << 10, "codec {compression} compresses zeros");
            assert_eq!(
                decompress_records(compression, &compressed, 256 << 10),
                Err(DecompressError::TooLarge { limit_bytes: 256 << 10 }),
                "codec {compression}"
            );
            assert_eq!(decompress_records(compression, &compressed, 1 << 20).unwrap().len(), 1 << 20);
        }
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        let records = b"some records some records some records";
        for compression in [GZIP, SNAPPY, LZ4, ZSTD] {
            let mut compressed = compress(compression, records);
            let middle = compressed.len() / 2;
            compressed.truncate(middle);
            // lz4's reader ends a cut frame quietly, with what it had.
            let read = decompress_records(compression, &compressed, 1 << 20);
            assert!(read.is_err() || read.unwrap().len() < records.len(), "codec {compression}");
        }
        assert_eq!(decompress_records(5, b"x", 10), Err(DecompressError::UnknownCodec(5)));
    }
}
