//! What the page cache holds, and reading it in place.
//!
//! Segment files are written with direct I/O, but everything that reads them for a client
//! (sendfile, the CRC check of a range an earlier run wrote) goes through the page cache.
//! Work that would wait for the disk must not run on a shard's executor; work on pages the
//! cache holds may. [`in_page_cache`] tells the two apart (cachestat(2)), and [`MappedRange`]
//! reads cached pages where they are, without copying them out first.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// cachestat(2) (Linux 6.5; the same number on every architecture), which the libc crate
/// does not name for x86_64 yet.
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    offset: u64,
    length: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    cached_pages: u64,
    dirty_pages: u64,
    writeback_pages: u64,
    evicted_pages: u64,
    recently_evicted_pages: u64,
}

/// Set once cachestat(2) answered ENOSYS: a kernel without it is not asked again.
static CACHESTAT_MISSING: AtomicBool = AtomicBool::new(false);

/// Whether every page of `file` under `position..position + length` is in the page cache,
/// so that reading them cannot wait for the disk (short of an eviction in between, which
/// costs one read). An error where the kernel has no cachestat (ENOSYS, asked only once).
pub fn in_page_cache(file: &File, position: u64, length: usize) -> io::Result<bool> {
    if length == 0 {
        return Ok(true);
    }
    if CACHESTAT_MISSING.load(Ordering::Relaxed) {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let page_bytes = page_bytes();
    let first_page = position / page_bytes;
    let pages = (position + length as u64).div_ceil(page_bytes) - first_page;
    let range = CachestatRange { offset: position, length: length as u64 };
    let mut stat = Cachestat::default();
    // SAFETY: the descriptor is open (borrowed); both pointers are to live values of the
    // layouts the kernel reads and writes (struct cachestat_range, struct cachestat).
    let result = unsafe {
        libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &range as *const CachestatRange, &mut stat as *mut Cachestat, 0)
    };
    if result < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ENOSYS) {
            CACHESTAT_MISSING.store(true, Ordering::Relaxed);
        }
        return Err(error);
    }
    Ok(stat.cached_pages >= pages)
}

fn page_bytes() -> u64 {
    static PAGE_BYTES: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf only reads a system constant.
    *PAGE_BYTES.get_or_init(|| u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096))
}

/// A read-only mapping of a file range the page cache held when it was mapped, with its page
/// table entries filled in (MAP_POPULATE), so reading it costs neither a copy nor, short of an
/// eviction in between, a wait for the disk. Unmapped on drop: the pages are not left counted
/// in the broker's resident set.
///
/// A mapping of a file that shrinks below the mapped range faults (SIGBUS) where a read would
/// come back short. Segment files only shrink in recovery, before any read, and at sealing,
/// down to their written end, which no mapped range passes; nothing maps a file that may.
pub struct MappedRange {
    base: *mut libc::c_void,
    mapped_bytes: usize,
    /// From the page-aligned start of the mapping to the range's first byte.
    skip_bytes: usize,
    length_bytes: usize,
}

impl MappedRange {
    /// Maps `length` bytes of `file` from `position` if the page cache holds every page of
    /// them; `None` if it does not (or the kernel cannot tell): read them instead, which waits
    /// for the disk where it must.
    pub fn map_if_cached(file: &File, position: u64, length: usize) -> io::Result<Option<Self>> {
        if length == 0 || !in_page_cache(file, position, length).unwrap_or(false) {
            return Ok(None);
        }
        let skip_bytes = (position % page_bytes()) as usize;
        let mapped_bytes = skip_bytes + length;
        let offset = libc::off_t::try_from(position - skip_bytes as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file position past off_t"))?;
        // SAFETY: a fresh shared read-only mapping of an open descriptor (borrowed for the
        // call; the mapping keeps its own reference to the file); the kernel picks the address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_bytes,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(Self { base, mapped_bytes, skip_bytes, length_bytes: length }))
    }

    /// The range's bytes, as the file holds them.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is live until drop and readable for `mapped_bytes`, of which the
        // range is the tail; the file is not shrunk below it (see the type's comment).
        unsafe { std::slice::from_raw_parts(self.base.cast::<u8>().add(self.skip_bytes), self.length_bytes) }
    }
}

impl Drop for MappedRange {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map_if_cached` made, once; no slice from
        // `bytes` outlives `self`.
        unsafe { libc::munmap(self.base, self.mapped_bytes) };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    use super::*;

    /// Drops `file`'s clean pages from the page cache.
    fn evict(file: &File) {
        file.sync_all().unwrap();
        // SAFETY: fadvise on an open descriptor; it only drops clean cached pages.
        assert_eq!(unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) }, 0);
    }

    #[test]
    fn cachestat_tells_which_ranges_the_page_cache_holds() {
        const FILE_BYTES: usize = 1 << 20;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; FILE_BYTES]).unwrap();
        match in_page_cache(&file, 0, FILE_BYTES) {
            Ok(cached) => assert!(cached, "just written"),
            Err(error) if error.raw_os_error() == Some(libc::ENOSYS) => {
                eprintln!("SKIPPED: this kernel has no cachestat(2); every sendfile goes to the blocking thread");
                return;
            }
            Err(error) => panic!("cachestat: {error}"),
        }
        evict(&file);
        assert!(!in_page_cache(&file, 0, FILE_BYTES).unwrap(), "dropped from the page cache");

        // Read back (no read-ahead): what was read is cached again, the rest is not.
        // SAFETY: as above; FADV_RANDOM only turns read-ahead off for this descriptor.
        assert_eq!(unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) }, 0);
        let mut head = vec![0u8; 64 << 10];
        file.read_exact_at(&mut head, 4096).unwrap();
        assert!(in_page_cache(&file, 4096, head.len()).unwrap());
        assert!(in_page_cache(&file, 5000, 1000).unwrap(), "a range inside, not page-aligned");
        assert!(!in_page_cache(&file, 4096, FILE_BYTES - 4096).unwrap());
        assert!(in_page_cache(&file, 123, 0).unwrap(), "nothing to read is never a miss");
    }

    #[test]
    fn a_mapped_range_reads_the_cached_bytes_in_place_and_never_an_uncached_one() {
        const FILE_BYTES: usize = 1 << 20;
        let mut file = tempfile::tempfile().unwrap();
        let contents: Vec<u8> = (0..FILE_BYTES).map(|i| (i % 251) as u8).collect();
        file.write_all(&contents).unwrap();
        if in_page_cache(&file, 0, FILE_BYTES).is_err() {
            eprintln!("SKIPPED: this kernel has no cachestat(2); nothing is mapped");
            return;
        }
        for (position, length) in [(0, FILE_BYTES), (4096, 8192), (5000, 1), (12345, 300_000)] {
            let mapped = MappedRange::map_if_cached(&file, position as u64, length).unwrap().unwrap();
            assert_eq!(mapped.bytes(), &contents[position..position + length], "{position}+{length}");
        }
        assert!(MappedRange::map_if_cached(&file, 100, 0).unwrap().is_none(), "nothing to map");

        evict(&file);
        assert!(MappedRange::map_if_cached(&file, 0, 4096).unwrap().is_none(), "evicted: read it instead");
        let mut page = vec![0u8; 4096];
        file.read_exact_at(&mut page, 8192).unwrap();
        let mapped = MappedRange::map_if_cached(&file, 8192 + 10, 100).unwrap().unwrap();
        assert_eq!(mapped.bytes(), &contents[8202..8302]);
    }
}
