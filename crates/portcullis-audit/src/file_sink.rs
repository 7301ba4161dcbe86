//! JSON lines, one file per UTC day (`2026-11-21.log`), with `events.log` linking to the
//! current one; appended and fsynced per batch (or as [`FsyncPolicy`] says).
//!
//! A line goes into the file of the day it is *written*, so an event delivered late (an
//! agent that was cut off from auth) lands in a later file than its time. Searches therefore
//! read the files from one day before the range (clock skew) to [`LATE_DAYS`] days after it.

use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use time::{Date, OffsetDateTime};

use crate::appender::{Appender, Mode};
use crate::search::{micros, Head, Order, Page, Position, Query};
use crate::sink::{FsyncPolicy, Sink, SinkError, SinkOptions, SinkResult};

/// How many days after an event's own day a search still looks for it (late delivery).
pub const LATE_DAYS: i64 = 2;
/// Clock skew allowed between an event's time and the day it was written (one day).
const SKEW_DAYS: i64 = 1;
const DAY_MICROS: i64 = 86_400_000_000;

/// Lines as one buffer, each ended by a newline: one `write` for a whole batch.
fn joined<S: AsRef<str>>(lines: &[S]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(lines.iter().map(|l| l.as_ref().len() + 1).sum());
    for l in lines {
        buf.extend_from_slice(l.as_ref().as_bytes());
        buf.push(b'\n');
    }
    buf
}

/// Appends events to daily files.
#[derive(Debug, Clone)]
pub struct FileSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    options: SinkOptions,
    /// Whether large appends may bypass the page cache.
    mode: Mode,
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    day: String,
    /// The day file (large appends bypass the page cache: see [`crate::appender`]). Its
    /// [`Appender::file`] is shared so an fsync runs outside the lock: appends from sessions
    /// writing directly (see [`FileSink::append_ndjson`]) never wait for another writer's disk
    /// flush.
    out: Appender,
    last_sync: Instant,
    dirty: bool,
}

