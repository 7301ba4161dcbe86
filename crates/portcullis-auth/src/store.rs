//! Typed records over the [`Backend`]: the only module that knows keys and storage formats.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use portcullis_backend::{Backend, Item};
use portcullis_core::identity::SystemRole;
use portcullis_core::role::Role;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{AuthError, Result};

/// Key prefixes.
pub mod keys {
    /// `/cluster/name`: the cluster's name, fixed at first start.
    pub const CLUSTER_NAME: &str = "/cluster/name";
    /// `/authorities/<kind>`.
    pub const AUTHORITIES: &str = "/authorities/";
    /// `/users/<name>`.
    pub const USERS: &str = "/users/";
    /// `/roles/<name>`.
    pub const ROLES: &str = "/roles/";
    /// `/invites/<sha256 of token>`.
    pub const INVITES: &str = "/invites/";
    /// `/tokens/<sha256 of token>`.
    pub const TOKENS: &str = "/tokens/";
    /// `/databases/<name>/<host id>`: agents' registrations, expiring without heartbeats.
    pub const DATABASES: &str = "/databases/";
    /// `/locks/<id>`.
    pub const LOCKS: &str = "/locks/";
    /// `/hosts/<host id>`: services that joined.
    pub const HOSTS: &str = "/hosts/";
}

/// A stored authority: certificate and private keys. Only ever read by auth itself.
#[derive(Clone, Serialize, Deserialize)]
pub struct CaRecord {
    /// CA certificate, PEM.
    pub cert_pem: String,
    /// PKCS#8 DER of the key, base64.
    pub key_pkcs8: String,
    /// For the user CA: the Ed25519 SSH signing key, PKCS#8 DER, base64.
    #[serde(default)]
    pub ssh_key_pkcs8: Option<String>,
}

impl fmt::Debug for CaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaRecord { <redacted> }")
    }
}

/// A local user, with the secrets needed to check a login.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Traits for role templates.
    #[serde(default)]
    pub traits: BTreeMap<String, Vec<String>>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// argon2id PHC string; `None` until the invite is accepted.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Enrolled TOTP secret (base32).
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// Last TOTP step used, so each code works once.
    #[serde(default)]
    pub totp_last_step: u64,
    /// Failed logins in a row.
    #[serde(default)]
    pub failed_logins: u32,
    /// Locked out until then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("password", &self.password_hash.as_ref().map(|_| "<set>"))
            .field("totp", &self.totp_secret.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// An invite: lets its holder set the user's password and enrol TOTP.
#[derive(Clone, Serialize, Deserialize)]
pub struct InviteRecord {
    /// For whom.
    pub user: String,
    /// Until when.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// The TOTP secret offered for enrolment, fixed once shown.
    #[serde(default)]
    pub totp_secret: Option<String>,
}

/// A join token (stored under its hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Short public id.
    pub id: String,
    /// What a service joining with it becomes.
    pub roles: Vec<SystemRole>,
    /// Until when.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// Consumed by its first use.
    pub single_use: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// A service that joined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    /// Assigned id.
    pub host_id: String,
    /// Name it gave.
    pub node_name: String,
    /// Roles it joined with.
    pub roles: Vec<SystemRole>,
    /// When it joined.
    #[serde(with = "time::serde::rfc3339")]
    pub joined: OffsetDateTime,
}

/// Typed access to cluster state.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

fn decode<T: DeserializeOwned>(item: &Item) -> Result<T> {
    serde_json::from_slice(&item.value)
        .map_err(|e| AuthError::Internal(format!("stored record {} is unreadable: {e}", item.key)))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| AuthError::Internal(format!("encoding a record: {e}")))
}

impl Store {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// The backend, for watchers.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Reads a record and its revision.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<(T, u64)>> {
        match self.backend.get(key).await? {
            Some(item) => Ok(Some((decode(&item)?, item.revision))),
            None => Ok(None),
        }
    }

    /// Creates a record; fails if it exists.
    pub async fn create<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        Ok(self.backend.create(key, encode(value)?, expires).await?)
    }

    /// Writes a record unconditionally.
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        Ok(self.backend.put(key, encode(value)?, expires).await?)
    }

    /// Replaces a record if it is still at `revision`.
    pub async fn swap<T: Serialize>(
        &self,
        key: &str,
        revision: u64,
        value: &T,
        expires: Option<OffsetDateTime>,
    ) -> Result<u64> {
        Ok(self
            .backend
            .compare_and_swap(key, revision, encode(value)?, expires)
            .await?)
    }

    /// Deletes a record; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.backend.delete(key).await?)
    }

    /// Deletes a record only if it is still at `revision`.
    pub async fn delete_at(&self, key: &str, revision: u64) -> Result<()> {
        Ok(self.backend.compare_and_delete(key, revision).await?)
    }

    /// Every record under `prefix`, with its key.
    pub async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>> {
        self.backend
            .range(prefix)
            .await?
            .iter()
            .map(|item| Ok((item.key.clone(), decode(item)?)))
            .collect()
    }

    /// A user and its revision.
    pub async fn user(&self, name: &str) -> Result<Option<(UserRecord, u64)>> {
        self.get(&format!("{}{name}", keys::USERS)).await
    }

    /// A role.
    pub async fn role(&self, name: &str) -> Result<Option<Role>> {
        Ok(self
            .get::<Role>(&format!("{}{name}", keys::ROLES))
            .await?
            .map(|(r, _)| r))
    }

    /// The roles named, skipping (and logging) ones that no longer exist: a deleted role
    /// grants nothing.
    pub async fn roles_named(&self, names: &[String]) -> Result<Vec<Role>> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.role(name).await? {
                Some(r) => out.push(r),
                None => tracing::warn!(role = %name, "a user refers to a role that does not exist"),
            }
        }
        Ok(out)
    }
}
