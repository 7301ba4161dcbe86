//! Where auth writes audit events: its own (logins) and those agents send, deduplicated by
//! `uid` so a batch re-sent after a lost answer is stored once, into every configured sink.
//!
//! Events arrive as JSON text and are stored as that text: auth reads only `uid` and `event`
//! from each (to deduplicate and to refuse junk), never builds a tree of values.
//!
//! One writer task owns the sinks. Callers hand it batches; it groups whatever is queued
//! into one write per sink (group commit), writes to every sink at once, and acknowledges a
//! batch only once every sink has it. Each sink has its own dedup window, updated only after
//! that sink stored the lines, so a retry after a partial failure fills the sink that missed
//! the events without duplicating them in the others. Newly stored lines are broadcast to
//! `GET /v1/events/export?follow=true` readers.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::sink::{self, Sink, SinkOptions};
use portcullis_audit::{Page, Query};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::AuditConfig;
use crate::error::{AuthError, Result};
use crate::server::AuthServer;

/// How many recent event ids are remembered for deduplication (per sink).
pub const DEDUP_WINDOW: usize = 200_000;
/// Largest batch accepted.
pub const MAX_BATCH: usize = 10_000;
/// Most lines the writer groups into one write.
const GROUP_LINES: usize = 20_000;
/// Most bytes of lines the writer groups into one write (each sink gets a copy of the new
/// ones): many small requests of large events must not add up to a huge round.
const GROUP_BYTES: usize = 8 * 1024 * 1024;
/// Batches queued for the writer before callers wait.
const QUEUE: usize = 1024;
/// Most of auth's own event lines kept for retrying while a sink is failing.
const MAX_RETRY: usize = 100_000;
/// Newly written lines buffered for each export follower; one that falls further behind is
/// cut off (its stream ends and it resumes with `since`).
pub const FOLLOW_BUFFER: usize = 16_384;

/// The dedup key of a uid: the UUID's 128 bits, or a hash for other strings.
fn uid_key(uid: &str) -> u128 {
    match uuid::Uuid::parse_str(uid) {
        Ok(u) => u.as_u128(),
        Err(_) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            uid.hash(&mut h);
            u128::from(h.finish()) | (1u128 << 127)
        }
    }
}

/// How much of the newest log files is read at start to remember recent uids.
pub const DEDUP_SCAN_BYTES: u64 = 128 * 1024 * 1024;

/// The uid keys of the last [`DEDUP_WINDOW`] events in the daily files under `dir`, oldest
/// first (reading at most [`DEDUP_SCAN_BYTES`] from the end).
fn recent_uids(dir: &Path) -> std::io::Result<Vec<u128>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "log")
                && p.file_name().is_some_and(|n| n != "events.log")
        })
        .collect();
    files.sort();
    let mut budget = DEDUP_SCAN_BYTES;
    let mut chunks: Vec<Vec<u128>> = Vec::new();
    let mut total = 0;
    for path in files.iter().rev() {
        if budget == 0 || total >= DEDUP_WINDOW {
            break;
        }
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let start = len.saturating_sub(budget);
        budget -= len - start;
        f.seek(SeekFrom::Start(start))?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        let mut keys = Vec::new();
        let mut lines = data.split(|&b| b == b'\n');
        if start > 0 {
            lines.next(); // a partial line
        }
        for line in lines.filter(|l| !l.is_empty()) {
            let head = std::str::from_utf8(line)
                .ok()
                .and_then(|l| portcullis_audit::event_head(l).ok());
            if let Some(head) = head {
                keys.push(uid_key(&head.uid));
            }
        }
        total += keys.len();
        chunks.push(keys);
    }
    let mut out: Vec<u128> = chunks.into_iter().rev().flatten().collect();
    if out.len() > DEDUP_WINDOW {
        out.drain(..out.len() - DEDUP_WINDOW);
    }
    Ok(out)
}

/// A bounded set of recently stored uids.
#[derive(Default)]
struct Dedup {
    // Seeded per process and much cheaper than SipHash; each event costs one insert.
    set: HashSet<u128, foldhash::fast::RandomState>,
    order: VecDeque<u128>,
}

impl Dedup {
    /// Remembers `key`; `false` if it was already there. The writer inserts a round's keys
    /// before its sink has them and takes them back with [`Dedup::rollback`] if the write
    /// fails, so a batch needs one set lookup per event, which also finds uids repeated
    /// inside it.
    fn insert(&mut self, key: u128) -> bool {
        let new = self.set.insert(key);
        if new {
            self.order.push_back(key);
        }
        new
    }

