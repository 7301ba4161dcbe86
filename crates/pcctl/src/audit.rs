//! `pcctl audit …`: search the audit log, export it as JSON lines, print a session.

use std::collections::HashSet;
use std::io::Write;

use anyhow::Context;
use portcullis_api::{EventsPage, EventsQuery};
use portcullis_client::api::ApiClient;
use serde_json::Value;

use crate::cli::{AuditCmd, AuditSearchArgs, EventFormat};

/// Largest page asked for at once.
const PAGE: usize = 1000;

/// Runs an `audit` subcommand.
pub async fn run(api: &ApiClient, cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Search(args) => search(api, args).await,
        AuditCmd::Export { since, follow } => export(api, since, follow).await,
        AuditCmd::Session { sid, format } => session(api, &sid, format).await,
    }
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn events_path(q: &EventsQuery) -> String {
    let mut path = String::from("/v1/events?");
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            path.push_str(&format!("{k}={}&", enc(v)));
        }
    };
    add("from", &q.from);
    add("to", &q.to);
    add("user", &q.user);
    add("event", &q.event);
    add("db", &q.db);
    add("sid", &q.sid);
    add("contains", &q.contains);
    add("cursor", &q.cursor);
    add("order", &q.order);
    add("limit", &q.limit.map(|l| l.to_string()));
    path.pop();
    path
}

/// Fetches up to `limit` events (all when `None`), page by page.
async fn fetch(
    api: &ApiClient,
    mut q: EventsQuery,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let want = limit.map(|l| l - out.len()).unwrap_or(PAGE).min(PAGE);
        if want == 0 {
            break;
        }
        q.limit = Some(want);
        let page: EventsPage = api.get(&events_path(&q)).await?;
        for e in page.events {
            out.push(serde_json::from_str(e.get())?);
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

fn field<'a>(e: &'a Value, key: &str) -> &'a str {
    e.get(key).and_then(Value::as_str).unwrap_or("")
}

/// One line, at most `max` characters, with whitespace runs folded.
fn short(s: &str, max: usize) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        folded
    } else {
        let cut: String = folded.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// What an event is about, in a few words: the query, the error, the reason.
fn summary(e: &Value) -> String {
    let q = field(e, "db_query");
    if !q.is_empty() {
        return short(q, 80);
    }
    for key in ["error", "reason", "message"] {
        let v = field(e, key);
        if !v.is_empty() {
            return short(v, 80);
        }
    }
    String::new()
}

async fn search(api: &ApiClient, a: AuditSearchArgs) -> anyhow::Result<()> {
    let q = EventsQuery {
        from: a.from,
        to: a.to,
        user: a.user,
        event: a.event,
        db: a.db,
        sid: a.sid,
        contains: a.contains,
        order: a.oldest_first.then(|| "oldest".to_owned()),
        ..EventsQuery::default()
    };
    let events = fetch(api, q, Some(a.limit)).await?;
    let mut out = std::io::stdout().lock();
    match a.format {
        EventFormat::Json => {
            for e in &events {
                writeln!(out, "{e}")?;
            }
        }
        EventFormat::Text => {
            if events.is_empty() {
                eprintln!("no events match");
            }
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    vec![
                        field(e, "time").to_owned(),
                        field(e, "event").to_owned(),
                        field(e, "user").to_owned(),
                        field(e, "db_service").to_owned(),
                        summary(e),
                    ]
                })
                .collect();
            drop(out);
            crate::output::table(&["TIME", "EVENT", "USER", "DB", "QUERY"], &rows);
        }
    }
    Ok(())
}

