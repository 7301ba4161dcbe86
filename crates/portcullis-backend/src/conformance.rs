//! Reusable conformance suite for [`Backend`] implementations.
//!
//! Exists so every backend (SQLite today, PostgreSQL later) is held to the
//! same contract: revision semantics, atomic CAS under concurrency,
//! wildcard-safe prefix ranges, expiry, and gap-free ordered watches.
//!
//! Use it from an integration test:
//!
//! ```no_run
//! # async fn demo() {
//! use portcullis_backend::{conformance, SqliteBackend};
//! conformance::run_all(|| SqliteBackend::open_in_memory().unwrap())
//!     .await
//!     .unwrap();
//! # }
//! ```
//!
//! `make` must return a fresh, empty backend on every call. Any tokio runtime
//! works (a multi-threaded one exercises the concurrency checks harder). The
//! expiry check assumes the backend deletes expired items, with a `Delete`
//! event, within [`EXPIRY_DEADLINE`].
//!
//! Failures are returned rather than panicking so the suite can live in
//! library code under the workspace's no-panic lints.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::{Backend, BackendError, Event, Item, Watcher, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// How long a backend may take to delete an expired item and report it to
/// watchers.
pub const EXPIRY_DEADLINE: Duration = Duration::from_secs(15);

/// How long the suite waits for any single expected watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Which conformance check failed and why; returned by [`run_all`] so the
/// caller's test can report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceFailure {
    /// Name of the failed check.
    pub test: &'static str,
    /// What was expected and what happened.
    pub message: String,
}

impl std::fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "conformance check {} failed: {}",
            self.test, self.message
        )
    }
}

impl std::error::Error for ConformanceFailure {}

type Check = std::result::Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

macro_rules! ensure_eq {
    ($got:expr, $want:expr, $what:expr) => {
        match (&$got, &$want) {
            (got, want) => {
                if got != want {
                    return Err(format!("{}: expected {:?}, got {:?}", $what, want, got));
                }
            }
        }
    };
}

trait Ctx<T> {
    fn ctx(self, what: &str) -> std::result::Result<T, String>;
}

impl<T> Ctx<T> for crate::Result<T> {
    fn ctx(self, what: &str) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{what}: unexpected error: {e}"))
    }
}

/// Runs every check, each against a fresh backend from `make`, stopping at
/// the first failure.
pub async fn run_all<B: Backend>(make: impl Fn() -> B) -> Result<(), ConformanceFailure> {
    macro_rules! run {
        ($name:ident) => {
            $name(make()).await.map_err(|message| ConformanceFailure {
                test: stringify!($name),
                message,
            })?;
        };
    }
    run!(key_and_value_validation);
    run!(put_get);
    run!(create_semantics);
    run!(compare_and_swap_semantics);
    run!(delete_semantics);
    run!(range_semantics);
    run!(range_is_not_fooled_by_wildcards);
    run!(revisions_strictly_increase);
    run!(expired_items_are_invisible);
    run!(expiry_emits_delete_event);
    run!(watch_delivers_changes_in_order);
    run!(watch_filters_by_prefix);
    run!(watch_from_now_skips_history);
    run!(watch_resumes_from_revision);
    run!(watch_many_writes_in_order);
    run!(concurrent_cas_increments);
    run!(concurrent_create_has_one_winner);
    Ok(())
}

fn future(secs: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(secs)
}

async fn next_event(w: &mut Watcher, what: &str) -> std::result::Result<Event, String> {
    match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
        Ok(Ok(ev)) => Ok(ev),
        Ok(Err(e)) => Err(format!("{what}: watcher failed: {e}")),
        Err(_) => Err(format!("{what}: no event within {EVENT_TIMEOUT:?}")),
    }
}

fn put_event(key: &str, value: &[u8], revision: u64) -> Event {
    Event::Put(Item {
        key: key.to_owned(),
        value: value.to_vec(),
        revision,
        expires: None,
    })
}

fn keys(items: &[Item]) -> Vec<&str> {
    items.iter().map(|i| i.key.as_str()).collect()
}

