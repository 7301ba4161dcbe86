//! The agent's audit spool: every event is on local disk before the session goes on, and
//! stays there until auth has acknowledged it.
//!
//! Layout: `<dir>/<20-digit sequence>.seg`, files of JSON lines (one event per line, as it
//! will be stored). The segment being written is a pre-sized file mapped into memory
//! ([`MappedFile`]): appending an event is a memory copy, and once the copy ends the bytes
//! are in the page cache, where they survive the agent being killed. Durability against power
//! loss is an `fdatasync` — of every append before it is acknowledged (`spool_fsync:
//! every_batch`) or on a short timer (`interval`), which skips what auth has acknowledged
//! meanwhile: while auth keeps up, an `interval` spool never writes to the disk itself. A
//! full segment is retired and, outside the appenders' lock, reused (zeroed, as the file of a
//! later segment) or deleted once delivered, or unmapped, trimmed to its data and fsynced if it
//! is still undelivered a little later ([`Spool::maintain`], which also deletes delivered files
//! and prepares the next segments' files, so that appenders never wait for a file to be
//! created or deleted).
//!
//! The shipper reads what has not been delivered yet — from the oldest segment, including the
//! one being written — with ordinary reads of the page cache ([`Spool::unshipped`]), or, when
//! auth's log is in the same process, maps it read-only where it lies
//! ([`Spool::mapped_unshipped`]: the log's write is then its only copy), and marks
//! it delivered once auth has acknowledged it ([`Spool::shipped`]); a segment is deleted when
//! it is retired and entirely delivered. What was delivered is kept in memory only: after a
//! restart every segment left behind is delivered again from its start, and auth, which
//! stores each `uid` once, drops the repeats. A killed process can leave the last line of its
//! last segment torn (it was never acknowledged to its session, so its query never ran) and
//! zeros after its data; reopening trims the zeros and the shipper skips the torn line.
//!
//! The spool is bounded by `max_bytes` of undelivered events. What happens when an event does
//! not fit is [`WhenFull`]'s choice; nothing is dropped without a warning, a count in
//! [`Stats`] and an `audit.gap` event.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use portcullis_audit::Lines;
use portcullis_mapfile::{MappedFile, MappedRange};

/// How often the shipper looks for new events and [`Spool::maintain`] runs: events reach auth
/// within about this long.
pub const SHIP_EVERY: Duration = Duration::from_millis(200);
/// Largest segment file (a single larger group of events gets a segment of its own size).
pub const SEGMENT_MAX: u64 = 4 * 1024 * 1024;
/// The next segment, prepared ahead (renamed to its sequence name when it is first written).
const STANDBY: &str = "next.seg.tmp";
/// Names of prepared files end so: [`Spool::open`] deletes them (they hold no events).
const PREPARED_SUFFIX: &str = ".seg.tmp";
/// Delivered segment files kept, zeroed, for the next segments.
const RECYCLED: usize = 2;
/// How long a file is reused. The kernel writes back a page-cache page that stays dirty for
/// 30 s; a file whose old events never reached the disk cannot show them after a power loss
/// (the zeroing that replaced them might not have reached it either).
const RECYCLE_FOR: Duration = Duration::from_secs(20);

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
    /// Events written to the spool (as of the last delivery or housekeeping tick).
    pub spooled: AtomicU64,
    /// Events auth acknowledged.
    pub delivered: AtomicU64,
    /// Events deleted undelivered to make room (`drop_oldest`).
    pub dropped: AtomicU64,
    /// Events refused because the spool was full (`refuse_sessions`).
    pub refused: AtomicU64,
    /// Sessions refused because the spool was full.
    pub refused_sessions: AtomicU64,
    /// Undelivered bytes in the spool (as of the last delivery or housekeeping tick).
    pub bytes: AtomicU64,
}

/// One segment file's bookkeeping.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Bytes of events in it (whole lines, each ending in `\n`).
    bytes: u64,
    /// Bytes from the start that auth has acknowledged.
    shipped: u64,
    /// Events other than `audit.gap`.
    events: u64,
    /// Of those, how many auth has acknowledged.
    shipped_events: u64,
    /// The `lost` counts of the `audit.gap` events in it (so dropping a gap event carries
    /// its count into the next one).
    gap_lost: u64,
    /// Written by this process: every line is whole and has never been delivered.
    fresh: bool,
}

impl Segment {
    fn new(seq: u64) -> Self {
        Self {
            seq,
            bytes: 0,
            shipped: 0,
            events: 0,
            shipped_events: 0,
            gap_lost: 0,
            fresh: true,
        }
    }

    fn undelivered(&self) -> u64 {
        self.bytes - self.shipped
    }

    /// Events lost if it is deleted now.
    fn lost_if_dropped(&self) -> u64 {
        let gaps = if self.shipped == 0 { self.gap_lost } else { 0 };
        self.events - self.shipped_events + gaps
    }
}

/// The `lost` count if `line` is an `audit.gap` event.
pub(crate) fn gap_count(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.contains("\"audit.gap\"") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v.get("event")?.as_str()? == "audit.gap").then(|| v.get("lost")?.as_u64())?
}