    /// Forgets the keys inserted last (in the order inserted): their write failed.
    fn rollback(&mut self, keys: &[u128]) {
        for key in keys.iter().rev() {
            if self.order.back() == Some(key) {
                self.order.pop_back();
                self.set.remove(key);
            }
        }
    }

    /// Forgets the oldest keys beyond [`DEDUP_WINDOW`].
    fn trim(&mut self) {
        while self.order.len() > DEDUP_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// Checked event lines for the writer: their text in one buffer (each line ends in `\n`)
/// and, per line, its dedup key and where it is.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    lines: Vec<Line>,
}

#[derive(Clone, Copy)]
struct Line {
    key: u128,
    start: usize,
    /// Just past the line's `\n`.
    end: usize,
}

impl Batch {
    fn with_capacity(bytes: usize, lines: usize) -> Self {
        Self {
            text: Vec::with_capacity(bytes),
            lines: Vec::with_capacity(lines),
        }
    }

    /// One line of auth's own.
    fn one(key: u128, line: &str) -> Self {
        let mut batch = Self::default();
        batch.push(key, line.as_bytes());
        batch
    }

    fn push(&mut self, key: u128, line: &[u8]) {
        let start = self.text.len();
        self.text.extend_from_slice(line);
        self.text.push(b'\n');
        self.lines.push(Line {
            key,
            start,
            end: self.text.len(),
        });
    }

    /// A line's text, with its `\n`.
    fn text_of(&self, line: &Line) -> &[u8] {
        self.text.get(line.start..line.end).unwrap_or_default()
    }

    /// Events as the JSON API sends them (each already valid JSON).
    fn from_events(events: &[Box<RawValue>]) -> Result<Self> {
        let bytes = events.iter().map(|e| e.get().len() + 1).sum();
        let mut batch = Self::with_capacity(bytes, events.len());
        for e in events {
            let (key, line) = check_event(e.get())?;
            batch.push(key, line.as_bytes());
        }
        Ok(batch)
    }

    /// JSON lines as agents send them (`Content-Type: application/x-ndjson`): every line
    /// is checked, blank lines are skipped, a trailing `\r` is dropped.
    fn from_ndjson(body: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(body)
            .map_err(|e| AuthError::BadRequest(format!("the events are not UTF-8 text ({e})")))?;
        let mut batch = Self::with_capacity(body.len() + 1, body.len() / 256 + 1);
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim_ascii().is_empty() {
                continue;
            }
            if batch.lines.len() == MAX_BATCH {
                return Err(AuthError::BadRequest(format!(
                    "at most {MAX_BATCH} events per batch"
                )));
            }
            let (key, line) = check_event(line).map_err(|e| match e {
                AuthError::BadRequest(m) => AuthError::BadRequest(format!("line {}: {m}", i + 1)),
                other => other,
            })?;
            batch.push(key, line.as_bytes());
        }
        Ok(batch)
    }

    /// Appends `other`'s lines.
    fn extend(&mut self, other: &Batch, lines: impl Iterator<Item = Line>) {
        for l in lines {
            self.push(
                l.key,
                other.text_of(&l).strip_suffix(b"\n").unwrap_or_default(),
            );
        }
    }
}

/// Checks one event's text — a JSON object with exactly one non-empty string field `uid`
/// and one `event`, that every reader of the log can parse — and returns its dedup key and
/// the line to store (re-serialised if its whitespace held a line break, so one event is
/// always one line). One pass over the text that builds no values
/// ([`portcullis_audit::event_head`]).
fn check_event(text: &str) -> Result<(u128, Cow<'_, str>)> {
    let head =
        portcullis_audit::event_head(text).map_err(|e| AuthError::BadRequest(e.to_string()))?;
    let key = uid_key(&head.uid);
    if head.line_break {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| AuthError::BadRequest(format!("every event must be JSON ({e})")))?;
        return Ok((key, Cow::Owned(v.to_string())));
    }
    Ok((key, Cow::Borrowed(text)))
}

struct Job {
    batch: Batch,
    ack: Option<oneshot::Sender<std::result::Result<usize, String>>>,
}

