//! A file of our own, mapped into memory for appends.
//!
//! Why: the database agent must have a query's audit events somewhere that survives the
//! agent being killed *before* it forwards the query. A `write(2)` per query does that but
//! costs a system call and, for small appends at the end of a file, the kernel zeroing the
//! rest of the page-cache folio each time — together most of what auditing a query cost. A
//! shared mapping of a pre-sized file gives the same guarantee for the price of a memory copy:
//! the bytes are in the page cache the moment the copy ends, and the kernel writes them back
//! (or `fdatasync` does) whether or not the process is still alive.
//!
//! The unsafe code is confined to [`MappedFile`] (`mmap`, `munmap` and `madvise`, and the
//! mapping as a slice) and [`streaming`] (copies that bypass the caches). Its one outside assumption is that nobody shrinks the
//! file while it is mapped (touching a page past the end raises `SIGBUS`): the files are
//! created here with `O_EXCL`, mode 0600, in a directory only the service's user can enter.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;

pub mod streaming;

/// A new file of a fixed size, mapped read-write and shared with the page cache.
///
/// Writes go through `&mut self`, reads through `&self`, so Rust's borrow rules keep
/// concurrent access sound; readers in other threads read the file with `pread` instead
/// (the page cache is the same).
pub struct MappedFile {
    ptr: NonNull<u8>,
    len: usize,
    file: File,
}

// SAFETY: the mapping is owned memory like a `Box<[u8]>`: nothing else in the process aliases
// it, writes need `&mut self`, and the pointer stays valid until `Drop` unmaps it.
unsafe impl Send for MappedFile {}
// SAFETY: as above; `&self` only reads.
unsafe impl Sync for MappedFile {}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// A copy would end past the end of the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("write past the end of the mapped file")
    }
}

impl std::error::Error for OutOfRange {}

impl MappedFile {
    /// Creates `path` (it must not exist; mode 0600), sizes it to `len` bytes of zeros (a
    /// sparse file: disk blocks are taken as pages are written) and maps it. With `populate`,
    /// every page is faulted in writable now, so that later copies into it take no page
    /// fault: call it off the latency-sensitive path.
    pub fn create(path: &Path, len: usize, populate: bool) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mapped file cannot be empty",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(len as u64)?;
        // SAFETY: a fresh shared mapping of `len` bytes of a file that is `len` bytes long;
        // the kernel chooses the address. The result is checked before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(raw.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        let mapped = Self { ptr, len, file };
        if populate {
            mapped.populate()?;
        }
        Ok(mapped)
    }

    /// Faults every page in writable (`MADV_POPULATE_WRITE`). Kernels before 5.14 do not
    /// know it; the pages are then faulted in by the first copies instead.
    fn populate(&self) -> io::Result<()> {
        // SAFETY: the range is exactly this mapping; the advice changes no contents.
        let r = unsafe {
            libc::madvise(
                self.ptr.as_ptr().cast(),
                self.len,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) => Ok(()),
            _ => Err(e),
        }
    }

    /// The mapping's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies `data` into the file at byte `at`. Once it returns, the bytes are in the page
    /// cache: they reach the disk even if the process is killed next (not if the machine
    /// loses power before they are written back; [`MappedFile::file`]`.sync_data()` waits
    /// for that).
    pub fn write_at(&mut self, at: usize, data: &[u8]) -> Result<(), OutOfRange> {
        let end = at.checked_add(data.len()).ok_or(OutOfRange)?;
        if end > self.len {
            return Err(OutOfRange);
        }
        let dst = self.bytes_mut().get_mut(at..end).ok_or(OutOfRange)?;
        // An ordinary copy: an append is about a kilobyte, and the fence a streaming copy
        // needs before the spool's lock is released costs more than the copy (see
        // `streaming`).
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Zeroes the first `len` bytes (at most the whole mapping): a file whose data was
    /// written from its start and then used up is fresh again, without the kernel allocating
    /// and zeroing new pages for a new file.
    pub fn zero(&mut self, len: usize) {
        let len = len.min(self.len);
        // An ordinary `memset`, not streaming stores: sessions append into these lines a
        // segment later, and find some of them still in the caches (measured: streaming
        // zeroing made the appends up to 0.09 µs slower, and saved less on this thread).
        if let Some(used) = self.bytes_mut().get_mut(..len) {
            used.fill(0);
        }
    }

    /// The mapping's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable for as long as `self` lives; writes need
        // `&mut self`, so none happens while this borrow lasts.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapping's bytes, to write.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes mapped read-write for as long as `self` lives; `&mut self`
        // excludes any other access through the mapping while this borrow lasts.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The open file: `sync_data()` on it (or on a `try_clone`, from another thread) makes
    /// the copies so far durable; `read_at` reads them without the mapping.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Unmaps and shrinks the file to its first `len` bytes (the data; the zeros after it
    /// go), returning the file.
    pub fn finish(self, len: usize) -> io::Result<File> {
        let len = len.min(self.len) as u64;
        let file = self.file.try_clone()?;
        drop(self);
        file.set_len(len)?;
        Ok(file)
    }
}

/// Part of a file mapped read-only: bytes another [`MappedFile`] wrote, read without copying
/// them (the spool's shipper hands a round's events to auth's log straight from the page
/// cache, instead of reading megabytes into a buffer first).
///
/// Its outside assumption, besides [`MappedFile`]'s (nobody shrinks the file below the
/// range while it is mapped): nobody changes the bytes of the range while it is mapped —
/// the spool's segments are only appended to after the range, and zeroed for reuse only
/// once what it covers is delivered.
pub struct MappedRange {
    /// Start of the mapping (a page boundary at or before the range), or `None` for an
    /// empty range (nothing mapped).
    map: Option<NonNull<u8>>,
    /// Bytes mapped.
    map_len: usize,
    /// Where the range starts within the mapping.
    skip: usize,
    /// Bytes in the range.
    len: usize,
}

