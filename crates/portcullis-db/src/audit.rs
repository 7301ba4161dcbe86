//! Shipping audit events to auth, through the disk spool.
//!
//! The guarantee: an event is on local disk (in the [`spool`](crate::spool)) before
//! [`AuditSender::record`] / [`AuditSender::send`] return, and sessions forward a query only
//! after its events are recorded. The shipper delivers what the spool holds oldest first and
//! lets the spool delete a segment only after auth acknowledged every event in it; a batch
//! sent again (after a lost answer, a restart of the agent or of auth) carries the same
//! `uid`s, and auth stores each `uid` once. So a query that reached the database is in the
//! audit log exactly once, whichever process is killed when — unless the spool was full and
//! the policy is `drop_oldest`, which records the loss as an `audit.gap` event.
//!
//! With the default `spool_fsync: interval`, "on local disk" means copied into the spool's
//! memory-mapped segment — in the page cache, which survives the agent being killed — by the
//! session itself, and fsynced within the interval, which bounds what a power loss of the
//! agent's machine can take. With `every_batch`, appends from all sessions are
//! group-committed by a writer task: one fsync for whatever arrived while the previous one
//! ran.
//!
//! When auth runs in the same process ([`Deliver::can_store_fresh`]), the shipper writes the
//! events this process spooled straight into auth's log file, as they are in the spool: one
//! write per [`SHIP_EVERY`] for all sessions, with nothing parsed or copied per event — read
//! where the spool's segments lie in the page cache ([`Spool::mapped_unshipped`]), not
//! copied into a buffer first.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::{Event, EventKind, Lines};
use tokio::sync::{mpsc, oneshot};

use crate::identity::ClientSlot;
pub use crate::spool::{Class, Refused, Spool, Stats, WhenFull};
use crate::spool::{Unshipped, UnshippedPart};

pub use crate::spool::SHIP_EVERY;

/// Append requests waiting for the spool writer before sessions wait.
pub const QUEUE: usize = 65_536;
/// How much one delivery request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most events.
    pub events: usize,
    /// Most bytes (a single larger event still goes, alone).
    pub bytes: usize,
}

/// Requests of JSON lines: auth takes 10,000 events and 8 MiB in one. A shipping round
/// (200 ms of a busy agent's events) fits in one request, so auth writes and fsyncs its log
/// once per round, not once per thousand events.
pub const LINES_REQUEST: RequestLimits = RequestLimits {
    events: 10_000,
    bytes: 6 * 1024 * 1024,
};

/// Requests of JSON (an [`portcullis_api::EventBatch`]), for auth versions from before JSON
/// lines: under their 1 MiB request limit with room for the JSON around the events.
pub const JSON_REQUEST: RequestLimits = RequestLimits {
    events: 1000,
    bytes: 768 * 1024,
};
/// Most requests group-committed with one fsync.
pub const GROUP: usize = 1024;

/// A boxed future, for [`Deliver`].
pub type DeliverFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// Where batches go: auth through the proxy's API, or auth in the same process.
pub trait Deliver: Send + Sync + 'static {
    /// Stores a batch of JSON lines, each one event ending in `\n` (auth deduplicates by
    /// uid, so a retried batch is stored once).
    fn deliver(&self, lines: bytes::Bytes) -> DeliverFuture<'_>;

    /// How much one [`Deliver::deliver`] may carry.
    fn request_limits(&self) -> RequestLimits {
        LINES_REQUEST
    }

    /// Whether [`Deliver::store_fresh`] works: auth's log is in this process and can store
    /// lines as they are.
    fn can_store_fresh(&self) -> bool {
        false
    }

    /// Stores JSON lines (each ending in `\n`) of events this process made and never
    /// delivered — so they need neither checking nor deduplication — in one write of all
    /// of `parts` (the pieces of one run of lines: a segment's end and the next segment's
    /// start), and fsyncs as auth's log is configured to. Blocks on the disk.
    fn store_fresh(&self, _parts: &[&[u8]]) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "this audit delivery cannot store events directly",
        ))
    }
}

/// Delivery over the API (`POST /v1/events` through the proxy).
struct ApiDelivery {
    api: Arc<ClientSlot>,
    /// Auth answered that it takes only JSON (a version from before JSON lines): batches go
    /// as an [`portcullis_api::EventBatch`] from then on, so agents can be upgraded first.
    json_only: std::sync::atomic::AtomicBool,
}

impl ApiDelivery {
    fn new(api: Arc<ClientSlot>) -> Self {
        Self {
            api,
            json_only: false.into(),
        }
    }
}

