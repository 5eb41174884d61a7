//! A response frame built without copying record bytes: the encoder's small writes go into a
//! growing buffer, while record batches registered with `share` are kept as the stored
//! `Bytes` themselves and written to the socket from there, and ranges of segment files
//! registered with `send_files` become parts the connection sends with sendfile. Stored bytes
//! go out unchanged.
use std::cell::UnsafeCell;
use std::collections::VecDeque;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use sluice_engine::partition::{FileRange, Records};

use crate::limits::FETCH_RESPONSE_BYTES_MAX;

/// Slices shorter than this are copied anyway: a part of their own costs more than the copy.
const SHARE_BYTES_MIN: usize = 4 << 10;

/// Largest file range one placeholder stands for: a partition's share of a Fetch response.
pub const FILE_RANGE_BYTES_MAX: usize = FETCH_RESPONSE_BYTES_MAX;

/// Stands in for a file range's bytes in a response message while it is encoded. The encoder
/// hands record bytes to `put_slice` and never reads them otherwise; `ResponseBuffer`
/// recognises this address there and puts the range in their place. Nothing reads or writes
/// these zeros, so the kernel never gives them memory.
static FILE_PLACEHOLDER: Placeholder = Placeholder(UnsafeCell::new([0; FILE_RANGE_BYTES_MAX]));

/// Zeros behind a cell so that they live in .bss (address space only) rather than .rodata
/// (32 MiB more binary).
struct Placeholder(UnsafeCell<[u8; FILE_RANGE_BYTES_MAX]>);

// SAFETY: nothing writes through the cell, ever; it is only read (by address).
unsafe impl Sync for Placeholder {}

fn placeholder_zeros() -> &'static [u8] {
    // SAFETY: the cell is never written, so a shared reference to its contents is sound.
    unsafe { &*FILE_PLACEHOLDER.0.get() }
}

/// The bytes to put in a message where `range` goes, if it is not too long for a placeholder.
pub fn file_placeholder(range: &FileRange) -> Option<Bytes> {
    placeholder_zeros().get(..range.length_bytes).map(Bytes::from_static)
}

/// A piece of a response frame: bytes in memory, or a range of a segment file (the engine's
/// own type for batches on their way to a socket serves the whole frame).
pub type Part = Records;

/// The bytes of a frame's parts.
pub fn frame_bytes(parts: &[Part]) -> usize {
    parts.iter().map(Part::len).sum()
}

#[derive(Default)]
pub struct ResponseBuffer {
    /// Finished parts, in order.
    parts: Vec<Part>,
    /// The part being encoded into.
    current: BytesMut,
    /// Bytes that may appear in the response and should be referenced, not copied.
    shareable: Vec<Bytes>,
    /// File ranges whose placeholders the encoder has yet to write, in message order.
    files: VecDeque<FileRange>,
    /// Bytes in `parts`.
    parts_bytes: usize,
}

impl ResponseBuffer {
    pub fn new() -> Self {
        Self { current: BytesMut::with_capacity(256), ..Self::default() }
    }

    /// Marks `bytes` (a record batch range about to be encoded) to be referenced, not copied.
    pub fn share(&mut self, bytes: &Bytes) {
        if bytes.len() >= SHARE_BYTES_MIN {
            self.shareable.push(bytes.clone());
        }
    }

    /// Registers file ranges whose placeholders (`file_placeholder`) the message holds, in the
    /// order the message holds them.
    pub fn send_files(&mut self, ranges: Vec<FileRange>) {
        self.files.extend(ranges);
    }

    pub fn len(&self) -> usize {
        self.parts_bytes + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's parts, with the 4-byte length prefix (reserved by the caller as the first
    /// four bytes) filled in.
    pub fn finish(mut self) -> Vec<Part> {
        debug_assert!(self.files.is_empty(), "file ranges registered but not encoded");
        let length = (self.len() - 4) as i32;
        self.flush_current();
        let mut parts = self.parts;
        if let Some(Part::Memory(first)) = parts.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[..4].copy_from_slice(&length.to_be_bytes());
            *first = patched.freeze();
        }
        parts
    }

    fn flush_current(&mut self) {
        if !self.current.is_empty() {
            let part = self.current.split().freeze();
            self.push(Part::Memory(part));
        }
    }

    fn push(&mut self, part: Part) {
        self.parts_bytes += part.len();
        self.parts.push(part);
    }
}

// SAFETY: every method delegates to `current`, a BytesMut, whose BufMut contract holds.
unsafe impl BufMut for ResponseBuffer {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, count: usize) {
        // SAFETY: the caller initialised `count` bytes of `chunk_mut`, which is current's.
        unsafe { self.current.advance_mut(count) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, source: &[u8]) {
        if source.as_ptr() == placeholder_zeros().as_ptr() && !source.is_empty() {
            if let Some(range) = self.files.pop_front() {
                assert_eq!(range.length_bytes, source.len(), "a file placeholder out of order");
                self.flush_current();
                self.push(Part::File(range));
                return;
            }
        }
        let shared = (source.len() >= SHARE_BYTES_MIN)
            .then(|| {
                self.shareable.iter().find(|bytes| bytes.as_ptr() == source.as_ptr() && bytes.len() == source.len())
            })
            .flatten()
            .cloned();
        match shared {
            Some(bytes) => {
                self.flush_current();
                self.push(Part::Memory(bytes));
            }
            None => self.current.extend_from_slice(source),
        }
    }
}

