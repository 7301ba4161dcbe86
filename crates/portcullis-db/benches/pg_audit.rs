//! What auditing costs per PostgreSQL message, without the network: the events of pgbench's
//! prepared transaction (`-S -M prepared`: Bind, Describe, Execute, Sync — two events) and
//! of a simple Query (one event), written into a session's buffer as the engine does.
//! `cargo bench -p portcullis-db --bench pg_audit`; figures in bench/README.md.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_audit::{Fragment, Lines, Stamp};
use portcullis_db::postgres_audit::{ClientAudit, Context};
use portcullis_wire::postgres::{
    Bind, Describe, Execute, Frame, Message, Parse, Query, Sync, Target,
};

/// The fields every event of a session carries, as a real session serialises them.
fn head() -> Fragment {
    let base = Fragment::new()
        .with("user", "benchuser")
        .with("sid", "370c8132-0b2a-41b0-ae35-88e813bbbc02")
        .with("db_service", "pg1")
        .with("db_protocol", "postgres")
        .with("db_uri", "127.0.0.1:55159")
        .with("db_user", "bench")
        .with("db_name", "bench")
        .with("db_roles", ["access"])
        .with("server_id", "a5465f8a-fe72-4754-b5fb-f8fb511dfd5b")
        .with("addr.remote", "127.0.0.1:37850");
    Fragment::cluster("bench", &base)
}

fn frames(mut b: Bytes) -> Vec<Frame> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let len = u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize;
        let f = b.split_to(1 + len);
        out.push(Frame::new(f[0], f.slice(5..)));
    }
    out
}

fn prepared_transaction() -> (Vec<Frame>, Vec<Frame>) {
    let mut setup = BytesMut::new();
    Parse {
        name: "P_0".into(),
        query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".into(),
        param_types: vec![],
    }
    .encode(&mut setup)
    .unwrap();
    let mut b = BytesMut::new();
    Bind {
        portal: "".into(),
        statement: "P_0".into(),
        param_formats: vec![0],
        params: vec![Some(Bytes::from_static(b"442235"))],
        result_formats: vec![0],
    }
    .encode(&mut b)
    .unwrap();
    Describe {
        target: Target::Portal,
        name: "".into(),
    }
    .encode(&mut b)
    .unwrap();
    Execute {
        portal: "".into(),
        max_rows: 0,
    }
    .encode(&mut b)
    .unwrap();
    Sync.encode(&mut b).unwrap();
    (frames(setup.freeze()), frames(b.freeze()))
}

fn bench(c: &mut Criterion) {
    let head = head();
    let mut g = c.benchmark_group("pg_audit");
    g.throughput(Throughput::Elements(1));

    let (setup, txn) = prepared_transaction();
    let mut audit = ClientAudit::new();
    let mut lines = Lines::new();
    let ctx = |stamp| Context {
        head: &head,
        stamp,
        max_query_bytes: 65_536,
    };
    for f in &setup {
        audit.message(&ctx(Stamp::now()), f, &mut lines);
    }
    g.bench_function("prepared_transaction", |b| {
        b.iter(|| {
            lines.clear();
            let a = ctx(Stamp::now());
            for f in &txn {
                audit.message(&a, f, &mut lines);
            }
            assert_eq!(lines.len(), 2);
        })
    });

    let mut q = BytesMut::new();
    Query {
        sql: "SELECT abalance FROM pgbench_accounts WHERE aid = 442235;".into(),
    }
    .encode(&mut q)
    .unwrap();
    let query = frames(q.freeze());
    g.bench_function("simple_query", |b| {
        b.iter(|| {
            lines.clear();
            let a = ctx(Stamp::now());
            for f in &query {
                audit.message(&a, f, &mut lines);
            }
            assert_eq!(lines.len(), 1);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
