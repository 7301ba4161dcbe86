//! The agent's audit spool: every event is on local disk before the session goes on, and
//! stays there until auth has acknowledged it.
//!
//! Layout: `<dir>/<20-digit sequence>.seg`, append-only files of JSON lines (one event per
//! line, as it will be stored). Appends are grouped and fsynced once per group; a segment
//! is sealed when it reaches its size or has been open for [`LINGER`], and the shipper
//! delivers sealed segments oldest first and deletes each once auth has acknowledged all of
//! its events. A segment left behind by a killed process is simply delivered on the next
//! start (a torn last line — never acknowledged to its session — is skipped).
//!
//! The spool is bounded by `max_bytes` (the sum of the segment files). What happens when an
//! event does not fit is [`WhenFull`]'s choice; nothing is dropped without a warning, a count
//! in [`Stats`] and an `audit.gap` event.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest a segment stays open (so events reach auth within about this long).
pub const LINGER: Duration = Duration::from_millis(100);
/// Largest segment file.
pub const SEGMENT_MAX: u64 = 4 * 1024 * 1024;

/// What to do when the spool is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Fail closed: new sessions are refused; a live session whose query cannot be recorded
    /// is ended before the query reaches the database.
    RefuseSessions,
    /// Delete the oldest segment (warning, counter, `audit.gap` event) to make room.
    DropOldest,
}

/// Which budget an event is written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// What a session does (queries, statements): up to `max_bytes`.
    Activity,
    /// Session start, refusal and end: these may also use a reserve of `max_bytes / 8`, so
    /// a refused or ending session is still on record when activity has filled the spool.
    Control,
}

/// Why events could not be spooled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The spool is full and the policy is to refuse.
    Full,
    /// The disk failed.
    Io(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full => f.write_str("the audit spool is full (auth unreachable?)"),
            Self::Io(e) => write!(f, "writing the audit spool: {e}"),
        }
    }
}

/// Running totals, readable at any time (and logged when something is dropped or the spool
/// drains).
#[derive(Debug, Default)]
pub struct Stats {
    /// Events written to the spool.
    pub spooled: AtomicU64,
    /// Events auth acknowledged.
    pub delivered: AtomicU64,
    /// Events deleted undelivered to make room (`drop_oldest`).
    pub dropped: AtomicU64,
    /// Events refused because the spool was full (`refuse_sessions`).
    pub refused: AtomicU64,
    /// Sessions refused because the spool was full.
    pub refused_sessions: AtomicU64,
    /// Bytes in the spool now.
    pub bytes: AtomicU64,
}

struct Segment {
    seq: u64,
    bytes: u64,
    /// Events other than `audit.gap`.
    events: u64,
    /// The `lost` counts of the `audit.gap` events in it (so dropping a gap event carries
    /// its count into the next one).
    gap_lost: u64,
}