impl ByteBufMut for ResponseBuffer {
    fn offset(&self) -> usize {
        self.len()
    }

    /// Only the record encoder seeks (to back-patch lengths), and it encodes into its own
    /// buffer; message encoding writes forward. Seeking within the current part still works.
    fn seek(&mut self, offset: usize) {
        let relative = offset.checked_sub(self.parts_bytes).expect("seek before the current part of a response");
        if relative > self.current.len() {
            self.current.resize(relative, 0);
        } else {
            self.current.truncate(relative);
        }
    }

    fn range(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        let start = range.start.checked_sub(self.parts_bytes).expect("range before the current part of a response");
        &mut self.current[start..range.end - self.parts_bytes]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;
    use std::sync::Arc;

    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn bytes_of(part: &Part) -> &Bytes {
        match part {
            Part::Memory(bytes) => bytes,
            Part::File(range) => panic!("a file part where bytes were expected: {range:?}"),
        }
    }

    #[test]
    fn shared_bytes_are_referenced_and_the_frame_is_whole() {
        let records = Bytes::from(vec![7u8; 10_000]);
        let mut buffer = ResponseBuffer::new();
        buffer.put_i32(0);
        buffer.put_slice(b"header");
        buffer.share(&records);
        buffer.put_slice(&records);
        buffer.put_slice(b"tail");
        let parts = buffer.finish();
        assert_eq!(parts.len(), 3);
        assert_eq!(bytes_of(&parts[1]).as_ptr(), records.as_ptr(), "record bytes were not copied");
        let whole: Vec<u8> = parts.iter().flat_map(|part| bytes_of(part).iter().copied()).collect();
        assert_eq!(i32::from_be_bytes(whole[..4].try_into().unwrap()) as usize, whole.len() - 4);
        assert_eq!(&whole[4..10], b"header");
        assert_eq!(&whole[whole.len() - 4..], b"tail");
    }

    #[test]
    fn unregistered_or_small_slices_are_copied() {
        let small = Bytes::from_static(b"tiny");
        let mut buffer = ResponseBuffer::new();
        buffer.put_i32(0);
        buffer.share(&small);
        buffer.put_slice(&small);
        buffer.put_slice(&vec![1u8; 5000]);
        assert_eq!(buffer.finish().len(), 1);
    }

    /// A Fetch response with two file ranges between in-memory records encodes to the same
    /// bytes as one holding the files' bytes, with each range as its own part, in order.
    #[test]
    fn file_ranges_take_their_placeholders_places_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..20_000u32).map(|value| value as u8).collect();
        file.write_all(&content).unwrap();
        let file = Arc::new(file);
        let range = |position: u64, length_bytes: usize| FileRange {
            file: file.clone(),
            position,
            length_bytes,
            offsets: 0..1,
        };
        let ranges = [range(100, 5000), range(9000, 7000)];
        let memory = Bytes::from(vec![9u8; 6000]);
        let response = |records: [Bytes; 3]| {
            let partitions = records
                .into_iter()
                .enumerate()
                .map(|(index, records)| {
                    PartitionData::default().with_partition_index(index as i32).with_records(Some(records))
                })
                .collect();
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default().with_partitions(partitions)])
        };
        let with_placeholders =
            response([file_placeholder(&ranges[0]).unwrap(), memory.clone(), file_placeholder(&ranges[1]).unwrap()]);
        let with_bytes = response([
            Bytes::copy_from_slice(&content[100..5100]),
            memory.clone(),
            Bytes::copy_from_slice(&content[9000..16000]),
        ]);
        for version in [4, 11, 12] {
            let mut buffer = ResponseBuffer::new();
            buffer.put_i32(0);
            buffer.send_files(ranges.to_vec());
            buffer.share(&memory);
            with_placeholders.encode(&mut buffer, version).unwrap();
            let parts = buffer.finish();
            let mut expected = BytesMut::new();
            expected.put_i32(0);
            with_bytes.encode(&mut expected, version).unwrap();
            let length = expected.len() as i32 - 4;
            expected[..4].copy_from_slice(&length.to_be_bytes());
            let mut whole = Vec::new();
            let mut files = Vec::new();
            for part in &parts {
                match part {
                    Part::Memory(bytes) => whole.extend_from_slice(bytes),
                    Part::File(range) => {
                        files.push((range.position, range.length_bytes));
                        let start = range.position as usize;
                        whole.extend_from_slice(&content[start..start + range.length_bytes]);
                    }
                }
            }
            assert_eq!(files, [(100, 5000), (9000, 7000)], "v{version}");
            assert_eq!(frame_bytes(&parts), expected.len(), "v{version}");
            assert_eq!(whole, expected.to_vec(), "v{version}");
        }
    }
}