/// A file ready to become the next segment: all zeros, mapped.
struct Prepared {
    path: PathBuf,
    map: MappedFile,
    /// When the file was created (it may have been other segments since).
    born: Instant,
}

/// A segment still mapped: the one being written, or a full one not finished yet.
struct Writing {
    seg: Segment,
    map: MappedFile,
    /// When its file was created.
    born: Instant,
    /// Bytes from the start known to be on disk (fsynced here).
    synced: u64,
    /// When it stopped taking appends.
    retired_at: Option<Instant>,
}

struct Inner {
    /// Closed segments waiting for (the rest of) their delivery, oldest first: retired ones
    /// after [`Spool::maintain`] finished them, and those an earlier run left.
    sealed: VecDeque<Segment>,
    /// Full segments not finished yet (unmapped, trimmed, fsynced); readable meanwhile. With
    /// `spool_fsync: interval` they wait here for a while: once delivered they are deleted
    /// without ever being written to disk here.
    retired: Vec<Writing>,
    /// The segment appends go to.
    open: Option<Writing>,
    /// Files for the next segments, prepared ahead (used last first): delivered segments,
    /// zeroed ([`Spool::maintain`]), or a new file faulted in when there is none.
    standby: Vec<Prepared>,
    next_seq: u64,
    /// Undelivered bytes.
    used: u64,
    /// A segment name was created since the directory was last fsynced.
    dir_dirty: bool,
    /// The open segment's end at the previous [`Spool::sync`]s, oldest first.
    sync_marks: VecDeque<Option<(u64, u64)>>,
    /// Events written (published to [`Stats::spooled`] now and then: a shared counter
    /// bumped on every append would bounce between the CPUs the sessions run on).
    spooled: u64,
    /// Delivered segments whose files [`Spool::maintain`] deletes: unlinking (and, on a
    /// filesystem mounted with `discard`, waiting for the device) never happens under the
    /// appenders' lock or on the shipper's task.
    doomed: Vec<u64>,
}

impl Inner {
    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed
            .iter()
            .chain(self.retired.iter().map(|w| &w.seg))
            .chain(self.open.iter().map(|w| &w.seg))
    }

    fn segment_mut(&mut self, seq: u64) -> Option<&mut Segment> {
        if let Some(s) = self.sealed.iter_mut().find(|s| s.seq == seq) {
            return Some(s);
        }
        if let Some(w) = self.retired.iter_mut().find(|w| w.seg.seq == seq) {
            return Some(&mut w.seg);
        }
        self.open
            .as_mut()
            .map(|w| &mut w.seg)
            .filter(|s| s.seq == seq)
    }
}

/// Builds the `audit.gap` line for `lost` events.
pub type GapEvent = Box<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// Events not delivered yet, read from one segment.
#[derive(Debug)]
pub struct Unshipped {
    /// Where they lie and how many they are.
    pub part: UnshippedPart,
    /// The lines, each ending in `\n`.
    pub data: Vec<u8>,
}

/// Where one segment's undelivered events lie, as a round read ([`Spool::unshipped`],
/// [`Spool::unshipped_after`]) or mapped ([`Spool::mapped_unshipped`]) them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnshippedPart {
    /// The segment.
    pub seq: u64,
    /// Where in it the events start (what auth had acknowledged before).
    pub start: u64,
    /// Where in it they end (for [`Spool::shipped`]).
    pub end: u64,
    /// How many events (other than `audit.gap`) they are.
    pub events: u64,
    /// Written by this process since it started: whole lines of new events, never delivered
    /// (so they need no checking and no deduplication).
    pub fresh: bool,
    /// The segment was no longer the one being written when it was read: whatever sessions
    /// appended since is in a newer segment, and waits for the next round.
    pub closed: bool,
}

/// The spool (cheap to clone; methods that touch files block, so call them from blocking
/// threads — except [`Spool::append`] with `spool_fsync: interval`, which only copies into
/// memory unless a segment must be created or dropped).
#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    /// Whether every append is fsynced before it is acknowledged (`false`: in the page cache
    /// before it is acknowledged — which survives the process being killed — and fsynced by
    /// [`Spool::sync`] on a short timer, for power loss).
    fsync_each: Arc<AtomicBool>,
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