/// Streams JSON lines to stdout; with `follow`, reconnects after the stream ends, resuming
/// from the last event's time (skipping the events already printed at that time).
async fn export(api: &ApiClient, since: Option<String>, follow: bool) -> anyhow::Result<()> {
    let mut since = since;
    let mut last_uids: HashSet<String> = HashSet::new();
    let mut last_time = String::new();
    loop {
        let mut path = format!("/v1/events/export?follow={follow}");
        if let Some(s) = &since {
            path.push_str(&format!("&since={}", enc(s)));
        }
        let mut partial: Vec<u8> = Vec::new();
        let mut stdout = std::io::stdout().lock();
        let res = api
            .get_stream(&path, |chunk| {
                partial.extend_from_slice(chunk);
                let mut start = 0;
                while let Some(nl) = partial
                    .get(start..)
                    .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
                {
                    let line = partial.get(start..start + nl).unwrap_or_default();
                    start += nl + 1;
                    let head: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
                    let (uid, time) = (field(&head, "uid"), field(&head, "time"));
                    if time == last_time && last_uids.contains(uid) {
                        continue;
                    }
                    if time != last_time {
                        last_time = time.to_owned();
                        last_uids.clear();
                    }
                    last_uids.insert(uid.to_owned());
                    stdout.write_all(line)?;
                    stdout.write_all(b"\n")?;
                }
                partial.drain(..start);
                stdout.flush()
            })
            .await;
        drop(stdout);
        if !follow {
            return res.context("exporting the audit log");
        }
        match res {
            Ok(()) => eprintln!("pcctl: the export stream ended; resuming"),
            Err(e) => eprintln!("pcctl: the export stream failed ({e}); resuming"),
        }
        if !last_time.is_empty() {
            since = Some(last_time.clone());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn session(api: &ApiClient, sid: &str, format: EventFormat) -> anyhow::Result<()> {
    let q = EventsQuery {
        sid: Some(sid.to_owned()),
        order: Some("oldest".into()),
        ..EventsQuery::default()
    };
    let events = fetch(api, q, None).await?;
    if events.is_empty() {
        anyhow::bail!("no events for session {sid:?}");
    }
    let mut out = std::io::stdout().lock();
    if format == EventFormat::Json {
        for e in &events {
            writeln!(out, "{e}")?;
        }
        return Ok(());
    }
    for line in transcript(sid, &events) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A readable transcript of one session's events (oldest first).
pub fn transcript(sid: &str, events: &[Value]) -> Vec<String> {
    let mut lines = Vec::new();
    let first = events.first().cloned().unwrap_or(Value::Null);
    lines.push(format!("Session {sid}"));
    let who = [
        ("User:     ", field(&first, "user")),
        ("Database: ", field(&first, "db_service")),
        ("As:       ", field(&first, "db_user")),
        ("Name:     ", field(&first, "db_name")),
        ("From:     ", field(&first, "addr.remote")),
    ];
    for (label, v) in who {
        if !v.is_empty() {
            lines.push(format!("{label}{v}"));
        }
    }
    lines.push(String::new());
    for e in events {
        let time = field(e, "time");
        let clock = time.split_once('T').map(|(_, t)| t).unwrap_or(time);
        let params = |key: &str| match e.get(key) {
            Some(Value::Array(a)) if !a.is_empty() => format!(
                "  [{}]",
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => format!("{s:?}"),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        };
        let failed = e.get("success").and_then(Value::as_bool) == Some(false);
        let text = match field(e, "event") {
            "db.session.start" if failed => format!("REFUSED  {}", field(e, "error")),
            "db.session.start" => "START".to_owned(),
            "db.session.end" => match field(e, "reason") {
                "" => "END".to_owned(),
                r => format!("END      {r}"),
            },
            "db.session.query" => format!(
                "QUERY    {}{}",
                field(e, "db_query"),
                params("db_query_parameters")
            ),
            "db.session.query.failed" => format!(
                "FAILED   {}{}  ({})",
                field(e, "db_query"),
                params("db_query_parameters"),
                field(e, "error")
            ),
            "db.session.postgres.statements.parse" => format!(
                "PARSE    {} {}",
                field(e, "statement_name"),
                field(e, "query")
            ),
            "db.session.mysql.statements.prepare" => format!("PREPARE  {}", field(e, "query")),
            "db.session.mysql.statements.execute" => format!(
                "EXECUTE  #{} {}{}",
                e.get("statement_id")
                    .map(Value::to_string)
                    .unwrap_or_default(),
                field(e, "db_query"),
                params("parameters")
            ),
            "db.session.postgres.statements.bind" => format!(
                "BIND     {} -> {}{}",
                field(e, "statement_name"),
                field(e, "portal_name"),
                params("parameters")
            ),
            // The portal is named only when it is not the unnamed one (what most drivers use).
            "db.session.postgres.statements.execute" => format!(
                "EXECUTE  {}{}{}",
                match field(e, "portal_name") {
                    "" => String::new(),
                    portal => format!("(portal {portal}) "),
                },
                field(e, "db_query"),
                params("db_query_parameters")
            ),
            "db.session.postgres.statements.close" => format!(
                "CLOSE    {}{}",
                field(e, "statement_name"),
                field(e, "portal_name")
            ),
            other => format!("{other}  {}", summary(e)),
        };
        lines.push(format!("{clock}  {}", text.trim_end()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_reads_like_a_session() {
        let ev = |v: Value| v;
        let events = [
            ev(
                serde_json::json!({"time":"2026-11-21T10:00:00Z","event":"db.session.start",
                "user":"alice","db_service":"pg","db_user":"app","success":true}),
            ),
            ev(
                serde_json::json!({"time":"2026-11-21T10:00:01Z","event":"db.session.query",
                "db_query":"SELECT 1","db_query_parameters":[]}),
            ),
            ev(serde_json::json!({"time":"2026-11-21T10:00:01Z",
                "event":"db.session.postgres.statements.parse",
                "statement_name":"s1","query":"SELECT $1"})),
            ev(serde_json::json!({"time":"2026-11-21T10:00:01Z",
                "event":"db.session.postgres.statements.execute","portal_name":"",
                "statement_name":"s1","db_query":"SELECT $1","db_query_parameters":["42"]})),
            ev(serde_json::json!({"time":"2026-11-21T10:00:01Z",
                "event":"db.session.postgres.statements.execute","portal_name":"c1",
                "db_query":"SELECT $1","db_query_parameters":["43"]})),
            ev(serde_json::json!({"time":"2026-11-21T10:00:01Z",
                "event":"db.session.mysql.statements.execute","statement_id":7,
                "db_query":"SELECT ?","parameters":["NULL"]})),
            ev(
                serde_json::json!({"time":"2026-11-21T10:00:02Z","event":"db.session.end",
                "reason":"client disconnected"}),
            ),
        ];
        let t = transcript("s1", &events).join("\n");
        assert!(t.contains("User:     alice"), "{t}");
        assert!(t.contains("10:00:00Z  START"), "{t}");
        assert!(t.contains("QUERY    SELECT 1\n"), "{t}");
        assert!(t.contains("PARSE    s1 SELECT $1\n"), "{t}");
        assert!(t.contains("EXECUTE  SELECT $1  [\"42\"]\n"), "{t}");
        assert!(
            t.contains("EXECUTE  (portal c1) SELECT $1  [\"43\"]\n"),
            "{t}"
        );
        assert!(t.contains("EXECUTE  #7 SELECT ?  [\"NULL\"]\n"), "{t}");
        assert!(t.contains("END      client disconnected"), "{t}");
        assert_eq!(enc("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(short("SELECT\n  1", 80), "SELECT 1");
    }
}