/// The audit writer.
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    sinks: Vec<Arc<dyn Sink>>,
    live: broadcast::Sender<Arc<str>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| s.describe()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AuditLog {
    /// Writes JSON lines under `dir`, fsyncing every batch. Needs a tokio runtime.
    pub fn open(dir: &Path) -> std::io::Result<Arc<Self>> {
        let sink = portcullis_audit::FileSink::new(dir)?;
        Ok(Self::with_sinks(
            vec![Arc::new(sink)],
            Duration::from_secs(1),
        ))
    }

    /// Opens the sinks of `config`; relative file paths are under `data_dir`, and no sinks
    /// means `<default_dir>`. Needs a tokio runtime.
    pub fn from_config(
        config: &AuditConfig,
        data_dir: &Path,
        default_dir: &Path,
    ) -> std::result::Result<Arc<Self>, String> {
        let options = SinkOptions {
            fsync: config.fsync,
            fsync_interval: config.fsync_interval.0,
            retention: Some(config.retention.0).filter(|r| !r.is_zero()),
        };
        let mut sinks = Vec::new();
        if config.sinks.is_empty() {
            let url = format!("file://{}", default_dir.display());
            sinks.push(sink::open(&url, data_dir, options).map_err(|e| e.to_string())?);
        }
        for url in &config.sinks {
            sinks.push(sink::open(url, data_dir, options).map_err(|e| e.to_string())?);
        }
        Ok(Self::with_sinks(sinks, config.fsync_interval.0))
    }

    /// Writes to `sinks` (searches read the first). Needs a tokio runtime.
    pub fn with_sinks(sinks: Vec<Arc<dyn Sink>>, flush_every: Duration) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (live, _) = broadcast::channel(FOLLOW_BUFFER);
        tokio::spawn(writer(rx, sinks.clone(), live.clone(), flush_every));
        Arc::new(Self { tx, sinks, live })
    }

    /// Descriptions of the sinks, for logs.
    pub fn describe(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.describe()).collect()
    }

    /// Stores the events not seen before in every sink; returns how many were new.
    pub async fn write(&self, events: &[Box<RawValue>]) -> Result<usize> {
        self.store(Batch::from_events(events)?).await
    }

    /// Stores the events of JSON lines (each line one event) not seen before in every
    /// sink; returns how many were new. Every line is checked first: one that is not an
    /// event refuses the whole batch.
    pub async fn write_ndjson(&self, body: &[u8]) -> Result<usize> {
        self.store(Batch::from_ndjson(body)?).await
    }

    async fn store(&self, batch: Batch) -> Result<usize> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Job {
                batch,
                ack: Some(ack),
            })
            .await
            .map_err(|_| AuthError::Internal("the audit writer has stopped".into()))?;
        done.await
            .map_err(|_| AuthError::Internal("the audit writer has stopped".into()))?
            .map_err(|e| AuthError::Internal(format!("writing the audit log: {e}")))
    }

    /// Returns once every event emitted before the call is stored (or has failed and waits
    /// for a retry): auth's own events are queued without waiting, and a reader that must
    /// see them — a test, a shutdown — waits here first.
    pub async fn settled(&self) -> Result<()> {
        self.store(Batch::default()).await.map(|_| ())
    }

    /// Queues lines without waiting for them to be stored.
    fn submit(&self, batch: Batch) {
        match self.tx.try_send(Job { batch, ack: None }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(job)) => {
                let tx = self.tx.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => {
                        h.spawn(async move {
                            if tx.send(job).await.is_err() {
                                tracing::error!("audit event lost: the audit writer has stopped");
                            }
                        });
                    }
                    Err(_) => tracing::error!("audit event lost: the audit queue is full"),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit event lost: the audit writer has stopped");
            }
        }
    }

    /// Whether [`AuditLog::append_fresh`] works: a single sink that can take JSON lines as
    /// they are (the default file sink). A database agent in the same process then hands
    /// over what its sessions spooled in one write per shipping round, instead of as a batch
    /// that is parsed, deduplicated and re-joined.
    pub fn can_append_fresh(&self) -> bool {
        matches!(self.sinks.as_slice(), [only] if only.append_ndjson(&[]).is_some())
    }

    /// Stores JSON lines (each ending in `\n`) of new events — made in this process and
    /// never stored before, so they skip deduplication — as they are, in the caller's thread
    /// (it blocks on the disk), fsynced per the sink's policy: one write of all of `parts`
    /// (pieces of one run of lines, such as two spool segments' ends). Followers see each
    /// line.
    pub fn append_fresh(&self, parts: &[&[u8]]) -> std::io::Result<()> {
        let [sink] = self.sinks.as_slice() else {
            return Err(std::io::Error::other(
                "the audit log has several sinks; events must go through the writer",
            ));
        };
        sink.append_ndjson(parts).unwrap_or_else(|| {
            Err(std::io::Error::other(
                "the audit sink cannot store events directly",
            ))
        })?;
        for lines in parts {
            broadcast_lines(&self.live, lines);
        }
        Ok(())
    }

    /// Searches the first sink.
    pub async fn search(&self, query: &Query) -> Result<Page> {
        let Some(sink) = self.sinks.first() else {
            return Ok(Page::default());
        };
        sink.search(query).await.map_err(|e| {
            if e.0.starts_with("cursor:") {
                AuthError::BadRequest(e.0)
            } else {
                AuthError::Internal(format!("searching the audit log: {e}"))
            }
        })
    }

    /// Lines as they are stored, from now on.
    pub fn follow(&self) -> broadcast::Receiver<Arc<str>> {
        self.live.subscribe()
    }
}