/// Whether auth refused a body for not being JSON (what versions before JSON lines say).
fn wants_json(e: &portcullis_client::api::ClientError) -> bool {
    matches!(e, portcullis_client::api::ClientError::Api { status: 400 | 415, message, .. }
        if message.contains("Content-Type: application/json") && !message.contains("x-ndjson"))
}

impl Deliver for ApiDelivery {
    fn request_limits(&self) -> RequestLimits {
        if self.json_only.load(Ordering::Relaxed) {
            JSON_REQUEST
        } else {
            LINES_REQUEST
        }
    }

    fn deliver(&self, lines: bytes::Bytes) -> DeliverFuture<'_> {
        Box::pin(async move {
            let api = self.api.get();
            if !self.json_only.load(Ordering::Relaxed) {
                // The lines go as the spool holds them: auth checks each one.
                match api
                    .post_raw::<u64>("/v1/events", "application/x-ndjson", lines.clone())
                    .await
                {
                    Err(e) if wants_json(&e) => {
                        tracing::info!(
                            "auth takes audit events only as JSON (it is older than this agent); sending them as JSON"
                        );
                        self.json_only.store(true, Ordering::Relaxed);
                    }
                    other => return other.map(|_| ()).map_err(|e| e.to_string()),
                }
            }
            // In requests small enough for such a version (this one may have been sized
            // for JSON lines before auth said so).
            let mut at = 0;
            while at < lines.len() {
                let end = batch_end(&lines, at, JSON_REQUEST);
                let mut events = Vec::new();
                let chunk = lines.get(at..end).unwrap_or_default();
                for line in chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let text = String::from_utf8(line.to_vec()).map_err(|e| e.to_string())?;
                    events.push(
                        serde_json::value::RawValue::from_string(text)
                            .map_err(|e| e.to_string())?,
                    );
                }
                api.post::<_, u64>("/v1/events", &portcullis_api::EventBatch { events })
                    .await
                    .map_err(|e| e.to_string())?;
                at = end;
            }
            Ok(())
        })
    }
}

/// How the agent audits (`db_service.audit` in the config).
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The spool directory (`<data_dir>/agent/spool`).
    pub spool_dir: std::path::PathBuf,
    /// Largest spool on disk.
    pub spool_max_bytes: u64,
    /// What happens when it is full.
    pub when_full: WhenFull,
    /// Longest query text stored; longer text is truncated with a marker.
    pub max_query_bytes: usize,
    /// `None`: fsync every append before acknowledging it. `Some(period)`: an append is
    /// acknowledged once written to the kernel (it survives the agent being killed) and the
    /// spool is fsynced every `period` (bounding what a power loss can take).
    pub fsync_interval: Option<Duration>,
}

struct Append {
    lines: Lines,
    class: Class,
    done: oneshot::Sender<Result<(), Refused>>,
}

/// Where sessions put their events.
#[derive(Clone, Debug)]
pub struct AuditSender {
    tx: mpsc::Sender<Append>,
    spool: Spool,
    max_query_bytes: usize,
    /// Sessions append to the spool themselves (a short lock and a memory copy) instead of
    /// handing events to the writer task: used when appends are not fsynced one by one, so an
    /// append never waits for the disk.
    direct: bool,
}

impl std::fmt::Debug for dyn Deliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deliver")
    }
}

impl std::fmt::Debug for Append {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Append")
            .field("events", &self.lines.len())
            .finish()
    }
}

impl AuditSender {
    /// Starts a shipper that delivers through the proxy's API.
    pub fn start(
        api: Arc<ClientSlot>,
        options: &AuditOptions,
        cluster: &str,
        server_id: &str,
    ) -> Result<Self, String> {
        Self::start_with(Arc::new(ApiDelivery::new(api)), options, cluster, server_id)
    }

    /// Starts the spool writer and the shipper with any delivery.
    pub fn start_with(
        deliver: Arc<dyn Deliver>,
        options: &AuditOptions,
        cluster: &str,
        server_id: &str,
    ) -> Result<Self, String> {
        let (cluster, server_id) = (cluster.to_owned(), server_id.to_owned());
        let max = options.spool_max_bytes;
        let gap = Box::new(move |lost: u64| {
            Event::new(EventKind::AuditGap, &cluster)
                .with("lost", lost)
                .with(
                    "reason",
                    format!(
                        "the agent's audit spool was full (spool_max_bytes {max}, when_full: drop_oldest); the oldest undelivered events were deleted"
                    ),
                )
                .with("server_id", &server_id)
                .into_line()
        });
        let spool = Spool::open(&options.spool_dir, max, options.when_full, gap).map_err(|e| {
            format!(
                "opening the audit spool {}: {e}",
                options.spool_dir.display()
            )
        })?;
        let direct = options.fsync_interval.is_some();
        spool.set_fsync_each(!direct);
        if deliver.can_store_fresh() {
            tracing::info!(
                "the audit shipper writes this process's events straight into auth's log"
            );
        }
        let period = options.fsync_interval.unwrap_or(SHIP_EVERY);
        tokio::spawn(maintainer(spool.clone(), period, direct));
        let (tx, rx) = mpsc::channel::<Append>(QUEUE);
        if !direct {
            tokio::spawn(writer(spool.clone(), rx));
        }
        tokio::spawn(shipper(spool.clone(), deliver));
        Ok(Self {
            tx,
            spool,
            max_query_bytes: options.max_query_bytes,
            direct,
        })
    }

