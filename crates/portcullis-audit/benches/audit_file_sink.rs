//! File sink throughput: realistic ~400-byte events in batches of 1000, fsync per batch.
//! `cargo bench -p portcullis-audit --bench audit_file_sink`; figures in bench/README.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_audit::appender::Mode;
use portcullis_audit::{Event, EventKind, FileSink, Fragment, FsyncPolicy, SinkOptions};

const BATCH: usize = 1000;

fn batch() -> Vec<String> {
    let shared = Fragment::new()
        .with("user", "alice@example.com")
        .with("sid", "6b5c1e36-6a3c-4a51-9d1c-2f1d6f0c9a11")
        .with("db_service", "orders-prod")
        .with("db_protocol", "postgres")
        .with("db_uri", "orders.internal:5432")
        .with("db_name", "orders")
        .with("db_user", "app_readonly");
    (0..BATCH)
        .map(|i| {
            Event::new(EventKind::DbSessionQuery, "portcullis")
                .with_fragment(&shared)
                .with(
                    "db_query",
                    format!("SELECT id, total FROM orders WHERE customer_id = $1 AND id > {i}"),
                )
                .with("db_query_parameters", ["4711"])
                .into_json()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let lines = batch();
    let avg = lines.iter().map(|l| l.len()).sum::<usize>() / lines.len();
    eprintln!("average event size: {avg} bytes");
    let mut group = c.benchmark_group("audit_file_sink");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Direct (the default: a batch of 1,000 events bypasses the page cache) against
    // buffered writes, in the same run.
    for (name, fsync, mode) in [
        ("every_batch", FsyncPolicy::EveryBatch, Mode::Direct),
        (
            "every_batch_buffered",
            FsyncPolicy::EveryBatch,
            Mode::Buffered,
        ),
        ("never", FsyncPolicy::Never, Mode::Direct),
        ("never_buffered", FsyncPolicy::Never, Mode::Buffered),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileSink::with_mode(
            dir.path(),
            SinkOptions {
                fsync,
                ..SinkOptions::default()
            },
            mode,
        )
        .unwrap();
        group.bench_function(format!("batch_1000_fsync_{name}"), |b| {
            b.iter(|| sink.write_lines(&lines).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