/// The `lost` count if `line` is an `audit.gap` event.
fn gap_count(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.contains("\"audit.gap\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v.get("event")?.as_str()? == "audit.gap").then(|| v.get("lost")?.as_u64())?
}

struct OpenSegment {
    seg: Segment,
    file: File,
    since: Instant,
}

struct Inner {
    sealed: VecDeque<Segment>,
    open: Option<OpenSegment>,
    /// Full or due segments waiting for their fsync, which runs outside the lock so that
    /// sessions appending meanwhile never wait for the disk (`spool_fsync: interval`).
    unsynced: Vec<OpenSegment>,
    next_seq: u64,
    used: u64,
}

/// Builds the `audit.gap` line for `lost` events.
pub type GapEvent = Box<dyn Fn(u64) -> String + Send + Sync>;

/// The spool (cheap to clone; every method blocks on the disk, so call it from blocking
/// threads).
#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    /// Whether every append is fsynced before it is acknowledged (`false`: written to the
    /// kernel before it is acknowledged — which survives the process being killed — and fsynced
    /// by [`Spool::sync`] on a short timer, for power loss).
    fsync_each: Arc<std::sync::atomic::AtomicBool>,
    max_bytes: u64,
    segment_max: u64,
    when_full: WhenFull,
    inner: Arc<Mutex<Inner>>,
    gap: Arc<GapEvent>,
    /// The totals.
    pub stats: Arc<Stats>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("when_full", &self.when_full)
            .finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (creating) the spool in `dir`; segments already there are queued for delivery.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        when_full: WhenFull,
        gap: GapEvent,
    ) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let data = fs::read(entry.path())?;
            let (mut events, mut gap_lost) = (0, 0);
            for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                match gap_count(line) {
                    Some(n) => gap_lost += n,
                    None => events += 1,
                }
            }
            found.push(Segment {
                seq,
                bytes: data.len() as u64,
                events,
                gap_lost,
            });
        }
        found.sort_by_key(|s| s.seq);
        let used = found.iter().map(|s| s.bytes).sum();
        let next_seq = found.last().map_or(1, |s| s.seq + 1);
        let pending: u64 = found.iter().map(|s| s.events).sum();
        if pending > 0 {
            tracing::info!(
                events = pending,
                bytes = used,
                segments = found.len(),
                dir = %dir.display(),
                "audit spool: delivering events left by a previous run first"
            );
        }
        let stats = Arc::new(Stats::default());
        stats.bytes.store(used, Ordering::Relaxed);
        Ok(Self {
            dir: dir.to_owned(),
            fsync_each: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            max_bytes,
            segment_max: (max_bytes / 8).clamp(4096, SEGMENT_MAX),
            when_full,
            inner: Arc::new(Mutex::new(Inner {
                sealed: found.into(),
                open: None,
                unsynced: Vec::new(),
                next_seq,
                used,
            })),
            gap: Arc::new(gap),
            stats,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a new session may start: always with `drop_oldest`; with `refuse_sessions`,
    /// while at least 1/16 of the spool is free.
    pub fn accepting_sessions(&self) -> bool {
        self.when_full == WhenFull::DropOldest
            || self.lock().used < self.max_bytes - self.max_bytes / 16
    }

    /// Sets whether every append is fsynced (see the field's docs).
    pub fn set_fsync_each(&self, each: bool) {
        self.fsync_each.store(each, Ordering::Relaxed);
    }

    /// Flushes what has been written to disk (the timer's job when appends are not fsynced).
    pub fn sync(&self) -> std::io::Result<()> {
        // The fsync runs on a second handle, outside the lock: appends go on meanwhile.
        let file = {
            let inner = self.lock();
            match inner.open.as_ref() {
                Some(open) => Some(open.file.try_clone()?),
                None => None,
            }
        };
        match file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// Appends groups of event lines (each group all or nothing) with one fsync; returns one
    /// result per group. `Ok` means the group is on disk.
    pub fn append(&self, groups: &[(Vec<String>, Class)]) -> Vec<Result<(), Refused>> {
        let mut inner = self.lock();
        let mut results = Vec::with_capacity(groups.len());
        let mut dirty = false;
        for (lines, class) in groups {
            let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
            let lost = match self.make_room(&mut inner, bytes, *class) {
                Ok(lost) => lost,
                Err(r) => {
                    self.stats
                        .refused
                        .fetch_add(lines.len() as u64, Ordering::Relaxed);
                    results.push(Err(r));
                    continue;
                }
            };
            if lost > 0 {
                let line = (self.gap)(lost);
                if let Err(e) = self.write(&mut inner, std::slice::from_ref(&line), lost) {
                    tracing::error!(error = %e, lost, "could not spool the audit.gap event");
                }
                dirty = true;
            }
            match self.write(&mut inner, lines, 0) {
                Ok(()) => {
                    dirty = true;
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(Refused::Io(e.to_string()))),
            }
        }
        if dirty && self.fsync_each.load(Ordering::Relaxed) {
            if let Some(open) = inner.open.as_mut() {
                if let Err(e) = open.file.sync_data() {
                    // Nothing in this group is known to be durable.
                    let e = Refused::Io(e.to_string());
                    for r in &mut results {
                        if r.is_ok() {
                            *r = Err(e.clone());
                        }
                    }
                }
            }
        }
        self.stats.bytes.store(inner.used, Ordering::Relaxed);
        results
    }

    /// Frees room for `bytes` as the policy says; returns how many events were dropped.
    fn make_room(&self, inner: &mut Inner, bytes: u64, class: Class) -> Result<u64, Refused> {
        let limit = match class {
            Class::Activity => self.max_bytes,
            Class::Control => self.max_bytes + self.max_bytes / 8,
        };
        if inner.used + bytes <= limit {
            return Ok(0);
        }
        if self.when_full == WhenFull::RefuseSessions {
            return Err(Refused::Full);
        }
        // Room for the audit.gap line too.
        let need = bytes + 1024;
        let (mut lost, mut events) = (0, 0);
        while inner.used + need > limit {
            if inner.sealed.is_empty() && !inner.unsynced.is_empty() {
                // About to be dropped: no need to wait for their fsync.
                let mut pending = std::mem::take(&mut inner.unsynced);
                pending.sort_by_key(|o| o.seg.seq);
                inner.sealed.extend(pending.into_iter().map(|o| o.seg));
            }
            if inner.sealed.is_empty() {
                if inner.open.as_ref().is_some_and(|o| o.seg.bytes > 0) {
                    self.seal(inner).map_err(|e| Refused::Io(e.to_string()))?;
                } else {
                    break;
                }
            }
            let Some(seg) = inner.sealed.pop_front() else {
                break;
            };
            let _ = fs::remove_file(segment_path(&self.dir, seg.seq));
            inner.used -= seg.bytes;
            lost += seg.events + seg.gap_lost;
            events += seg.events;
        }
        if lost > 0 {
            let total = self.stats.dropped.fetch_add(events, Ordering::Relaxed) + events;
            tracing::warn!(
                lost = events,
                lost_total = total,
                spool_max_bytes = self.max_bytes,
                "audit spool full: dropped the oldest undelivered events (when_full: drop_oldest); an audit.gap event records it"
            );
        }
        Ok(lost)
    }

    /// Appends `lines`; `gap_lost` > 0 marks them as one `audit.gap` event for that many.
    fn write(&self, inner: &mut Inner, lines: &[String], gap_lost: u64) -> std::io::Result<()> {
        let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        if inner
            .open
            .as_ref()
            .is_some_and(|o| o.seg.bytes > 0 && o.seg.bytes + bytes > self.segment_max)
        {
            self.retire(inner)?;
        }
        if inner.open.is_none() {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(segment_path(&self.dir, seq))?;
            // The new name must survive a crash as well as its contents: now when every batch
            // is fsynced, else with the segment's own fsync (see `seal_if_due`).
            if self.fsync_each.load(Ordering::Relaxed) {
                sync_dir(&self.dir)?;
            }
            inner.open = Some(OpenSegment {
                seg: Segment {
                    seq,
                    bytes: 0,
                    events: 0,
                    gap_lost: 0,
                },
                file,
                since: Instant::now(),
            });
        }
        let mut buf = Vec::with_capacity(bytes as usize);
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        let Some(open) = inner.open.as_mut() else {
            return Err(std::io::Error::other("no open segment"));
        };
        if let Err(e) = open.file.write_all(&buf) {
            // A partial line may be on disk; later lines start on a fresh segment.
            let _ = self.seal(inner);
            return Err(e);
        }
        open.seg.bytes += bytes;
        if gap_lost > 0 {
            open.seg.gap_lost += gap_lost;
        } else {
            open.seg.events += lines.len() as u64;
            self.stats
                .spooled
                .fetch_add(lines.len() as u64, Ordering::Relaxed);
        }
        inner.used += bytes;
        Ok(())
    }

    /// Closes the open segment (fsynced) and queues it for delivery.
    fn seal(&self, inner: &mut Inner) -> std::io::Result<()> {
        if let Some(open) = inner.open.take() {
            open.file.sync_data()?;
            if open.seg.bytes > 0 {
                inner.sealed.push_back(open.seg);
            } else {
                let _ = fs::remove_file(segment_path(&self.dir, open.seg.seq));
            }
        }
        Ok(())
    }

    /// Closes the open segment for delivery: sealed at once when every batch is fsynced,
    /// else queued for [`Spool::seal_if_due`] to fsync outside the lock.
    fn retire(&self, inner: &mut Inner) -> std::io::Result<()> {
        if self.fsync_each.load(Ordering::Relaxed) {
            return self.seal(inner);
        }
        if let Some(open) = inner.open.take() {
            inner.unsynced.push(open);
        }
        Ok(())
    }

    /// Seals the open segment if it has been open for `linger`, and every segment waiting for
    /// its fsync (the fsyncs run without holding the lock); returns whether anything waits for
    /// delivery.
    pub fn seal_if_due(&self, linger: Duration) -> std::io::Result<bool> {
        let pending = {
            let mut inner = self.lock();
            if inner
                .open
                .as_ref()
                .is_some_and(|o| o.seg.bytes > 0 && o.since.elapsed() >= linger)
            {
                self.retire(&mut inner)?;
            }
            std::mem::take(&mut inner.unsynced)
        };
        let mut result = Ok(());
        let mut done = Vec::with_capacity(pending.len());
        for open in pending {
            if let Err(e) = open.file.sync_data() {
                result = Err(e);
            }
            done.push(open.seg);
        }
        if !done.is_empty() {
            if let Err(e) = sync_dir(&self.dir) {
                result = Err(e);
            }
        }
        let mut inner = self.lock();
        for seg in done {
            if seg.bytes > 0 {
                // In order: the shipper delivers the oldest first.
                let at = inner.sealed.partition_point(|s| s.seq < seg.seq);
                inner.sealed.insert(at, seg);
            } else {
                let _ = fs::remove_file(segment_path(&self.dir, seg.seq));
            }
        }
        result.map(|()| !inner.sealed.is_empty())
    }

    /// Whether a segment is open with events in it.
    pub fn has_open(&self) -> bool {
        self.lock().open.as_ref().is_some_and(|o| o.seg.bytes > 0)
    }

    /// The oldest sealed segment: its sequence number and its events (a torn last line is
    /// skipped).
    pub fn oldest(&self) -> std::io::Result<Option<(u64, Vec<Box<serde_json::value::RawValue>>)>> {
        let Some(seq) = self.lock().sealed.front().map(|s| s.seq) else {
            return Ok(None);
        };
        let data = match fs::read(segment_path(&self.dir, seq)) {
            Ok(d) => d,
            // Dropped meanwhile (drop_oldest): the caller asks again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some((seq, vec![]))),
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match std::str::from_utf8(line)
                .ok()
                .and_then(|l| serde_json::value::RawValue::from_string(l.to_owned()).ok())
            {
                Some(raw) => events.push(raw),
                None => tracing::warn!(
                    segment = seq,
                    "audit spool: skipping an unreadable line (a write cut short by a crash; its query was never forwarded)"
                ),
            }
        }
        Ok(Some((seq, events)))
    }

    /// Whether segment `seq` is still waiting (not dropped).
    pub fn contains(&self, seq: u64) -> bool {
        self.lock().sealed.iter().any(|s| s.seq == seq)
    }

    /// Deletes segment `seq` once auth has acknowledged it; returns whether the spool is now
    /// empty.
    pub fn remove(&self, seq: u64) -> bool {
        let mut inner = self.lock();
        if let Some(i) = inner.sealed.iter().position(|s| s.seq == seq) {
            if let Some(seg) = inner.sealed.remove(i) {
                let _ = fs::remove_file(segment_path(&self.dir, seq));
                inner.used -= seg.bytes;
                self.stats
                    .delivered
                    .fetch_add(seg.events, Ordering::Relaxed);
            }
        }
        self.stats.bytes.store(inner.used, Ordering::Relaxed);
        inner.sealed.is_empty() && inner.open.as_ref().is_none_or(|o| o.seg.bytes == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> String {
        format!(
            "{{\"uid\":\"u{i}\",\"event\":\"db.session.query\",\"pad\":\"{}\"}}",
            "x".repeat(80)
        )
    }

    fn gap() -> GapEvent {
        Box::new(|lost| {
            format!("{{\"uid\":\"gap-{lost}\",\"event\":\"audit.gap\",\"lost\":{lost}}}")
        })
    }

    fn drain(s: &Spool) -> Vec<String> {
        let mut out = Vec::new();
        let _ = s.seal_if_due(Duration::ZERO);
        while let Some((seq, events)) = s.oldest().unwrap() {
            out.extend(events.iter().map(|e| e.get().to_owned()));
            s.remove(seq);
        }
        out
    }

    #[test]
    fn survives_reopen_in_order_and_skips_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 1 << 20, WhenFull::RefuseSessions, gap()).unwrap();
        for i in 0..10 {
            assert!(s.append(&[(vec![line(i)], Class::Activity)])[0].is_ok());
            if i == 4 {
                s.seal_if_due(Duration::ZERO).unwrap();
            }
        }
        // A crash mid-write leaves half a line.
        let last = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap();
        OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap()
            .write_all(b"{\"uid\":\"torn")
            .unwrap();
        drop(s);
        let s = Spool::open(d.path(), 1 << 20, WhenFull::RefuseSessions, gap()).unwrap();
        let got = drain(&s);
        assert_eq!(got, (0..10).map(line).collect::<Vec<_>>());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuse_when_full_keeps_a_reserve_for_control_events() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 8192, WhenFull::RefuseSessions, gap()).unwrap();
        let mut ok = 0;
        while s.append(&[(vec![line(ok)], Class::Activity)])[0].is_ok() {
            ok += 1;
        }
        assert!(!s.accepting_sessions());
        assert_eq!(
            s.append(&[(vec![line(0)], Class::Activity)])[0],
            Err(Refused::Full)
        );
        assert!(s.append(&[(vec![line(999)], Class::Control)])[0].is_ok());
        let got = drain(&s);
        assert_eq!(got.len(), ok + 1);
        assert!(s.accepting_sessions());
    }

    #[test]
    fn drop_oldest_counts_and_records_a_gap() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 8192, WhenFull::DropOldest, gap()).unwrap();
        for i in 0..200 {
            assert!(s.append(&[(vec![line(i)], Class::Activity)])[0].is_ok());
        }
        assert!(s.lock().used <= 8192);
        let dropped = s.stats.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0);
        let got = drain(&s);
        let gaps: u64 = got
            .iter()
            .filter(|l| l.contains("audit.gap"))
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["lost"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        // A dropped gap event's count moves into the next one: every event is accounted for.
        let kept = got.iter().filter(|l| !l.contains("audit.gap")).count() as u64;
        assert_eq!(kept + gaps, 200, "kept {kept} + lost {gaps}");
        assert_eq!(gaps, dropped);
        assert!(got.last().unwrap().contains("u199"));
    }
}
