//! Appending to a day file with direct I/O: large appends go from our memory to the disk
//! without passing through the page cache.
//!
//! Why: a buffered `write(2)` copies every byte into a newly allocated page-cache page, which
//! the kernel then tracks, writes back and later reclaims. For an audit log that grows by tens
//! of megabytes a second under load, that was the largest single cost of auditing a query: on
//! a 2-vCPU machine, pgbench `-S -M prepared` through the proxy lost a median 12 % of its TPS
//! with every query audited and 8 % with this module, while the Portcullis CPU that auditing
//! adds fell from about 5 µs to 3 µs per transaction (see `bench/README.md`, session 7).
//! Databases write their WAL the same way, for the same reason.
//!
//! How, with readers that may tail the file at any moment:
//! - The file only ever grows by whole lines' worth of valid bytes: a direct write covers
//!   complete blocks only, starting at the block that holds the end of the file (its bytes
//!   already there are written again, unchanged); what is left, less than a block, is
//!   appended through the page cache. No padding is ever visible.
//! - Small appends (below [`DIRECT_MIN`]: a single login event) simply go through the page
//!   cache, which is cheaper for them.
//! - Where `O_DIRECT` is not available (tmpfs, some network filesystems, a device with blocks
//!   larger than [`BLOCK`]), every append is buffered; nothing else changes.
//! - Writers that share a file (a second auth process pointed at the same directory) take an
//!   exclusive `flock` around each append and re-read the end of the file if it moved, so
//!   neither overwrites the other.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// Alignment of direct writes (offset, length and memory): what every common device accepts.
pub const BLOCK: usize = 4096;
/// Largest single direct write, and the size of the aligned buffer each file keeps.
const STAGE: usize = 1 << 20;
/// Appends smaller than this go through the page cache.
pub const DIRECT_MIN: usize = 64 * 1024;

/// How an [`Appender`] may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Direct I/O for large appends where the filesystem supports it, buffered otherwise.
    Direct,
    /// Always through the page cache.
    Buffered,
}

/// An open day file that is only appended to.
#[derive(Debug)]
pub struct Appender {
    /// The file opened for appending through the page cache: small appends, the part of a
    /// large one after its last whole block, `fdatasync`, and the `flock`.
    file: Arc<File>,
    /// The same file opened with `O_DIRECT`, while direct writes work.
    direct: Option<File>,
    /// Bytes in the file, as far as this appender knows.
    len: u64,
    /// The file's bytes after its last block boundary (`len % BLOCK` of them).
    tail: Vec<u8>,
    /// Memory for direct writes; the block-aligned window of it is used.
    stage: Vec<u8>,
    /// Bytes the window is moved off its alignment by: a test's way to make the kernel
    /// refuse a direct write (always 0 otherwise).
    misalign: usize,
}

