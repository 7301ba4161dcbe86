//! Embedded SQLite implementation of [`Backend`].
//!
//! Layout: `items` holds the live data, `changelog` one row per revision (in
//! the same transaction as the data change), `meta` the revision counter and
//! the compaction point. Writes use `BEGIN IMMEDIATE`, so read-check-write
//! sequences (create, CAS) are atomic even across several connections or
//! processes on the same file. All database work runs on tokio's blocking
//! pool; a small maintenance thread sweeps expired items, compacts the change
//! log and notices writes made by other connections.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::watch::Watcher;
use crate::watch::{ChangeFeed, ChangePage};
use crate::{
    prefix_upper_bound, validate_key, validate_prefix, validate_value, Backend, BackendError,
    Event, Item, Result,
};

/// Schema version written to `PRAGMA user_version`; lets a future release
/// migrate, and stops an old release from misreading a newer file.
const SCHEMA_VERSION: i64 = 1;

/// Maximum change-log rows read per watcher page.
const WATCH_PAGE_ROWS: i64 = 256;

/// Soft cap on value bytes per watcher page (at least one row is returned).
const WATCH_PAGE_BYTES: usize = 32 * 1024 * 1024;

/// Expired items deleted per sweep transaction, to keep write locks short.
const SWEEP_BATCH: i64 = 512;

const OP_PUT: i64 = 1;
const OP_DELETE: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted_through', 0);
CREATE TABLE IF NOT EXISTS items (
    key        BLOB PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    revision   INTEGER NOT NULL,
    expires_s  INTEGER,
    expires_ns INTEGER
);
CREATE INDEX IF NOT EXISTS items_expires ON items (expires_s) WHERE expires_s IS NOT NULL;
CREATE TABLE IF NOT EXISTS changelog (
    revision   INTEGER PRIMARY KEY,
    key        BLOB NOT NULL,
    op         INTEGER NOT NULL,
    value      BLOB,
    expires_s  INTEGER,
    expires_ns INTEGER
);
";