impl FileSink {
    /// Writes under `dir` (created 0700), fsyncing every batch.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        Self::with_options(dir, SinkOptions::default())
    }

    /// Writes under `dir` (created 0700) with `options`.
    pub fn with_options(dir: &Path, options: SinkOptions) -> std::io::Result<Self> {
        Self::with_mode(dir, options, Mode::Direct)
    }

    /// Writes under `dir` (created 0700) with `options`, appending as `mode` allows (tests
    /// and benchmarks compare the two).
    pub fn with_mode(dir: &Path, options: SinkOptions, mode: Mode) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                options,
                mode,
                current: Mutex::new(None),
            }),
        })
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends events, each already one line of JSON, and fsyncs per the policy.
    pub fn write_lines<S: AsRef<str>>(&self, lines: &[S]) -> std::io::Result<()> {
        self.append(&joined(lines))
    }

    /// Appends `events` as JSON lines and fsyncs per the policy.
    pub fn write(&self, events: &[Value]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for e in events {
            // serde_json escapes control characters and writes valid UTF-8, so one event is
            // always exactly one line.
            serde_json::to_writer(&mut buf, e).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        self.append(&buf)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        match self.inner.current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Appends JSON lines (each ending in `\n`) as they are, in one write, and fsyncs per the
    /// policy: for the events an agent in the same process spooled, which need neither
    /// checking nor deduplication.
    pub fn append_ndjson(&self, lines: &[u8]) -> std::io::Result<()> {
        self.append(lines)
    }

    /// [`FileSink::append_ndjson`] for lines in several pieces (a shipping round that spans
    /// two spool segments, read where they are mapped): one write of them all.
    pub fn append_ndjson_parts(&self, parts: &[&[u8]]) -> std::io::Result<()> {
        self.append_parts(parts)
    }

    fn append(&self, buf: &[u8]) -> std::io::Result<()> {
        self.append_parts(&[buf])
    }

    fn append_parts(&self, parts: &[&[u8]]) -> std::io::Result<()> {
        if parts.iter().all(|p| p.is_empty()) {
            return Ok(());
        }
        let today = OffsetDateTime::now_utc().date().to_string();
        let mut guard = self.lock();
        if guard.as_ref().map(|c| c.day != today).unwrap_or(true) {
            // Yesterday's file is finished: make it durable before moving on.
            if let Some(old) = guard.as_mut() {
                if old.dirty {
                    old.out.file().sync_data()?;
                }
            }
            let name = format!("{today}.log");
            let out = Appender::open(&self.inner.dir.join(&name), self.inner.mode)?;
            let link = self.inner.dir.join("events.log");
            let tmp = self.inner.dir.join(".events.log.tmp");
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&name, &tmp)?;
            fs::rename(&tmp, &link)?;
            *guard = Some(Current {
                day: today,
                out,
                last_sync: Instant::now(),
                dirty: false,
            });
            if let Err(e) = self.prune(OffsetDateTime::now_utc().date()) {
                tracing::warn!(error = %e, dir = %self.inner.dir.display(), "audit retention: could not delete old day files");
            }
        }
        let mut to_sync = None;
        if let Some(cur) = guard.as_mut() {
            cur.out.append_parts(parts)?;
            let policy = self.inner.options.fsync;
            let sync = match policy {
                FsyncPolicy::Never => false,
                FsyncPolicy::EveryBatch => true,
                FsyncPolicy::Interval => {
                    cur.last_sync.elapsed() >= self.inner.options.fsync_interval
                }
            };
            if sync {
                cur.last_sync = Instant::now();
                cur.dirty = false;
                to_sync = Some(Arc::clone(cur.out.file()));
            } else {
                cur.dirty = true;
            }
        }
        drop(guard);
        if let Some(file) = to_sync {
            self.sync_outside_lock(&file)?;
        }
        Ok(())
    }

    /// fsyncs `file` without holding the lock; on failure marks it dirty again so the next
    /// sync retries.
    fn sync_outside_lock(&self, file: &Arc<File>) -> std::io::Result<()> {
        file.sync_data().inspect_err(|_| {
            if let Some(cur) = self.lock().as_mut() {
                if Arc::ptr_eq(cur.out.file(), file) {
                    cur.dirty = true;
                }
            }
        })
    }

    /// fsyncs anything written but not yet synced (unless the policy is `never`).
    pub fn sync(&self) -> std::io::Result<()> {
        if self.inner.options.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        let file = {
            let mut guard = self.lock();
            match guard.as_mut() {
                Some(cur) if cur.dirty => {
                    cur.last_sync = Instant::now();
                    cur.dirty = false;
                    Arc::clone(cur.out.file())
                }
                _ => return Ok(()),
            }
        };
        self.sync_outside_lock(&file)
    }

    /// Deletes the day files older than the retention (none without one), as of `today`;
    /// returns how many it deleted. Runs when the sink opens and at each new day.
    pub fn prune(&self, today: Date) -> std::io::Result<usize> {
        let Some(keep) = self.inner.options.retention else {
            return Ok(0);
        };
        let keep_days = i64::try_from(keep.as_secs().div_ceil(86_400)).unwrap_or(i64::MAX);
        let Some(oldest_kept) =
            today.checked_sub(time::Duration::days(keep_days.saturating_sub(1)))
        else {
            return Ok(0);
        };
        let mut deleted = 0;
        for (day, path) in self.days()? {
            if day < oldest_kept {
                fs::remove_file(&path)?;
                deleted += 1;
                tracing::info!(file = %path.display(), "audit retention: deleted a day file past the retention");
            }
        }
        Ok(deleted)
    }

    /// The day files present, oldest first.
    fn days(&self) -> std::io::Result<Vec<(Date, PathBuf)>> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let mut days = Vec::new();
        for entry in fs::read_dir(&self.inner.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".log") else {
                continue;
            };
            if let Ok(d) = Date::parse(stem, &fmt) {
                days.push((d, entry.path()));
            }
        }
        days.sort();
        Ok(days)
    }

    /// Searches the day files that can hold events of the query's range.
    pub fn search_blocking(&self, query: &Query) -> std::io::Result<Page> {
        let limit = query.page_size();
        // The effective range, narrowed by the cursor.
        let mut lo = query.from.map(micros).unwrap_or(i64::MIN);
        let mut hi = query.to.map(micros).unwrap_or(i64::MAX);
        if let Some(c) = &query.after {
            match query.order {
                Order::NewestFirst => hi = hi.min(c.micros.saturating_add(1)),
                Order::OldestFirst => lo = lo.max(c.micros),
            }
        }
        // A file of day D holds events timed in [D - LATE_DAYS, D + 1 day + skew).
        let bounds = |d: Date| {
            let start = micros(d.midnight().assume_utc());
            (
                start - LATE_DAYS * DAY_MICROS,
                start + (1 + SKEW_DAYS) * DAY_MICROS,
            )
        };
        let mut files: Vec<(Date, PathBuf)> = self
            .days()?
            .into_iter()
            .filter(|(d, _)| {
                let (fmin, fmax) = bounds(*d);
                fmax > lo && fmin < hi
            })
            .collect();
        if query.order == Order::NewestFirst {
            files.reverse();
        }
        let mut heap: BinaryHeap<Entry<'_>> = BinaryHeap::with_capacity(limit + 1);
        let mut line = Vec::with_capacity(1024);
        for (day, path) in &files {
            // Stop once the page is full and no event of this file could beat it.
            if heap.len() >= limit {
                if let Some(worst) = heap.peek() {
                    let (fmin, fmax) = bounds(*day);
                    let beaten = match query.order {
                        Order::NewestFirst => fmax <= worst.pos.micros,
                        Order::OldestFirst => fmin > worst.pos.micros,
                    };
                    if beaten {
                        break;
                    }
                }
            }
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                let Ok(text) = std::str::from_utf8(&line) else {
                    continue;
                };
                let text = text.trim_end_matches(['\n', '\r']);
                if let Some(needle) = &query.contains {
                    if !crate::search::contains_ignore_ascii_case(text, needle) {
                        continue;
                    }
                }
                let Some((head, pos)) = Head::parse(text) else {
                    continue;
                };
                if !query.matches(text, &head, &pos) {
                    continue;
                }
                let entry = Entry {
                    pos,
                    line: text.to_owned(),
                    query,
                };
                if heap.len() < limit {
                    heap.push(entry);
                } else if let Some(mut worst) = heap.peek_mut() {
                    if entry < *worst {
                        *worst = entry;
                    }
                }
            }
        }
        let full = heap.len() >= limit;
        let mut entries = heap.into_sorted_vec();
        // A batch re-sent after a partial failure may be in a file twice.
        entries.dedup_by(|a, b| a.pos == b.pos);
        let next_cursor = if full {
            entries.last().map(|e| e.pos.to_cursor())
        } else {
            None
        };
        Ok(Page {
            events: entries.into_iter().map(|e| e.line).collect(),
            next_cursor,
        })
    }
}