    /// Records a session's activity (queries, statements): `Ok` once the events are on disk.
    /// An `Err` means the query must not go on (the spool is full under `refuse_sessions`,
    /// or the disk failed).
    pub async fn record(&self, events: Vec<Event>) -> Result<(), Refused> {
        self.record_lines(&Lines::from(events)).await
    }

    /// [`AuditSender::record`] for events already written as lines.
    pub async fn record_lines(&self, lines: &Lines) -> Result<(), Refused> {
        if lines.is_empty() {
            return Ok(());
        }
        self.append(lines, Class::Activity).await
    }

    /// Records a session start, refusal or end (these may use the spool's reserve); a failure
    /// is logged and counted.
    pub async fn send(&self, event: Event) {
        let uid = event.uid();
        let mut lines = Lines::new();
        lines.push(event);
        if let Err(e) = self.append(&lines, Class::Control).await {
            tracing::error!(%uid, error = %e, "audit event could not be recorded");
        }
    }

    async fn append(&self, lines: &Lines, class: Class) -> Result<(), Refused> {
        let n = lines.len();
        let r = if self.direct {
            self.spool
                .append(&[(lines, class)])
                .pop()
                .unwrap_or_else(|| Err(Refused::Io("the audit spool did not answer".into())))
        } else {
            let (done, wait) = oneshot::channel();
            let lines = lines.clone();
            if self.tx.send(Append { lines, class, done }).await.is_err() {
                return Err(Refused::Io("the audit spool writer stopped".into()));
            }
            wait.await
                .unwrap_or_else(|_| Err(Refused::Io("the audit spool writer stopped".into())))
        };
        if r == Err(Refused::Full) {
            tracing::warn!(
                events = n,
                refused_total = self.spool.stats.refused.load(Ordering::Relaxed),
                "audit spool full (when_full: refuse_sessions): events refused"
            );
        }
        r
    }

    /// Whether new sessions may start (the spool is not full, or the policy drops instead);
    /// counts a refusal.
    pub fn admit_session(&self) -> bool {
        let ok = self.spool.accepting_sessions();
        if !ok {
            let n = self
                .spool
                .stats
                .refused_sessions
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            tracing::warn!(
                refused_sessions_total = n,
                "audit spool full (when_full: refuse_sessions): refusing a new session"
            );
        }
        ok
    }

    /// The longest query text stored.
    pub fn max_query_bytes(&self) -> usize {
        self.max_query_bytes
    }

    /// Running totals.
    pub fn stats(&self) -> &Stats {
        &self.spool.stats
    }
}

/// Every `period`: fsyncs what sessions appended (when they append directly) and auth has not
/// acknowledged, deletes delivered segments, finishes full ones and prepares the next one — on
/// a blocking thread.
async fn maintainer(spool: Spool, period: Duration, sync: bool) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = spool.clone();
        // With the timer's fsyncs, a full segment waits for the shipper before it is fsynced
        // here (delivered, it is deleted instead); fsynced on every append, it is finished
        // at once.
        let hold = if sync {
            SHIP_EVERY + period
        } else {
            Duration::ZERO
        };
        let done = tokio::task::spawn_blocking(move || {
            let synced = if sync { s.sync(period) } else { Ok(()) };
            (synced, s.maintain(hold))
        });
        match done.await {
            Ok((synced, maintained)) => {
                if let Err(e) = synced {
                    tracing::error!(error = %e, dir = %spool.dir().display(), "fsyncing the audit spool failed");
                }
                if let Err(e) = maintained {
                    tracing::error!(error = %e, dir = %spool.dir().display(), "audit spool housekeeping failed (closing a full segment or preparing the next)");
                }
            }
            Err(_) => return,
        }
    }
}