async fn key_and_value_validation<B: Backend>(b: B) -> Check {
    let long = format!("/{}", "k".repeat(MAX_KEY_BYTES));
    for bad in ["", "a", "a/b", long.as_str()] {
        ensure!(
            matches!(b.get(bad).await, Err(BackendError::InvalidKey(_))),
            "get({bad:?}) should be InvalidKey"
        );
        ensure!(
            matches!(
                b.put(bad, b"v".to_vec(), None).await,
                Err(BackendError::InvalidKey(_))
            ),
            "put({bad:?}) should be InvalidKey"
        );
        ensure!(
            matches!(
                b.create(bad, b"v".to_vec(), None).await,
                Err(BackendError::InvalidKey(_))
            ),
            "create({bad:?}) should be InvalidKey"
        );
        ensure!(
            matches!(
                b.compare_and_swap(bad, 1, b"v".to_vec(), None).await,
                Err(BackendError::InvalidKey(_))
            ),
            "compare_and_swap({bad:?}) should be InvalidKey"
        );
        ensure!(
            matches!(b.delete(bad).await, Err(BackendError::InvalidKey(_))),
            "delete({bad:?}) should be InvalidKey"
        );
        ensure!(
            matches!(
                b.compare_and_delete(bad, 1).await,
                Err(BackendError::InvalidKey(_))
            ),
            "compare_and_delete({bad:?}) should be InvalidKey"
        );
    }
    ensure!(
        matches!(b.range("x").await, Err(BackendError::InvalidKey(_))),
        "range(\"x\") should be InvalidKey"
    );
    ensure!(
        matches!(b.watch("x", None).await, Err(BackendError::InvalidKey(_))),
        "watch(\"x\") should be InvalidKey"
    );
    let longest = format!("/{}", "k".repeat(MAX_KEY_BYTES - 1));
    b.put(&longest, b"v".to_vec(), None)
        .await
        .ctx("put with a 1024-byte key")?;
    ensure!(
        b.get(&longest).await.ctx("get 1024-byte key")?.is_some(),
        "1024-byte key not readable"
    );

    let before = b.current_revision().await.ctx("current_revision")?;
    let too_big = vec![0u8; MAX_VALUE_BYTES + 1];
    ensure!(
        b.put("/big", too_big, None).await.is_err(),
        "a value over MAX_VALUE_BYTES must be rejected"
    );
    ensure_eq!(
        b.current_revision().await.ctx("current_revision")?,
        before,
        "a rejected write must not bump the revision"
    );
    let max = vec![7u8; MAX_VALUE_BYTES];
    b.put("/big", max, None)
        .await
        .ctx("put a MAX_VALUE_BYTES value")?;
    let got = b.get("/big").await.ctx("get big value")?;
    ensure!(
        got.is_some_and(|i| i.value.len() == MAX_VALUE_BYTES && i.value.iter().all(|v| *v == 7)),
        "MAX_VALUE_BYTES value did not round-trip"
    );
    Ok(())
}

async fn put_get<B: Backend>(b: B) -> Check {
    ensure_eq!(
        b.current_revision().await.ctx("current_revision")?,
        0,
        "revision of an empty backend"
    );
    ensure_eq!(
        b.get("/a").await.ctx("get missing")?,
        None,
        "get of a missing key"
    );
    let r1 = b.put("/a", b"1".to_vec(), None).await.ctx("put /a")?;
    ensure!(r1 > 0, "revisions start above 0, got {r1}");
    ensure_eq!(
        b.get("/a").await.ctx("get /a")?,
        Some(Item {
            key: "/a".into(),
            value: b"1".to_vec(),
            revision: r1,
            expires: None
        }),
        "get after put"
    );
    let r2 = b.put("/a", b"2".to_vec(), None).await.ctx("overwrite /a")?;
    ensure!(r2 > r1, "overwrite must bump revision ({r2} <= {r1})");
    let got = b.get("/a").await.ctx("get /a")?;
    ensure_eq!(
        got.map(|i| (i.value, i.revision)),
        Some((b"2".to_vec(), r2)),
        "get after overwrite"
    );
    ensure_eq!(
        b.current_revision().await.ctx("current_revision")?,
        r2,
        "current_revision"
    );
    // Empty values are values.
    b.put("/empty", Vec::new(), None)
        .await
        .ctx("put empty value")?;
    ensure_eq!(
        b.get("/empty").await.ctx("get empty")?.map(|i| i.value),
        Some(Vec::new()),
        "empty value"
    );
    // Expiry round-trips exactly.
    let exp = future(3600);
    let r = b
        .put("/exp", b"x".to_vec(), Some(exp))
        .await
        .ctx("put with expiry")?;
    ensure_eq!(
        b.get("/exp").await.ctx("get with expiry")?,
        Some(Item {
            key: "/exp".into(),
            value: b"x".to_vec(),
            revision: r,
            expires: Some(exp)
        }),
        "expiry must round-trip"
    );
    Ok(())
}

