//! Shipping audit events to auth, through the disk spool.
//!
//! The guarantee: an event is on local disk (fsynced, in the [`spool`](crate::spool)) before
//! [`AuditSender::record`] / [`AuditSender::send`] return, and sessions forward a query only
//! after its events are recorded. The shipper delivers spooled segments oldest first and
//! deletes a segment only after auth acknowledged every event in it; a batch sent again
//! (after a lost answer, a restart of the agent or of auth) carries the same `uid`s, and auth
//! stores each `uid` once. So a query that reached the database is in the audit log exactly
//! once, whichever process is killed when — unless the spool was full and the policy is
//! `drop_oldest`, which records the loss as an `audit.gap` event.
//!
//! Appends from all sessions are group-committed: one write (and, with `spool_fsync:
//! every_batch`, one fsync) for whatever arrived while the previous one ran. With the default
//! `spool_fsync: interval`, "on local disk" means written to the kernel — which survives the
//! agent being killed — and fsynced within the interval, which bounds what a power loss of the
//! agent's machine can take.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use portcullis_api::EventBatch;
use portcullis_audit::{Event, EventKind};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::identity::ClientSlot;
pub use crate::spool::{Class, Refused, Spool, Stats, WhenFull};

/// Append requests waiting for the spool writer before sessions wait.
pub const QUEUE: usize = 65_536;
/// Most events per delivered batch.
pub const BATCH: usize = 1000;
/// Most bytes of events sent in one request: under auth's 1 MiB request limit with room for
/// the JSON around them.
pub const BATCH_BYTES: usize = 768 * 1024;
/// Most requests group-committed with one fsync.
pub const GROUP: usize = 1024;

/// A boxed future, for [`Deliver`].
pub type DeliverFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

/// Where batches go: auth through the proxy's API, or auth in the same process.
pub trait Deliver: Send + Sync + 'static {
    /// Stores a batch (auth deduplicates by uid, so a retried batch is stored once).
    fn deliver<'a>(&'a self, batch: &'a [Box<serde_json::value::RawValue>]) -> DeliverFuture<'a>;

    /// Whether [`Deliver::store_now`] works: auth's log is in this process and can store
    /// events in the caller's thread. Sessions then write their events there instead of to
    /// the spool: one write per query instead of a spool write, a read back and a second
    /// write by auth — with the same guarantee (written before the query is forwarded;
    /// fsynced as `spool_fsync` says).
    fn can_store_now(&self) -> bool {
        false
    }

    /// Stores event lines at once; `fsync`: on disk before returning.
    fn store_now(&self, _lines: &[String], _fsync: bool) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "this audit delivery cannot store events directly",
        ))
    }

    /// Makes [`Deliver::store_now`] writes durable (the `spool_fsync: interval` tick).
    fn sync_now(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Delivery over the API (`POST /v1/events` through the proxy).
struct ApiDelivery(Arc<ClientSlot>);

impl Deliver for ApiDelivery {
    fn deliver<'a>(&'a self, batch: &'a [Box<serde_json::value::RawValue>]) -> DeliverFuture<'a> {
        Box::pin(async move {
            let body = EventBatch {
                events: batch.to_vec(),
            };
            self.0
                .get()
                .post::<_, u64>("/v1/events", &body)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
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
    lines: Vec<String>,
    class: Class,
    done: oneshot::Sender<Result<(), Refused>>,
}

/// Where sessions put their events.
#[derive(Clone, Debug)]
pub struct AuditSender {
    tx: mpsc::Sender<Append>,
    spool: Spool,
    max_query_bytes: usize,
    /// Sessions append to the spool themselves (a short lock and a `write`) instead of
    /// handing events to the writer task: used when appends are not fsynced one by one, so an
    /// append never waits for the disk.
    direct: bool,
    /// Auth's log in this process, when sessions write there instead of the spool
    /// ([`Deliver::can_store_now`]).
    store_now: Option<Arc<dyn Deliver>>,
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
        Self::start_with(Arc::new(ApiDelivery(api)), options, cluster, server_id)
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
                .into_json()
        });
        let spool = Spool::open(&options.spool_dir, max, options.when_full, gap).map_err(|e| {
            format!(
                "opening the audit spool {}: {e}",
                options.spool_dir.display()
            )
        })?;
        let store_now = deliver.can_store_now().then(|| Arc::clone(&deliver));
        if store_now.is_some() {
            tracing::info!("sessions write audit events straight into auth's log in this process (the spool is only drained)");
        }
        if let Some(period) = options.fsync_interval {
            spool.set_fsync_each(false);
            let syncing = spool.clone();
            let log = store_now.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    let s = syncing.clone();
                    let log = log.clone();
                    let synced = tokio::task::spawn_blocking(move || {
                        s.sync()?;
                        log.map_or(Ok(()), |l| l.sync_now())
                    });
                    match synced.await {
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "fsyncing the audit spool failed")
                        }
                        Err(_) => return,
                        Ok(Ok(())) => {}
                    }
                }
            });
        }
        let (tx, rx) = mpsc::channel::<Append>(QUEUE);
        let ready = Arc::new(Notify::new());
        tokio::spawn(writer(
            spool.clone(),
            rx,
            Arc::clone(&ready),
            options.fsync_interval.is_some(),
        ));
        tokio::spawn(shipper(spool.clone(), deliver, ready));
        Ok(Self {
            tx,
            spool,
            max_query_bytes: options.max_query_bytes,
            direct: options.fsync_interval.is_some(),
            store_now,
        })
    }

    /// Records a session's activity (queries, statements): `Ok` once the events are on disk.
    /// An `Err` means the query must not go on (the spool is full under `refuse_sessions`,
    /// or the disk failed).
    pub async fn record(&self, events: Vec<Event>) -> Result<(), Refused> {
        if events.is_empty() {
            return Ok(());
        }
        self.append(
            events.into_iter().map(Event::into_json).collect(),
            Class::Activity,
        )
        .await
    }

    /// Records a session start, refusal or end (these may use the spool's reserve); a failure
    /// is logged and counted.
    pub async fn send(&self, event: Event) {
        let uid = event.uid();
        if let Err(e) = self.append(vec![event.into_json()], Class::Control).await {
            tracing::error!(%uid, error = %e, "audit event could not be recorded");
        }
    }

    async fn append(&self, lines: Vec<String>, class: Class) -> Result<(), Refused> {
        let n = lines.len();
        let r = if let Some(log) = &self.store_now {
            let stored = if self.direct {
                log.store_now(&lines, false)
            } else {
                // fsynced before returning: off the async workers.
                let log = Arc::clone(log);
                tokio::task::spawn_blocking(move || log.store_now(&lines, true))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
            };
            stored.map_err(|e| Refused::Io(format!("writing the audit log: {e}")))
        } else if self.direct {
            self.spool
                .append(&[(lines, class)])
                .pop()
                .unwrap_or_else(|| Err(Refused::Io("the audit spool did not answer".into())))
        } else {
            let (done, wait) = oneshot::channel();
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

/// Appends requests to the spool, group-committed; seals segments as they come due.
async fn writer(spool: Spool, mut rx: mpsc::Receiver<Append>, ready: Arc<Notify>, direct: bool) {
    loop {
        let mut closed = false;
        // Sessions may append directly (see `AuditSender::direct`): wake on the linger timer
        // whenever a segment is open, or may be opened by them.
        let first = if spool.has_open() || direct {
            match tokio::time::timeout(crate::spool::LINGER, rx.recv()).await {
                Ok(Some(a)) => Some(a),
                Ok(None) => {
                    closed = true;
                    None
                }
                Err(_) => None,
            }
        } else {
            let a = rx.recv().await;
            closed = a.is_none();
            a
        };
        let mut group = Vec::new();
        if let Some(first) = first {
            group.push(first);
            while group.len() < GROUP {
                match rx.try_recv() {
                    Ok(a) => group.push(a),
                    Err(_) => break,
                }
            }
        }
        let n = group.len();
        let (reqs, dones): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|a| ((a.lines, a.class), a.done))
            .unzip();
        let s = spool.clone();
        let linger = if closed {
            Duration::ZERO
        } else {
            crate::spool::LINGER
        };
        let done = tokio::task::spawn_blocking(move || {
            let results = if reqs.is_empty() {
                Vec::new()
            } else {
                s.append(&reqs)
            };
            (results, s.seal_if_due(linger))
        })
        .await;
        let (results, sealed) = match done {
            Ok(x) => x,
            Err(e) => (
                vec![Err(Refused::Io(e.to_string())); n],
                Err(std::io::Error::other("spool writer panicked")),
            ),
        };
        for (done, r) in dones.into_iter().zip(results) {
            let _ = done.send(r);
        }
        match sealed {
            Ok(true) => ready.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "sealing an audit spool segment failed"),
        }
        if closed {
            return;
        }
    }
}

