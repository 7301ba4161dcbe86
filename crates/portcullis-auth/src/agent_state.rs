//! What database agents need to decide on sessions without calling auth per connection:
//! roles, locks and the user CA, with a long poll so changes (a new lock) reach them within
//! moments.

use std::time::Duration;

use portcullis_api::AgentState;

use crate::error::Result;
use crate::server::AuthServer;
use crate::store::keys;

/// Longest a long poll waits before answering with an unchanged state.
pub const LONG_POLL: Duration = Duration::from_secs(25);

impl AuthServer {
    /// The current state; with `after`, waits until something under roles or locks changes
    /// past that revision (or [`LONG_POLL`] passes).
    pub async fn agent_state(&self, after: Option<u64>) -> Result<AgentState> {
        if let Some(after) = after {
            let backend = self.store.backend();
            let current = backend.current_revision().await?;
            if current <= after {
                // Wait for any change to roles or locks (or users: a deleted user's roles
                // vanish) after `after`.
                let mut watches = Vec::new();
                for prefix in [keys::ROLES, keys::LOCKS, keys::USERS] {
                    watches.push(backend.watch(prefix, Some(after)).await?);
                }
                let wait = async {
                    let mut futs: Vec<_> = watches.iter_mut().map(|w| Box::pin(w.next())).collect();
                    // Any watcher yielding (an event or an error) ends the wait.
                    futures_lite_select(&mut futs).await;
                };
                let _ = tokio::time::timeout(LONG_POLL, wait).await;
            }
        }
        let revision = self.store.backend().current_revision().await?;
        let roles = self
            .store
            .list::<serde_json::Value>(keys::ROLES)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        Ok(AgentState {
            revision,
            roles,
            locks: self.list_locks().await?,
            user_ca_pem: self.user_ca.cert_pem(),
        })
    }
}

/// Resolves when the first of `futs` resolves.
async fn futures_lite_select<F: std::future::Future + Unpin>(futs: &mut [F]) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}