impl Appender {
    /// Opens (or creates, mode 0600) `path` for appending. A file that a crash left ending in
    /// the middle of a line gets a newline first, so that fragment stays a line of its own
    /// (searches skip it) instead of spoiling the next event.
    pub fn open(path: &Path, mode: Mode) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        let direct = match mode {
            Mode::Buffered => None,
            Mode::Direct => match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::debug!(file = %path.display(), error = %e, "direct I/O unavailable: the audit log is written through the page cache");
                    None
                }
            },
        };
        let mut me = Self {
            file: Arc::new(file),
            direct,
            len: 0,
            tail: Vec::new(),
            stage: Vec::new(),
            misalign: 0,
        };
        me.with_lock(|me| {
            me.catch_up()?;
            // The tail is empty when the file ends on a block boundary: read the last byte.
            let mut last = [b'\n'];
            if let Some(at) = me.len.checked_sub(1) {
                me.file.read_exact_at(&mut last, at)?;
            }
            if last != [b'\n'] {
                me.append_buffered(b"\n")?;
            }
            Ok(())
        })?;
        Ok(me)
    }

    /// The file, for `fdatasync` (it covers what either descriptor wrote).
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Whether large appends currently bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Appends `data` at the end of the file. On failure the file is cut back to where it
    /// ended, as far as that is possible, so a retried batch does not follow a torn one.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.append_parts(&[data])
    }

    /// Appends the concatenation of `parts` as [`Appender::append`] does: one write of them
    /// all where it is direct (a shipping round that spans two spool segments, mapped where
    /// they are, without joining them in memory first).
    pub fn append_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            return Ok(());
        }
        self.with_lock(|me| {
            me.catch_up()?;
            let before = me.len;
            let written = if me.direct.is_some() && me.tail.len() + total >= DIRECT_MIN {
                me.append_direct(parts, total)
            } else {
                parts.iter().try_for_each(|part| me.append_buffered(part))
            };
            if written.is_err() {
                // Best effort: the error that matters is the write's.
                let _ = me.file.set_len(before);
                let _ = me.catch_up();
            }
            written
        })
    }

    /// Runs `f` holding the file's exclusive `flock` (other writers of the same file wait).
    fn with_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        use rustix::fs::{flock, FlockOperation};
        flock(&*self.file, FlockOperation::LockExclusive)?;
        let result = f(self);
        let unlocked = flock(&*self.file, FlockOperation::Unlock);
        let value = result?;
        unlocked?;
        Ok(value)
    }

    /// Brings `len` and `tail` up to date if another writer appended since our last append.
    fn catch_up(&mut self) -> io::Result<()> {
        let real = self.file.metadata()?.len();
        if real != self.len || self.tail.len() as u64 != real % BLOCK as u64 {
            self.reload_tail(real)?;
        }
        Ok(())
    }

    /// Reads the bytes after the last block boundary of the file, `real` bytes long, into
    /// `tail`.
    fn reload_tail(&mut self, real: u64) -> io::Result<()> {
        let start = real - real % BLOCK as u64;
        self.tail.clear();
        self.tail.resize((real - start) as usize, 0);
        self.file.read_exact_at(&mut self.tail, start)?;
        self.len = real;
        Ok(())
    }

    fn append_buffered(&mut self, data: &[u8]) -> io::Result<()> {
        (&*self.file).write_all(data)?;
        self.len += data.len() as u64;
        let rest = (self.len % BLOCK as u64) as usize;
        if data.len() >= rest {
            self.tail.clear();
            self.tail
                .extend_from_slice(data.get(data.len() - rest..).unwrap_or_default());
        } else {
            self.tail.extend_from_slice(data);
        }
        Ok(())
    }

    /// Writes the file's last partial block followed by `parts` (`total` bytes) as whole
    /// blocks with direct I/O, then the rest (less than a block) buffered.
    fn append_direct(&mut self, parts: &[&[u8]], total: usize) -> io::Result<()> {
        let kept = self.tail.len();
        let base = self.len - kept as u64;
        let whole = (kept + total) / BLOCK * BLOCK;
        if self.stage.len() < STAGE + 2 * BLOCK {
            self.stage.resize(STAGE + 2 * BLOCK, 0);
        }
        let at = self.stage.as_ptr().align_offset(BLOCK) + self.misalign;
        let mut done = 0;
        while done < whole {
            let n = (whole - done).min(STAGE);
            let window = self
                .stage
                .get_mut(at..at + n)
                .ok_or_else(|| io::Error::other("the direct-I/O buffer is not aligned"))?;
            // The window holds bytes [done, done + n) of `tail` followed by `data`.
            let from_tail = kept.saturating_sub(done).min(n);
            let (head, rest) = window.split_at_mut(from_tail);
            let d = (done + from_tail).saturating_sub(kept);
            match self.tail.get(done.min(kept)..done.min(kept) + from_tail) {
                // Only the disk reads the window: no need to pull it through the caches
                // (a round's megabytes would push out what the proxy is using).
                Some(t) if gather(parts, d, rest) => portcullis_mapfile::streaming::copy(head, t),
                _ => {
                    return Err(io::Error::other(
                        "audit log append: block arithmetic is off",
                    ))
                }
            }
            let Some(direct) = &self.direct else {
                return parts.iter().try_for_each(|part| self.append_buffered(part));
            };
            if let Err(e) = direct.write_all_at(window, base + done as u64) {
                if done == 0 && e.raw_os_error() == Some(libc::EINVAL) {
                    // The device wants another alignment: buffered from now on.
                    tracing::info!(error = %e, "direct I/O refused: the audit log is written through the page cache from now on");
                    self.direct = None;
                    return parts.iter().try_for_each(|part| self.append_buffered(part));
                }
                return Err(e);
            }
            done += n;
        }
        // The file now ends at `base + whole`; the rest of the data (less than a block)
        // goes after it.
        self.len = base + whole as u64;
        self.tail.clear();
        let mut rest = vec![0; kept + total - whole];
        if !gather(parts, whole - kept, &mut rest) {
            return Err(io::Error::other(
                "audit log append: block arithmetic is off",
            ));
        }
        if rest.is_empty() {
            Ok(())
        } else {
            self.append_buffered(&rest)
        }
    }
}

