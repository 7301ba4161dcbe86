//! The PostgreSQL audit sink against a real PostgreSQL (started by the test kit): TLS with a
//! client certificate (certificates made with openssl) and a password over plaintext
//! loopback, idempotent inserts, search filters and paging, and two auth servers' audit logs
//! sharing one table.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::{Order, PgSink, Position, Query, Sink};
use portcullis_auth::audit::AuditLog;
use portcullis_testkit::{PostgresServer, ServerTls};
use serde_json::value::RawValue;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate for `audit`.
fn make_certs(dir: &Path) -> ServerTls {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=audit test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(dir, &ca);
    for (name, cn, ext) in [
        (
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ),
        ("client", "audit", "extendedKeyUsage=clientAuth"),
    ] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let subj = format!("/CN={cn}");
        let mut req = vec!["req", "-new", "-subj", &subj];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr]);
        openssl(dir, &req);
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let extfile = format!("{name}.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &extfile,
                "-out",
                &crt,
            ],
        );
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    ServerTls {
        ca_cert_pem: read("ca.crt"),
        server_cert_pem: read("server.crt"),
        server_key_pem: read("server.key"),
    }
}

fn event(uid: &str, time: &str, event: &str, user: &str, sid: &str, query: &str) -> String {
    serde_json::json!({
        "uid": uid, "time": time, "event": event, "code": "TDB02I", "user": user,
        "sid": sid, "db_service": "orders", "db_query": query,
    })
    .to_string()
}