/// Tuning knobs for [`SqliteBackend`]; the defaults suit a single auth
/// server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How many change-log entries to keep for watchers. Watchers further
    /// behind than this get [`BackendError::Compacted`]. Default 100,000.
    pub changelog_retention: u64,
    /// How often the maintenance thread sweeps expired items (emitting
    /// `Delete` events), compacts the change log and checks for writes made
    /// by other connections to the same file. Default 1 s.
    pub maintenance_interval: Duration,
    /// How long a write waits for another connection's lock before failing.
    /// Default 10 s.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            changelog_retention: 100_000,
            maintenance_interval: Duration::from_secs(1),
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// The embedded cluster-state backend: one SQLite file in the data dir.
///
/// Cheap to clone (clones share the connection). Dropping the last clone
/// closes the database, stops the maintenance thread and makes outstanding
/// watchers return [`BackendError::Closed`].
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Connection used for writes (and for reads when in memory).
    write: Mutex<Connection>,
    /// Separate read connection for file databases: in WAL mode readers do
    /// not wait for writers, so watchers and gets are not stuck behind fsyncs.
    read: Option<Mutex<Connection>>,
    /// Latest revision known to be committed; wakes watchers.
    notify: watch::Sender<u64>,
    /// Human-readable location for error messages.
    location: String,
    options: SqliteOptions,
    /// Dropped with `Inner`, which ends the maintenance thread promptly.
    _stop: mpsc::Sender<()>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the state database at `path` with default
    /// options.
    ///
    /// A new file is created with mode 0600 (it holds CA keys and tokens).
    /// The database runs in WAL mode with `synchronous=FULL`: NORMAL would be
    /// faster but may lose the last commits on power failure, and a lost lock
    /// or revocation is a security problem, so every commit is made durable.
    pub fn open(path: &Path) -> Result<Self> {
        Self::with_options(path, SqliteOptions::default())
    }

    /// Opens a private, non-persistent database; for tests and ephemeral
    /// demo clusters.
    pub fn open_in_memory() -> Result<Self> {
        Self::in_memory_with_options(SqliteOptions::default())
    }

    /// Like [`SqliteBackend::open_in_memory`] with explicit options (e.g. a
    /// tiny change-log retention in tests).
    pub fn in_memory_with_options(options: SqliteOptions) -> Result<Self> {
        let location = ":memory:".to_owned();
        let conn = Connection::open_in_memory()
            .map_err(|e| open_error(&location, "open in-memory database", &e))?;
        configure(&conn, &location, &options, false)?;
        init_schema(&conn, &location)?;
        Ok(Self::start(conn, None, location, options))
    }

    /// Opens (creating if needed) the state database at `path` with explicit
    /// options; see [`SqliteBackend::open`].
    pub fn with_options(path: &Path, options: SqliteOptions) -> Result<Self> {
        let location = path.display().to_string();
        create_private_file(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let write = Connection::open_with_flags(path, flags)
            .map_err(|e| open_error(&location, "open", &e))?;
        configure(&write, &location, &options, true)?;
        init_schema(&write, &location)?;
        let read = Connection::open_with_flags(path, flags)
            .map_err(|e| open_error(&location, "open (read connection)", &e))?;
        configure(&read, &location, &options, true)?;
        read.pragma_update(None, "query_only", true)
            .map_err(|e| open_error(&location, "configure read connection", &e))?;
        Ok(Self::start(write, Some(read), location, options))
    }

    fn start(
        write: Connection,
        read: Option<Connection>,
        location: String,
        options: SqliteOptions,
    ) -> Self {
        let head = read_meta(&write, "revision").unwrap_or(0);
        let (notify, _) = watch::channel(head);
        let (stop_tx, stop_rx) = mpsc::channel();
        let interval = options.maintenance_interval;
        let inner = Arc::new(Inner {
            write: Mutex::new(write),
            read: read.map(Mutex::new),
            notify,
            location,
            options,
            _stop: stop_tx,
        });
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("portcullis-backend-maint".to_owned())
            .spawn(move || maintenance_loop(weak, stop_rx, interval));
        if let Err(e) = spawned {
            // Not fatal: reads/writes work, expired items stay invisible;
            // only the Delete events and compaction are delayed.
            tracing::error!(error = %e, "could not start SQLite backend maintenance thread");
        }
        Self { inner }
    }

    /// Deletes expired items now (emitting `Delete` events); returns how
    /// many were removed. The maintenance thread does this periodically;
    /// exposed for tests and admin tooling.
    pub async fn sweep_expired(&self) -> Result<usize> {
        self.blocking(|inner| inner.sweep_expired()).await
    }

    /// Trims the change log to [`SqliteOptions::changelog_retention`] now;
    /// returns the oldest revision still available to watchers. The
    /// maintenance thread does this periodically; exposed for tests and
    /// admin tooling.
    pub async fn compact_changelog(&self) -> Result<u64> {
        self.blocking(|inner| inner.compact()).await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        run_blocking(Arc::clone(&self.inner), f).await
    }
}

async fn run_blocking<T, F>(inner: Arc<Inner>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Inner) -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| BackendError::Storage(format!("database task failed: {e}")))?
}

/// Creates the database file with mode 0600 before SQLite touches it (SQLite
/// would use 0644), and warns about an existing file readable by others.
fn create_private_file(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path).map_err(|e| {
        BackendError::Storage(format!(
            "cannot open state database {}: {e}; check that the data directory exists and is \
             writable by the Portcullis user",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = file.metadata() {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "state database is accessible by other users; it holds secrets, run chmod 600"
                );
            }
        }
    }
    drop(file);
    Ok(())
}

