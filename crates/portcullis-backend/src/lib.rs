//! Cluster state storage for Portcullis.
//!
//! Everything the cluster must remember — users, roles, join tokens, CA key
//! material, locks, registered databases and agents — is stored through the
//! single [`Backend`] trait, so the auth service never depends on a concrete
//! database. The trait is a small, ordered key-value store with:
//!
//! * a cluster-wide, strictly increasing **revision** bumped by every write,
//!   which makes optimistic concurrency ([`Backend::compare_and_swap`]) and
//!   change feeds possible;
//! * optional **expiry** per item (short-lived tokens, heartbeats), with
//!   expired items invisible to reads and removed with a `Delete` event;
//! * a **watch** API that delivers every change under a prefix, in revision
//!   order, with bounded memory — a watcher that falls too far behind gets
//!   [`BackendError::Compacted`] instead of silently missing events, so caches
//!   built on watches can never drift from the truth.
//!
//! [`SqliteBackend`] is the embedded default (a file in the data dir). The
//! [`conformance`] module is a backend-agnostic test suite so that other
//! implementations (PostgreSQL is planned) are held to exactly the same
//! contract.
#![forbid(unsafe_code)]

use std::sync::Arc;

use time::OffsetDateTime;

pub mod conformance;
mod sqlite;
mod watch;

pub use sqlite::{SqliteBackend, SqliteOptions};
pub use watch::{ChangeFeed, ChangePage, Watcher};

/// Longest accepted key, in bytes. Keys are indexed and copied into every
/// change record, so an upper bound keeps index pages and watch pages small.
pub const MAX_KEY_BYTES: usize = 1024;

/// Largest accepted value, in bytes (16 MiB). Values are held in memory whole
/// (and copied into the change log), so a cap protects the auth service from a
/// single oversized write exhausting memory or stalling every watcher.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;

/// A stored value with its revision (a cluster-wide, strictly increasing
/// counter bumped by every write).
///
/// The revision is what callers hand back to
/// [`Backend::compare_and_swap`] to make read-modify-write cycles safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key, always starting with `/`.
    pub key: String,
    /// The opaque value bytes (callers usually store JSON).
    pub value: Vec<u8>,
    /// Revision of the write that produced this value.
    pub revision: u64,
    /// When the item stops being visible, if it is temporary.
    pub expires: Option<OffsetDateTime>,
}

/// One change, as seen by a watcher.
///
/// Watchers use these to keep caches (e.g. the role/lock cache of every
/// proxy) in sync without re-reading the whole range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The key was created or overwritten with this item.
    Put(Item),
    /// The key was deleted (explicitly or because it expired).
    Delete {
        /// The deleted key.
        key: String,
        /// Revision of the delete itself.
        revision: u64,
    },
}

impl Event {
    /// The key this event is about, whatever its kind; lets consumers route
    /// events without matching on every variant.
    pub fn key(&self) -> &str {
        match self {
            Event::Put(item) => &item.key,
            Event::Delete { key, .. } => key,
        }
    }

    /// The revision of the write this event describes; consumers persist it
    /// to resume a watch after a restart.
    pub fn revision(&self) -> u64 {
        match self {
            Event::Put(item) => item.revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
}

/// Everything that can go wrong talking to a backend.
///
/// The variants are the ones callers must react to differently (retry a CAS,
/// re-list after compaction, report a bad key); everything else is `Storage`
/// with a message that says what failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `create` found a live item under the key.
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    /// A compare-and-swap/delete saw a different revision than expected.
    #[error("key {0:?} was changed by another writer; re-read it and try again")]
    CompareFailed(String),
    /// The key has no live item (it never existed, was deleted, or expired).
    #[error("key {0:?} not found")]
    NotFound(String),
    /// The change log no longer holds the revisions a watcher needs.
    ///
    /// `requested` is the first revision the watcher still had to deliver
    /// (its `after_revision + 1`), `oldest` the oldest revision still kept.
    #[error("watch from revision {requested} is no longer available (oldest kept is {oldest}); re-read the range and watch again")]
    Compacted {
        /// First revision the watcher needed.
        requested: u64,
        /// Oldest revision still available in the change log.
        oldest: u64,
    },
    /// The key (or prefix) is malformed.
    #[error("invalid key {0:?}: keys must start with '/' and be at most 1024 bytes")]
    InvalidKey(String),
    /// The storage layer failed; the message says what and, where possible,
    /// what the operator should do.
    #[error("storage error: {0}")]
    Storage(String),
    /// The backend was dropped/shut down while the caller still used it.
    #[error("backend is closed")]
    Closed,
}

/// Result alias used by every backend operation.
pub type Result<T> = std::result::Result<T, BackendError>;

/// The storage contract every cluster-state backend implements.
///
/// Keys are `/`-separated paths (see [`MAX_KEY_BYTES`]); values are opaque
/// bytes (see [`MAX_VALUE_BYTES`]). Every successful write bumps the single
/// backend-wide revision counter, which never goes backwards, even across
/// restarts.
///
/// Cancellation: dropping the future of a write does not roll it back if the
/// write already reached the database; callers that need certainty re-read.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Reads one key. Expired items are invisible (`Ok(None)`).
    async fn get(&self, key: &str) -> Result<Option<Item>>;