/// Delivers sealed segments oldest first; deletes each once auth acknowledged all of it.
async fn shipper(spool: Spool, deliver: Arc<dyn Deliver>, ready: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let mut backlog = false;
    loop {
        let s = spool.clone();
        let (seq, events) = match tokio::task::spawn_blocking(move || s.oldest()).await {
            Ok(Ok(Some(x))) => x,
            Ok(Ok(None)) => {
                ready.notified().await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %spool.dir().display(), "reading the audit spool failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut at = 0;
        while at < events.len() {
            // At most BATCH events and BATCH_BYTES per request (auth takes 1 MiB bodies); one
            // event always goes, whatever its size.
            let mut end = at;
            let mut bytes = 0usize;
            while end < events.len() && end - at < BATCH {
                let len = events.get(end).map_or(0, |e| e.get().len() + 1);
                if end > at && bytes + len > BATCH_BYTES {
                    break;
                }
                bytes += len;
                end += 1;
            }
            let chunk = events.get(at..end).unwrap_or_default();
            match deliver.deliver(chunk).await {
                Ok(()) => {
                    at = end;
                    backoff = Duration::from_millis(100);
                    if let Some(since) = failing_since.take() {
                        tracing::info!(
                            after = ?since.elapsed(),
                            spooled_bytes = spool.stats.bytes.load(Ordering::Relaxed),
                            "audit delivery works again; draining the spool"
                        );
                    }
                }
                Err(e) => {
                    if failing_since.is_none() {
                        failing_since = Some(tokio::time::Instant::now());
                        backlog = true;
                        tracing::warn!(error = %e, events = chunk.len(), "delivering audit events failed; they stay in the spool (on disk) and are retried");
                    } else {
                        tracing::debug!(error = %e, "delivering audit events failed again");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if !spool.contains(seq) {
                        // Dropped to make room (drop_oldest); the audit.gap event counts it.
                        break;
                    }
                }
            }
        }
        let s = spool.clone();
        let empty = tokio::task::spawn_blocking(move || s.remove(seq))
            .await
            .unwrap_or(false);
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
}