async fn create_semantics<B: Backend>(b: B) -> Check {
    let r1 = b.create("/c", b"1".to_vec(), None).await.ctx("create /c")?;
    let before = b.current_revision().await.ctx("current_revision")?;
    ensure!(
        matches!(b.create("/c", b"2".to_vec(), None).await, Err(BackendError::AlreadyExists(k)) if k == "/c"),
        "second create must be AlreadyExists(\"/c\")"
    );
    ensure_eq!(
        b.current_revision().await.ctx("current_revision")?,
        before,
        "failed create must not bump revision"
    );
    ensure_eq!(
        b.get("/c")
            .await
            .ctx("get /c")?
            .map(|i| (i.value, i.revision)),
        Some((b"1".to_vec(), r1)),
        "failed create must not change the item"
    );
    ensure!(
        b.delete("/c").await.ctx("delete /c")?,
        "delete should report true"
    );
    let r2 = b
        .create("/c", b"3".to_vec(), None)
        .await
        .ctx("create after delete")?;
    ensure!(r2 > r1, "re-create must get a newer revision");
    Ok(())
}

async fn compare_and_swap_semantics<B: Backend>(b: B) -> Check {
    ensure!(
        matches!(b.compare_and_swap("/s", 1, b"x".to_vec(), None).await, Err(BackendError::NotFound(k)) if k == "/s"),
        "CAS on a missing key must be NotFound"
    );
    let r1 = b.put("/s", b"1".to_vec(), None).await.ctx("put /s")?;
    ensure!(
        matches!(b.compare_and_swap("/s", r1 + 1000, b"x".to_vec(), None).await, Err(BackendError::CompareFailed(k)) if k == "/s"),
        "CAS with a wrong revision must be CompareFailed"
    );
    let r2 = b
        .compare_and_swap("/s", r1, b"2".to_vec(), None)
        .await
        .ctx("CAS with right revision")?;
    ensure!(r2 > r1, "CAS must bump revision");
    ensure_eq!(
        b.get("/s")
            .await
            .ctx("get /s")?
            .map(|i| (i.value, i.revision)),
        Some((b"2".to_vec(), r2)),
        "value after CAS"
    );
    ensure!(
        matches!(
            b.compare_and_swap("/s", r1, b"3".to_vec(), None).await,
            Err(BackendError::CompareFailed(_))
        ),
        "CAS with a stale revision must be CompareFailed"
    );
    let exp = future(600);
    let r3 = b
        .compare_and_swap("/s", r2, b"3".to_vec(), Some(exp))
        .await
        .ctx("CAS setting expiry")?;
    ensure_eq!(
        b.get("/s").await.ctx("get /s")?.and_then(|i| i.expires),
        Some(exp),
        "CAS must set expiry"
    );
    let r4 = b
        .compare_and_swap("/s", r3, b"4".to_vec(), None)
        .await
        .ctx("CAS clearing expiry")?;
    ensure_eq!(
        b.get("/s")
            .await
            .ctx("get /s")?
            .map(|i| (i.revision, i.expires)),
        Some((r4, None)),
        "CAS must clear expiry"
    );
    Ok(())
}