/// Sends each of `lines` (JSON lines) to the export followers, if there are any.
fn broadcast_lines(live: &broadcast::Sender<Arc<str>>, lines: &[u8]) {
    if live.receiver_count() == 0 {
        return;
    }
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let _ = live.send(Arc::from(String::from_utf8_lossy(line)));
    }
}

async fn writer(
    mut rx: mpsc::Receiver<Job>,
    sinks: Vec<Arc<dyn Sink>>,
    live: broadcast::Sender<Arc<str>>,
    flush_every: Duration,
) {
    // Remember what each sink already holds: a batch auth wrote just before it died is sent
    // again by its agent and must not be stored twice.
    let mut seen: Vec<Dedup> = sinks
        .iter()
        .map(|s| {
            let mut d = Dedup::default();
            if let Some(dir) = s.local_dir() {
                match recent_uids(&dir) {
                    Ok(keys) => keys.into_iter().for_each(|k| {
                        d.insert(k);
                    }),
                    Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "could not read recent audit events for deduplication"),
                }
            }
            d.trim();
            d
        })
        .collect();
    let mut tick = tokio::time::interval(flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    // Lines nobody waits for (auth's own events) that some sink failed to store.
    let mut retry = Batch::default();
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            _ = tick.tick() => {
                if dirty {
                    for s in &sinks {
                        if let Err(e) = s.flush().await {
                            tracing::error!(error = %e, "audit fsync failed");
                        }
                    }
                    dirty = false;
                }
                if retry.lines.is_empty() {
                    continue;
                }
                // Auth's own events a sink refused earlier: try again.
                Some(Job { batch: std::mem::take(&mut retry), ack: None })
            }
        };
        let Some(first) = first else { break };
        let mut jobs = vec![first];
        let mut total = jobs.iter().map(|j| j.batch.lines.len()).sum::<usize>();
        let mut bytes: usize = jobs.iter().map(|j| j.batch.text.len()).sum();
        while total < GROUP_LINES && bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(j) => {
                    total += j.batch.lines.len();
                    bytes += j.batch.text.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // Per job, its events the first sink did not have: what is new (for the answer).
        let mut new_per_job = vec![0usize; jobs.len()];
        // Per sink: the lines it does not have yet (each uid once), and their keys, which
        // its dedup window holds from now on unless the write fails.
        let mut set = tokio::task::JoinSet::new();
        let mut inserted: Vec<Vec<u128>> = Vec::with_capacity(sinks.len());
        let mut first_text: Option<Arc<Vec<u8>>> = None;
        for (i, (sink, sink_seen)) in sinks.iter().zip(seen.iter_mut()).enumerate() {
            let mut keys = Vec::with_capacity(total);
            let mut text = Vec::with_capacity(bytes);
            for (j, job) in jobs.iter().enumerate() {
                for line in &job.batch.lines {
                    if sink_seen.insert(line.key) {
                        keys.push(line.key);
                        text.extend_from_slice(job.batch.text_of(line));
                        if i == 0 {
                            if let Some(n) = new_per_job.get_mut(j) {
                                *n += 1;
                            }
                        }
                    }
                }
            }
            inserted.push(keys);
            let text = Arc::new(text);
            if i == 0 {
                first_text = Some(Arc::clone(&text));
            }
            if text.is_empty() {
                continue;
            }
            let sink = Arc::clone(sink);
            set.spawn(async move { (i, sink.write_batch(text).await) });
        }
        let mut failed: Option<String> = None;
        let mut ok = vec![true; sinks.len()];
        while let Some(res) = set.join_next().await {
            match res {
                Ok((_, Ok(()))) => {}
                Ok((i, Err(e))) => {
                    tracing::error!(sink = %sinks.get(i).map(|s| s.describe()).unwrap_or_default(), error = %e, "audit write failed");
                    if let Some(f) = ok.get_mut(i) {
                        *f = false;
                    }
                    failed.get_or_insert(e.to_string());
                }
                Err(e) => {
                    ok.iter_mut().for_each(|f| *f = false);
                    failed.get_or_insert(format!("audit writer: {e}"));
                }
            }
        }
        dirty = true;
        for ((d, keys), stored) in seen.iter_mut().zip(&inserted).zip(&ok) {
            if *stored {
                d.trim();
            } else {
                // A retry must reach this sink again.
                d.rollback(keys);
            }
        }
        if let (None, Some(text)) = (&failed, &first_text) {
            broadcast_lines(&live, text);
        }
        for (job, n) in jobs.into_iter().zip(new_per_job) {
            match (&failed, job.ack) {
                (None, Some(ack)) => {
                    let _ = ack.send(Ok(n));
                }
                (Some(e), Some(ack)) => {
                    let _ = ack.send(Err(e.clone()));
                }
                (Some(e), None) => {
                    let room = MAX_RETRY.saturating_sub(retry.lines.len());
                    let lost = job.batch.lines.len().saturating_sub(room);
                    if lost > 0 {
                        tracing::error!(error = %e, lost, "audit events lost: the retry queue is full");
                    } else {
                        tracing::warn!(error = %e, "audit events not stored yet; retrying");
                    }
                    retry.extend(&job.batch, job.batch.lines.iter().copied().take(room));
                }
                (None, None) => {}
            }
        }
    }
}