fn configure(conn: &Connection, location: &str, options: &SqliteOptions, wal: bool) -> Result<()> {
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| open_error(location, "set busy_timeout", &e))?;
    if wal {
        // journal_mode returns the resulting mode; this is also the first
        // statement that reads the file, so corruption surfaces here.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_error(location, "enable WAL mode", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BackendError::Storage(format!(
                "cannot enable WAL mode on state database {location} (got {mode:?}); \
                 the file system may not support shared memory (e.g. a network mount) — \
                 put the data dir on a local disk"
            )));
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| open_error(location, "set synchronous=FULL", &e))?;
    Ok(())
}

fn init_schema(conn: &Connection, location: &str) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| open_error(location, "read schema version", &e))?;
    if version > SCHEMA_VERSION {
        return Err(BackendError::Storage(format!(
            "state database {location} has schema version {version}, but this build only \
             understands up to {SCHEMA_VERSION}; upgrade Portcullis or restore an older backup"
        )));
    }
    let script =
        format!("BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;");
    if let Err(e) = conn.execute_batch(&script) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(open_error(location, "initialise schema", &e));
    }
    Ok(())
}

/// What the operator should do about a SQLite error.
fn hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            "; the file is corrupt or not a Portcullis state database — restore it from a \
             backup, or move it aside to start with an empty cluster state"
        }
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::PermissionDenied)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::AuthorizationForStatementDenied) => {
            "; check that the file, its -wal/-shm companions and the data directory are \
             writable by the Portcullis user"
        }
        Some(ErrorCode::DiskFull) => "; the disk is full — free up space",
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            "; another process held the database lock too long"
        }
        Some(ErrorCode::SystemIoFailure) => "; the disk reported an I/O error",
        _ => "",
    }
}

fn open_error(location: &str, what: &str, e: &rusqlite::Error) -> BackendError {
    BackendError::Storage(format!(
        "cannot {what} state database {location}: {e}{}",
        hint(e)
    ))
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves no open transaction behind
    // (rusqlite rolls back on drop), so the connection is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_meta(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    let v: i64 = conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get(0)
    })?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Revisions are stored as SQLite INTEGER (i64); clamp user-supplied ones.
fn sql_rev(r: u64) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

fn rev_from_sql(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

/// Expiry stored as (unix seconds, nanoseconds) so the full
/// `OffsetDateTime` range round-trips exactly.
type Stamp = (i64, i64);

fn stamp(t: OffsetDateTime) -> Stamp {
    (t.unix_timestamp(), i64::from(t.nanosecond()))
}

fn now_stamp() -> Stamp {
    stamp(OffsetDateTime::now_utc())
}

fn is_expired(expires: Option<Stamp>, now: Stamp) -> bool {
    expires.is_some_and(|e| e <= now)
}

fn stamp_from_sql(s: Option<i64>, ns: Option<i64>) -> Option<Stamp> {
    s.map(|s| (s, ns.unwrap_or(0)))
}

fn stamp_to_time(location: &str, st: Stamp) -> Result<OffsetDateTime> {
    let nanos = i128::from(st.0) * 1_000_000_000 + i128::from(st.1);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| {
        BackendError::Storage(format!(
            "state database {location} holds an invalid expiry ({}s {}ns): {e}",
            st.0, st.1
        ))
    })
}

fn key_from_sql(location: &str, key: Vec<u8>) -> Result<String> {
    String::from_utf8(key).map_err(|e| {
        BackendError::Storage(format!(
            "state database {location} holds a key that is not UTF-8: {e}"
        ))
    })
}

/// Which precondition a write has.
#[derive(Clone, Copy)]
enum Precondition {
    None,
    Absent,
    Revision(u64),
}

impl Inner {
    fn err(&self, what: &str, e: rusqlite::Error) -> BackendError {
        BackendError::Storage(format!(
            "failed to {what} in state database {}: {e}{}",
            self.location,
            hint(&e)
        ))
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        lock(self.read.as_ref().unwrap_or(&self.write))
    }