fn uid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn uids_of(events: &[String]) -> Vec<String> {
    events
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["uid"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_stores_once_searches_and_is_shared() {
    let certs = tempfile::tempdir().unwrap();
    let tls = make_certs(certs.path());
    let pg = tokio::task::spawn_blocking(move || {
        let pg = PostgresServer::builder(tls)
            .pg_hba(
                "local all all trust\n\
                 hostssl all audit 127.0.0.1/32 cert\n\
                 host all pwuser 127.0.0.1/32 scram-sha-256\n",
            )
            .start()
            .unwrap();
        pg.create_role("audit").unwrap();
        pg.create_database("audit", "audit").unwrap();
        pg.admin_sql("CREATE ROLE pwuser LOGIN PASSWORD 'pw s3cret'")
            .unwrap();
        pg.create_database("pwdb", "pwuser").unwrap();
        pg
    })
    .await
    .unwrap();
    let c = certs.path();
    let tls_url = format!(
        "postgres://audit@127.0.0.1:{}/audit?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        pg.port(),
        c.join("ca.crt").display(),
        c.join("client.crt").display(),
        c.join("client.key").display(),
    );
    let sink = PgSink::new(&tls_url).unwrap();

    // Three sessions' worth of events over two days, written twice (a retry).
    let lines = vec![
        event(
            &uid(1),
            "2026-11-20T23:59:59.5Z",
            "db.session.start",
            "alice",
            "s1",
            "",
        ),
        event(
            &uid(2),
            "2026-11-21T00:00:00Z",
            "db.session.query",
            "alice",
            "s1",
            "SELECT Secret",
        ),
        event(
            &uid(3),
            "2026-11-21T00:00:01Z",
            "db.session.query",
            "bob",
            "s2",
            "SELECT 1",
        ),
        event(
            &uid(4),
            "2026-11-21T00:00:01Z",
            "db.session.end",
            "alice",
            "s1",
            "",
        ),
        event(
            "not-a-uuid",
            "2026-11-21T00:00:02Z",
            "user.login",
            "carol",
            "",
            "",
        ),
    ];
    let batch = Arc::new(ndjson(&lines));
    sink.write_batch(Arc::clone(&batch)).await.unwrap();
    sink.write_batch(Arc::clone(&batch)).await.unwrap();
    let count = |pg: &PostgresServer| {
        pg.admin_sql_in("audit", "SELECT count(*) FROM portcullis_events")
            .unwrap()
    };
    assert_eq!(count(&pg), "5");
    // TLS was really used, with the client certificate.
    let ssl = pg
        .admin_sql("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'audit' AND s.ssl AND s.client_dn LIKE '%audit%'")
        .unwrap();
    assert_eq!(ssl, "1");

    // Search: order, filters, paging.
    let all = sink.search(&Query::default()).await.unwrap();
    assert_eq!(
        uids_of(&all.events),
        ["not-a-uuid", uid(4).as_str(), &uid(3), &uid(2), &uid(1)]
    );
    let alice = sink
        .search(&Query {
            user: Some("alice".into()),
            order: Order::OldestFirst,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(uids_of(&alice.events), [uid(1), uid(2), uid(4)]);
    let q = sink
        .search(&Query {
            event: Some("db.session.q*".into()),
            contains: Some("select secret".into()),
            from: Some(time::macros::datetime!(2026-11-21 00:00 UTC)),
            to: Some(time::macros::datetime!(2026-11-22 00:00 UTC)),
            db: Some("orders".into()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(uids_of(&q.events), [uid(2)]);
    let s2 = sink
        .search(&Query {
            sid: Some("s2".into()),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(uids_of(&s2.events), [uid(3)]);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = sink
            .search(&Query {
                limit: 2,
                order: Order::OldestFirst,
                after: after.clone(),
                ..Query::default()
            })
            .await
            .unwrap();
        paged.extend(uids_of(&page.events));
        match page.next_cursor {
            Some(c) => after = Some(Position::from_cursor(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(
        paged,
        [uid(1).as_str(), &uid(2), &uid(3), &uid(4), "not-a-uuid"]
    );

    // A password from the connection string, plaintext on loopback.
    let pw_url = format!(
        "postgres://pwuser:pw%20s3cret@127.0.0.1:{}/pwdb?sslmode=disable",
        pg.port()
    );
    let pw_sink = PgSink::new(&pw_url).unwrap();
    pw_sink
        .write_batch(Arc::new(ndjson(&lines[..2])))
        .await
        .unwrap();
    let page = pw_sink.search(&Query::default()).await.unwrap();
    assert_eq!(uids_of(&page.events), [uid(2), uid(1)]);

    // Two auth servers' audit logs sharing the table: each event stored once.
    let a = AuditLog::with_sinks(
        vec![Arc::new(PgSink::new(&tls_url).unwrap())],
        Duration::from_secs(1),
    );
    let b = AuditLog::with_sinks(
        vec![Arc::new(PgSink::new(&tls_url).unwrap())],
        Duration::from_secs(1),
    );
    let batch: Vec<Box<RawValue>> = (100..200)
        .map(|n| {
            RawValue::from_string(event(
                &uid(n),
                "2026-11-21T01:00:00Z",
                "db.session.query",
                "dave",
                "s9",
                "SELECT 2",
            ))
            .unwrap()
        })
        .collect();
    let (ra, rb) = tokio::join!(a.write(&batch), b.write(&batch));
    assert_eq!(ra.unwrap(), 100);
    assert_eq!(rb.unwrap(), 100);
    b.write(&batch[..10]).await.unwrap();
    assert_eq!(count(&pg), "105");
    let dave = a
        .search(&Query {
            user: Some("dave".into()),
            limit: 1000,
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(dave.events.len(), 100);

    // Query texts with escapes jsonb refuses (NUL, a backslash before a NUL, an unpaired
    // surrogate) are stored with those escapes spelled out; the batch is not refused.
    let at = "2026-11-21T02:00:00Z";
    let odd = [
        event(&uid(300), at, "db.session.query", "erin", "s7", "a\u{0}b"),
        event(&uid(301), at, "db.session.query", "erin", "s7", "\\\u{0}"),
        // The text `\u0000` (a backslash, then u0000) is not a NUL and is stored as it is.
        event(&uid(303), at, "db.session.query", "erin", "s7", "x\\u0000"),
        format!(
            r#"{{"uid":"{}","time":"{at}","event":"db.session.query","user":"erin","db_query":"\ud800"}}"#,
            uid(302)
        ),
    ];
    sink.write_batch(Arc::new(ndjson(&odd))).await.unwrap();
    assert_eq!(count(&pg), "109");
    let stored = pg
        .admin_sql_in(
            "audit",
            "SELECT data->>'db_query' FROM portcullis_events WHERE uid::text LIKE '%303'",
        )
        .unwrap();
    assert_eq!(stored, "x\\u0000");

    // A bad client setup fails with a useful message rather than hanging.
    let bad = PgSink::new(&tls_url.replace("/audit?", "/nosuchdb?")).unwrap();
    let e = bad.search(&Query::default()).await.unwrap_err();
    assert!(e.to_string().contains("nosuchdb"), "{e}");
}

/// Lines as auth's writer hands them to a sink: one buffer, each line ending in `\n`.
fn ndjson(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}
