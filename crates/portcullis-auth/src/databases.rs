//! The database registry (agents' heartbeats) and certificates routed to one database.

use std::collections::BTreeMap;
use std::time::Duration;

use portcullis_api::{
    DatabaseHeartbeat, DatabaseInfo, DatabaseView, DbLoginRequest, DbLoginResponse,
};
use portcullis_ca::PublicKey;
use portcullis_core::database::{Database, DbProtocol};
use portcullis_core::identity::{DbRoute, HostIdentity, Identity};
use portcullis_core::names::validate_name;
use portcullis_core::rbac::AccessChecker;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{AuthError, Result};
use crate::server::AuthServer;
use crate::store::keys;

/// Shortest registration lifetime an agent may ask for.
pub const MIN_HEARTBEAT_TTL: Duration = Duration::from_secs(5);
/// Longest registration lifetime: a vanished agent drops out within this.
pub const MAX_HEARTBEAT_TTL: Duration = Duration::from_secs(600);
/// Most databases one agent may register.
pub const MAX_DATABASES_PER_AGENT: usize = 1000;

/// One agent's registration of one database (`/databases/<name>/<host id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    /// What the agent says about the database.
    pub database: DatabaseInfo,
    /// The agent.
    pub host_id: String,
    /// Its node name.
    pub node_name: String,
}

fn to_core(info: &DatabaseInfo) -> Result<Database> {
    Ok(Database {
        name: info.name.clone(),
        protocol: info
            .protocol
            .parse::<DbProtocol>()
            .map_err(|e| AuthError::BadRequest(e.to_string()))?,
        uri: info.uri.clone(),
        description: info.description.clone(),
        labels: info.labels.clone(),
    })
}

impl AuthServer {
    /// Records what an agent serves; entries expire after `ttl_seconds` unless renewed.
    pub async fn heartbeat(&self, host: &HostIdentity, hb: DatabaseHeartbeat) -> Result<usize> {
        if hb.databases.len() > MAX_DATABASES_PER_AGENT {
            return Err(AuthError::BadRequest(format!(
                "an agent may register at most {MAX_DATABASES_PER_AGENT} databases"
            )));
        }
        let ttl = Duration::from_secs(hb.ttl_seconds).clamp(MIN_HEARTBEAT_TTL, MAX_HEARTBEAT_TTL);
        let expires = OffsetDateTime::now_utc() + ttl;
        for db in &hb.databases {
            validate_name("database", &db.name)
                .map_err(|e| AuthError::BadRequest(e.to_string()))?;
            to_core(db)?;
            for (k, v) in &db.labels {
                if k.is_empty() || k.len() > 128 || v.len() > 256 {
                    return Err(AuthError::BadRequest(format!(
                        "database {:?}: label {k:?} must be 1–128 characters with a value of at most 256",
                        db.name
                    )));
                }
            }
        }
        for db in hb.databases {
            let reg = Registration {
                host_id: host.host_id.clone(),
                node_name: host.node_name.clone(),
                database: db,
            };
            let key = format!("{}{}/{}", keys::DATABASES, reg.database.name, host.host_id);
            self.store.put(&key, &reg, Some(expires)).await?;
        }
        Ok(self.store.backend().range(keys::DATABASES).await?.len())
    }

    /// Every live registration, grouped by database name.
    pub async fn registered_databases(&self) -> Result<BTreeMap<String, Vec<Registration>>> {
        let mut out: BTreeMap<String, Vec<Registration>> = BTreeMap::new();
        for (_, reg) in self.store.list::<Registration>(keys::DATABASES).await? {
            out.entry(reg.database.name.clone()).or_default().push(reg);
        }
        Ok(out)
    }

    /// The databases `checker` allows, with what it allows on each.
    pub async fn databases_for(&self, checker: &AccessChecker) -> Result<Vec<DatabaseView>> {
        let mut out = Vec::new();
        for (_, regs) in self.registered_databases().await? {
            let Some(first) = regs.first() else { continue };
            let Ok(db) = to_core(&first.database) else {
                continue;
            };
            if !checker.can_access_database(&db) {
                continue;
            }
            out.push(DatabaseView {
                allowed_db_users: checker.allowed_db_users(&db),
                allowed_db_names: checker.allowed_db_names(&db),
                agents: regs.iter().map(|r| r.host_id.clone()).collect(),
                database: first.database.clone(),
            });
        }
        Ok(out)
    }

    /// Issues a user certificate routed to one database, after checking the roles allow it;
    /// it expires with the login certificate presented.
    pub async fn db_login(
        &self,
        identity: &Identity,
        checker: &AccessChecker,
        req: DbLoginRequest,
    ) -> Result<DbLoginResponse> {
        let regs = self.registered_databases().await?;
        let Some(reg) = regs.get(&req.service).and_then(|r| r.first()) else {
            return Err(AuthError::NotFound(format!(
                "database {:?} is not registered (or its agent is offline); `pc db ls` lists what you can reach",
                req.service
            )));
        };
        let db = to_core(&reg.database)?;
        let db_name = req.db_name.clone().filter(|n| !n.is_empty());
        if let Err(denied) = checker.check_database(&db, &req.db_user, db_name.as_deref()) {
            tracing::info!(user = %identity.username, db = %req.service, db_user = %req.db_user, reason = %denied.reason(), "database login denied");
            let mut event = self
                .event(portcullis_audit::EventKind::AccessDenied)
                .with("user", &identity.username)
                .with("success", false)
                .with("error", denied.to_string())
                .with("resource", "db")
                .with("verb", "connect")
                .with("db_service", &db.name)
                .with("db_user", &req.db_user);
            if let Some(n) = &db_name {
                event.set("db_name", n);
            }
            self.emit(event);
            return Err(AuthError::Forbidden(denied.to_string()));
        }
        let key = PublicKey::from_pem(&req.public_key)?;
        let now = OffsetDateTime::now_utc();
        let routed = Identity {
            route: Some(DbRoute {
                service_name: db.name.clone(),
                protocol: db.protocol,
                db_user: req.db_user.clone(),
                db_name,
            }),
            ..identity.clone()
        };
        if routed.expires <= now {
            return Err(AuthError::Unauthenticated(
                "your login has expired; run pc login".into(),
            ));
        }
        let cert = self.user_ca.issue_user(&routed, &key, now)?;
        tracing::info!(user = %identity.username, db = %db.name, db_user = %req.db_user, "database certificate issued");
        self.emit_cert(
            &identity.username,
            "db",
            crate::audit::user_identity_fields(&routed),
        );
        Ok(DbLoginResponse {
            cert_pem: portcullis_ca::cert::to_pem(&cert),
            protocol: db.protocol.as_str().into(),
            expires: routed.expires,
        })
    }
}