async fn delete_semantics<B: Backend>(b: B) -> Check {
    ensure!(
        !b.delete("/d").await.ctx("delete missing")?,
        "deleting a missing key returns false"
    );
    let before = b.current_revision().await.ctx("current_revision")?;
    ensure_eq!(
        b.current_revision().await.ctx("current_revision")?,
        before,
        "no-op delete must not bump revision"
    );
    b.put("/d", b"1".to_vec(), None).await.ctx("put /d")?;
    ensure!(
        b.delete("/d").await.ctx("delete /d")?,
        "deleting a live key returns true"
    );
    ensure_eq!(
        b.get("/d").await.ctx("get /d")?,
        None,
        "deleted key is gone"
    );
    ensure!(
        !b.delete("/d").await.ctx("delete again")?,
        "second delete returns false"
    );

    ensure!(
        matches!(b.compare_and_delete("/d", 1).await, Err(BackendError::NotFound(k)) if k == "/d"),
        "compare_and_delete on a missing key must be NotFound"
    );
    let r = b.put("/d", b"2".to_vec(), None).await.ctx("put /d")?;
    ensure!(
        matches!(b.compare_and_delete("/d", r + 1).await, Err(BackendError::CompareFailed(k)) if k == "/d"),
        "compare_and_delete with a wrong revision must be CompareFailed"
    );
    ensure!(
        b.get("/d").await.ctx("get /d")?.is_some(),
        "failed compare_and_delete must keep the item"
    );
    b.compare_and_delete("/d", r)
        .await
        .ctx("compare_and_delete with right revision")?;
    ensure_eq!(
        b.get("/d").await.ctx("get /d")?,
        None,
        "compare_and_delete removes the item"
    );
    ensure!(
        b.current_revision().await.ctx("current_revision")? > r,
        "delete must bump revision"
    );
    Ok(())
}

async fn range_semantics<B: Backend>(b: B) -> Check {
    for k in [
        "/r/b/c",
        "/q",
        "/rb",
        "/r/b",
        "/r",
        "/r/a",
        "/u/z",
        "/u/\u{e9}",
        "/u/Z",
    ] {
        b.put(k, k.as_bytes().to_vec(), None).await.ctx("put")?;
    }
    let items = b.range("/r/").await.ctx("range /r/")?;
    ensure_eq!(
        keys(&items),
        vec!["/r/a", "/r/b", "/r/b/c"],
        "range(\"/r/\")"
    );
    ensure!(
        items.iter().all(|i| i.value == i.key.as_bytes()),
        "range returns the right values"
    );
    ensure_eq!(
        keys(&b.range("/r").await.ctx("range /r")?),
        vec!["/r", "/r/a", "/r/b", "/r/b/c", "/rb"],
        "range(\"/r\")"
    );
    ensure_eq!(
        keys(&b.range("/u/").await.ctx("range /u/")?),
        vec!["/u/Z", "/u/z", "/u/\u{e9}"],
        "range sorts byte-wise"
    );
    ensure_eq!(
        b.range("").await.ctx("range all")?.len(),
        9,
        "range(\"\") lists everything"
    );
    ensure_eq!(
        keys(&b.range("/zzz").await.ctx("range empty")?),
        Vec::<&str>::new(),
        "range with no match"
    );
    b.delete("/r/a").await.ctx("delete")?;
    ensure_eq!(
        keys(&b.range("/r/").await.ctx("range /r/")?),
        vec!["/r/b", "/r/b/c"],
        "range after delete"
    );
    Ok(())
}

async fn range_is_not_fooled_by_wildcards<B: Backend>(b: B) -> Check {
    for k in [
        "/w/a%b", "/w/a_b", "/w/axb", "/w/a%", "/w/ab", "/w/a\\b", "/w/%",
    ] {
        b.put(k, b"v".to_vec(), None).await.ctx("put")?;
    }
    ensure_eq!(
        keys(&b.range("/w/a%").await.ctx("range")?),
        vec!["/w/a%", "/w/a%b"],
        "range(\"/w/a%\")"
    );
    ensure_eq!(
        keys(&b.range("/w/a_").await.ctx("range")?),
        vec!["/w/a_b"],
        "range(\"/w/a_\")"
    );
    ensure_eq!(
        keys(&b.range("/w/%").await.ctx("range")?),
        vec!["/w/%"],
        "range(\"/w/%\")"
    );
    ensure_eq!(
        keys(&b.range("/w/a\\").await.ctx("range")?),
        vec!["/w/a\\b"],
        "range with backslash"
    );
    let mut w = b.watch("/w/a_", None).await.ctx("watch")?;
    b.put("/w/axb", b"2".to_vec(), None).await.ctx("put")?;
    let r = b.put("/w/a_b", b"2".to_vec(), None).await.ctx("put")?;
    ensure_eq!(
        next_event(&mut w, "wildcard watch").await?,
        put_event("/w/a_b", b"2", r),
        "watch(\"/w/a_\") must not match /w/axb"
    );
    Ok(())
}