/// A search hit, ordered by the query's order (the greatest is the worst).
struct Entry<'q> {
    pos: Position,
    line: String,
    query: &'q Query,
}

impl PartialEq for Entry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.pos == other.pos
    }
}
impl Eq for Entry<'_> {}
impl PartialOrd for Entry<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.query.cmp(&self.pos, &other.pos)
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("file://{}", self.inner.dir.display())
    }

    fn local_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.inner.dir.clone())
    }

    fn append_ndjson(&self, parts: &[&[u8]]) -> Option<std::io::Result<()>> {
        Some(FileSink::append_ndjson_parts(self, parts))
    }

    async fn write_batch(&self, lines: Arc<Vec<u8>>) -> SinkResult<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.append(&lines))
            .await
            .map_err(|e| SinkError::new("audit file writer", e))?
            .map_err(|e| SinkError::new(&format!("writing {}", self.describe()), e))
    }

    async fn search(&self, query: &Query) -> SinkResult<Page> {
        let me = self.clone();
        let q = query.clone();
        tokio::task::spawn_blocking(move || me.search_blocking(&q))
            .await
            .map_err(|e| SinkError::new("audit search", e))?
            .map_err(|e| SinkError::new(&format!("searching {}", self.describe()), e))
    }

    async fn flush(&self) -> SinkResult<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.sync())
            .await
            .map_err(|e| SinkError::new("audit file writer", e))?
            .map_err(|e| SinkError::new(&format!("fsync {}", self.describe()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_file(dir: &Path) -> String {
        fs::read_to_string(dir.join("events.log")).unwrap_or_default()
    }

    #[test]
    fn ndjson_appends_share_the_file_with_batches_and_follow_the_fsync_policy() {
        let d = tempfile::tempdir().unwrap();
        let sink = FileSink::new(d.path()).unwrap();
        let line =
            |i: u32| format!(r#"{{"uid":"u{i}","time":"2026-11-21T00:00:00Z","event":"x"}}"#);
        sink.append_ndjson(format!("{}\n{}\n", line(1), line(2)).as_bytes())
            .unwrap();
        // every_batch (the default): nothing left dirty.
        assert!(sink.lock().as_ref().is_some_and(|c| !c.dirty));
        sink.write_lines(&[line(3)]).unwrap();
        sink.append_ndjson(b"").unwrap();
        sink.append_ndjson(format!("{}\n", line(4)).as_bytes())
            .unwrap();
        let uids: Vec<_> = day_file(d.path())
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["uid"].clone())
            .collect();
        assert_eq!(uids, ["u1", "u2", "u3", "u4"]);
    }

    #[test]
    fn a_large_round_and_a_line_torn_by_a_crash_leave_every_event_searchable() {
        let d = tempfile::tempdir().unwrap();
        let today = OffsetDateTime::now_utc().date();
        let now = OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        // A crash cut the last line of today's file short.
        fs::write(
            d.path().join(format!("{today}.log")),
            format!(r#"{{"uid":"before","time":"{now}","event":"x"}}"#) + "\n{\"uid\":\"tor",
        )
        .unwrap();
        let sink = FileSink::new(d.path()).unwrap();
        // 2,000 events of about 500 bytes: a round large enough to bypass the page cache.
        let mut round = Vec::new();
        for i in 0..2000 {
            round.extend_from_slice(
                ev(&format!("u{i}"), &now, "db.session.query", "alice", "s1").as_bytes(),
            );
            round.push(b'\n');
        }
        assert!(round.len() > crate::appender::DIRECT_MIN);
        sink.append_ndjson(&round).unwrap();
        sink.write_lines(&[ev("after", &now, "x", "bob", "s2")])
            .unwrap();
        let q = Query {
            limit: 5000,
            ..Query::default()
        };
        let page = sink.search_blocking(&q).unwrap();
        let uids: std::collections::HashSet<String> = page
            .events
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["uid"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(uids.len(), 2002, "every event but the torn fragment");
        assert!(
            uids.contains("before")
                && uids.contains("u0")
                && uids.contains("u1999")
                && uids.contains("after")
        );
        let text = fs::read_to_string(d.path().join("events.log")).unwrap();
        assert!(
            text.contains("{\"uid\":\"tor\n{"),
            "the torn fragment is a line of its own"
        );
    }

    #[test]
    fn never_policy_leaves_the_flush_to_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let sink = FileSink::with_options(
            d.path(),
            SinkOptions {
                fsync: FsyncPolicy::Never,
                ..SinkOptions::default()
            },
        )
        .unwrap();
        sink.append_ndjson(b"{\"uid\":\"a\"}\n").unwrap();
        assert!(sink.lock().as_ref().is_some_and(|c| c.dirty));
        assert_eq!(day_file(d.path()).lines().count(), 1);
    }

    #[test]
    fn retention_deletes_only_day_files_past_it() {
        let d = tempfile::tempdir().unwrap();
        let today = time::macros::date!(2026 - 11 - 21);
        for day in ["2026-11-01", "2026-11-18", "2026-11-19", "2026-11-21"] {
            fs::write(d.path().join(format!("{day}.log")), "{}\n").unwrap();
        }
        fs::write(d.path().join("notes.txt"), "not a day file").unwrap();
        let keep_all = FileSink::new(d.path()).unwrap();
        assert_eq!(keep_all.prune(today).unwrap(), 0);
        let sink = FileSink::with_options(
            d.path(),
            SinkOptions {
                retention: Some(std::time::Duration::from_secs(3 * 86_400)),
                ..SinkOptions::default()
            },
        )
        .unwrap();
        // Three days kept: the 19th, 20th and 21st.
        assert_eq!(sink.prune(today).unwrap(), 2);
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["2026-11-19.log", "2026-11-21.log", "notes.txt"]);
    }

    #[test]
    fn writes_lines_and_links_current() {
        let d = tempfile::tempdir().unwrap();
        let sink = FileSink::new(d.path()).unwrap();
        sink.write(&[
            serde_json::json!({"a": "x\ny"}),
            serde_json::json!({"b": 1}),
        ])
        .unwrap();
        let text = fs::read_to_string(d.path().join("events.log")).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("x\\ny"));
    }

    fn ev(uid: &str, time: &str, event: &str, user: &str, sid: &str) -> String {
        serde_json::json!({
            "uid": uid, "time": time, "event": event, "user": user, "sid": sid,
            "db_service": "pg", "db_query": format!("SELECT {uid}"),
        })
        .to_string()
    }

    /// Synthetic day files: events around midnight, one delivered a day late, junk lines.
    fn synthetic() -> (tempfile::TempDir, FileSink) {
        let d = tempfile::tempdir().unwrap();
        let day1 = [
            ev(
                "a1",
                "2026-11-20T10:00:00Z",
                "db.session.start",
                "alice",
                "s1",
            ),
            ev(
                "a2",
                "2026-11-20T23:59:59.999999Z",
                "db.session.query",
                "alice",
                "s1",
            ),
            "not json".to_owned(),
        ];
        let day2 = [
            ev(
                "b1",
                "2026-11-21T00:00:00Z",
                "db.session.query",
                "bob",
                "s2",
            ),
            // Delivered late: timed on the 20th, written on the 22nd.
            ev(
                "late",
                "2026-11-20T12:00:00Z",
                "db.session.query",
                "alice",
                "s1",
            ),
            ev(
                "b2",
                "2026-11-21T08:00:00+02:00",
                "db.session.end",
                "alice",
                "s1",
            ),
        ];
        fs::write(d.path().join("2026-11-20.log"), day1.join("\n") + "\n").unwrap();
        fs::write(d.path().join("2026-11-22.log"), day2.join("\n") + "\n").unwrap();
        fs::write(d.path().join("README"), "not a day file").unwrap();
        let sink = FileSink::new(d.path()).unwrap();
        (d, sink)
    }

    fn uids(p: &Page) -> Vec<String> {
        p.events
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["uid"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn search_orders_filters_and_crosses_days() {
        let (_d, sink) = synthetic();
        let all = sink.search_blocking(&Query::default()).unwrap();
        assert_eq!(uids(&all), ["b2", "b1", "a2", "late", "a1"]);
        assert_eq!(all.next_cursor, None);

        let oldest = sink
            .search_blocking(&Query {
                order: Order::OldestFirst,
                user: Some("alice".into()),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(uids(&oldest), ["a1", "late", "a2", "b2"]);

        // The 20th only: finds the late event in the 22nd's file, not midnight of the 21st.
        let day = sink
            .search_blocking(&Query {
                from: Some(time::macros::datetime!(2026-11-20 00:00 UTC)),
                to: Some(time::macros::datetime!(2026-11-21 00:00 UTC)),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(uids(&day), ["a2", "late", "a1"]);

        let q = sink
            .search_blocking(&Query {
                event: Some("db.session.query".into()),
                contains: Some("select B1".into()),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(uids(&q), ["b1"]);
        let sid = sink
            .search_blocking(&Query {
                sid: Some("s2".into()),
                db: Some("pg".into()),
                ..Query::default()
            })
            .unwrap();
        assert_eq!(uids(&sid), ["b1"]);
    }

    #[test]
    fn search_pages_with_cursors_in_both_orders() {
        let (_d, sink) = synthetic();
        for (order, want) in [
            (Order::NewestFirst, ["b2", "b1", "a2", "late", "a1"]),
            (Order::OldestFirst, ["a1", "late", "a2", "b1", "b2"]),
        ] {
            let mut got = Vec::new();
            let mut after = None;
            let mut pages = 0;
            loop {
                let page = sink
                    .search_blocking(&Query {
                        limit: 2,
                        order,
                        after: after.clone(),
                        ..Query::default()
                    })
                    .unwrap();
                pages += 1;
                got.extend(uids(&page));
                match page.next_cursor {
                    Some(c) => after = Some(Position::from_cursor(&c).unwrap()),
                    None => break,
                }
            }
            assert_eq!(got, want);
            assert_eq!(pages, 3);
        }
    }

    #[test]
    fn duplicates_from_retries_are_returned_once() {
        let d = tempfile::tempdir().unwrap();
        let sink = FileSink::new(d.path()).unwrap();
        let line = ev(
            "dup",
            "2026-11-21T10:00:00Z",
            "db.session.query",
            "alice",
            "s1",
        );
        sink.write_lines(&[line.as_str(), line.as_str()]).unwrap();
        let page = sink.search_blocking(&Query::default()).unwrap();
        assert_eq!(uids(&page), ["dup"]);
    }

    #[test]
    fn every_fsync_policy_writes() {
        for fsync in [
            FsyncPolicy::EveryBatch,
            FsyncPolicy::Interval,
            FsyncPolicy::Never,
        ] {
            let d = tempfile::tempdir().unwrap();
            let sink = FileSink::with_options(
                d.path(),
                SinkOptions {
                    fsync,
                    ..SinkOptions::default()
                },
            )
            .unwrap();
            sink.write_lines(&["{\"a\":1}"]).unwrap();
            sink.sync().unwrap();
            let text = fs::read_to_string(d.path().join("events.log")).unwrap();
            assert_eq!(text, "{\"a\":1}\n");
        }
    }
}