    /// Creates or overwrites `key`; returns the new revision.
    ///
    /// `expires` is stored exactly and read back in UTC. An `expires` already
    /// in the past stores an item that is immediately invisible (watchers
    /// see its `Put`, then a `Delete` when it is swept).
    async fn put(&self, key: &str, value: Vec<u8>, expires: Option<OffsetDateTime>) -> Result<u64>;

    /// Creates `key` only if no live item exists (an expired item may be
    /// replaced); otherwise [`BackendError::AlreadyExists`]. Returns the new
    /// revision.
    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64>;

    /// Atomic: succeeds only if the live item's current revision ==
    /// expected_revision.
    ///
    /// Fails with [`BackendError::NotFound`] if there is no live item and with
    /// [`BackendError::CompareFailed`] if its revision differs. Returns the
    /// new revision.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected_revision: u64,
        value: Vec<u8>,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64>;

    /// Deletes `key`; `true` if a live item was deleted, `false` if there was
    /// nothing (or only an expired item, which the expiry sweep removes).
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes `key` only if its live revision is `expected_revision`
    /// ([`BackendError::NotFound`] / [`BackendError::CompareFailed`]
    /// otherwise).
    async fn compare_and_delete(&self, key: &str, expected_revision: u64) -> Result<()>;

    /// Live items whose key starts with `prefix` (byte-wise, no wildcards),
    /// sorted by key. An empty prefix lists everything.
    async fn range(&self, prefix: &str) -> Result<Vec<Item>>;

    /// Changes to keys under `prefix` with revision > `after_revision`
    /// (None = from now on), in revision order, none skipped.
    ///
    /// To build a consistent cache: `range`, remember
    /// [`Backend::current_revision`] read *before* the range, then watch from
    /// it. If the changes are no longer available the call (or a later
    /// [`Watcher::next`]) fails with [`BackendError::Compacted`].
    async fn watch(&self, prefix: &str, after_revision: Option<u64>) -> Result<Watcher>;

    /// The revision of the most recent write (0 for an empty, new backend).
    async fn current_revision(&self) -> Result<u64>;
}

/// Lets callers share one backend as `Arc<dyn Backend>` (or `Arc<B>`) and
/// still pass it wherever a `Backend` is expected, e.g. to
/// [`conformance::run_all`].
#[async_trait::async_trait]
impl<B: Backend + ?Sized> Backend for Arc<B> {
    async fn get(&self, key: &str) -> Result<Option<Item>> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, expires: Option<OffsetDateTime>) -> Result<u64> {
        (**self).put(key, value, expires).await
    }
    async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        (**self).create(key, value, expires).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected_revision: u64,
        value: Vec<u8>,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        (**self)
            .compare_and_swap(key, expected_revision, value, expires)
            .await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        (**self).delete(key).await
    }
    async fn compare_and_delete(&self, key: &str, expected_revision: u64) -> Result<()> {
        (**self).compare_and_delete(key, expected_revision).await
    }
    async fn range(&self, prefix: &str) -> Result<Vec<Item>> {
        (**self).range(prefix).await
    }
    async fn watch(&self, prefix: &str, after_revision: Option<u64>) -> Result<Watcher> {
        (**self).watch(prefix, after_revision).await
    }
    async fn current_revision(&self) -> Result<u64> {
        (**self).current_revision().await
    }
}

/// Checks a key against the rules shared by all backends.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if !key.starts_with('/') || key.len() > MAX_KEY_BYTES {
        return Err(BackendError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// Checks a range/watch prefix: empty (everything) or shaped like a key.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_key(prefix)
}

/// Checks a value against [`MAX_VALUE_BYTES`].
pub(crate) fn validate_value(key: &str, value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(BackendError::Storage(format!(
            "value for key {key:?} is {} bytes, larger than the {MAX_VALUE_BYTES}-byte limit; \
             store large blobs elsewhere and keep a reference in the backend",
            value.len()
        )));
    }
    Ok(())
}

/// The smallest byte string greater than every string starting with
/// `prefix`, or `None` if there is none (empty prefix / all `0xFF`).
///
/// Used instead of `LIKE 'prefix%'` so `%` and `_` in keys are plain bytes.
pub(crate) fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound() {
        assert_eq!(prefix_upper_bound(b"/a"), Some(b"/b".to_vec()));
        assert_eq!(prefix_upper_bound(b"/a\xff"), Some(b"/b".to_vec()));
        assert_eq!(prefix_upper_bound(b""), None);
        assert_eq!(prefix_upper_bound(b"\xff\xff"), None);
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("/a").is_ok());
        assert!(validate_key("a").is_err());
        assert!(validate_key("").is_err());
        assert!(validate_key(&format!("/{}", "x".repeat(1023))).is_ok());
        assert!(validate_key(&format!("/{}", "x".repeat(1024))).is_err());
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("x").is_err());
    }
}
