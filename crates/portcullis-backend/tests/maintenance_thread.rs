//! The maintenance thread must not outlive its backend. Kept in its own test
//! binary (own process) so counting threads is not disturbed by other tests.

use std::time::{Duration, Instant};

use portcullis_backend::{Backend, SqliteBackend};

fn maintenance_threads() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim().starts_with("portcullis-back"))
                .unwrap_or(false)
        })
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn maintenance_thread_stops_when_backend_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteBackend::open_in_memory().unwrap();
    let b = SqliteBackend::open(&dir.path().join("state.db")).unwrap();
    let b2 = b.clone();
    b.put("/x", vec![], None).await.unwrap();
    assert_eq!(maintenance_threads(), 2);
    drop(a);
    drop(b);
    drop(b2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while maintenance_threads() > 0 {
        assert!(Instant::now() < deadline, "maintenance thread leaked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
