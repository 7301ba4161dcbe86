//! Messages on the agent's control stream.

use portcullis_api::DatabaseInfo;
use serde::{Deserialize, Serialize};

/// How often an agent speaks on its control stream.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Silence after which a proxy gives up on an agent and drops its tunnel.
pub const HEARTBEAT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Agent → proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlMessage {
    /// The databases the agent serves now (sent first and on every change).
    Databases {
        /// The databases.
        databases: Vec<DatabaseInfo>,
    },
    /// I am alive.
    Heartbeat,
}
