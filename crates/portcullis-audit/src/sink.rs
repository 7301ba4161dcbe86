//! Where events are stored: the [`Sink`] trait, the fsync policy, and opening sinks from
//! their URLs (`file:///var/lib/portcullis/log`, `postgres://…`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::search::{Page, Query};

/// An error from a sink, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

impl SinkError {
    /// Wraps `e` with context.
    pub fn new(context: &str, e: impl std::fmt::Display) -> Self {
        Self(format!("{context}: {e}"))
    }
}

/// A result from a sink.
pub type SinkResult<T> = Result<T, SinkError>;

/// When the file sink makes writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync after every batch, before the batch is acknowledged (default).
    #[default]
    EveryBatch,
    /// fsync at most once per interval (a crash may lose up to one interval).
    Interval,
    /// Leave it to the OS (a crash may lose recent events).
    Never,
}

/// Sink options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    /// File sink fsync policy.
    pub fsync: FsyncPolicy,
    /// With [`FsyncPolicy::Interval`], how often.
    pub fsync_interval: Duration,
    /// File sinks delete day files older than this (whole UTC days, counted back from today);
    /// `None` keeps everything.
    pub retention: Option<Duration>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::EveryBatch,
            fsync_interval: Duration::from_secs(1),
            retention: None,
        }
    }
}

/// Somewhere events are stored. Lines are complete JSON objects without line breaks, each
/// with string fields `uid`, `time` (RFC 3339) and `event`.
///
/// A batch is JSON lines in one buffer, each ending in `\n`, as auth's writer checked them:
/// a file sink appends it as it is, with no per-line copies.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// A short description for logs (`file:///…`, `postgres://host/db`), without secrets.
    fn describe(&self) -> String;

    /// Stores a batch of JSON lines (each ending in `\n`); returns once it is as durable as
    /// the sink's policy asks.
    async fn write_batch(&self, lines: Arc<Vec<u8>>) -> SinkResult<()>;

    /// Finds events.
    async fn search(&self, query: &Query) -> SinkResult<Page>;

    /// The directory of a sink that writes local files (auth re-reads the newest events there
    /// at start to deduplicate re-sent batches); `None` for sinks that deduplicate themselves.
    fn local_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Makes writes so far durable (called when idle, for the interval fsync policy).
    async fn flush(&self) -> SinkResult<()> {
        Ok(())
    }

    /// Appends JSON lines (each ending in `\n`), given as the pieces of one run of lines, as
    /// they are, in the caller's thread, and syncs per the sink's policy — for a sink that
    /// can do so cheaply (the file sink); `None`: it cannot, so events take the batched path.
    fn append_ndjson(&self, _parts: &[&[u8]]) -> Option<std::io::Result<()>> {
        None
    }
}

/// Opens a sink from its URL: `file:///dir` (or a plain absolute path) or
/// `postgres://…`/`postgresql://…`. Relative file paths are under `base`.
pub fn open(url: &str, base: &Path, options: SinkOptions) -> SinkResult<Arc<dyn Sink>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(crate::pg_sink::PgSink::new(url)?));
    }
    let path = match url.strip_prefix("file://") {
        Some(p) => p,
        None if url.contains("://") => {
            return Err(SinkError(format!(
                "audit sink {url:?}: unknown scheme; use file:///DIR or postgres://…"
            )))
        }
        None => url,
    };
    if path.is_empty() {
        return Err(SinkError(format!("audit sink {url:?}: no directory")));
    }
    let dir = base.join(path);
    let sink = crate::file_sink::FileSink::with_options(&dir, options)
        .map_err(|e| SinkError::new(&format!("audit log directory {}", dir.display()), e))?;
    Ok(Arc::new(sink))
}
