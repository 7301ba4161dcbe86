//! Audit search and export over the API: filters, paging, JSON-lines export (and follow),
//! and who may read events (auditor yes, access no, anonymous no).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::time::Duration;

use common::{expect_err, Harness};
use hyper::Method;
use portcullis_client::api::ApiClient;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Yesterday and today (UTC), `YYYY-MM-DD`: the file sink writes the events into today's file,
/// and a search reads a day file for events up to two days older, so fixed dates would rot.
fn days() -> (String, String) {
    let today = time::OffsetDateTime::now_utc().date();
    (
        (today - time::Duration::days(1)).to_string(),
        today.to_string(),
    )
}

fn ev(n: u32, time: &str, event: &str, user: &str, sid: &str, q: &str) -> Box<RawValue> {
    RawValue::from_string(
        json!({
            "uid": format!("00000000-0000-4000-8000-{n:012}"), "time": time, "event": event,
            "user": user, "sid": sid, "db_service": "orders", "db_query": q,
        })
        .to_string(),
    )
    .unwrap()
}

fn uids(v: &Value) -> Vec<u64> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            // Skip auth's own events (logins of the test users).
            e["uid"]
                .as_str()?
                .strip_prefix("00000000-0000-4000-8000-")?
                .parse::<u64>()
                .ok()
        })
        .collect()
}

/// The next followed line that is one of the test's events.
async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("follow stream stalled")
            .unwrap();
        if line.contains("00000000-0000-4000-8000-") {
            return line;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_search_and_export_events_others_may_not() {
    let (d0, d1) = days();
    let h = Harness::start_with(|a| {
        a.second_factor = portcullis_auth::config::SecondFactor::Off;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    h.auth.enable_audit(&dir.path().join("log")).unwrap();
    let batch = vec![
        ev(
            1,
            &format!("{d0}T10:00:00Z"),
            "db.session.start",
            "alice",
            "s1",
            "",
        ),
        ev(
            2,
            &format!("{d0}T10:00:01Z"),
            "db.session.query",
            "alice",
            "s1",
            "SELECT secret",
        ),
        ev(
            3,
            &format!("{d0}T10:00:02Z"),
            "db.session.query",
            "bob",
            "s2",
            "SELECT 1",
        ),
        ev(
            4,
            &format!("{d0}T10:00:03Z"),
            "db.session.end",
            "alice",
            "s1",
            "",
        ),
    ];
    assert_eq!(h.auth.record_events(&batch).await.unwrap(), 4);

    h.create_user("aud", &["auditor"]).await;
    h.create_user("acc", &["access"]).await;
    let aud = h.login_client("aud", None).await;
    let acc = h.login_client("acc", None).await;

    let all: Value = aud.get("/v1/events").await.unwrap();
    assert_eq!(uids(&all), [4, 3, 2, 1]);
    assert!(all.get("next_cursor").is_none());
    let alice: Value = aud
        .get("/v1/events?user=alice&event=db.session.*&order=oldest")
        .await
        .unwrap();
    assert_eq!(uids(&alice), [1, 2, 4]);
    let text: Value = aud
        .get(&format!(
            "/v1/events?contains=SELECT%20SECRET&db=orders&from={d0}T10:00:00Z&to={d1}"
        ))
        .await
        .unwrap();
    assert_eq!(uids(&text), [2]);
    let sid: Value = aud.get("/v1/events?sid=s2").await.unwrap();
    assert_eq!(uids(&sid), [3]);

    // Paging.
    let mut got = Vec::new();
    let mut path = "/v1/events?limit=3&event=db.session.*".to_owned();
    loop {
        let page: Value = aud.get(&path).await.unwrap();
        got.extend(uids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/events?limit=3&event=db.session.*&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(got, [4, 3, 2, 1]);
    expect_err(
        aud.get::<Value>("/v1/events?cursor=junk").await,
        400,
        "bad_request",
        &["cursor"],
    );
    expect_err(
        aud.get::<Value>("/v1/events?from=yesterday").await,
        400,
        "bad_request",
        &["from", "RFC 3339"],
    );

    // Export: JSON lines, oldest first.
    let resp = aud
        .raw(
            Method::GET,
            &format!("/v1/events/export?since={d0}T10:00:01Z"),
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers.get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let body = String::from_utf8(resp.body.to_vec()).unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Ours (oldest first), then the logins of the test users.
    assert!(lines.len() >= 3, "{body}");
    assert_eq!(lines[0]["event"], "db.session.query");
    assert_eq!(lines[2]["event"], "db.session.end");

    // Not for access users, nor anonymous callers.
    expect_err(
        acc.get::<Value>("/v1/events").await,
        403,
        "forbidden",
        &["event"],
    );
    let denied = acc
        .raw(Method::GET, "/v1/events/export", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(denied.status, 403);
    let anon = h
        .anonymous()
        .raw(Method::GET, "/v1/events", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(anon.status, 401);

    // Follow: history, then new events as they are stored.
    let api: ApiClient = h.admin_api_client();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let follower = tokio::spawn(async move {
        let mut partial = String::new();
        api.get_stream("/v1/events/export?follow=true", |chunk| {
            partial.push_str(std::str::from_utf8(chunk).unwrap());
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                let _ = tx.send(line);
            }
            Ok(())
        })
        .await
    });
    for n in 1..=4 {
        let line = next(&mut rx).await;
        assert!(line.contains(&format!("{n:012}")), "{line}");
    }
    h.auth
        .record_events(&[ev(
            5,
            &format!("{d0}T11:00:00Z"),
            "db.session.start",
            "carol",
            "s3",
            "",
        )])
        .await
        .unwrap();
    // Re-sent: stored once, so followed once.
    h.auth
        .record_events(&[
            ev(
                5,
                &format!("{d0}T11:00:00Z"),
                "db.session.start",
                "carol",
                "s3",
                "",
            ),
            ev(
                6,
                &format!("{d0}T11:00:01Z"),
                "db.session.end",
                "carol",
                "s3",
                "",
            ),
        ])
        .await
        .unwrap();
    assert!(next(&mut rx).await.contains("000000000005"));
    assert!(next(&mut rx).await.contains("000000000006"));
    follower.abort();
}
