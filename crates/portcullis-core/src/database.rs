//! A database as the cluster knows it: enough to list it and to decide who may reach it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The wire protocols the database agent relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbProtocol {
    /// PostgreSQL and compatible servers.
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    /// Redis (RESP2/RESP3).
    Redis,
    /// MongoDB (OP_MSG).
    Mongodb,
}

impl DbProtocol {
    /// Every protocol, for help texts and validation messages.
    pub const ALL: [DbProtocol; 4] = [Self::Postgres, Self::Mysql, Self::Redis, Self::Mongodb];

    /// The spelling used in config files, certificates and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Redis => "redis",
            Self::Mongodb => "mongodb",
        }
    }

    /// The product name, as messages to people spell it.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MySQL/MariaDB",
            Self::Redis => "Redis",
            Self::Mongodb => "MongoDB",
        }
    }
}

impl fmt::Display for DbProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name that is not one of [`DbProtocol::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown database protocol {0:?}: use one of postgres, mysql, redis, mongodb")]
pub struct UnknownProtocol(pub String);

impl FromStr for DbProtocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProtocol(s.to_owned()))
    }
}

/// A registered database, as roles see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// Unique name users pick it by (`pc db login NAME`).
    pub name: String,
    /// The protocol its clients speak.
    pub protocol: DbProtocol,
    /// Where the agent reaches it (`host:port`).
    pub uri: String,
    /// Free text shown by `pc db ls`.
    #[serde(default)]
    pub description: String,
    /// Static and command-driven labels, merged; roles match on these.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