/// Reads a segment an earlier run left: trims the zeros after its data (a mapped segment
/// is pre-sized) and counts its events.
fn recover(path: &Path, seq: u64) -> std::io::Result<Segment> {
    let data = fs::read(path)?;
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end < data.len() {
        fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(end as u64)?;
    }
    let mut seg = Segment::new(seq);
    seg.fresh = false;
    seg.bytes = end as u64;
    for line in data
        .get(..end)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        match gap_count(line) {
            Some(n) => seg.gap_lost += n,
            None => seg.events += 1,
        }
    }
    Ok(seg)
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
            // Prepared files hold no events (a recycled one may hold half-zeroed old ones).
            if name.to_str().is_some_and(|n| n.ends_with(PREPARED_SUFFIX)) {
                fs::remove_file(entry.path())?;
                continue;
            }
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let seg = recover(&entry.path(), seq)?;
            if seg.bytes == 0 {
                fs::remove_file(entry.path())?;
            } else {
                found.push(seg);
            }
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
            fsync_each: Arc::new(AtomicBool::new(true)),
            max_bytes,
            segment_max: (max_bytes / 8).clamp(4096, SEGMENT_MAX),
            when_full,
            inner: Arc::new(Mutex::new(Inner {
                sealed: found.into(),
                retired: Vec::new(),
                open: None,
                standby: Vec::new(),
                next_seq,
                used,
                dir_dirty: false,
                sync_marks: VecDeque::new(),
                doomed: Vec::new(),
                spooled: 0,
            })),
            gap: Arc::new(gap),
            stats,
        })
    }

    /// Copies the counters kept under the lock into [`Stats`].
    fn publish(&self, inner: &Inner) {
        self.stats.spooled.store(inner.spooled, Ordering::Relaxed);
        self.stats.bytes.store(inner.used, Ordering::Relaxed);
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

    fn fsync_each(&self) -> bool {
        self.fsync_each.load(Ordering::Relaxed)
    }

    /// The timer's job when appends are not fsynced one by one, called every `period`: makes
    /// sure that whatever was appended more than [`SHIP_EVERY`] + `period` ago is on disk —
    /// fsynced now, unless it has been delivered since (auth made it durable). The skip
    /// matters: it is what keeps a healthy spool off the disk entirely. Fsyncing a mapped
    /// segment writes back every page faulted in ahead and write-protects them, so the next
    /// copies into each fault again; and a segment that was written back must later be
    /// trimmed and its blocks freed. The shipper, which runs every [`SHIP_EVERY`], normally
    /// delivers first. So an event is on disk, here or in auth's log, within [`SHIP_EVERY`] +
    /// two periods of its append.
    pub fn sync(&self, period: Duration) -> std::io::Result<()> {
        let keep = usize::try_from(SHIP_EVERY.as_nanos() / period.as_nanos().max(1))
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(64);
        // The fsyncs run on second handles, outside the lock: appends go on meanwhile.
        let (files, dir_dirty) = {
            let mut inner = self.lock();
            let mark = inner.open.as_ref().map(|w| (w.seg.seq, w.seg.bytes));
            inner.sync_marks.push_back(mark);
            let due = if inner.sync_marks.len() > keep {
                inner.sync_marks.pop_front().flatten()
            } else {
                None
            };
            // Everything appended before the due mark: the mark's segment up to the mark, and
            // every mapped segment before it whole (finished ones were fsynced).
            let mut files = Vec::new();
            if let Some((seq, bytes)) = due {
                for w in inner.retired.iter().chain(inner.open.iter()) {
                    let need = match w.seg.seq.cmp(&seq) {
                        std::cmp::Ordering::Less => w.seg.bytes,
                        std::cmp::Ordering::Equal => bytes,
                        std::cmp::Ordering::Greater => continue,
                    };
                    if w.seg.shipped.max(w.synced) < need {
                        files.push((w.seg.seq, w.seg.bytes, w.map.file().try_clone()?));
                    }
                }
            }
            // A new segment's name must be durable with its contents (not needed when they
            // were delivered).
            let dir_dirty = !files.is_empty() && std::mem::take(&mut inner.dir_dirty);
            (files, dir_dirty)
        };
        let synced = files
            .iter()
            .try_for_each(|(_, _, f)| f.sync_data())
            .and_then(|()| {
                if dir_dirty {
                    sync_dir(&self.dir)
                } else {
                    Ok(())
                }
            });
        let mut inner = self.lock();
        if let Err(e) = synced {
            inner.dir_dirty |= dir_dirty;
            return Err(e);
        }
        let inner = &mut *inner;
        for (seq, bytes, _) in files {
            if let Some(w) = inner
                .retired
                .iter_mut()
                .chain(inner.open.iter_mut())
                .find(|w| w.seg.seq == seq)
            {
                w.synced = w.synced.max(bytes);
            }
        }
        Ok(())
    }

    /// Appends groups of event lines (each group all or nothing); returns one result per
    /// group. `Ok` means the group is in the page cache, and on disk if every append is
    /// fsynced.
    pub fn append(&self, groups: &[(&Lines, Class)]) -> Vec<Result<(), Refused>> {
        let mut inner = self.lock();
        let mut results = Vec::with_capacity(groups.len());
        let mut dirty = false;
        for &(lines, class) in groups {
            let bytes = lines.as_bytes().len() as u64;
            let lost = match self.make_room(&mut inner, bytes, class) {
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
                let mut line = Lines::new();
                line.push_line(&(self.gap)(lost));
                if let Err(e) = self.write(&mut inner, &line, lost) {
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
        if dirty && self.fsync_each() {
            let synced = inner
                .open
                .as_ref()
                .map_or(Ok(()), |w| w.map.file().sync_data())
                .and_then(|()| {
                    if std::mem::take(&mut inner.dir_dirty) {
                        sync_dir(&self.dir)
                    } else {
                        Ok(())
                    }
                });
            if let Err(e) = synced {
                // Nothing in this group is known to be durable.
                let e = Refused::Io(e.to_string());
                for r in &mut results {
                    if r.is_ok() {
                        *r = Err(e.clone());
                    }
                }
            }
        }
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
            let seg = if let Some(seg) = inner.sealed.pop_front() {
                seg
            } else if !inner.retired.is_empty() {
                let w = inner.retired.remove(0);
                drop(w.map);
                w.seg
            } else if let Some(w) = inner.open.take() {
                drop(w.map);
                w.seg
            } else {
                break;
            };
            let _ = fs::remove_file(segment_path(&self.dir, seg.seq));
            inner.used -= seg.undelivered();
            lost += seg.lost_if_dropped();
            events += seg.events - seg.shipped_events;
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

    /// Makes a segment that takes `bytes` the open one: the prepared standby file when it is
    /// big enough, else a new file.
    fn open_segment(&self, inner: &mut Inner, bytes: u64) -> std::io::Result<()> {
        let seq = inner.next_seq;
        let path = segment_path(&self.dir, seq);
        let (map, born) = match inner.standby.pop() {
            Some(p) if p.map.len() as u64 >= bytes => {
                if let Err(e) = fs::rename(&p.path, &path) {
                    inner.standby.push(p);
                    return Err(e);
                }
                (p.map, p.born)
            }
            other => {
                inner.standby.extend(other);
                let len = usize::try_from(self.segment_max.max(bytes))
                    .map_err(|_| std::io::Error::other("audit events too large to spool"))?;
                (MappedFile::create(&path, len, false)?, Instant::now())
            }
        };
        inner.next_seq += 1;
        // The new name must survive a crash as well as its contents: fsynced with the next
        // append when every append is, else with the timer's sync.
        inner.dir_dirty = true;
        inner.open = Some(Writing {
            seg: Segment::new(seq),
            map,
            born,
            synced: 0,
            retired_at: None,
        });
        Ok(())
    }

    /// Appends `lines`; `gap_lost` > 0 marks them as one `audit.gap` event for that many.
    fn write(&self, inner: &mut Inner, lines: &Lines, gap_lost: u64) -> std::io::Result<()> {
        let bytes = lines.as_bytes().len() as u64;
        if inner
            .open
            .as_ref()
            .is_some_and(|w| w.seg.bytes + bytes > w.map.len() as u64)
        {
            self.retire(inner)?;
        }
        if inner.open.is_none() {
            self.open_segment(inner, bytes)?;
        }
        let Some(w) = inner.open.as_mut() else {
            return Err(std::io::Error::other("no open audit spool segment"));
        };
        let at = usize::try_from(w.seg.bytes).map_err(std::io::Error::other)?;
        w.map
            .write_at(at, lines.as_bytes())
            .map_err(std::io::Error::other)?;
        w.seg.bytes += bytes;
        if gap_lost > 0 {
            w.seg.gap_lost += gap_lost;
        } else {
            w.seg.events += lines.len() as u64;
            inner.spooled += lines.len() as u64;
        }
        inner.used += bytes;
        Ok(())
    }

    /// Moves the open segment to the retired ones (fsynced first when every append is).
    fn retire(&self, inner: &mut Inner) -> std::io::Result<()> {
        if let Some(mut w) = inner.open.take() {
            if self.fsync_each() {
                w.map.file().sync_data()?;
                w.synced = w.seg.bytes;
            }
            w.retired_at = Some(Instant::now());
            inner.retired.push(w);
        }
        Ok(())
    }

    /// Housekeeping outside the appenders' way, on the fsync timer: deletes delivered
    /// segments; finishes retired segments still undelivered `hold` after they filled up
    /// (unmapped, trimmed to their data, fsynced) — with `spool_fsync: interval` the shipper
    /// has usually delivered them by then, so they are deleted without ever being written to
    /// disk here; and prepares the next segment's file.
    pub fn maintain(&self, hold: Duration) -> std::io::Result<()> {
        let (finish, mut unmap, doomed, prepared) = {
            let mut inner = self.lock();
            self.publish(&inner);
            let prepared = inner.standby.len();
            let doomed = std::mem::take(&mut inner.doomed);
            let (mut finish, mut unmap, mut keep) = (Vec::new(), Vec::new(), Vec::new());
            for w in std::mem::take(&mut inner.retired) {
                if w.seg.undelivered() == 0 {
                    unmap.push(w);
                } else if w.retired_at.is_none_or(|t| t.elapsed() >= hold) {
                    finish.push(w);
                } else {
                    keep.push(w);
                }
            }
            inner.retired = keep;
            (finish, unmap, doomed, prepared)
        };
        let mut result = Ok(());
        // Delivered segments become the next ones: zeroing the pages a segment used is much
        // cheaper than a new file's pages being allocated, zeroed and reserved by the kernel,
        // and the old file's being freed (on a filesystem mounted with `discard`, with a
        // wait for the device). Only files whose contents never went to the disk: not
        // fsynced here, and young enough for the kernel not to have written them back.
        let full = usize::try_from(self.segment_max).unwrap_or(usize::MAX);
        let reusable =
            |w: &Writing| w.map.len() == full && w.synced == 0 && w.born.elapsed() < RECYCLE_FOR;
        for _ in prepared..RECYCLED {
            let Some(i) = unmap.iter().position(reusable) else {
                break;
            };
            let w = unmap.swap_remove(i);
            match self.recycle(w) {
                Ok(ready) => self.lock().standby.insert(0, ready),
                Err((e, w)) => {
                    result = Err(e);
                    unmap.push(w);
                    break;
                }
            }
        }
        let delivered: Vec<u64> = unmap.iter().map(|w| w.seg.seq).collect();
        drop(unmap);
        for seq in doomed.into_iter().chain(delivered) {
            match fs::remove_file(segment_path(&self.dir, seq)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => result = Err(e),
                _ => {}
            }
        }
        let mut done = Vec::with_capacity(finish.len());
        for w in finish {
            let len = usize::try_from(w.seg.bytes).unwrap_or(usize::MAX);
            if let Err(e) = w.map.finish(len).and_then(|f| f.sync_data()) {
                result = Err(e);
            }
            done.push(w.seg);
        }
        if !done.is_empty() {
            // The names of what was just made durable.
            if let Err(e) = sync_dir(&self.dir) {
                result = Err(e);
            }
            let mut inner = self.lock();
            for seg in done {
                if seg.undelivered() == 0 {
                    inner.doomed.push(seg.seq);
                } else {
                    // In order: the shipper delivers the oldest first.
                    let at = inner.sealed.partition_point(|s| s.seq < seg.seq);
                    inner.sealed.insert(at, seg);
                }
            }
        }
        if self.lock().standby.is_empty() {
            let path = self.dir.join(STANDBY);
            let _ = fs::remove_file(&path);
            let len = usize::try_from(self.segment_max).unwrap_or(4096);
            match MappedFile::create(&path, len, true) {
                Ok(map) => self.lock().standby.push(Prepared {
                    path,
                    map,
                    born: Instant::now(),
                }),
                Err(e) => result = Err(e),
            }
        }
        result
    }

    /// Turns a delivered segment into a prepared file: renamed first (a crash before the
    /// zeroing ends leaves a prepared file, which [`Spool::open`] deletes, never a segment
    /// with old events in it), then its used bytes zeroed — the rest of it never held any.
    #[allow(clippy::result_large_err)] // the segment goes back to the caller to be deleted
    fn recycle(&self, mut w: Writing) -> Result<Prepared, (std::io::Error, Writing)> {
        let path = self
            .dir
            .join(format!("recycled-{}{PREPARED_SUFFIX}", w.seg.seq));
        if let Err(e) = fs::rename(segment_path(&self.dir, w.seg.seq), &path) {
            return Err((e, w));
        }
        w.map
            .zero(usize::try_from(w.seg.bytes).unwrap_or(usize::MAX));
        Ok(Prepared {
            path,
            map: w.map,
            born: w.born,
        })
    }

    /// What the oldest segment with undelivered events holds after what was delivered, or
    /// `None` when everything is delivered.
    pub fn unshipped(&self) -> std::io::Result<Option<Unshipped>> {
        let mut data = Vec::new();
        let Some(part) = self.read_unshipped(None, &mut data)? else {
            return Ok(None);
        };
        Ok(Some(Unshipped { part, data }))
    }

    /// What the first segment after `seq` with undelivered events holds, appended to `data`:
    /// when a round has read the rest of a full segment, the events sessions wrote since
    /// into the next one go in the same delivery (one write and one fsync in auth's log,
    /// instead of a second round right after).
    pub fn unshipped_after(
        &self,
        seq: u64,
        data: &mut Vec<u8>,
    ) -> std::io::Result<Option<UnshippedPart>> {
        self.read_unshipped(Some(seq), data)
    }

    /// What the first segment (after `after`, if given) with undelivered events holds after
    /// what was delivered, mapped where it lies in the page cache instead of read into a
    /// buffer: for a shipper that hands the bytes to a writer in the same process (auth's
    /// log), a round's megabytes are then copied once, by that writer, not twice. `None`
    /// when everything is delivered, or when the segment was dropped meanwhile
    /// (`drop_oldest`: ask again).
    ///
    /// The mapped bytes stay as they are while the mapping lives: appends go after them, and
    /// a segment's file is zeroed for reuse ([`Spool::maintain`]) only once what it holds is
    /// delivered — which the caller reports with [`Spool::shipped`] after it is done with
    /// the mapping.
    pub fn mapped_unshipped(
        &self,
        after: Option<u64>,
    ) -> std::io::Result<Option<(UnshippedPart, MappedRange)>> {
        let Some(part) = self.unshipped_part(after) else {
            return Ok(None);
        };
        let len = usize::try_from(part.end - part.start).map_err(std::io::Error::other)?;
        let file = match File::open(segment_path(&self.dir, part.seq)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let map = MappedRange::new(&file, part.start, len)?;
        Ok(Some((part, map)))
    }

    /// Where the first segment (after `after`, if given) with undelivered events has them.
    fn unshipped_part(&self, after: Option<u64>) -> Option<UnshippedPart> {
        let inner = self.lock();
        let seg = inner
            .segments()
            .filter(|s| after.is_none_or(|a| s.seq > a))
            .find(|s| s.undelivered() > 0)?;
        Some(UnshippedPart {
            seq: seg.seq,
            start: seg.shipped,
            end: seg.bytes,
            events: seg.events - seg.shipped_events,
            fresh: seg.fresh,
            closed: inner.open.as_ref().is_none_or(|w| w.seg.seq != seg.seq),
        })
    }

    /// Appends to `data` what the first segment (after `after`, if given) with undelivered
    /// events holds after what was delivered.
    fn read_unshipped(
        &self,
        after: Option<u64>,
        data: &mut Vec<u8>,
    ) -> std::io::Result<Option<UnshippedPart>> {
        let Some(part) = self.unshipped_part(after) else {
            return Ok(None);
        };
        let (seq, from, end) = (part.seq, part.start, part.end);
        let len = usize::try_from(end - from).map_err(std::io::Error::other)?;
        let before = data.len();
        data.reserve(len);
        let read = File::open(segment_path(&self.dir, seq)).and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(from))?;
            f.take(end - from).read_to_end(data)
        });
        match read {
            Ok(n) if n == len => {}
            Ok(n) => {
                data.truncate(before);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("audit spool segment {seq} ends {} bytes early", len - n),
                ));
            }
            // Dropped meanwhile (drop_oldest): the caller asks again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => data.truncate(before),
            Err(e) => {
                data.truncate(before);
                return Err(e);
            }
        }
        Ok(Some(part))
    }

    /// Records that auth acknowledged segment `seq` up to `end`, `events` events (a closed
    /// segment entirely delivered is deleted by the next [`Spool::maintain`]); returns whether
    /// everything in the spool is now delivered. Only bookkeeping: never touches a file.
    pub fn shipped(&self, seq: u64, end: u64, events: u64) -> bool {
        let mut inner = self.lock();
        let mut freed = 0;
        let mut remove = false;
        if let Some(seg) = inner.segment_mut(seq) {
            if end > seg.shipped {
                freed = end.min(seg.bytes) - seg.shipped;
                seg.shipped = end.min(seg.bytes);
                seg.shipped_events = (seg.shipped_events + events).min(seg.events);
                self.stats.delivered.fetch_add(events, Ordering::Relaxed);
            }
            remove = seg.undelivered() == 0;
        }
        inner.used -= freed;
        if remove {
            if let Some(i) = inner.sealed.iter().position(|s| s.seq == seq) {
                inner.sealed.remove(i);
                inner.doomed.push(seq);
            }
        }
        self.publish(&inner);
        let all = inner.segments().all(|s| s.undelivered() == 0);
        all
    }

    /// Whether a closed segment (full, or left by an earlier run) still waits for delivery.
    pub fn has_closed_backlog(&self) -> bool {
        let inner = self.lock();
        inner.sealed.iter().any(|s| s.undelivered() > 0)
            || inner.retired.iter().any(|w| w.seg.undelivered() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn line(i: usize) -> String {
        format!(
            "{{\"uid\":\"u{i}\",\"event\":\"db.session.query\",\"pad\":\"{}\"}}",
            "x".repeat(80)
        )
    }

    /// One event line.
    fn one(text: &str) -> Lines {
        let mut l = Lines::new();
        l.push_line(text.as_bytes());
        l
    }

    fn gap() -> GapEvent {
        Box::new(|lost| {
            format!("{{\"uid\":\"gap-{lost}\",\"event\":\"audit.gap\",\"lost\":{lost}}}")
                .into_bytes()
        })
    }

    fn drain(s: &Spool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(u) = s.unshipped().unwrap() {
            let text = String::from_utf8(u.data).unwrap();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            s.shipped(u.part.seq, u.part.end, lines.len() as u64);
            out.extend(lines);
        }
        s.maintain(Duration::ZERO).unwrap();
        out
    }

    fn files(d: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn survives_reopen_in_order_and_skips_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 1 << 20, WhenFull::RefuseSessions, gap()).unwrap();
        s.set_fsync_each(false);
        s.maintain(Duration::ZERO).unwrap();
        for i in 0..10 {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
        }
        // The segment is mapped and pre-sized: its events, then zeros.
        let seg = segment_path(d.path(), 1);
        let len = fs::metadata(&seg).unwrap().len();
        assert_eq!(len, 1 << 17);
        // A kill mid-copy leaves half a line (and the zeros after it).
        let data = fs::read(&seg).unwrap();
        let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
        File::options()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(b"{\"uid\":\"torn", end as u64)
            .unwrap();
        drop(s);
        let s = Spool::open(d.path(), 1 << 20, WhenFull::RefuseSessions, gap()).unwrap();
        // Reopening trimmed the zeros; the torn line is still there, for the shipper to skip.
        assert!(fs::metadata(&seg).unwrap().len() < 2048);
        let u = s.unshipped().unwrap().unwrap();
        assert!(
            !u.part.fresh,
            "left by an earlier run: checked and deduplicated"
        );
        let got = drain(&s);
        assert_eq!(got.len(), 11);
        assert_eq!(&got[..10], (0..10).map(line).collect::<Vec<_>>().as_slice());
        assert!(got[10].starts_with("{\"uid\":\"torn"));
        assert_eq!(files(d.path()), [STANDBY]);
        // New events after a restart start a new segment, and are fresh.
        assert!(s.append(&[(&one(&line(11)), Class::Activity)])[0].is_ok());
        let u = s.unshipped().unwrap().unwrap();
        assert!(u.part.fresh);
        assert_eq!(u.part.seq, 2);
    }

    #[test]
    fn ships_from_the_open_segment_and_deletes_a_segment_once_full_and_delivered() {
        let d = tempfile::tempdir().unwrap();
        // 4 KiB segments: about 30 events each.
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        s.set_fsync_each(false);
        for i in 0..5 {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
        }
        let u = s.unshipped().unwrap().unwrap();
        assert!(!u.part.closed, "read from the segment being written");
        assert_eq!(String::from_utf8(u.data).unwrap().lines().count(), 5);
        assert!(s.shipped(u.part.seq, u.part.end, 5), "everything delivered");
        assert!(s.unshipped().unwrap().is_none());
        // Nothing is read twice: the next read starts where delivery ended.
        assert!(s.append(&[(&one(&line(5)), Class::Activity)])[0].is_ok());
        let u = s.unshipped().unwrap().unwrap();
        assert_eq!(String::from_utf8(u.data).unwrap(), format!("{}\n", line(5)));
        s.shipped(u.part.seq, u.part.end, 1);
        // Fill past one segment: the first is retired, then finished and deleted.
        for i in 6..60 {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
        }
        // The retired segment is read first, and says that more waits in a newer one (the
        // shipper goes on at once instead of waiting for its next round).
        let mut got = Vec::new();
        for closed in [true, false] {
            let u = s.unshipped().unwrap().unwrap();
            assert_eq!(u.part.closed, closed);
            let text = String::from_utf8(u.data).unwrap();
            got.extend(text.lines().map(str::to_owned));
            s.shipped(u.part.seq, u.part.end, text.lines().count() as u64);
        }
        assert!(s.unshipped().unwrap().is_none(), "two segments");
        s.maintain(Duration::ZERO).unwrap();
        assert_eq!(got, (6..60).map(line).collect::<Vec<_>>());
        let left = files(d.path());
        assert!(
            !left.contains(&"00000000000000000001.seg".to_owned()),
            "{left:?}"
        );
        assert_eq!(s.stats.bytes.load(Ordering::Relaxed), 0);
        assert_eq!(s.stats.delivered.load(Ordering::Relaxed), 60);
    }

    #[test]
    fn a_full_segment_and_the_next_are_read_into_one_round() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        s.set_fsync_each(false);
        // Delivered up to line 9, then past the first segment's end.
        for i in 0..10 {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
        }
        let u = s.unshipped().unwrap().unwrap();
        s.shipped(u.part.seq, u.part.end, 10);
        for i in 10..60 {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
        }
        let mut u = s.unshipped().unwrap().unwrap();
        assert!(u.part.closed && u.part.fresh);
        let first_len = u.data.len();
        let part = s.unshipped_after(u.part.seq, &mut u.data).unwrap().unwrap();
        assert_eq!(part.seq, u.part.seq + 1);
        assert!(!part.closed && part.fresh && part.start == 0);
        assert_eq!(part.end as usize, u.data.len() - first_len);
        let text = String::from_utf8(u.data).unwrap();
        assert_eq!(
            text.lines().map(str::to_owned).collect::<Vec<_>>(),
            (10..60).map(line).collect::<Vec<_>>()
        );
        assert_eq!(u.part.events + part.events, 50);
        // Nothing after the open segment.
        let mut none = Vec::new();
        assert!(s.unshipped_after(part.seq, &mut none).unwrap().is_none() && none.is_empty());
        assert!(!s.shipped(u.part.seq, u.part.end, u.part.events));
        assert!(
            s.shipped(part.seq, part.end, part.events),
            "everything delivered"
        );
        assert!(s.unshipped().unwrap().is_none());
        assert_eq!(s.stats.delivered.load(Ordering::Relaxed), 60);
    }

    #[test]
    fn a_group_larger_than_a_segment_gets_a_segment_of_its_own() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        let big = format!("{{\"uid\":\"big\",\"q\":\"{}\"}}", "x".repeat(10_000));
        assert!(s.append(&[(&one(&line(0)), Class::Activity)])[0].is_ok());
        assert!(s.append(&[(&one(&big), Class::Activity)])[0].is_ok());
        assert!(s.append(&[(&one(&line(1)), Class::Activity)])[0].is_ok());
        assert_eq!(drain(&s), [line(0), big, line(1)]);
    }

    #[test]
    fn refuse_when_full_keeps_a_reserve_for_control_events() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 8192, WhenFull::RefuseSessions, gap()).unwrap();
        let mut ok = 0;
        while s.append(&[(&one(&line(ok)), Class::Activity)])[0].is_ok() {
            ok += 1;
        }
        assert!(!s.accepting_sessions());
        assert_eq!(
            s.append(&[(&one(&line(0)), Class::Activity)])[0],
            Err(Refused::Full)
        );
        assert!(s.append(&[(&one(&line(999)), Class::Control)])[0].is_ok());
        let got = drain(&s);
        assert_eq!(got.len(), ok + 1);
        assert!(s.accepting_sessions());
    }

    #[test]
    fn drop_oldest_counts_and_records_a_gap() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 8192, WhenFull::DropOldest, gap()).unwrap();
        for i in 0..200 {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
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

    /// Appends `n` events from `from`; returns the next index.
    fn fill(s: &Spool, from: usize, n: usize) -> usize {
        for i in from..from + n {
            assert!(s.append(&[(&one(&line(i)), Class::Activity)])[0].is_ok());
        }
        from + n
    }

    #[test]
    fn a_full_segment_waits_for_delivery_and_once_delivered_is_never_finished() {
        let d = tempfile::tempdir().unwrap();
        // 4 KiB segments: about 30 events each.
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        s.set_fsync_each(false);
        let next = fill(&s, 0, 40);
        let first = segment_path(d.path(), 1);
        let hold = Duration::from_secs(3600);
        s.maintain(hold).unwrap();
        // Full but undelivered, and young: still mapped and pre-sized, not fsynced.
        assert_eq!(s.lock().retired.len(), 1);
        assert_eq!(s.lock().retired[0].synced, 0);
        assert_eq!(fs::metadata(&first).unwrap().len(), 4096);
        // Delivered: marking it so touches no file; the next housekeeping deletes it.
        let u = s.unshipped().unwrap().unwrap();
        assert_eq!(u.part.seq, 1);
        s.shipped(u.part.seq, u.part.end, u.part.events);
        assert!(first.exists());
        s.maintain(hold).unwrap();
        assert!(!first.exists());
        assert!(s.lock().retired.is_empty());
        // A full segment still undelivered once `hold` has passed is trimmed and kept.
        fill(&s, next, 40);
        s.maintain(Duration::ZERO).unwrap();
        let sealed: Vec<u64> = s.lock().sealed.iter().map(|g| g.seq).collect();
        assert_eq!(sealed, [2]);
        let data = fs::read(segment_path(d.path(), 2)).unwrap();
        assert!(
            data.ends_with(b"\n") && !data.contains(&0),
            "trimmed to its lines"
        );
        assert_eq!(drain(&s).len() as u64, 80 - u.part.events);
        assert_eq!(s.stats.spooled.load(Ordering::Relaxed), 80);
    }

    #[test]
    fn the_timer_fsyncs_what_is_old_and_undelivered_including_full_segments() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        s.set_fsync_each(false);
        let period = SHIP_EVERY / 4;
        let ticks = 5; // SHIP_EVERY / period + 1: how long a mark waits
        fill(&s, 0, 10);
        for _ in 0..ticks {
            s.sync(period).unwrap();
        }
        assert_eq!(s.lock().open.as_ref().unwrap().synced, 0, "not due yet");
        // The segment fills up and the next one starts; the mark from before is now due: the
        // full segment is fsynced whole (it is still mapped, waiting for delivery).
        fill(&s, 10, 30);
        s.sync(period).unwrap();
        {
            let inner = s.lock();
            let w = &inner.retired[0];
            assert_eq!(w.synced, w.seg.bytes);
            assert_eq!(inner.open.as_ref().unwrap().synced, 0);
        }
        // What was delivered in time is never fsynced here.
        let mut next = drain(&s).len();
        // A file that was fsynced is deleted once delivered, never reused: its old events are
        // on the disk, and the zeros that would replace them might not get there.
        assert!(!segment_path(d.path(), 1).exists());
        assert!(!d
            .path()
            .join(format!("recycled-1{PREPARED_SUFFIX}"))
            .exists());
        for _ in 0..3 {
            next = fill(&s, next, 2);
            for _ in 0..ticks {
                s.sync(period).unwrap();
            }
            let u = s.unshipped().unwrap().unwrap();
            s.shipped(u.part.seq, u.part.end, u.part.events);
        }
        s.sync(period).unwrap();
        assert_eq!(s.lock().open.as_ref().unwrap().synced, 0);
    }

    #[test]
    fn a_delivered_segment_becomes_the_next_standby_and_leaves_no_old_events() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        s.set_fsync_each(false);
        // Nothing prepared yet: segments 1 and 2 are new files.
        let next = fill(&s, 0, 40);
        assert!(s.lock().standby.is_empty());
        let u = s.unshipped().unwrap().unwrap();
        assert_eq!(u.part.seq, 1);
        s.shipped(u.part.seq, u.part.end, u.part.events);
        s.maintain(Duration::from_secs(3600)).unwrap();
        // Segment 1's file is prepared for the next segment now, zeroed; no new file is made.
        assert!(!segment_path(d.path(), 1).exists());
        let recycled = d.path().join(format!("recycled-1{PREPARED_SUFFIX}"));
        let data = fs::read(&recycled).unwrap();
        assert_eq!(data.len(), 4096);
        assert!(data.iter().all(|&b| b == 0));
        assert!(!d.path().join(STANDBY).exists());
        // The next segment is that file, and holds only its own events.
        let next = fill(&s, next, 40);
        assert!(!recycled.exists());
        // A prepared file left by a crash (here: half-zeroed) is deleted on reopening.
        fs::write(
            d.path().join(format!("recycled-9{PREPARED_SUFFIX}")),
            line(0),
        )
        .unwrap();
        drop(s);
        let s = Spool::open(d.path(), 32 * 1024, WhenFull::RefuseSessions, gap()).unwrap();
        let got = drain(&s);
        assert_eq!(
            got.len() as u64 + u.part.events,
            next as u64,
            "nothing old, nothing lost"
        );
        assert_eq!(got.last().unwrap(), &line(next - 1));
        assert!(got.iter().all(|l| l != &line(0)));
        assert!(files(d.path()).iter().all(|f| !f.starts_with("recycled-9")));
    }
}
