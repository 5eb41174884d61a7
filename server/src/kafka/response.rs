//! A response frame built without copying record bytes: the encoder's small writes go into a
//! growing buffer, while record batches registered with `share` are kept as the stored
//! `Bytes` themselves and written to the socket from there. Stored bytes go out unchanged.
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Slices shorter than this are copied anyway: a separate write costs more than the copy.
const SHARE_BYTES_MIN: usize = 4 << 10;

#[derive(Default)]
pub struct ResponseBuffer {
    /// Finished parts, in order.
    parts: Vec<Bytes>,
    /// The part being encoded into.
    current: BytesMut,
    /// Bytes that may appear in the response and should be referenced, not copied.
    shareable: Vec<Bytes>,
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

    pub fn len(&self) -> usize {
        self.parts_bytes + self.current.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's parts, with the 4-byte length prefix (reserved by the caller as the first
    /// four bytes) filled in.
    pub fn finish(mut self) -> Vec<Bytes> {
        let length = (self.len() - 4) as i32;
        self.flush_current();
        let mut parts = self.parts;
        if let Some(first) = parts.first_mut() {
            let mut patched = BytesMut::from(&first[..]);
            patched[..4].copy_from_slice(&length.to_be_bytes());
            *first = patched.freeze();
        }
        parts
    }

    fn flush_current(&mut self) {
        if !self.current.is_empty() {
            let part = self.current.split().freeze();
            self.parts_bytes += part.len();
            self.parts.push(part);
        }
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
        let shared = (source.len() >= SHARE_BYTES_MIN)
            .then(|| {
                self.shareable.iter().find(|bytes| bytes.as_ptr() == source.as_ptr() && bytes.len() == source.len())
            })
            .flatten()
            .cloned();
        match shared {
            Some(bytes) => {
                self.flush_current();
                self.parts_bytes += bytes.len();
                self.parts.push(bytes);
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
    use super::*;

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
        assert_eq!(parts[1].as_ptr(), records.as_ptr(), "record bytes were not copied");
        let whole: Vec<u8> = parts.iter().flat_map(|part| part.iter().copied()).collect();
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
}
