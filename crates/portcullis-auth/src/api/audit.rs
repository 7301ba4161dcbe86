//! Audit search and export: `GET /v1/events` (filtered, paged) and `GET /v1/events/export`
//! (JSON lines, streamed; with `follow`, new events as they are stored).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_api::{ErrorBody, EventsPage, EventsQuery, ExportQuery};
use portcullis_audit::search::{self, parse_time, Head};
use portcullis_audit::{Order, Position, Query};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};

use super::caller::Caller;
use super::error::{ApiError, ApiQuery};
use super::AppState;
use crate::audit::AuditLog;
use crate::error::AuthError;

/// Events per page while exporting.
const EXPORT_PAGE: usize = 1000;

/// The audit log; `None` on an auth server that keeps none (embedded, tests): searches
/// then find nothing, as `POST /v1/events` stores nothing.
fn log(s: &AppState) -> Option<Arc<AuditLog>> {
    s.audit_log().cloned()
}

fn ndjson(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<OffsetDateTime>, AuthError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_time(s, OffsetDateTime::now_utc()))
        .transpose()
        .map_err(|e| AuthError::BadRequest(format!("{name}: {e}")))
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Builds the sink query from the API's.
pub fn to_query(q: EventsQuery) -> Result<Query, AuthError> {
    let order = match q.order.as_deref() {
        None | Some("") | Some("newest") => Order::NewestFirst,
        Some("oldest") => Order::OldestFirst,
        Some(o) => {
            return Err(AuthError::BadRequest(format!(
                "order: {o:?}: use newest or oldest"
            )))
        }
    };
    let after = nonempty(q.cursor)
        .map(|c| Position::from_cursor(&c))
        .transpose()
        .map_err(AuthError::BadRequest)?;
    Ok(Query {
        from: time_param("from", &q.from)?,
        to: time_param("to", &q.to)?,
        user: nonempty(q.user),
        event: nonempty(q.event),
        db: nonempty(q.db),
        sid: nonempty(q.sid),
        contains: nonempty(q.contains),
        limit: q.limit.unwrap_or(search::DEFAULT_LIMIT),
        after,
        order,
    })
}

/// Audit events matching the filters, newest first by default; page with `cursor`.
#[utoipa::path(get, path = "/v1/events", tag = "audit", params(EventsQuery),
    responses((status = 200, body = EventsPage), (status = "4XX", body = ErrorBody)))]
pub async fn search_events(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    caller.require(&s, "event", "list").await?;
    let query = to_query(q)?;
    let Some(log) = log(&s) else {
        return Ok(Json(EventsPage {
            events: Vec::new(),
            next_cursor: None,
        }));
    };
    let page = log.search(&query).await?;
    let events = page
        .events
        .into_iter()
        .filter_map(|l| RawValue::from_string(l).ok())
        .collect();
    Ok(Json(EventsPage {
        events,
        next_cursor: page.next_cursor,
    }))
}

/// Every event since a time, oldest first, as JSON lines (for SIEM shippers). With
/// `follow=true` the stream stays open and carries new events as they are stored; it ends
/// if the reader falls too far behind, and the reader resumes with `since`.
#[utoipa::path(get, path = "/v1/events/export", tag = "audit", params(ExportQuery),
    responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson"),
              (status = "4XX", body = ErrorBody)))]
pub async fn export_events(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    caller.require(&s, "event", "read").await?;
    let since = time_param("since", &q.since)?;
    let Some(log) = log(&s) else {
        return Ok(ndjson(Body::empty()));
    };
    // Subscribe before reading history so nothing stored in between is missed.
    let live = q.follow.then(|| log.follow());
    let followed_from = search::micros(OffsetDateTime::now_utc());
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        if let Err(e) = export(log, since, live, followed_from, tx).await {
            tracing::warn!(error = %e, "audit export ended");
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok(ndjson(Body::from_stream(stream)))
}

/// Writes history then (with `live`) new events into `tx` until the reader goes away.
async fn export(
    log: Arc<AuditLog>,
    since: Option<OffsetDateTime>,
    live: Option<broadcast::Receiver<Arc<str>>>,
    followed_from: i64,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), String> {
    let mut query = Query {
        from: since,
        limit: EXPORT_PAGE,
        order: Order::OldestFirst,
        ..Query::default()
    };
    // Uids sent from history that a follower may see again live.
    let mut recent: HashSet<String> = HashSet::new();
    // History may be long: a few seconds back of the subscription covers any overlap.
    let overlap_from = followed_from - 60_000_000;
    loop {
        let page = log.search(&query).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(page.events.iter().map(|l| l.len() + 1).sum());
        for line in &page.events {
            if live.is_some() {
                if let Some((head, pos)) = Head::parse(line) {
                    if pos.micros >= overlap_from {
                        recent.insert(head.uid.into_owned());
                    }
                }
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        if !buf.is_empty() && tx.send(Bytes::from(buf)).await.is_err() {
            return Ok(());
        }
        match page.next_cursor {
            Some(c) => query.after = Some(Position::from_cursor(&c)?),
            None => break,
        }
    }
    let Some(mut live) = live else { return Ok(()) };
    loop {
        let line = tokio::select! {
            l = live.recv() => l,
            _ = tx.closed() => return Ok(()),
        };
        match line {
            Ok(line) => {
                if !recent.is_empty() {
                    if let Some((head, _)) = Head::parse(&line) {
                        if recent.remove(head.uid.as_ref()) {
                            continue;
                        }
                    }
                }
                let mut b = Vec::with_capacity(line.len() + 1);
                b.extend_from_slice(line.as_bytes());
                b.push(b'\n');
                if tx.send(Bytes::from(b)).await.is_err() {
                    return Ok(());
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                return Err(format!(
                    "follower fell {n} events behind; ending the stream so it resumes with since"
                ));
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}
