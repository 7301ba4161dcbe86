//! SQLite-specific tests: the shared conformance suite on both storage modes,
//! plus what only a file-backed embedded database can get wrong
//! (persistence, permissions, corruption, several connections to one file,
//! change-log compaction).

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_backend::{conformance, Backend, BackendError, Event, SqliteBackend, SqliteOptions};

fn fast_options() -> SqliteOptions {
    SqliteOptions {
        maintenance_interval: Duration::from_millis(100),
        ..SqliteOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    conformance::run_all(|| SqliteBackend::open_in_memory().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SqliteBackend::open(&dir.path().join(format!("state-{i}.db"))).unwrap()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn conformance_on_current_thread_runtime() {
    conformance::run_all(|| SqliteBackend::open_in_memory().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn persists_across_reopen_and_revision_keeps_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (r1, r2) = {
        let b = SqliteBackend::open(&path).unwrap();
        let r1 = b.put("/users/alice", b"a".to_vec(), None).await.unwrap();
        let r2 = b.put("/users/bob", b"b".to_vec(), None).await.unwrap();
        b.delete("/users/bob").await.unwrap();
        (r1, r2)
    };
    let b = SqliteBackend::open(&path).unwrap();
    let alice = b.get("/users/alice").await.unwrap().unwrap();
    assert_eq!((alice.value.as_slice(), alice.revision), (&b"a"[..], r1));
    assert_eq!(b.get("/users/bob").await.unwrap(), None);
    let head = b.current_revision().await.unwrap();
    assert_eq!(head, r2 + 1);
    let r3 = b.put("/users/carol", b"c".to_vec(), None).await.unwrap();
    assert!(r3 > head, "revision must keep increasing after reopen");
    // The change log survives too: a watcher can resume from before the
    // restart.
    let mut w = b.watch("/users/", Some(r1)).await.unwrap();
    assert_eq!(w.next().await.unwrap().revision(), r2);
    assert_eq!(
        w.next().await.unwrap(),
        Event::Delete {
            key: "/users/bob".into(),
            revision: r2 + 1
        }
    );
    assert_eq!(w.next().await.unwrap().revision(), r3);
    assert_eq!(w.last_revision(), r3);
}

#[cfg(unix)]
#[tokio::test]
async fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let b = SqliteBackend::open(&path).unwrap();
    b.put("/secret", b"key material".to_vec(), None)
        .await
        .unwrap();
    for p in [path.clone(), dir.path().join("state.db-wal")] {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
    }
}

#[tokio::test]
async fn corrupt_file_is_a_storage_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    match SqliteBackend::open(&path) {
        Err(BackendError::Storage(msg)) => {
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("corrupt"), "{msg}");
        }
        other => panic!("expected Storage error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_directory_is_a_storage_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/state.db");
    match SqliteBackend::open(&path) {
        Err(BackendError::Storage(msg)) => {
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
        other => panic!("expected Storage error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_is_atomic_across_two_instances_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = Arc::new(SqliteBackend::open(&path).unwrap());
    let b = Arc::new(SqliteBackend::open(&path).unwrap());
    a.create("/counter", b"0".to_vec(), None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let backend = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            conformance::increment_n(&*backend, "/counter", 50).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(a.get("/counter").await.unwrap().unwrap().value, b"400");
    assert_eq!(b.get("/counter").await.unwrap().unwrap().value, b"400");
    // 1 create + 400 successful CAS, no revision reused across instances.
    assert_eq!(a.current_revision().await.unwrap(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_writes_from_another_instance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = SqliteBackend::with_options(&path, fast_options()).unwrap();
    let b = SqliteBackend::with_options(&path, fast_options()).unwrap();
    let mut w = a.watch("/locks/", None).await.unwrap();
    let rev = b.put("/locks/x", b"1".to_vec(), None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.revision(), rev);
}

#[tokio::test]
async fn compacted_watch_fails_loudly() {
    let b = SqliteBackend::in_memory_with_options(SqliteOptions {
        changelog_retention: 10,
        maintenance_interval: Duration::from_secs(3600),
        ..SqliteOptions::default()
    })
    .unwrap();
    let mut stale = b.watch("/", Some(0)).await.unwrap();
    let mut fresh_enough = b.watch("/k/", Some(0)).await.unwrap();
    for i in 0..50u32 {
        b.put(&format!("/k/{i}"), vec![], None).await.unwrap();
    }
    // Before compaction everything is there.
    assert_eq!(fresh_enough.next().await.unwrap().revision(), 1);
    let oldest = b.compact_changelog().await.unwrap();
    assert_eq!(oldest, 41);

    match stale.next().await {
        Err(BackendError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (1, 41));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    // Errors stay: the caller must re-list.
    assert!(matches!(
        stale.next().await,
        Err(BackendError::Compacted { .. })
    ));
    // A watcher that already read past the compaction point is unaffected.
    for rev in 2..=50 {
        assert_eq!(fresh_enough.next().await.unwrap().revision(), rev);
    }
    match b.watch("/", Some(5)).await {
        Err(BackendError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (6, 41));
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut w = b.watch("/", Some(40)).await.unwrap();
    assert_eq!(w.next().await.unwrap().revision(), 41);
    let err = b.watch("/", Some(5)).await.unwrap_err().to_string();
    assert!(err.contains("re-read the range"), "{err}");
}

#[tokio::test]
async fn maintenance_compacts_automatically() {
    let b = SqliteBackend::in_memory_with_options(SqliteOptions {
        changelog_retention: 5,
        maintenance_interval: Duration::from_millis(50),
        ..SqliteOptions::default()
    })
    .unwrap();
    for i in 0..20u32 {
        b.put(&format!("/k/{i}"), vec![], None).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match b.watch("/", Some(0)).await {
            Err(BackendError::Compacted { oldest, .. }) => {
                assert_eq!(oldest, 16);
                break;
            }
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("change log never compacted: {other:?}"),
        }
    }
}

#[tokio::test]
async fn expired_items_are_swept_with_delete_events() {
    let b = SqliteBackend::in_memory_with_options(fast_options()).unwrap();
    let mut w = b.watch("/tokens/", None).await.unwrap();
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(200);
    for i in 0..3 {
        b.put(&format!("/tokens/{i}"), vec![], Some(soon))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        assert!(matches!(w.next().await.unwrap(), Event::Put(_)));
    }
    let mut deleted = Vec::new();
    for _ in 0..3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .unwrap()
            .unwrap();
        match ev {
            Event::Delete { key, .. } => deleted.push(key),
            other => panic!("expected Delete, got {other:?}"),
        }
    }
    deleted.sort();
    assert_eq!(deleted, vec!["/tokens/0", "/tokens/1", "/tokens/2"]);
    assert_eq!(b.sweep_expired().await.unwrap(), 0);
    assert!(b.range("/tokens/").await.unwrap().is_empty());
}

#[tokio::test]
async fn manual_sweep_reports_count() {
    let b = SqliteBackend::in_memory_with_options(SqliteOptions {
        maintenance_interval: Duration::from_secs(3600),
        ..SqliteOptions::default()
    })
    .unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    for i in 0..1200 {
        b.put(&format!("/e/{i}"), vec![], Some(past)).await.unwrap();
    }
    b.put("/e/live", vec![], None).await.unwrap();
    let head = b.current_revision().await.unwrap();
    assert_eq!(b.sweep_expired().await.unwrap(), 1200);
    assert_eq!(b.current_revision().await.unwrap(), head + 1200);
    assert_eq!(b.range("/e/").await.unwrap().len(), 1);
}

#[tokio::test]
async fn watcher_reports_closed_after_backend_is_dropped() {
    let b = SqliteBackend::open_in_memory().unwrap();
    let mut w = b.watch("/", None).await.unwrap();
    b.put("/a", vec![], None).await.unwrap();
    drop(b);
    // Already-committed events may still be delivered, then Closed.
    let mut result = w.next().await;
    if result.is_ok() {
        result = w.next().await;
    }
    assert!(matches!(result, Err(BackendError::Closed)), "{result:?}");
}

#[tokio::test]
async fn arc_dyn_backend_is_a_backend() {
    let b: Arc<dyn Backend> = Arc::new(SqliteBackend::open_in_memory().unwrap());
    let rev = b.put("/a", b"1".to_vec(), None).await.unwrap();
    assert_eq!(b.get("/a").await.unwrap().unwrap().revision, rev);
}

#[tokio::test]
async fn value_too_large_error_is_clear() {
    let b = SqliteBackend::open_in_memory().unwrap();
    let err = b
        .put(
            "/big",
            vec![0; portcullis_backend::MAX_VALUE_BYTES + 1],
            None,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("/big") && err.contains("limit"), "{err}");
}
