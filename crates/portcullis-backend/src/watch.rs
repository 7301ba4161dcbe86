//! Backend-agnostic watcher built on a pageable change feed.
//!
//! Every backend keeps an ordered change log; a [`Watcher`] only remembers the
//! last revision it delivered and reads the log in bounded pages, so a slow
//! consumer costs storage (bounded by compaction), never unbounded memory, and
//! can never silently miss an event.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use crate::{BackendError, Event, Result};

/// One bounded page of changes read from a [`ChangeFeed`].
///
/// Exists so a feed can tell the watcher how far it scanned even when no
/// event matched the prefix, which keeps idle watchers from rescanning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangePage {
    /// Matching events, in revision order.
    pub events: Vec<Event>,
    /// Every revision `<= cursor` has been examined; the next page starts
    /// after it. Never less than the `after` passed in.
    pub cursor: u64,
}

/// The storage side of a watch: pages through a backend's change log.
///
/// Implemented by each backend so that [`Watcher`] (a concrete type in the
/// [`Backend`](crate::Backend) API) works for all of them.
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Changes to keys starting with `prefix` with revision > `after`, in
    /// revision order, at most one bounded page.
    ///
    /// Must fail with [`BackendError::Compacted`] if revisions after `after`
    /// were already compacted away, and [`BackendError::Closed`] once the
    /// backend is gone.
    async fn changes(&self, prefix: &str, after: u64) -> Result<ChangePage>;
}

/// A stream of changes under a prefix; see [`Backend::watch`](crate::Backend::watch).
///
/// Holds at most one page of events in memory.
pub struct Watcher {
    feed: Arc<dyn ChangeFeed>,
    wake: watch::Receiver<u64>,
    prefix: String,
    cursor: u64,
    buffer: VecDeque<Event>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("prefix", &self.prefix)
            .field("cursor", &self.cursor)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Builds a watcher delivering changes after revision `after`.
    ///
    /// `wake` must be updated whenever new changes may exist (any value
    /// change wakes the watcher) and its sender dropped when the backend
    /// closes. Public so that other backend implementations can reuse it.
    pub fn new(
        feed: Arc<dyn ChangeFeed>,
        wake: watch::Receiver<u64>,
        prefix: impl Into<String>,
        after: u64,
    ) -> Self {
        Self {
            feed,
            wake,
            prefix: prefix.into(),
            cursor: after,
            buffer: VecDeque::new(),
        }
    }

    /// Waits for and returns the next change, in revision order.
    ///
    /// Errors are sticky in the sense that retrying after
    /// [`BackendError::Compacted`] fails again: re-read the range and start
    /// a new watch. Cancel-safe: dropping the future loses no events.
    pub async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            // Mark the current wake value as seen *before* reading, so a
            // write committed after the read still wakes us below.
            self.wake.borrow_and_update();
            let page = self.feed.changes(&self.prefix, self.cursor).await?;
            self.cursor = self.cursor.max(page.cursor);
            if !page.events.is_empty() {
                // More may follow this page; read again once it is drained.
                self.buffer.extend(page.events);
                continue;
            }
            if self.wake.changed().await.is_err() {
                return Err(BackendError::Closed);
            }
        }
    }

    /// The revision of the last change this watcher has examined; persist it
    /// to resume with `watch(prefix, Some(rev))` after a restart.
    pub fn last_revision(&self) -> u64 {
        self.buffer
            .front()
            .map(|e| e.revision().saturating_sub(1))
            .unwrap_or(self.cursor)
    }
}