    fn announce(&self, revision: u64) {
        self.notify.send_if_modified(|current| {
            if revision > *current {
                *current = revision;
                true
            } else {
                false
            }
        });
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken
    /// up front, so the reads inside `f` cannot be invalidated by another
    /// connection before commit.
    fn write_txn<T>(
        &self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = lock(&self.write);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(what, e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| self.err(what, e))?;
        Ok(out)
    }

    fn bump(&self, tx: &rusqlite::Transaction<'_>) -> Result<u64> {
        let rev: i64 = tx
            .query_row(
                "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err("advance revision", e))?;
        Ok(rev_from_sql(rev))
    }

    /// Revision and expiry of the stored row for `key`, live or not.
    fn current(
        &self,
        tx: &rusqlite::Transaction<'_>,
        key: &str,
    ) -> Result<Option<(u64, Option<Stamp>)>> {
        tx.query_row(
            "SELECT revision, expires_s, expires_ns FROM items WHERE key = ?1",
            [key.as_bytes()],
            |r| {
                Ok((
                    rev_from_sql(r.get(0)?),
                    stamp_from_sql(r.get(1)?, r.get(2)?),
                ))
            },
        )
        .optional()
        .map_err(|e| self.err("read item", e))
    }

    fn write(
        &self,
        key: &str,
        value: &[u8],
        expires: Option<OffsetDateTime>,
        pre: Precondition,
    ) -> Result<u64> {
        let exp = expires.map(stamp);
        let rev = self.write_txn("write item", |tx| {
            let now = now_stamp();
            let live = self
                .current(tx, key)?
                .filter(|(_, e)| !is_expired(*e, now))
                .map(|(rev, _)| rev);
            match (pre, live) {
                (Precondition::None, _) | (Precondition::Absent, None) => {}
                (Precondition::Absent, Some(_)) => {
                    return Err(BackendError::AlreadyExists(key.to_owned()))
                }
                (Precondition::Revision(_), None) => {
                    return Err(BackendError::NotFound(key.to_owned()))
                }
                (Precondition::Revision(want), Some(have)) => {
                    if want != have {
                        return Err(BackendError::CompareFailed(key.to_owned()));
                    }
                }
            }
            let rev = self.bump(tx)?;
            let (es, ens) = (exp.map(|e| e.0), exp.map(|e| e.1));
            tx.execute(
                "INSERT INTO items (key, value, revision, expires_s, expires_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                    revision = excluded.revision, expires_s = excluded.expires_s,
                    expires_ns = excluded.expires_ns",
                params![key.as_bytes(), value, sql_rev(rev), es, ens],
            )
            .map_err(|e| self.err("store item", e))?;
            tx.execute(
                "INSERT INTO changelog (revision, key, op, value, expires_s, expires_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![sql_rev(rev), key.as_bytes(), OP_PUT, value, es, ens],
            )
            .map_err(|e| self.err("append to change log", e))?;
            Ok(rev)
        })?;
        self.announce(rev);
        Ok(rev)
    }

    /// Deletes the row and logs it; caller holds the write transaction.
    fn delete_row(&self, tx: &rusqlite::Transaction<'_>, key: &[u8]) -> Result<u64> {
        let rev = self.bump(tx)?;
        tx.execute("DELETE FROM items WHERE key = ?1", [key])
            .map_err(|e| self.err("delete item", e))?;
        tx.execute(
            "INSERT INTO changelog (revision, key, op) VALUES (?1, ?2, ?3)",
            params![sql_rev(rev), key, OP_DELETE],
        )
        .map_err(|e| self.err("append to change log", e))?;
        Ok(rev)
    }

    /// Returns the delete's revision, or `None` if nothing live was there.
    fn delete(&self, key: &str, pre: Precondition) -> Result<Option<u64>> {
        let rev = self.write_txn("delete item", |tx| {
            let now = now_stamp();
            let live = self
                .current(tx, key)?
                .filter(|(_, e)| !is_expired(*e, now))
                .map(|(rev, _)| rev);
            match (pre, live) {
                (Precondition::Revision(_), None) => Err(BackendError::NotFound(key.to_owned())),
                (Precondition::Revision(want), Some(have)) if want != have => {
                    Err(BackendError::CompareFailed(key.to_owned()))
                }
                (_, None) => Ok(None),
                (_, Some(_)) => self.delete_row(tx, key.as_bytes()).map(Some),
            }
        })?;
        if let Some(rev) = rev {
            self.announce(rev);
        }
        Ok(rev)
    }

    fn get(&self, key: &str) -> Result<Option<Item>> {
        let conn = self.reader();
        let row = conn
            .query_row(
                "SELECT value, revision, expires_s, expires_ns FROM items WHERE key = ?1",
                [key.as_bytes()],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        rev_from_sql(r.get(1)?),
                        stamp_from_sql(r.get(2)?, r.get(3)?),
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err("read item", e))?;
        drop(conn);
        match row {
            Some((value, revision, exp)) if !is_expired(exp, now_stamp()) => Ok(Some(Item {
                key: key.to_owned(),
                value,
                revision,
                expires: exp.map(|e| stamp_to_time(&self.location, e)).transpose()?,
            })),
            _ => Ok(None),
        }
    }

    fn range(&self, prefix: &str) -> Result<Vec<Item>> {
        let lo = prefix.as_bytes();
        let hi = prefix_upper_bound(lo);
        let conn = self.reader();
        let sql = if hi.is_some() {
            "SELECT key, value, revision, expires_s, expires_ns FROM items
             WHERE key >= ?1 AND key < ?2 ORDER BY key"
        } else {
            "SELECT key, value, revision, expires_s, expires_ns FROM items
             WHERE key >= ?1 ORDER BY key"
        };
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(|e| self.err("list items", e))?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                rev_from_sql(r.get(2)?),
                stamp_from_sql(r.get(3)?, r.get(4)?),
            ))
        };
        let rows = match &hi {
            Some(hi) => stmt.query_map(params![lo, hi], map),
            None => stmt.query_map(params![lo], map),
        }
        .map_err(|e| self.err("list items", e))?;
        let now = now_stamp();
        let mut items = Vec::new();
        for row in rows {
            let (key, value, revision, exp) = row.map_err(|e| self.err("list items", e))?;
            if is_expired(exp, now) {
                continue;
            }
            items.push(Item {
                key: key_from_sql(&self.location, key)?,
                value,
                revision,
                expires: exp.map(|e| stamp_to_time(&self.location, e)).transpose()?,
            });
        }
        Ok(items)
    }

    fn head(&self) -> Result<u64> {
        read_meta(&self.reader(), "revision").map_err(|e| self.err("read revision", e))
    }

    /// One bounded page of the change log; see [`ChangeFeed::changes`].
    fn changes(&self, prefix: &str, after: u64) -> Result<ChangePage> {
        let lo = prefix.as_bytes();
        let hi = prefix_upper_bound(lo);
        let mut conn = self.reader();
        // A read transaction gives one consistent snapshot of head,
        // compaction point and rows.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| self.err("read change log", e))?;
        let head = read_meta(&tx, "revision").map_err(|e| self.err("read revision", e))?;
        let compacted =
            read_meta(&tx, "compacted_through").map_err(|e| self.err("read change log", e))?;
        if after < compacted {
            return Err(BackendError::Compacted {
                requested: after.saturating_add(1),
                oldest: compacted.saturating_add(1),
            });
        }
        if head <= after {
            return Ok(ChangePage {
                events: Vec::new(),
                cursor: after,
            });
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT revision, key, op, value, expires_s, expires_ns FROM changelog
                 WHERE revision > ?1 AND revision <= ?2 AND key >= ?3
                   AND (?4 IS NULL OR key < ?4)
                 ORDER BY revision LIMIT ?5",
            )
            .map_err(|e| self.err("read change log", e))?;
        let mut rows = stmt
            .query(params![
                sql_rev(after),
                sql_rev(head),
                lo,
                hi,
                WATCH_PAGE_ROWS
            ])
            .map_err(|e| self.err("read change log", e))?;
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = head;
        while let Some(row) = rows.next().map_err(|e| self.err("read change log", e))? {
            let conv = |e| self.err("decode change log", e);
            let revision = rev_from_sql(row.get(0).map_err(conv)?);
            let key = key_from_sql(&self.location, row.get(1).map_err(conv)?)?;
            let op: i64 = row.get(2).map_err(conv)?;
            let event = if op == OP_DELETE {
                Event::Delete { key, revision }
            } else {
                let value: Vec<u8> = row
                    .get::<_, Option<Vec<u8>>>(3)
                    .map_err(conv)?
                    .unwrap_or_default();
                bytes = bytes.saturating_add(value.len());
                let exp = stamp_from_sql(row.get(4).map_err(conv)?, row.get(5).map_err(conv)?);
                Event::Put(Item {
                    key,
                    value,
                    revision,
                    expires: exp.map(|e| stamp_to_time(&self.location, e)).transpose()?,
                })
            };
            events.push(event);
            if events.len() as i64 >= WATCH_PAGE_ROWS || bytes >= WATCH_PAGE_BYTES {
                // The page is full; the next one starts after this row.
                cursor = revision;
                break;
            }
        }
        Ok(ChangePage { events, cursor })
    }

    /// Deletes expired items in batches, emitting `Delete` events.
    fn sweep_expired(&self) -> Result<usize> {
        let mut total = 0usize;
        loop {
            let now = now_stamp();
            // Cheap read-only probe so an idle backend never takes the write
            // lock (or fsyncs) just to find nothing.
            let due: bool = self
                .reader()
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM items WHERE expires_s IS NOT NULL
                     AND expires_s <= ?1)",
                    [now.0],
                    |r| r.get(0),
                )
                .map_err(|e| self.err("look for expired items", e))?;
            if !due {
                return Ok(total);
            }
            let (deleted, last_rev, more) = self.write_txn("delete expired items", |tx| {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT key, expires_s, expires_ns FROM items
                         WHERE expires_s IS NOT NULL AND expires_s <= ?1
                         ORDER BY expires_s LIMIT ?2",
                    )
                    .map_err(|e| self.err("find expired items", e))?;
                let candidates = stmt
                    .query_map(params![now.0, SWEEP_BATCH], |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            stamp_from_sql(r.get(1)?, r.get(2)?),
                        ))
                    })
                    .map_err(|e| self.err("find expired items", e))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(|e| self.err("find expired items", e))?;
                let more = candidates.len() as i64 >= SWEEP_BATCH;
                let mut deleted = 0usize;
                let mut last = None;
                for (key, exp) in candidates {
                    if is_expired(exp, now) {
                        last = Some(self.delete_row(tx, &key)?);
                        deleted += 1;
                    }
                }
                Ok((deleted, last, more))
            })?;
            if let Some(rev) = last_rev {
                self.announce(rev);
            }
            total += deleted;
            if !more || deleted == 0 {
                return Ok(total);
            }
        }
    }

    /// Drops change-log rows beyond the retention; returns the oldest
    /// revision still available.
    fn compact(&self) -> Result<u64> {
        let (head, compacted) = {
            let conn = self.reader();
            let head = read_meta(&conn, "revision").map_err(|e| self.err("read revision", e))?;
            let compacted = read_meta(&conn, "compacted_through")
                .map_err(|e| self.err("read compaction point", e))?;
            (head, compacted)
        };
        let target = head.saturating_sub(self.options.changelog_retention);
        if target <= compacted {
            return Ok(compacted.saturating_add(1));
        }
        let done = self.write_txn("compact change log", |tx| {
            // Re-read inside the lock: another connection may have compacted.
            let compacted = read_meta(tx, "compacted_through")
                .map_err(|e| self.err("read compaction point", e))?;
            if target <= compacted {
                return Ok(compacted);
            }
            tx.execute(
                "DELETE FROM changelog WHERE revision <= ?1",
                [sql_rev(target)],
            )
            .map_err(|e| self.err("compact change log", e))?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compacted_through'",
                [sql_rev(target)],
            )
            .map_err(|e| self.err("compact change log", e))?;
            Ok(target)
        })?;
        Ok(done.saturating_add(1))
    }

    /// Sweep, compact, and pick up writes made through other connections.
    fn maintain(&self) -> Result<()> {
        self.sweep_expired()?;
        self.compact()?;
        let head = self.head()?;
        self.announce(head);
        Ok(())
    }
}

