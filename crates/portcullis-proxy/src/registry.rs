//! The agents connected to this proxy and the databases each serves.

use std::collections::HashMap;
use std::sync::RwLock;

use portcullis_api::DatabaseInfo;
use portcullis_tunnel::TunnelHandle;
use rand::seq::SliceRandom;

/// One connected agent.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    /// Its host id (from its certificate).
    pub host_id: String,
    /// Its node name.
    pub node_name: String,
    /// Opens streams to it.
    pub tunnel: TunnelHandle,
    /// What it serves.
    pub databases: Vec<DatabaseInfo>,
}

/// Connected agents, by host id.
#[derive(Debug, Default)]
pub struct Registry {
    agents: RwLock<HashMap<String, AgentEntry>>,
}

impl Registry {
    /// Adds (or replaces) an agent.
    pub fn insert(&self, entry: AgentEntry) {
        if let Ok(mut m) = self.agents.write() {
            m.insert(entry.host_id.clone(), entry);
        }
    }

    /// Updates the databases an agent serves.
    pub fn set_databases(&self, host_id: &str, databases: Vec<DatabaseInfo>) {
        if let Ok(mut m) = self.agents.write() {
            if let Some(e) = m.get_mut(host_id) {
                e.databases = databases;
            }
        }
    }

    /// Removes an agent, but only if `tunnel` is still its current tunnel (a reconnect may
    /// already have replaced it).
    pub fn remove(&self, host_id: &str, tunnel: &TunnelHandle) {
        if let Ok(mut m) = self.agents.write() {
            if m.get(host_id).is_some_and(|e| same(&e.tunnel, tunnel)) {
                m.remove(host_id);
            }
        }
    }

    /// Live agents serving `database`, in random order (the first is tried first, the others
    /// are for fail-over).
    pub fn agents_for(&self, database: &str) -> Vec<AgentEntry> {
        let mut found: Vec<AgentEntry> = match self.agents.read() {
            Ok(m) => m
                .values()
                .filter(|e| !e.tunnel.is_closed() && e.databases.iter().any(|d| d.name == database))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        found.shuffle(&mut rand::thread_rng());
        found
    }

    /// Every live agent.
    pub fn all(&self) -> Vec<AgentEntry> {
        match self.agents.read() {
            Ok(m) => m
                .values()
                .filter(|e| !e.tunnel.is_closed())
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn same(a: &TunnelHandle, b: &TunnelHandle) -> bool {
    a.same_tunnel(b)
}