impl AuthServer {
    /// Starts writing audit events to the configured sinks (`auth_service.audit`); with
    /// none configured, JSON lines under `dir` (e.g. `<data_dir>/log`). Relative `file://`
    /// paths are under `dir`'s parent (the data directory). Needs a tokio runtime.
    pub fn enable_audit(&self, dir: &Path) -> std::io::Result<()> {
        let data_dir = dir.parent().unwrap_or(dir);
        let log = AuditLog::from_config(&self.config.audit, data_dir, dir)
            .map_err(std::io::Error::other)?;
        tracing::info!(sinks = ?log.describe(), "audit log");
        let _ = self.audit.set(log);
        Ok(())
    }

    /// Uses `log` for audit events (tests, embedding).
    pub fn set_audit_log(&self, log: Arc<AuditLog>) {
        let _ = self.audit.set(log);
    }

    /// The audit log, if enabled.
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.audit.get()
    }

    /// Stores a batch of events from a service, returning once every sink has it.
    pub async fn record_events(&self, events: &[Box<RawValue>]) -> Result<usize> {
        if events.len() > MAX_BATCH {
            return Err(AuthError::BadRequest(format!(
                "at most {MAX_BATCH} events per batch"
            )));
        }
        match self.audit.get() {
            Some(log) => log.write(events).await,
            None => Ok(0),
        }
    }

    /// Stores JSON lines of events from a service (`application/x-ndjson`), returning once
    /// every sink has them; how many were new.
    pub async fn record_ndjson(&self, body: &[u8]) -> Result<usize> {
        match self.audit.get() {
            Some(log) => log.write_ndjson(body).await,
            None => Ok(0),
        }
    }

    /// Records one of auth's own events without waiting; failures are logged.
    pub fn emit(&self, event: portcullis_audit::Event) {
        let Some(log) = self.audit.get() else { return };
        let key = event.uid().as_u128();
        log.submit(Batch::one(key, &event.into_json()));
    }
}

/// RFC 3339 text of `t`, as every time in an event is written.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The `identity` of a `cert.create` event for a user certificate, in Teleport's field names.
pub(crate) fn user_identity_fields(id: &portcullis_core::identity::Identity) -> serde_json::Value {
    let mut v = serde_json::Map::new();
    v.insert("user".into(), id.username.clone().into());
    v.insert("roles".into(), serde_json::json!(id.roles));
    v.insert("traits".into(), serde_json::json!(id.traits));
    v.insert("expires".into(), rfc3339(id.expires).into());
    v.insert("mfa_verified".into(), id.mfa_verified.into());
    if let Some(ip) = id.login_ip {
        v.insert("client_ip".into(), ip.to_string().into());
    }
    if let Some(r) = &id.route {
        v.insert(
            "route_to_database".into(),
            serde_json::json!({
                "service_name": r.service_name,
                "protocol": r.protocol.as_str(),
                "username": r.db_user,
                "database": r.db_name,
            }),
        );
    }
    serde_json::Value::Object(v)
}

/// The `identity` of a `cert.create` event for a host certificate.
pub(crate) fn host_identity_fields(
    host: &portcullis_core::identity::HostIdentity,
) -> serde_json::Value {
    serde_json::json!({
        "host_id": host.host_id,
        "node_name": host.node_name,
        "system_roles": host.system_roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        "expires": rfc3339(host.expires),
    })
}

/// Who a service is, as events name it: `node@host id`, as the API names callers.
pub(crate) fn host_actor(host: &portcullis_core::identity::HostIdentity) -> String {
    format!("{}@{}", host.node_name, host.host_id)
}