/// Appends requests to the spool, group-committed: one fsync for everything that arrived
/// while the previous one ran (`spool_fsync: every_batch`).
async fn writer(spool: Spool, mut rx: mpsc::Receiver<Append>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok(a) => group.push(a),
                Err(_) => break,
            }
        }
        let n = group.len();
        let (reqs, dones): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|a| ((a.lines, a.class), a.done))
            .unzip();
        let s = spool.clone();
        let results = tokio::task::spawn_blocking(move || {
            let groups: Vec<(&Lines, Class)> = reqs.iter().map(|(l, c)| (l, *c)).collect();
            s.append(&groups)
        })
        .await
        .unwrap_or_else(|e| vec![Err(Refused::Io(e.to_string())); n]);
        for (done, r) in dones.into_iter().zip(results) {
            let _ = done.send(r);
        }
    }
}

/// The events in `data` (JSON lines) that parse, each kept as sent; a line that does not —
/// a write cut short when an earlier run was killed, whose query was never forwarded — is
/// skipped with a warning.
fn checked_lines(seq: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // Only lines a killed process left behind come here (the recovered segments).
        if readable(line) {
            out.extend_from_slice(line);
            out.push(b'\n');
        } else {
            tracing::warn!(
                segment = seq,
                "audit spool: skipping an unreadable line (a write cut short by a crash; its query was never forwarded)"
            );
        }
    }
    out
}

/// Whether a recovered line is kept: whole JSON, UTF-8 (what [`checked_lines`] keeps).
fn readable(line: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
        && std::str::from_utf8(line).is_ok()
}

/// Where in a recovered segment's `data` its `kept`-th readable line ends, counting only the
/// lines [`checked_lines`] keeps: how much of the segment the first `kept` lines auth
/// acknowledged cover.
fn end_of_readable(data: &[u8], kept: usize) -> usize {
    let (mut at, mut seen) = (0, 0);
    while seen < kept && at < data.len() {
        let rest = data.get(at..).unwrap_or_default();
        let len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = rest.get(..len).unwrap_or_default();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if !line.is_empty() && readable(line) {
            seen += 1;
        }
        at += len;
    }
    at
}

/// Events (other than `audit.gap`) among JSON lines.
fn events_in(lines: &[u8]) -> u64 {
    lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && crate::spool::gap_count(l).is_none())
        .count() as u64
}

/// A round's delivery that failed part way: auth acknowledged the requests before the one
/// that failed, and the shipper marks them delivered, so the next round starts after them.
/// Without this a round is all or nothing, and a link that fails every few requests (a
/// flapping tunnel) would send the same first requests again and again and never drain a
/// backlog.
#[derive(Debug)]
struct Stopped {
    /// Bytes of the segment, from the round's start, that auth acknowledged (whole lines).
    delivered: u64,
    /// Events among them (other than `audit.gap`).
    events: u64,
    /// Why the request failed.
    error: String,
}

