//! Who is on the other end of a connection, as proven by a certificate.
//!
//! The CA crate encodes these types into X.509 certificates and decodes them back; every
//! service authorises on them without calling auth. Keeping them free of X.509 details lets the
//! RBAC checker and the audit log use them directly.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::database::DbProtocol;

/// A user's traits: named lists of values (e.g. `db_users: [app, readonly]`) that role
/// templates such as `{{internal.db_users}}` expand from.
pub type Traits = BTreeMap<String, Vec<String>>;

/// A person's identity, carried in a short-lived user certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Login name; the certificate's CN.
    pub username: String,
    /// The cluster that issued the certificate.
    pub cluster_name: String,
    /// Role names, evaluated by whoever authorises a request.
    pub roles: Vec<String>,
    /// Values for `{{internal.*}}` / `{{external.*}}` role templates.
    pub traits: Traits,
    /// When the certificate stops being valid.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Whether the login that produced the certificate passed a second factor.
    pub mfa_verified: bool,
    /// The address the user logged in from, for audit.
    pub login_ip: Option<IpAddr>,
    /// For database certificates: which database, as whom.
    pub route: Option<DbRoute>,
}

/// The database a certificate is routed to: read by the proxy to pick an agent, and re-checked
/// by the agent against the user's roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbRoute {
    /// The database's registered name.
    pub service_name: String,
    /// Its protocol.
    pub protocol: DbProtocol,
    /// The account to use on the database.
    pub db_user: String,
    /// The database/schema to open, when the protocol has one.
    pub db_name: Option<String>,
}

/// What a service (not a person) is allowed to be in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SystemRole {
    /// Full administrative access: the identity auth writes for `pcctl` on its own host.
    Admin,
    /// The auth service itself.
    Auth,
    /// A proxy.
    Proxy,
    /// A database agent.
    Db,
}

impl SystemRole {
    /// Every system role.
    pub const ALL: [SystemRole; 4] = [Self::Admin, Self::Auth, Self::Proxy, Self::Db];

    /// The spelling used in certificates and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "Admin",
            Self::Auth => "Auth",
            Self::Proxy => "Proxy",
            Self::Db => "Db",
        }
    }
}

impl fmt::Display for SystemRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A system role name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown system role {0:?}: use one of Admin, Auth, Proxy, Db")]
pub struct UnknownSystemRole(pub String);

impl FromStr for SystemRole {
    type Err = UnknownSystemRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSystemRole(s.to_owned()))
    }
}

/// A service's identity, carried in a host certificate from the host CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    /// Stable unique id of the process's host (a UUID); the certificate's CN.
    pub host_id: String,
    /// Human-friendly name, shown in listings.
    pub node_name: String,
    /// The cluster that issued the certificate.
    pub cluster_name: String,
    /// What the service may do.
    pub system_roles: Vec<SystemRole>,
    /// When the certificate stops being valid.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

impl HostIdentity {
    /// Whether this identity carries `role`.
    pub fn has_role(&self, role: SystemRole) -> bool {
        self.system_roles.contains(&role)
    }
}
