//! The cluster state an agent decides with — roles, locks, the user CA — followed by long
//! polling auth through the proxy, so a new lock reaches every agent within moments.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_api::{AgentState, LockView};
use portcullis_core::role::Role;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::identity::ClientSlot;

/// A snapshot of what sessions are checked against.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// Revision of the snapshot.
    pub revision: u64,
    /// Roles by name.
    pub roles: HashMap<String, Role>,
    /// Active locks.
    pub locks: Vec<LockView>,
    /// The user CA certificate, DER.
    pub user_ca_der: Vec<u8>,
}

impl ClusterState {
    /// The lock on `user` in force now, if any.
    pub fn lock_for(&self, user: &str) -> Option<&LockView> {
        let now = OffsetDateTime::now_utc();
        self.locks
            .iter()
            .find(|l| l.user == user && l.expires.is_none_or(|e| e > now))
    }

    /// The named roles that exist.
    pub fn roles_named(&self, names: &[String]) -> Vec<Role> {
        names
            .iter()
            .filter_map(|n| self.roles.get(n).cloned())
            .collect()
    }
}

/// A handle to the current state; sessions subscribe to learn of new locks.
#[derive(Debug, Clone)]
pub struct StateHandle {
    rx: watch::Receiver<Arc<ClusterState>>,
}

fn convert(s: AgentState) -> Result<ClusterState, String> {
    let mut roles = HashMap::new();
    for r in s.roles {
        match serde_json::from_value::<Role>(r) {
            Ok(role) => {
                roles.insert(role.name().to_owned(), role);
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a role the agent cannot read"),
        }
    }
    let user_ca_der = portcullis_ca::cert::certs_from_pem(&s.user_ca_pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no user CA in the agent state")?;
    Ok(ClusterState {
        revision: s.revision,
        roles,
        locks: s.locks,
        user_ca_der,
    })
}

impl StateHandle {
    /// Fetches the state once (failing if auth cannot be reached), then follows it.
    pub async fn start(client: Arc<ClientSlot>) -> Result<Self, String> {
        let first: AgentState = client
            .get()
            .get("/v1/agent/state")
            .await
            .map_err(|e| format!("fetching roles and locks through the proxy: {e}"))?;
        let (tx, rx) = watch::channel(Arc::new(convert(first)?));
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let after = tx.borrow().revision;
                let next: Result<AgentState, _> = client
                    .get()
                    .get(&format!("/v1/agent/state?after={after}"))
                    .await;
                match next.map_err(|e| e.to_string()).and_then(convert) {
                    Ok(state) => {
                        backoff = Duration::from_millis(200);
                        if state.revision != after && tx.send(Arc::new(state)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if tx.is_closed() {
                            return;
                        }
                        tracing::warn!(error = %e, "following cluster state failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        Ok(Self { rx })
    }

    /// The current state.
    pub fn current(&self) -> Arc<ClusterState> {
        Arc::clone(&self.rx.borrow())
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.rx.clone()
    }
}