async fn revisions_strictly_increase<B: Backend>(b: B) -> Check {
    let mut last = b.current_revision().await.ctx("current_revision")?;
    for i in 0..30u32 {
        let key = format!("/rev/{}", i % 7);
        let rev = match i % 3 {
            0 | 1 => b
                .put(&key, i.to_be_bytes().to_vec(), None)
                .await
                .ctx("put")?,
            _ => {
                if b.delete(&key).await.ctx("delete")? {
                    b.current_revision().await.ctx("current_revision")?
                } else {
                    b.create(&key, vec![], None).await.ctx("create")?
                }
            }
        };
        ensure!(rev > last, "revision went from {last} to {rev}");
        ensure_eq!(
            b.current_revision().await.ctx("current_revision")?,
            rev,
            "current_revision after write"
        );
        last = rev;
    }
    Ok(())
}

async fn expired_items_are_invisible<B: Backend>(b: B) -> Check {
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(5);
    b.put("/e/old", b"old".to_vec(), Some(past))
        .await
        .ctx("put already-expired")?;
    b.put("/e/live", b"live".to_vec(), Some(future(3600)))
        .await
        .ctx("put live")?;
    ensure_eq!(
        b.get("/e/old").await.ctx("get expired")?,
        None,
        "expired item via get"
    );
    ensure_eq!(
        keys(&b.range("/e/").await.ctx("range")?),
        vec!["/e/live"],
        "expired item via range"
    );
    ensure!(
        !b.delete("/e/old").await.ctx("delete expired")?,
        "deleting an expired item returns false"
    );
    ensure!(
        matches!(
            b.compare_and_swap("/e/old", 1, b"x".to_vec(), None).await,
            Err(BackendError::NotFound(_))
        ),
        "CAS on an expired item must be NotFound"
    );
    b.put("/e/old2", b"old".to_vec(), Some(past))
        .await
        .ctx("put already-expired")?;
    let r = b
        .create("/e/old2", b"new".to_vec(), None)
        .await
        .ctx("create over an expired item")?;
    ensure_eq!(
        b.get("/e/old2")
            .await
            .ctx("get")?
            .map(|i| (i.value, i.revision)),
        Some((b"new".to_vec(), r)),
        "create replaces an expired item"
    );
    Ok(())
}

async fn expiry_emits_delete_event<B: Backend>(b: B) -> Check {
    let mut w = b.watch("/x/", None).await.ctx("watch")?;
    let exp = future(1);
    let r1 = b
        .put("/x/t", b"tmp".to_vec(), Some(exp))
        .await
        .ctx("put expiring")?;
    let r2 = b
        .put("/x/keep", b"keep".to_vec(), None)
        .await
        .ctx("put permanent")?;
    match next_event(&mut w, "expiry").await? {
        Event::Put(i) if i.key == "/x/t" && i.revision == r1 && i.expires == Some(exp) => {}
        other => return Err(format!("expected Put /x/t with expiry, got {other:?}")),
    }
    ensure_eq!(
        next_event(&mut w, "expiry").await?,
        put_event("/x/keep", b"keep", r2),
        "second event"
    );
    match tokio::time::timeout(EXPIRY_DEADLINE, w.next()).await {
        Ok(Ok(Event::Delete { key, revision })) => {
            ensure_eq!(key.as_str(), "/x/t", "expired key");
            ensure!(revision > r2, "delete revision {revision} must follow {r2}");
        }
        Ok(Ok(other)) => return Err(format!("expected Delete /x/t, got {other:?}")),
        Ok(Err(e)) => return Err(format!("watcher failed: {e}")),
        Err(_) => {
            return Err(format!(
                "no Delete event for an expired item within {EXPIRY_DEADLINE:?}"
            ))
        }
    }
    ensure_eq!(
        b.get("/x/t").await.ctx("get")?,
        None,
        "expired item is gone"
    );
    ensure_eq!(
        keys(&b.range("/x/").await.ctx("range")?),
        vec!["/x/keep"],
        "only the permanent item remains"
    );
    Ok(())
}

