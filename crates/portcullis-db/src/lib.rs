//! The database agent.
//!
//! It runs next to the databases, dials out to the proxy and keeps a reverse tunnel open
//! ([`tunnel`]), announces the databases it serves ([`spec`], with command-driven labels),
//! follows the cluster's roles and locks ([`state`]), and for each session re-verifies the
//! user's certificate, evaluates the roles, connects to the database with a certificate from
//! the db CA ([`dbcerts`]) and relays the protocol ([`postgres`]), auditing what it parses
//! ([`audit`]).
#![forbid(unsafe_code)]

pub mod audit;
pub mod dbcerts;
pub mod identity;
pub mod mask;
pub mod mysql;
pub mod postgres;
pub mod postgres_audit;
pub mod query_text;
pub mod redis;
pub mod session;
pub mod spec;
pub mod spool;
pub mod state;
pub mod tunnel;

use std::sync::Arc;

pub use identity::AgentIdentity;
pub use spec::{DbSpec, DbTlsMode};

/// Everything sessions share.
pub struct Agent {
    /// Who this agent is.
    pub identity: AgentIdentity,
    /// The databases served.
    pub databases: spec::Databases,
    /// Roles, locks, user CA.
    pub state: state::StateHandle,
    /// Database client certificates.
    pub dbcerts: dbcerts::DbCertCache,
    /// Where events go.
    pub audit: audit::AuditSender,
    /// Sessions that can be cancelled.
    pub cancels: postgres::CancelRegistry,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("host_id", &self.identity.host.host_id)
            .finish_non_exhaustive()
    }
}

/// Starts an agent: state following, audit shipping and label refreshing run as background
/// tasks; connect it to a proxy with [`tunnel::run`] (over the network) or
/// [`tunnel::serve`] (in one process).
pub async fn start(
    identity: AgentIdentity,
    proxy_addr: &str,
    databases: Vec<DbSpec>,
    local_audit: Option<Arc<dyn audit::Deliver>>,
    audit_options: &audit::AuditOptions,
) -> Result<Arc<Agent>, String> {
    let api = identity.client(proxy_addr)?;
    // The spool first: events a previous run left on disk are delivered before new ones.
    let (cluster, host) = (&identity.host.cluster_name, &identity.host.host_id);
    let audit = match local_audit {
        Some(d) => audit::AuditSender::start_with(d, audit_options, cluster, host)?,
        None => {
            audit::AuditSender::start(identity.client(proxy_addr)?, audit_options, cluster, host)?
        }
    };
    let state = state::StateHandle::start(identity.client(proxy_addr)?).await?;
    let dbcerts = dbcerts::DbCertCache::new(api, identity.db_ca_der.clone());
    let databases = spec::Databases::start(databases);
    Ok(Arc::new(Agent {
        identity,
        databases,
        state,
        dbcerts,
        audit,
        cancels: postgres::CancelRegistry::default(),
    }))
}

/// Runs a session with the engine for the protocol of the database the certificate routes
/// to (PostgreSQL when the route names none this agent serves: it answers in PostgreSQL's
/// terms, as the proxy's first refusals do).
pub async fn session_for<S>(
    agent: Arc<Agent>,
    stream: S,
    cert: Vec<u8>,
    client_addr: String,
    sid: String,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let protocol = portcullis_ca::decode_user_identity(&cert)
        .ok()
        .and_then(|id| id.route)
        .map(|r| r.protocol);
    match protocol {
        Some(portcullis_core::database::DbProtocol::Redis) => {
            redis::session(agent, stream, cert, client_addr, sid).await
        }
        Some(portcullis_core::database::DbProtocol::Mysql) => {
            mysql::session(agent, stream, cert, client_addr, sid).await
        }
        _ => postgres::session(agent, stream, cert, client_addr, sid).await,
    }
}