/// Fills `out` with the bytes of the concatenation of `parts` from offset `at` on (streaming
/// copies: only the disk reads them); `false` if the parts end first.
fn gather(parts: &[&[u8]], mut at: usize, out: &mut [u8]) -> bool {
    let mut filled = 0;
    for part in parts {
        if filled == out.len() {
            break;
        }
        if at >= part.len() {
            at -= part.len();
            continue;
        }
        let take = (part.len() - at).min(out.len() - filled);
        match (out.get_mut(filled..filled + take), part.get(at..at + take)) {
            (Some(o), Some(p)) => portcullis_mapfile::streaming::copy(o, p),
            _ => return false,
        }
        filled += take;
        at = 0;
    }
    filled == out.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends of every awkward size, through both paths, into a file that already has data.
    fn sizes() -> Vec<usize> {
        vec![
            1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            DIRECT_MIN - 1,
            DIRECT_MIN,
            70_001,
            3,
            STAGE + 3 * BLOCK + 17,
            2 * STAGE,
            5,
            DIRECT_MIN + BLOCK - 7,
        ]
    }

    fn chunk(i: usize, n: usize) -> Vec<u8> {
        (0..n).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect()
    }

    fn check_mode(mode: Mode, dir: &Path) {
        let path = dir.join("day.log");
        std::fs::write(&path, b"{\"existing\":1}\n").unwrap();
        let mut want = std::fs::read(&path).unwrap();
        let mut a = Appender::open(&path, mode).unwrap();
        for (i, n) in sizes().into_iter().enumerate() {
            let data = chunk(i, n);
            a.append(&data).unwrap();
            want.extend_from_slice(&data);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), want.len() as u64);
        }
        assert_eq!(std::fs::read(&path).unwrap(), want);
        drop(a);
        // Reopened, it continues after the (unfinished) last line on a line of its own.
        let mut a = Appender::open(&path, mode).unwrap();
        want.push(b'\n');
        let data = chunk(99, DIRECT_MIN * 2 + 11);
        a.append(&data).unwrap();
        want.extend_from_slice(&data);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// A round spanning two spool segments arrives as parts: every split of every awkward
    /// size, into two or three parts (some empty), lands as one append of the joined bytes
    /// would, through both paths.
    #[test]
    fn parts_land_as_their_concatenation() {
        for mode in [Mode::Direct, Mode::Buffered] {
            let d = tempfile::tempdir().unwrap();
            let path = d.path().join("day.log");
            let mut a = Appender::open(&path, mode).unwrap();
            let mut want = Vec::new();
            for (i, n) in sizes().into_iter().enumerate() {
                let data = chunk(i, n);
                for cut in [0, 1, n / 3, n.saturating_sub(BLOCK), n] {
                    let cut = cut.min(n);
                    let (x, y) = data.split_at(cut);
                    let (y1, y2) = y.split_at(y.len() / 2);
                    a.append_parts(&[x, y]).unwrap();
                    a.append_parts(&[x, &[], y1, y2]).unwrap();
                    want.extend_from_slice(&data);
                    want.extend_from_slice(&data);
                }
                assert_eq!(std::fs::metadata(&path).unwrap().len(), want.len() as u64);
            }
            a.append_parts(&[]).unwrap();
            a.append_parts(&[&[], &[]]).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), want, "{mode:?}");
        }
    }

    #[test]
    fn gather_reads_across_parts_and_refuses_to_run_past_them() {
        let parts: [&[u8]; 3] = [b"abc", b"", b"defgh"];
        let mut out = [0u8; 4];
        assert!(gather(&parts, 1, &mut out));
        assert_eq!(&out, b"bcde");
        assert!(gather(&parts, 4, &mut out));
        assert_eq!(&out, b"efgh");
        assert!(!gather(&parts, 5, &mut out));
        assert!(gather(&parts, 8, &mut []));
    }

    #[test]
    fn every_size_lands_exactly_once_in_order_direct() {
        let d = tempfile::tempdir().unwrap();
        let a = Appender::open(&d.path().join("probe"), Mode::Direct).unwrap();
        // The test directory is on the machine's disk (ext4 here and in CI), where direct
        // I/O works: this test must exercise it.
        assert!(
            a.is_direct(),
            "O_DIRECT is unavailable in {}",
            d.path().display()
        );
        check_mode(Mode::Direct, d.path());
    }

    #[test]
    fn every_size_lands_exactly_once_in_order_buffered() {
        let d = tempfile::tempdir().unwrap();
        check_mode(Mode::Buffered, d.path());
    }

    #[test]
    fn a_refused_direct_write_falls_back_to_the_page_cache_and_loses_nothing() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("day.log");
        let mut a = Appender::open(&path, Mode::Direct).unwrap();
        assert!(a.is_direct());
        a.append(b"first\n").unwrap();
        // Memory off its alignment: the kernel answers EINVAL, as a device with larger
        // blocks would.
        a.misalign = 1;
        let data = chunk(1, DIRECT_MIN * 3);
        a.append(&data).unwrap();
        assert!(!a.is_direct(), "the appender must stop trying direct I/O");
        a.append(b"last\n").unwrap();
        let mut want = b"first\n".to_vec();
        want.extend_from_slice(&data);
        want.extend_from_slice(b"last\n");
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn two_writers_of_one_file_never_overwrite_each_other() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("day.log");
        let mut a = Appender::open(&path, Mode::Direct).unwrap();
        let mut b = Appender::open(&path, Mode::Direct).unwrap();
        let mut want = Vec::new();
        for (i, n) in sizes().into_iter().enumerate() {
            let data = chunk(i, n);
            if i % 2 == 0 {
                a.append(&data).unwrap();
            } else {
                b.append(&data).unwrap();
            }
            want.extend_from_slice(&data);
        }
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn a_torn_line_ending_on_a_block_boundary_is_ended_too() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("day.log");
        let mut torn = chunk(3, 2 * BLOCK - 1);
        torn.push(b'{');
        std::fs::write(&path, &torn).unwrap();
        let mut a = Appender::open(&path, Mode::Direct).unwrap();
        a.append(b"next\n").unwrap();
        torn.extend_from_slice(b"\nnext\n");
        assert_eq!(std::fs::read(&path).unwrap(), torn);
    }

    #[test]
    fn a_new_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("day.log");
        Appender::open(&path, Mode::Direct).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