async fn watch_delivers_changes_in_order<B: Backend>(b: B) -> Check {
    let mut w = b.watch("/w/", None).await.ctx("watch")?;
    let r1 = b.put("/w/a", b"1".to_vec(), None).await.ctx("put")?;
    let r2 = b.create("/w/b", b"2".to_vec(), None).await.ctx("create")?;
    b.delete("/w/a").await.ctx("delete")?;
    let r3 = b.current_revision().await.ctx("current_revision")?;
    let r4 = b
        .compare_and_swap("/w/b", r2, b"3".to_vec(), None)
        .await
        .ctx("cas")?;
    b.compare_and_delete("/w/b", r4)
        .await
        .ctx("compare_and_delete")?;
    let r5 = b.current_revision().await.ctx("current_revision")?;
    let want = vec![
        put_event("/w/a", b"1", r1),
        put_event("/w/b", b"2", r2),
        Event::Delete {
            key: "/w/a".into(),
            revision: r3,
        },
        put_event("/w/b", b"3", r4),
        Event::Delete {
            key: "/w/b".into(),
            revision: r5,
        },
    ];
    for (i, expected) in want.into_iter().enumerate() {
        let got = next_event(&mut w, "ordered watch").await?;
        ensure_eq!(got.key(), expected.key(), format!("event {i} key"));
        ensure_eq!(
            got.revision(),
            expected.revision(),
            format!("event {i} revision")
        );
        ensure_eq!(got, expected, format!("event {i}"));
    }
    Ok(())
}

async fn watch_filters_by_prefix<B: Backend>(b: B) -> Check {
    let mut w = b.watch("/p/in/", None).await.ctx("watch")?;
    let mut all = b.watch("", None).await.ctx("watch all")?;
    b.put("/p/out", b"x".to_vec(), None).await.ctx("put")?;
    b.put("/p/in", b"x".to_vec(), None).await.ctx("put")?;
    b.put("/p/inx/1", b"x".to_vec(), None).await.ctx("put")?;
    let r = b.put("/p/in/1", b"y".to_vec(), None).await.ctx("put")?;
    b.put("/q/in/1", b"x".to_vec(), None).await.ctx("put")?;
    let r2 = b.put("/p/in/2", b"z".to_vec(), None).await.ctx("put")?;
    ensure_eq!(
        next_event(&mut w, "prefix watch").await?,
        put_event("/p/in/1", b"y", r),
        "first matching event"
    );
    ensure_eq!(
        next_event(&mut w, "prefix watch").await?,
        put_event("/p/in/2", b"z", r2),
        "second matching event"
    );
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(next_event(&mut all, "watch all").await?.key().to_owned());
    }
    ensure_eq!(
        seen,
        vec!["/p/out", "/p/in", "/p/inx/1", "/p/in/1", "/q/in/1", "/p/in/2"],
        "watch(\"\") sees everything"
    );
    Ok(())
}

async fn watch_from_now_skips_history<B: Backend>(b: B) -> Check {
    b.put("/h/old", b"old".to_vec(), None).await.ctx("put")?;
    let mut w = b.watch("/h/", None).await.ctx("watch")?;
    let r = b.put("/h/new", b"new".to_vec(), None).await.ctx("put")?;
    ensure_eq!(
        next_event(&mut w, "watch from now").await?,
        put_event("/h/new", b"new", r),
        "first event after watch"
    );
    Ok(())
}

async fn watch_resumes_from_revision<B: Backend>(b: B) -> Check {
    let mut revs = Vec::new();
    for i in 0..10u8 {
        revs.push(
            b.put(&format!("/res/{i}"), vec![i], None)
                .await
                .ctx("put")?,
        );
    }
    let Some(&third) = revs.get(2) else {
        return Err("no revisions".into());
    };
    let mut w = b
        .watch("/res/", Some(third))
        .await
        .ctx("watch from third")?;
    for (i, rev) in revs.iter().enumerate().skip(3) {
        let ev = next_event(&mut w, "resumed watch").await?;
        ensure_eq!(
            ev,
            put_event(&format!("/res/{i}"), &[i as u8], *rev),
            format!("resumed event {i}")
        );
    }
    let mut from_zero = b.watch("/res/", Some(0)).await.ctx("watch from 0")?;
    for (i, rev) in revs.iter().enumerate() {
        let ev = next_event(&mut from_zero, "watch from 0").await?;
        ensure_eq!(ev.revision(), *rev, format!("event {i} from revision 0"));
    }
    let head = b.current_revision().await.ctx("current_revision")?;
    let mut from_head = b.watch("/res/", Some(head)).await.ctx("watch from head")?;
    let r = b.put("/res/next", b"n".to_vec(), None).await.ctx("put")?;
    ensure_eq!(
        next_event(&mut from_head, "watch from head")
            .await?
            .revision(),
        r,
        "watch from head sees only new writes"
    );
    Ok(())
}