// SAFETY: read-only memory owned by this value until `Drop` unmaps it.
unsafe impl Send for MappedRange {}
// SAFETY: as above; nothing writes through it.
unsafe impl Sync for MappedRange {}

impl std::fmt::Debug for MappedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedRange")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl MappedRange {
    /// Maps bytes `offset..offset + len` of `file` read-only, their pages faulted in at once
    /// (`MAP_POPULATE`: they are in the page cache already). The file must be at least that
    /// long.
    pub fn new(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Ok(Self {
                map: None,
                map_len: 0,
                skip: 0,
                len: 0,
            });
        }
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::other("mapped range overflows"))?;
        if end > file.metadata()?.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "mapped range ends past the end of the file",
            ));
        }
        // SAFETY: sysconf has no memory operands.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|&p| p > 0)
            .unwrap_or(4096);
        let start = offset - offset % page;
        let skip = usize::try_from(offset - start).map_err(io::Error::other)?;
        let map_len = skip
            .checked_add(len)
            .ok_or_else(|| io::Error::other("mapped range overflows"))?;
        let at = libc::off_t::try_from(start).map_err(io::Error::other)?;
        // SAFETY: a new read-only shared mapping of `map_len` bytes of `file` from the page
        // boundary `start`; the kernel chooses the address. The result is checked before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                at,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(raw.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        Ok(Self {
            map: Some(map),
            map_len,
            skip,
            len,
        })
    }

    /// The range's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self.map {
            // SAFETY: `skip + len` bytes are mapped readable from `map` for as long as `self`
            // lives, and (the type's assumption) nobody changes them meanwhile.
            Some(map) => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(self.skip), self.len)
            },
            None => &[],
        }
    }
}

impl Drop for MappedRange {
    fn drop(&mut self) {
        if let Some(map) = self.map {
            // SAFETY: unmaps exactly the mapping made in `new`; no borrow of it can outlive
            // `self`.
            unsafe {
                libc::munmap(map.as_ptr().cast(), self.map_len);
            }
        }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `create`; no borrow of it can outlive
        // `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn zeroing_makes_a_used_file_fresh_again() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("seg");
        let mut m = MappedFile::create(&path, 8192, true).unwrap();
        m.write_at(0, &[7u8; 5000]).unwrap();
        m.zero(5000);
        assert!(m.bytes().iter().all(|&b| b == 0));
        let mut buf = vec![1u8; 8192];
        m.file().read_exact_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "the file reads as zeros too");
        m.zero(usize::MAX); // clamped, not out of bounds
    }

    #[test]
    fn copies_are_in_the_file_at_once_and_finish_trims_the_zeros() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("seg");
        let mut m = MappedFile::create(&path, 8192, true).unwrap();
        m.write_at(0, b"hello\n").unwrap();
        m.write_at(6, b"world\n").unwrap();
        // Another reader sees them through the page cache, without any flush.
        let mut buf = [0u8; 12];
        File::open(&path)
            .unwrap()
            .read_exact_at(&mut buf, 0)
            .unwrap();
        assert_eq!(&buf, b"hello\nworld\n");
        assert_eq!(m.bytes().get(12), Some(&0));
        assert_eq!(m.write_at(8190, b"abc"), Err(OutOfRange));
        assert_eq!(m.write_at(usize::MAX, b"a"), Err(OutOfRange));
        m.write_at(8189, b"abc").unwrap();
        m.finish(12).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello\nworld\n");
    }

    #[test]
    fn a_mapped_range_reads_what_was_written_at_any_offset() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("seg");
        let mut m = MappedFile::create(&path, 3 * 4096, true).unwrap();
        let data: Vec<u8> = (0..3 * 4096u32).map(|i| (i % 251) as u8).collect();
        m.write_at(0, &data).unwrap();
        let f = File::open(&path).unwrap();
        for (at, len) in [
            (0, 1),
            (1, 4095),
            (4095, 2),
            (4096, 4096),
            (5000, 7000),
            (0, 3 * 4096),
        ] {
            let r = MappedRange::new(&f, at as u64, len).unwrap();
            assert_eq!(r.bytes(), &data[at..at + len], "{at}+{len}");
        }
        assert!(MappedRange::new(&f, 7, 0).unwrap().bytes().is_empty());
        // Past the end of the file: refused, never a SIGBUS later.
        assert!(MappedRange::new(&f, 4096, 2 * 4096 + 1).is_err());
        assert!(MappedRange::new(&f, u64::MAX, 2).is_err());
        // Appends after the range do not disturb it.
        let r = MappedRange::new(&f, 0, 100).unwrap();
        m.write_at(100, b"later").unwrap();
        assert_eq!(r.bytes(), &data[..100]);
    }

    #[test]
    fn refuses_an_existing_file_and_a_zero_size() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("seg");
        std::fs::write(&path, b"x").unwrap();
        assert!(MappedFile::create(&path, 4096, false).is_err());
        assert!(MappedFile::create(&d.path().join("empty"), 0, false).is_err());
        use std::os::unix::fs::PermissionsExt;
        let _m = MappedFile::create(&d.path().join("new"), 4096, false).unwrap();
        let mode = std::fs::metadata(d.path().join("new"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
