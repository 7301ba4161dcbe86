//! What auth spends reading the head (`uid`, `event`) of each event line an agent sends,
//! and checking the line: the one-pass walk against serde_json, in the same run.
//! `cargo bench -p portcullis-audit --bench event_head`; figures in bench/README.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_audit::head::{event_head, serde_head};
use portcullis_audit::{Event, EventKind, Fragment};

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Head<'a> {
    #[serde(borrow)]
    uid: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
}

/// The two events of a prepared pgbench transaction, as an agent spools them.
fn lines() -> Vec<String> {
    let shared = Fragment::new()
        .with("user", "alice@example.com")
        .with("sid", "6b5c1e36-6a3c-4a51-9d1c-2f1d6f0c9a11")
        .with("db_service", "orders-prod")
        .with("db_protocol", "postgres")
        .with("db_uri", "orders.internal:5432")
        .with("db_name", "orders")
        .with("db_user", "app_readonly")
        .with("db_roles", ["access"])
        .with("server_id", "c0a5e1f2-7b3d-4e8a-9f61-2d4c8b7a1e03")
        .with("addr.remote", "127.0.0.1:51234");
    vec![
        Event::new(EventKind::PostgresBind, "portcullis")
            .with_fragment(&shared)
            .with("statement_name", "P0_1")
            .with("portal_name", "")
            .with("parameters", ["4711"])
            .into_json(),
        Event::new(EventKind::PostgresExecute, "portcullis")
            .with_fragment(&shared)
            .with("portal_name", "")
            .with("statement_name", "P0_1")
            .with(
                "db_query",
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
            )
            .with("db_query_parameters", ["4711"])
            .into_json(),
    ]
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let bytes: usize = lines.iter().map(String::len).sum();
    eprintln!(
        "event sizes: {:?} bytes",
        lines.iter().map(String::len).collect::<Vec<_>>()
    );
    let mut group = c.benchmark_group("event_head");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("walk", |b| {
        b.iter(|| {
            for l in &lines {
                std::hint::black_box(event_head(std::hint::black_box(l)).unwrap());
            }
        })
    });
    // What auth did before: serde's derive reads the head and skips the rest.
    group.bench_function("serde_json_head", |b| {
        b.iter(|| {
            for l in &lines {
                std::hint::black_box(
                    serde_json::from_str::<Head<'_>>(std::hint::black_box(l)).unwrap(),
                );
            }
        })
    });
    // The walk's fallback: the head, then the whole line as a value.
    group.bench_function("serde_json_head_and_value", |b| {
        b.iter(|| {
            for l in &lines {
                std::hint::black_box(serde_head(std::hint::black_box(l)).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