async fn watch_many_writes_in_order<B: Backend>(b: B) -> Check {
    const WRITES: usize = 5_000;
    let b = Arc::new(b);
    let mut w = b.watch("/many/", None).await.ctx("watch")?;
    let mut noise = b.watch("/other/", None).await.ctx("watch other")?;
    let writer = {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            let mut revs = Vec::with_capacity(WRITES);
            for i in 0..WRITES {
                let rev = if i % 10 == 9 {
                    // Delete the key written by the previous iteration.
                    let key = format!("/many/{:03}", (i - 1) % 100);
                    if !b.delete(&key).await? {
                        return Err(BackendError::NotFound(key));
                    }
                    revs.push((key, b.current_revision().await?));
                    continue;
                } else {
                    let key = format!("/many/{:03}", i % 100);
                    let rev = b.put(&key, i.to_string().into_bytes(), None).await?;
                    (key, rev)
                };
                revs.push(rev);
                if i % 500 == 0 {
                    b.put("/other/x", vec![], None).await?;
                }
            }
            crate::Result::Ok(revs)
        })
    };
    let mut got = Vec::with_capacity(WRITES);
    let mut last = 0;
    while got.len() < WRITES {
        let ev = next_event(&mut w, "many writes").await?;
        ensure!(
            ev.revision() > last,
            "revision {} after {last}: out of order",
            ev.revision()
        );
        last = ev.revision();
        got.push((ev.key().to_owned(), ev.revision()));
    }
    let expected = writer
        .await
        .map_err(|e| format!("writer task failed: {e}"))?
        .ctx("writer")?;
    ensure!(
        got == expected,
        "watcher saw a different sequence than was written ({} events)",
        got.len()
    );
    ensure_eq!(
        next_event(&mut noise, "other prefix").await?.key(),
        "/other/x",
        "other watcher"
    );
    Ok(())
}

async fn concurrent_cas_increments<B: Backend>(b: B) -> Check {
    let b = Arc::new(b);
    b.create("/counter", b"0".to_vec(), None)
        .await
        .ctx("create counter")?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(async move {
            increment_n(&*b, "/counter", 50).await
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("task failed: {e}"))??;
    }
    let value = b.get("/counter").await.ctx("get counter")?.map(|i| i.value);
    ensure_eq!(value, Some(b"400".to_vec()), "8 tasks x 50 CAS increments");
    Ok(())
}

/// Increments a decimal counter `n` times with read + compare-and-swap retry
/// loops; public so backend-specific tests (e.g. two connections to one
/// file) can reuse it.
pub async fn increment_n<B: Backend + ?Sized>(b: &B, key: &str, n: usize) -> Result<(), String> {
    for _ in 0..n {
        loop {
            let item = b
                .get(key)
                .await
                .ctx("get counter")?
                .ok_or_else(|| format!("{key} disappeared"))?;
            let current: u64 = std::str::from_utf8(&item.value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("{key} is not a number"))?;
            let next = (current + 1).to_string().into_bytes();
            match b.compare_and_swap(key, item.revision, next, None).await {
                Ok(_) => break,
                Err(BackendError::CompareFailed(_)) => tokio::task::yield_now().await,
                Err(e) => return Err(format!("CAS failed: {e}")),
            }
        }
    }
    Ok(())
}

async fn concurrent_create_has_one_winner<B: Backend>(b: B) -> Check {
    let b = Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let b = Arc::clone(&b);
        tasks.push(tokio::spawn(async move {
            b.create("/lock", vec![i], None).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.map_err(|e| format!("task failed: {e}"))? {
            Ok(_) => wins += 1,
            Err(BackendError::AlreadyExists(_)) => {}
            Err(e) => return Err(format!("create failed: {e}")),
        }
    }
    ensure_eq!(wins, 1, "exactly one concurrent create wins");
    Ok(())
}