impl AuthServer {
    /// A new event of `kind` in this cluster.
    pub(crate) fn event(&self, kind: portcullis_audit::EventKind) -> portcullis_audit::Event {
        portcullis_audit::Event::new(kind, &self.cluster_name)
    }

    /// Records `event` with `success` and, on failure, `error` from `result`.
    pub(crate) fn emit_outcome<T>(&self, event: portcullis_audit::Event, result: &Result<T>) {
        self.emit(match result {
            Ok(_) => event.with("success", true),
            Err(e) => event.with("success", false).with("error", e.to_string()),
        });
    }

    /// Records a certificate issued to `actor`'s request.
    pub(crate) fn emit_cert(&self, actor: &str, cert_type: &str, identity: serde_json::Value) {
        self.emit(
            self.event(portcullis_audit::EventKind::CertCreate)
                .with("user", actor)
                .with("cert_type", cert_type)
                .with("identity", identity),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn fresh_appends_need_exactly_one_file_sink_and_reach_followers() {
        let one = tempfile::tempdir().unwrap();
        let log = AuditLog::open(one.path()).unwrap();
        assert!(log.can_append_fresh());
        let mut follow = log.follow();
        let line = r#"{"uid":"00000000-0000-4000-8000-000000000001","time":"2026-11-21T00:00:00Z","event":"db.session.query"}"#;
        let two_lines = format!("{line}\n{}\n", line.replace("01\"", "02\""));
        log.append_fresh(&[two_lines.as_bytes()]).unwrap();
        assert_eq!(&*follow.recv().await.unwrap(), line);
        assert!(follow.recv().await.unwrap().contains("-000000000002"));
        let stored = std::fs::read_to_string(one.path().join("events.log")).unwrap();
        assert_eq!(stored, two_lines);

        let two = tempfile::tempdir().unwrap();
        let sinks: Vec<Arc<dyn Sink>> = vec![
            Arc::new(portcullis_audit::FileSink::new(&two.path().join("a")).unwrap()),
            Arc::new(portcullis_audit::FileSink::new(&two.path().join("b")).unwrap()),
        ];
        let both = AuditLog::with_sinks(sinks, Duration::from_secs(1));
        // Several sinks: every event must reach all of them through the writer.
        assert!(!both.can_append_fresh());
        assert!(both.append_fresh(&[two_lines.as_bytes()]).is_err());
    }

    #[tokio::test]
    async fn dedups_writes_every_sink_and_broadcasts_new_lines() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let log = AuditLog::with_sinks(
            vec![
                Arc::new(portcullis_audit::FileSink::new(d1.path()).unwrap()),
                Arc::new(portcullis_audit::FileSink::new(d2.path()).unwrap()),
            ],
            Duration::from_secs(1),
        );
        let mut follow = log.follow();
        let e1 = r#"{"uid":"11111111-1111-4111-8111-111111111111","time":"2026-11-21T10:00:00Z","event":"x"}"#;
        let e2 = r#"{"uid":"u2","time":"2026-11-21T10:00:01Z","event":"y"}"#;
        assert_eq!(log.write(&[raw(e1), raw(e2), raw(e1)]).await.unwrap(), 2);
        assert_eq!(log.write(&[raw(e1)]).await.unwrap(), 0);
        for d in [&d1, &d2] {
            let text = std::fs::read_to_string(d.path().join("events.log")).unwrap();
            assert_eq!(text, format!("{e1}\n{e2}\n"));
        }
        assert_eq!(&*follow.recv().await.unwrap(), e1);
        assert_eq!(&*follow.recv().await.unwrap(), e2);
        assert!(follow.try_recv().is_err());
        let page = log.search(&Query::default()).await.unwrap();
        assert_eq!(page.events, [e2, e1]);
        assert!(log.write(&[raw(r#"{"uid":""}"#)]).await.is_err());
    }

    /// A sink that fails its first `fail` writes, then stores lines in memory.
    #[derive(Debug, Default)]
    struct Flaky {
        fail: std::sync::atomic::AtomicUsize,
        lines: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Sink for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        async fn write_batch(&self, lines: Arc<Vec<u8>>) -> portcullis_audit::sink::SinkResult<()> {
            use std::sync::atomic::Ordering;
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(portcullis_audit::SinkError("down".into()));
            }
            let text = String::from_utf8(lines.to_vec()).unwrap();
            self.lines
                .lock()
                .unwrap()
                .extend(text.lines().map(str::to_owned));
            Ok(())
        }
        async fn search(&self, _: &Query) -> portcullis_audit::sink::SinkResult<Page> {
            Ok(Page::default())
        }
    }

    #[tokio::test]
    async fn a_batch_is_acknowledged_only_when_every_sink_has_it_and_retries_fill_the_gap() {
        let d = tempfile::tempdir().unwrap();
        let flaky = Arc::new(Flaky {
            fail: 1.into(),
            ..Flaky::default()
        });
        let log = AuditLog::with_sinks(
            vec![
                Arc::new(portcullis_audit::FileSink::new(d.path()).unwrap()),
                flaky.clone(),
            ],
            Duration::from_millis(50),
        );
        let e1 = r#"{"uid":"u1","time":"2026-11-21T10:00:00Z","event":"x"}"#;
        // The second sink is down: the batch is refused, so the agent keeps it...
        assert!(log.write(&[raw(e1)]).await.is_err());
        // ...and re-sends it: the second sink gets it, the first does not get it twice.
        assert_eq!(log.write(&[raw(e1)]).await.unwrap(), 0);
        assert_eq!(*flaky.lines.lock().unwrap(), [e1]);
        let text = std::fs::read_to_string(d.path().join("events.log")).unwrap();
        assert_eq!(text, format!("{e1}\n"));

        // Auth's own events (nobody waits for them) are retried until every sink has them.
        flaky.fail.store(1, std::sync::atomic::Ordering::SeqCst);
        let own = portcullis_audit::Event::new(portcullis_audit::EventKind::UserLogin, "c");
        let uid = own.uid().to_string();
        let server_side = log.clone();
        server_side.submit(Batch::one(own.uid().as_u128(), &own.into_json()));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !flaky.lines.lock().unwrap().iter().any(|l| l.contains(&uid)) {
            assert!(std::time::Instant::now() < deadline, "never retried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text = std::fs::read_to_string(d.path().join("events.log")).unwrap();
        assert_eq!(text.matches(&uid).count(), 1);
    }

    fn bad_request(r: Result<Batch>) -> String {
        match r {
            Err(AuthError::BadRequest(m)) => m,
            Err(e) => panic!("expected a bad request, got {e}"),
            Ok(_) => panic!("expected a bad request, got a batch"),
        }
    }

    #[test]
    fn json_lines_are_checked_line_by_line() {
        let e1 = r#"{"uid":"11111111-1111-4111-8111-111111111111","time":"2026-11-21T10:00:00Z","event":"x","q":"a\nb"}"#;
        let e2 = r#"{"uid":"u2","event":"y"}"#;
        // Blank lines and CRLF endings are fine; the stored lines end in a bare \n.
        let body = format!("{e1}\r\n\n  \n{e2}");
        let b = Batch::from_ndjson(body.as_bytes()).unwrap();
        assert_eq!(b.text, format!("{e1}\n{e2}\n").into_bytes());
        assert_eq!(b.lines.len(), 2);
        assert_eq!(
            b.lines.first().map(|l| l.key),
            Some(0x11111111_1111_4111_8111_111111111111)
        );
        assert_eq!(b.lines.get(1).map(|l| l.key), Some(uid_key("u2")));
        assert!(Batch::from_ndjson(b"").unwrap().lines.is_empty());

        // A carriage return inside an event's whitespace: stored re-serialised, on one line.
        let b = Batch::from_ndjson(b"{\"uid\":\"u3\",\r\"event\":\"z\"}\n").unwrap();
        assert_eq!(b.text, b"{\"event\":\"z\",\"uid\":\"u3\"}\n".to_vec());

        // Junk after an event, a line that is not an object (serde would read a struct from
        // an array), a repeated uid, an `event` only inside another value, missing or empty
        // fields, text that is not UTF-8: the batch is refused, naming the line.
        let junk = format!("{e2}\n{}", &e1[..e1.len() - 1]);
        assert!(bad_request(Batch::from_ndjson(junk.as_bytes())).starts_with("line 2: "));
        for line in [
            "[1,2]",
            r#"["u1","x"]"#,
            "42",
            r#"{"uid":"u","event":"x","uid":"v"}"#,
            r#"{"uid":"u","o":{"event":"x"}}"#,
            r#"{"uid":"11111111-1111-4111-8111-111111111111","time":"t","o":{"event":"x"}}"#,
            r#"{"uid":"u"}"#,
            r#"{"uid":"","event":"x"}"#,
            r#"{"uid":7,"event":"x"}"#,
        ] {
            let m = bad_request(Batch::from_ndjson(line.as_bytes()));
            assert!(m.starts_with("line 1: "), "{line}: {m}");
        }
        assert!(bad_request(Batch::from_ndjson(b"{\"uid\":\"\xff\"}")).contains("UTF-8"));

        // At most MAX_BATCH events.
        let many = format!("{e2}\n").repeat(MAX_BATCH + 1);
        assert!(bad_request(Batch::from_ndjson(many.as_bytes())).contains("at most"));
    }

    /// Mangled bodies (bytes flipped, lines cut and joined, quotes, braces, CR, invalid UTF-8)
    /// never panic, and whatever is accepted is stored as one valid JSON object per line.
    #[test]
    fn mangled_json_lines_never_panic_and_store_only_valid_lines() {
        let good = concat!(
            r#"{"uid":"11111111-1111-4111-8111-111111111111","time":"2026-11-21T10:00:00Z","event":"db.session.query","db_query":"select '\"x\"'","db_query_parameters":["1",null]}"#,
            "\n",
            r#"{"uid":"u2","event":"y","n":-1.5e3,"o":{"a":[true,false]}}"#,
            "\r\n"
        )
        .as_bytes()
        .to_vec();
        let specials = [
            b'\n', b'\r', b'"', b'\\', b'{', b'}', b'[', b',', b':', 0xff, 0xc3, 0,
        ];
        // A fixed xorshift sequence: the same cases every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut body = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % (body.len() + 1);
                match next() % 4 {
                    0 if at < body.len() => {
                        body.remove(at);
                    }
                    1 => body.insert(at, specials[(next() as usize) % specials.len()]),
                    2 => body.truncate(at),
                    _ if at < body.len() => {
                        if let Some(b) = body.get_mut(at) {
                            *b ^= 1 << (next() % 8);
                        }
                    }
                    _ => {}
                }
            }
            if let Ok(batch) = Batch::from_ndjson(&body) {
                accepted += 1;
                for line in &batch.lines {
                    let text = batch.text_of(line);
                    let (last, json) = text.split_last().unwrap();
                    assert_eq!(*last, b'\n');
                    assert!(!json.contains(&b'\n') && !json.contains(&b'\r'));
                    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
                    assert!(v["uid"].is_string() && v["event"].is_string(), "{v}");
                }
            }
        }
        // Some mutations keep the body valid (a flipped bit inside a string, say).
        assert!(accepted > 0);
    }

    #[tokio::test]
    async fn json_lines_are_deduplicated_like_batches() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path()).unwrap();
        let e1 = r#"{"uid":"11111111-1111-4111-8111-111111111111","time":"2026-11-21T10:00:00Z","event":"x"}"#;
        let e2 = r#"{"uid":"u2","event":"y"}"#;
        let body = format!("{e1}\n{e2}\n{e1}\n");
        assert_eq!(log.write_ndjson(body.as_bytes()).await.unwrap(), 2);
        assert_eq!(log.write(&[raw(e2)]).await.unwrap(), 0);
        assert_eq!(log.write_ndjson(body.as_bytes()).await.unwrap(), 0);
        assert!(log.write_ndjson(b"{\"uid\":\"u9\"}\n").await.is_err());
        let text = std::fs::read_to_string(d.path().join("events.log")).unwrap();
        assert_eq!(text, format!("{e1}\n{e2}\n"));
    }

    #[test]
    fn a_failed_write_takes_its_keys_back() {
        let mut d = Dedup::default();
        assert!(d.insert(1));
        d.trim();
        assert!(d.insert(2) && d.insert(3) && !d.insert(2));
        d.rollback(&[2, 3]);
        assert!(d.set.contains(&1) && !d.set.contains(&2) && !d.set.contains(&3));
        assert_eq!(d.order, [1]);
        for k in 10..(10 + DEDUP_WINDOW as u128 + 5) {
            d.insert(k);
        }
        d.trim();
        assert_eq!(d.order.len(), DEDUP_WINDOW);
        assert!(!d.set.contains(&1) && d.set.contains(&(9 + DEDUP_WINDOW as u128 + 5)));
    }

    #[tokio::test]
    async fn a_batch_sent_again_after_a_restart_is_stored_once() {
        let d = tempfile::tempdir().unwrap();
        let batch: Vec<Box<RawValue>> = (0..3)
            .map(|i| {
                RawValue::from_string(format!(
                    "{{\"uid\":\"00000000-0000-4000-8000-00000000000{i}\",\"event\":\"x\"}}"
                ))
                .unwrap()
            })
            .collect();
        assert_eq!(
            AuditLog::open(d.path())
                .unwrap()
                .write(&batch)
                .await
                .unwrap(),
            3
        );
        // auth restarted (or killed after writing, before answering): the agent re-sends.
        let log = AuditLog::open(d.path()).unwrap();
        assert_eq!(log.write(&batch).await.unwrap(), 0);
    }
}