/// Delivers what the spool holds, oldest first, and marks it delivered once auth has it.
async fn shipper(spool: Spool, deliver: Arc<dyn Deliver>) {
    let mut backoff = Duration::from_millis(100);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut backlog = false;
    let local = deliver.can_store_fresh();
    // One round per tick while caught up, so each round takes everything the sessions wrote
    // meanwhile (one write and one fsync in auth's log for all of it); back to back while
    // there is a backlog.
    let mut tick = tokio::time::interval(SHIP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut behind = false;
    let mut mapping_failed = false;
    loop {
        if !behind {
            tick.tick().await;
        }
        let round = if local {
            // Auth's log is in this process: this process's events go to it as they lie in
            // the spool's pages.
            let (s, d) = (spool.clone(), Arc::clone(&deliver));
            match tokio::task::spawn_blocking(move || store_mapped(&s, &*d)).await {
                Ok(Ok(Some(round))) => Some(round),
                // Nothing waiting (or a segment dropped meanwhile: the next round looks again).
                Ok(Ok(None)) => {
                    behind = false;
                    continue;
                }
                // Mapping failed (address space, an odd filesystem): this round reads the
                // events into memory instead, as for a remote auth.
                Ok(Err(e)) => {
                    if mapping_failed {
                        tracing::debug!(error = %e, "mapping the audit spool failed again");
                    } else {
                        mapping_failed = true;
                        tracing::warn!(error = %e, dir = %spool.dir().display(), "mapping the audit spool failed; its events are read into memory instead");
                    }
                    Some(Local::NotFresh)
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        } else {
            None
        };
        let round = match round {
            Some(Local::Stored(round)) => round,
            // Left by an earlier run, auth elsewhere, or the mapping failed: read, checked
            // where this process did not write it, and delivered.
            Some(Local::NotFresh) | None => match read_and_deliver(&spool, &*deliver).await {
                Ok(Some(round)) => round,
                Ok(None) => {
                    behind = false;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %spool.dir().display(), "reading the audit spool failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        match round.delivered {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                if let Some(since) = failing_since.take() {
                    tracing::info!(
                        after = ?since.elapsed(),
                        spooled_bytes = spool.stats.bytes.load(Ordering::Relaxed),
                        "audit delivery works again; draining the spool"
                    );
                }
                let mut empty = false;
                for part in &round.parts {
                    empty = spool.shipped(part.seq, part.end, part.events);
                }
                // A full segment still waiting (a backlog): the next round at once.
                behind = !empty && spool.has_closed_backlog();
                if empty && backlog {
                    backlog = false;
                    let st = &spool.stats;
                    tracing::info!(
                        delivered_total = st.delivered.load(Ordering::Relaxed),
                        dropped_total = st.dropped.load(Ordering::Relaxed),
                        refused_total = st.refused.load(Ordering::Relaxed),
                        refused_sessions_total = st.refused_sessions.load(Ordering::Relaxed),
                        "audit spool drained"
                    );
                }
            }
            Err(e) => {
                let events: u64 = round.parts.iter().map(|p| p.events).sum();
                if failing_since.is_none() {
                    failing_since = Some(tokio::time::Instant::now());
                    backlog = true;
                    tracing::warn!(error = %e, events, "delivering audit events failed; they stay in the spool (on disk) and are retried");
                } else {
                    tracing::debug!(error = %e, "delivering audit events failed again");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One shipping round's outcome.
struct Round {
    /// The segments' ranges it covered (to be marked delivered if it succeeded).
    parts: Vec<UnshippedPart>,
    /// Whether auth has them all; a delivery that failed part way has marked what auth
    /// acknowledged already.
    delivered: Result<(), String>,
}

/// What a round for auth in this process found.
enum Local {
    /// This process's events, stored (or not: [`Round::delivered`]).
    Stored(Round),
    /// The oldest waiting events were left by an earlier run (or could not be mapped): they
    /// take the read path, checked where this process did not write them.
    NotFresh,
}

/// A round for auth in this process: the oldest segment's undelivered events (and, when
/// that segment is full, what sessions wrote since into the next one) are mapped where they
/// lie in the page cache and written to auth's log in one write and one fsync — copied once,
/// by that write, rather than read into a buffer first. `None`: nothing waits.
fn store_mapped(spool: &Spool, deliver: &dyn Deliver) -> std::io::Result<Option<Local>> {
    let Some((first, first_map)) = spool.mapped_unshipped(None)? else {
        return Ok(None);
    };
    if !first.fresh {
        return Ok(Some(Local::NotFresh));
    }
    // The rest of a full segment: the next segment's events go in the same write (a round
    // of its own right after would cost a second fsync; waiting for the next tick would keep
    // them past the spool's fsync deadline).
    let mut then = None;
    if first.closed {
        if let Ok(Some((part, map))) = spool.mapped_unshipped(Some(first.seq)) {
            if part.fresh {
                then = Some((part, map));
            }
        }
    }
    let stored = match &then {
        Some((_, map)) => deliver.store_fresh(&[first_map.bytes(), map.bytes()]),
        None => deliver.store_fresh(&[first_map.bytes()]),
    };
    let mut parts = vec![first];
    parts.extend(then.map(|(part, _)| part));
    Ok(Some(Local::Stored(Round {
        parts,
        delivered: stored.map_err(|e| e.to_string()),
    })))
}

/// A round through [`Deliver::deliver`]: reads the oldest segment's undelivered events (and,
/// when that segment is full and its events fresh, the next segment's new ones after them)
/// and delivers them. `None`: nothing waits.
async fn read_and_deliver(spool: &Spool, deliver: &dyn Deliver) -> std::io::Result<Option<Round>> {
    let s = spool.clone();
    let read = tokio::task::spawn_blocking(move || {
        let Some(Unshipped {
            part: first,
            mut data,
        }) = s.unshipped()?
        else {
            return Ok(None);
        };
        // As in `store_mapped`: the next segment's new events go in the same delivery.
        let first_len = data.len();
        let mut then = None;
        if first.closed && first.fresh {
            if let Ok(Some(part)) = s.unshipped_after(first.seq, &mut data) {
                if part.fresh {
                    then = Some(part);
                } else {
                    data.truncate(first_len);
                }
            }
        }
        Ok::<_, std::io::Error>(Some((first, data, first_len, then)))
    })
    .await
    .map_err(std::io::Error::other)?;
    let Some((first, data, first_len, then)) = read? else {
        return Ok(None);
    };
    let delivered = deliver_all(deliver, first.seq, data, first.fresh)
        .await
        .map_err(|stopped| {
            let at = stopped.delivered as usize;
            match then {
                // Into the second part: the first is all delivered.
                Some(part) if at > first_len => {
                    spool.shipped(first.seq, first.end, first.events);
                    spool.shipped(
                        part.seq,
                        part.start + (at - first_len) as u64,
                        stopped.events.saturating_sub(first.events),
                    );
                }
                _ if at > 0 => {
                    spool.shipped(first.seq, first.start + stopped.delivered, stopped.events);
                }
                _ => {}
            }
            stopped.error
        });
    let mut parts = vec![first];
    parts.extend(then);
    Ok(Some(Round { parts, delivered }))
}

/// Delivers JSON lines in requests as large as [`Deliver::request_limits`] allows (one event
/// always goes, whatever its size); stops at the first failure and says how much of `data`
/// auth acknowledged before it (a retry starts there; a request whose answer was lost is
/// sent again, and auth stores each uid once). Lines this process wrote (`fresh`) go as they
/// are; lines found in the spool at start are checked first.
async fn deliver_all(
    deliver: &dyn Deliver,
    seq: u64,
    data: Vec<u8>,
    fresh: bool,
) -> Result<(), Stopped> {
    let (sent, original) = if fresh {
        (bytes::Bytes::from(data), None)
    } else {
        (bytes::Bytes::from(checked_lines(seq, &data)), Some(data))
    };
    let limits = deliver.request_limits();
    let mut at = 0;
    while at < sent.len() {
        let end = batch_end(&sent, at, limits);
        if let Err(error) = deliver.deliver(sent.slice(at..end)).await {
            let acked = sent.get(..at).unwrap_or_default();
            // Checked lines may have skipped torn ones: count the kept lines back into the
            // segment.
            let delivered = match &original {
                None => at,
                Some(original) => {
                    end_of_readable(original, acked.iter().filter(|&&b| b == b'\n').count())
                }
            };
            return Err(Stopped {
                delivered: delivered as u64,
                events: events_in(acked),
                error,
            });
        }
        at = end;
    }
    Ok(())
}

/// Where the request starting at `at` ends: after at most `limits.events` lines and
/// `limits.bytes`, and after at least one line.
fn batch_end(data: &[u8], at: usize, limits: RequestLimits) -> usize {
    let mut end = at;
    let mut lines = 0;
    while end < data.len() && lines < limits.events {
        let rest = data.get(end..).unwrap_or_default();
        let next = memchr::memchr(b'\n', rest).map_or(data.len(), |i| end + i + 1);
        if lines > 0 && next - at > limits.bytes {
            break;
        }
        end = next;
        lines += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The requests `deliver_all` would make to an auth that takes only JSON, as (lines,
    /// bytes).
    fn requests(data: &[u8]) -> Vec<(usize, usize)> {
        requests_of(data, JSON_REQUEST)
    }

    fn requests_of(data: &[u8], limits: RequestLimits) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let end = batch_end(data, at, limits);
            let chunk = data.get(at..end).unwrap();
            out.push((chunk.iter().filter(|&&b| b == b'\n').count(), chunk.len()));
            at = end;
        }
        out
    }

    #[test]
    fn requests_hold_at_most_a_batch_of_whole_lines() {
        // 2,500 lines of 10 bytes: 1,000 + 1,000 + 500.
        let small = b"{\"a\":123}\n".repeat(2500);
        assert_eq!(
            requests(&small),
            [(1000, 10_000), (1000, 10_000), (500, 5000)]
        );
        // Lines of 300 KiB: two per request (the third would pass 768 KiB).
        let line = format!("{{\"q\":\"{}\"}}\n", "x".repeat(300 * 1024));
        let big = line.repeat(5);
        let sizes: Vec<usize> = requests(big.as_bytes()).iter().map(|r| r.0).collect();
        assert_eq!(sizes, [2, 2, 1]);
        // One line larger than a request's bytes still goes, alone.
        let huge = format!("{{\"q\":\"{}\"}}\n", "x".repeat(JSON_REQUEST.bytes));
        let data = format!("{{}}\n{huge}{{}}\n");
        let sizes: Vec<usize> = requests(data.as_bytes()).iter().map(|r| r.0).collect();
        assert_eq!(sizes, [1, 1, 1]);
        // A last line without its newline is still sent.
        assert_eq!(requests(b"{}\n{}"), [(1, 5)]);
        assert!(requests(b"").is_empty());
        // JSON lines: a busy round's 4,000 events of 580 bytes in one request.
        let round = format!("{{\"q\":\"{}\"}}\n", "x".repeat(571)).repeat(4000);
        assert_eq!(
            requests_of(round.as_bytes(), LINES_REQUEST),
            [(4000, 4000 * 580)]
        );
        let many = b"{\"a\":123}\n".repeat(25_000);
        let sizes: Vec<usize> = requests_of(&many, LINES_REQUEST)
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(sizes, [10_000, 10_000, 5000]);
    }

    #[test]
    fn an_older_auth_that_takes_only_json_is_recognised() {
        use portcullis_client::api::ClientError;
        let api = |status: u16, message: &str| ClientError::Api {
            status,
            code: "bad_request".into(),
            message: message.into(),
        };
        // What auth answered to a body without Content-Type: application/json before it
        // took JSON lines.
        assert!(wants_json(&api(
            400,
            "send the body as JSON with Content-Type: application/json"
        )));
        // Today's answer to an unknown content type, and other refusals, are not that.
        assert!(!wants_json(&api(400, "send the events as JSON with Content-Type: application/json, or as JSON lines with Content-Type: application/x-ndjson")));
        assert!(!wants_json(&api(
            400,
            "line 2: every event must be a JSON object"
        )));
        assert!(!wants_json(&api(403, "forbidden")));
    }

    /// Stands in for auth's API on a link that fails every third request, keeping what the
    /// others delivered.
    struct FlakyLink {
        requests: std::sync::atomic::AtomicUsize,
        stored: std::sync::Mutex<Vec<u8>>,
    }

    impl Deliver for FlakyLink {
        // Requests of a thousand events, so a round is several of them.
        fn request_limits(&self) -> RequestLimits {
            JSON_REQUEST
        }

        fn deliver(&self, lines: bytes::Bytes) -> DeliverFuture<'_> {
            Box::pin(async move {
                let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
                if n % 3 == 0 {
                    return Err("connection reset by peer".into());
                }
                self.stored.lock().unwrap().extend_from_slice(&lines);
                Ok(())
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_that_fails_every_few_requests_still_drains_the_spool_once() {
        drains_once_through_a_flaky_link(64 * 1024 * 1024).await;
    }

    /// The same with 256 KiB segments: a round reads a full segment and the next together,
    /// and a failure inside the second counts the first as delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flaky_link_drains_rounds_of_two_segments_once() {
        drains_once_through_a_flaky_link(2 * 1024 * 1024).await;
    }

    async fn drains_once_through_a_flaky_link(spool_max_bytes: u64) {
        let dir = tempfile::tempdir().unwrap();
        let link = Arc::new(FlakyLink {
            requests: 0.into(),
            stored: Default::default(),
        });
        let options = AuditOptions {
            spool_dir: dir.path().join("spool"),
            spool_max_bytes,
            when_full: WhenFull::RefuseSessions,
            max_query_bytes: 4096,
            fsync_interval: Some(Duration::from_millis(50)),
        };
        let sender = AuditSender::start_with(link.clone(), &options, "c", "s").unwrap();
        // 5,000 events before the first round: five requests of a thousand events, the third of
        // which fails. A round that is all or nothing would resend the first two forever.
        const N: usize = 5 * JSON_REQUEST.events;
        for chunk in 0..N / 100 {
            let events = (0..100)
                .map(|i| Event::new(EventKind::DbSessionQuery, "c").with("n", chunk * 100 + i))
                .collect();
            sender.record(events).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = link
                .stored
                .lock()
                .unwrap()
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            if lines >= N || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stored = link.stored.lock().unwrap().clone();
        let mut uids = std::collections::HashSet::new();
        for line in stored.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert!(
                uids.insert(v["uid"].as_str().unwrap().to_owned()),
                "an acknowledged request was sent again"
            );
        }
        assert_eq!(uids.len(), N, "every event delivered once");
        assert_eq!(sender.stats().delivered.load(Ordering::Relaxed), N as u64);
    }

    /// Stands in for auth's log in the same process: stores fresh rounds as they are handed
    /// over (failing every third), and what goes through `deliver` (events an earlier run
    /// left, which must be checked) too.
    #[derive(Default)]
    struct LocalLog {
        stores: std::sync::atomic::AtomicUsize,
        /// Stores of a round that spanned two segments.
        spanning: std::sync::atomic::AtomicUsize,
        /// Events that came through `deliver`.
        delivered: std::sync::atomic::AtomicUsize,
        /// Refuse every store (auth's disk is gone).
        down: bool,
        stored: std::sync::Mutex<Vec<u8>>,
    }

    impl Deliver for LocalLog {
        fn deliver(&self, lines: bytes::Bytes) -> DeliverFuture<'_> {
            Box::pin(async move {
                if self.down {
                    return Err("auth is down".into());
                }
                let n = lines.iter().filter(|&&b| b == b'\n').count();
                self.delivered.fetch_add(n, Ordering::SeqCst);
                self.stored.lock().unwrap().extend_from_slice(&lines);
                Ok(())
            })
        }

        fn can_store_fresh(&self) -> bool {
            true
        }

        fn store_fresh(&self, parts: &[&[u8]]) -> std::io::Result<()> {
            let n = self.stores.fetch_add(1, Ordering::SeqCst) + 1;
            if self.down || n % 3 == 0 {
                return Err(std::io::Error::other("no space left on device"));
            }
            if parts.len() > 1 {
                self.spanning.fetch_add(1, Ordering::SeqCst);
            }
            let mut stored = self.stored.lock().unwrap();
            for part in parts {
                stored.extend_from_slice(part);
            }
            Ok(())
        }
    }

    async fn record_numbered(sender: &AuditSender, from: usize, n: usize) {
        for chunk in (from..from + n).step_by(500) {
            let events = (chunk..(chunk + 500).min(from + n))
                .map(|i| Event::new(EventKind::DbSessionQuery, "c").with("n", i))
                .collect();
            sender.record(events).await.unwrap();
            // Sessions keep writing while rounds are shipped: rounds end mid-segment, and
            // some span a full segment and the next.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }

    /// With auth in the same process, fresh rounds go to its log as mapped from the spool
    /// (one store per round, spanning two segments where one filled up), and what an earlier
    /// run left goes through `deliver`, checked; a store that fails is retried. Every event
    /// arrives once, in order.
    #[test]
    fn local_rounds_store_mapped_segments_and_recovered_ones_go_through_delivery() {
        let dir = tempfile::tempdir().unwrap();
        let options = AuditOptions {
            spool_dir: dir.path().join("spool"),
            // 512 KiB segments.
            spool_max_bytes: 4 * 1024 * 1024,
            when_full: WhenFull::RefuseSessions,
            max_query_bytes: 4096,
            fsync_interval: Some(Duration::from_millis(50)),
        };
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        };
        const LEFT: usize = 1000;
        // An earlier run whose auth took nothing.
        runtime().block_on(async {
            let down = Arc::new(LocalLog {
                down: true,
                ..Default::default()
            });
            let sender = AuditSender::start_with(down.clone(), &options, "c", "s").unwrap();
            record_numbered(&sender, 0, LEFT).await;
            tokio::time::sleep(SHIP_EVERY * 2).await;
            assert!(down.stored.lock().unwrap().is_empty());
        });
        const N: usize = 20_000;
        runtime().block_on(async {
            let log = Arc::new(LocalLog::default());
            let sender = AuditSender::start_with(log.clone(), &options, "c", "s").unwrap();
            record_numbered(&sender, LEFT, N - LEFT).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let lines = || {
                log.stored
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            };
            while lines() < N && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let stored = log.stored.lock().unwrap().clone();
            let numbers: Vec<u64> = stored
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    serde_json::from_slice::<serde_json::Value>(l).unwrap()["n"]
                        .as_u64()
                        .unwrap()
                })
                .collect();
            assert_eq!(
                numbers,
                (0..N as u64).collect::<Vec<_>>(),
                "every event once, in order"
            );
            assert_eq!(
                log.delivered.load(Ordering::SeqCst),
                LEFT,
                "the earlier run's events were checked and delivered"
            );
            assert!(
                log.stores.load(Ordering::SeqCst) >= 3,
                "a store failed and was retried"
            );
            assert!(
                log.spanning.load(Ordering::SeqCst) > 0,
                "a round spanned two segments"
            );
        });
    }

    #[test]
    fn a_partial_delivery_of_recovered_lines_counts_back_into_the_segment() {
        // Readable lines a, c, d; b is torn. Two acknowledged lines end after c.
        let data = b"{\"a\":1}\n{\"b\":\n{\"c\":2}\n{\"d\":3}\n";
        assert_eq!(end_of_readable(data, 2), 22);
        assert_eq!(data.get(..22).unwrap(), b"{\"a\":1}\n{\"b\":\n{\"c\":2}\n");
        assert_eq!(end_of_readable(data, 0), 0);
        assert_eq!(end_of_readable(data, 3), data.len());
        // Gap events are not counted as events.
        assert_eq!(
            events_in(b"{\"event\":\"audit.gap\",\"lost\":4}\n{\"a\":1}\n"),
            1
        );
    }

    #[test]
    fn recovered_lines_are_checked_and_torn_ones_skipped() {
        let data = b"{\"a\":1}\n{\"a\":\n{\"b\":\"\xff\"}\n{\"c\":[1]}\n";
        assert_eq!(checked_lines(7, data), b"{\"a\":1}\n{\"c\":[1]}\n");
    }
}