fn maintenance_loop(weak: Weak<Inner>, stop: mpsc::Receiver<()>, interval: Duration) {
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The sender lives in `Inner`: disconnected means the backend
            // was dropped.
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = inner.maintain() {
            tracing::warn!(error = %e, "state database maintenance failed; will retry");
        }
    }
}

/// Change feed for [`Watcher`]; holds only a weak reference so watchers do
/// not keep a dropped backend alive.
struct SqliteFeed {
    inner: Weak<Inner>,
}

#[async_trait::async_trait]
impl ChangeFeed for SqliteFeed {
    async fn changes(&self, prefix: &str, after: u64) -> Result<ChangePage> {
        let inner = self.inner.upgrade().ok_or(BackendError::Closed)?;
        let prefix = prefix.to_owned();
        run_blocking(inner, move |inner| inner.changes(&prefix, after)).await
    }
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<Item>> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |inner| inner.get(&key)).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expires: Option<OffsetDateTime>) -> Result<u64> {
        validate_key(key)?;
        validate_value(key, &value)?;
        let key = key.to_owned();
        self.blocking(move |inner| inner.write(&key, &value, expires, Precondition::None))
            .await
    }

    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        validate_key(key)?;
        validate_value(key, &value)?;
        let key = key.to_owned();
        self.blocking(move |inner| inner.write(&key, &value, expires, Precondition::Absent))
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected_revision: u64,
        value: Vec<u8>,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        validate_key(key)?;
        validate_value(key, &value)?;
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner.write(
                &key,
                &value,
                expires,
                Precondition::Revision(expected_revision),
            )
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |inner| inner.delete(&key, Precondition::None).map(|r| r.is_some()))
            .await
    }

    async fn compare_and_delete(&self, key: &str, expected_revision: u64) -> Result<()> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner
                .delete(&key, Precondition::Revision(expected_revision))
                .map(|_| ())
        })
        .await
    }

    async fn range(&self, prefix: &str) -> Result<Vec<Item>> {
        validate_prefix(prefix)?;
        let prefix = prefix.to_owned();
        self.blocking(move |inner| inner.range(&prefix)).await
    }

    async fn watch(&self, prefix: &str, after_revision: Option<u64>) -> Result<Watcher> {
        validate_prefix(prefix)?;
        let after = match after_revision {
            Some(rev) => {
                // Fail fast if the caller is already too far behind.
                let oldest = self
                    .blocking(|inner| {
                        read_meta(&inner.reader(), "compacted_through")
                            .map_err(|e| inner.err("read compaction point", e))
                    })
                    .await?;
                if rev < oldest {
                    return Err(BackendError::Compacted {
                        requested: rev.saturating_add(1),
                        oldest: oldest.saturating_add(1),
                    });
                }
                rev
            }
            None => self.current_revision().await?,
        };
        let feed = Arc::new(SqliteFeed {
            inner: Arc::downgrade(&self.inner),
        });
        Ok(Watcher::new(
            feed,
            self.inner.notify.subscribe(),
            prefix,
            after,
        ))
    }

    async fn current_revision(&self) -> Result<u64> {
        self.blocking(|inner| inner.head()).await
    }
}

impl SqliteBackend {
    /// The database location (file path or `:memory:`), so callers can say
    /// which file they are using in logs and errors.
    pub fn location(&self) -> &str {
        &self.inner.location
    }
}
