//! What every database engine does the same way: decide whether a session may start, describe
//! it in audit events, and watch for the moment it must end.
//!
//! The engines ([`crate::postgres`], [`crate::redis`], …) differ in how they speak to clients
//! and databases; the decisions are made here once, so a role, a lock or an expired
//! certificate means the same thing whatever the protocol. A refusal carries a
//! protocol-neutral [`RefusalKind`]; each engine turns it into its own error (a PostgreSQL
//! FATAL with a SQLSTATE, a RESP `-NOPERM`, a MySQL ERR packet).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::{Event, EventKind, Fragment, Lines, SessionEndReason, Stamp};
use portcullis_core::database::DbProtocol;
use portcullis_core::identity::Identity;
use portcullis_core::rbac::{AccessChecker, EffectiveOptions};
use time::OffsetDateTime;

use crate::spec::DbSpec;
use crate::Agent;

/// Why a session was refused or ended, in terms each protocol maps to its own error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The certificate is missing, invalid, for another route, or the user is locked.
    Unauthenticated,
    /// The roles do not allow what was asked.
    Forbidden,
    /// The database (or the audit log) cannot take the session now.
    Unavailable,
    /// The client broke the protocol.
    Protocol,
    /// An administrator or policy ends a live session.
    Shutdown,
    /// The connection to the database failed.
    ConnectionFailure,
}

/// A refusal or the end of a live session: what the client is told.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Which error class the client gets.
    pub kind: RefusalKind,
    /// The message, starting with `Portcullis:` when it is ours.
    pub message: String,
    /// What to do about it (may be empty).
    pub hint: &'static str,
    /// When a live session is ended: why, as the stable token `db.session.end` carries.
    pub end: Option<SessionEndReason>,
}

/// A refusal of `kind`.
pub fn refusal(kind: RefusalKind, message: impl Into<String>, hint: &'static str) -> Refusal {
    Refusal {
        kind,
        message: message.into(),
        hint,
        end: None,
    }
}

impl Refusal {
    /// Marks the refusal as ending a live session for `reason`.
    pub fn ending(mut self, reason: SessionEndReason) -> Self {
        self.end = Some(reason);
        self
    }

    /// The message and hint in one line, for protocols without a separate hint field.
    pub fn one_line(&self) -> String {
        if self.hint.is_empty() {
            self.message.clone()
        } else {
            format!("{} ({})", self.message, self.hint)
        }
    }
}

/// The refusal when events cannot be made durable (`when_full: refuse_sessions`).
pub fn audit_refusal() -> Refusal {
    refusal(
        RefusalKind::Unavailable,
        "Portcullis: the audit log cannot be written (the agent's audit spool is full while auth is unreachable); sessions are refused until it drains",
        "ask an administrator to check that the agent reaches auth",
    )
}

/// Records the events of what a session is about to forward, before it is forwarded, and
/// says whether the session may go on. With `audit_queries: false` only the commands the agent
/// refuses are kept. When the events cannot be recorded the server side is asked (through
/// `end`) to close the session with [`audit_refusal`], and the caller forwards nothing more.
pub async fn record_activity(
    agent: &Agent,
    s: &Session,
    mut events: Vec<Event>,
    end: &mut Option<tokio::sync::oneshot::Sender<Refusal>>,
) -> bool {
    if !s.spec.audit_queries {
        events.retain(|e| e.kind() == EventKind::DbSessionQueryFailed);
    }
    record_lines(agent, s, &Lines::from(events), end).await
}

/// [`record_activity`] for events already written as lines (the PostgreSQL engine writes
/// them straight into one buffer per session, and only when the database's queries are
/// audited).
pub async fn record_lines(
    agent: &Agent,
    s: &Session,
    lines: &Lines,
    end: &mut Option<tokio::sync::oneshot::Sender<Refusal>>,
) -> bool {
    match agent.audit.record_lines(lines).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(sid = %s.sid, error = %e, "ending the session: its audit events cannot be recorded");
            if let Some(tx) = end.take() {
                let _ = tx.send(audit_refusal());
            }
            false
        }
    }
}

/// An authorised session: who, to which database, as which database user.
#[derive(Debug)]
pub struct Session {
    /// Fields every event of the session carries, serialised once.
    pub base: Fragment,
    /// `cluster_name` and [`Session::base`]: what the session's events start with.
    head: Fragment,
    /// The verified identity from the certificate.
    pub identity: Identity,
    /// The database.
    pub spec: DbSpec,
    /// The database user the session runs as.
    pub db_user: String,
    /// The database (schema) name, where the protocol has one.
    pub db_name: Option<String>,
    /// Session id, shared with the proxy's events.
    pub sid: String,
    /// The client's address as the proxy saw it.
    pub client_addr: String,
    /// The roles, to check later requests (a MySQL `USE`, a Redis `AUTH`).
    pub checker: AccessChecker,
    /// The protocol, as events name it.
    pub protocol: DbProtocol,
}

impl Session {
    /// A new event of `kind` carrying the session's fields.
    pub fn event(&self, kind: EventKind) -> Event {
        Event::stamped(kind, &Stamp::now(), &self.head)
    }

    /// `cluster_name` and the session's shared fields, serialised: the head of its events
    /// (for [`Event::stamped`]).
    pub fn head(&self) -> &Fragment {
        &self.head
    }

    /// Recomputes the shared event fields (after `db_name` changed).
    pub fn set_base_fields(&mut self, agent: &Agent) {
        self.base = self.base_fields(agent, self.db_name.as_deref());
        self.head = Fragment::cluster(&self.identity.cluster_name, &self.base);
    }

    /// The fields every event of the session carries, with `db_name` as given (a MySQL `USE`
    /// changes it mid-session).
    pub fn base_fields(&self, agent: &Agent, db_name: Option<&str>) -> Fragment {
        let mut base = Fragment::new()
            .with("user", &self.identity.username)
            .with("sid", &self.sid)
            .with("db_service", &self.spec.name)
            .with("db_protocol", self.protocol.as_str())
            .with("db_uri", &self.spec.uri)
            .with("db_user", &self.db_user);
        if let Some(n) = db_name {
            base = base.with("db_name", n);
        }
        base.with("db_roles", &self.identity.roles)
            .with("server_id", &agent.identity.host.host_id)
            .with("addr.remote", &self.client_addr)
    }

    /// The role options (idle timeout, expired-certificate policy, …).
    pub fn options(&self) -> EffectiveOptions {
        self.checker.options()
    }
}

/// What the client asked for, in the protocol's own terms.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// The protocol the client speaks.
    pub protocol: DbProtocol,
    /// The database user the client named, if the protocol names one before the session
    /// starts (PostgreSQL, MySQL); `None` takes the certificate's.
    pub db_user: Option<&'a str>,
    /// The database name the client named; `None` takes the certificate's (or none).
    pub db_name: Option<&'a str>,
}

/// A refusal and, when the certificate could be read, whose.
pub type Denied = Box<(Option<Identity>, Refusal)>;

/// Decides whether a session may start: re-verifies the certificate the proxy forwarded
/// against the current user CA, refuses locked users, checks the route against what the
/// client asked, and evaluates the roles against this database.
pub fn authorize(
    agent: &Agent,
    cert: &[u8],
    asked: Asked<'_>,
    sid: &str,
    client_addr: &str,
) -> Result<Session, Denied> {
    use RefusalKind::*;
    let state = agent.state.current();
    let denied = |id: Option<&Identity>, r: Refusal| Box::new((id.cloned(), r));
    let identity = portcullis_ca::decode_user_identity(cert).map_err(|e| {
        denied(
            None,
            refusal(
                Unauthenticated,
                format!("Portcullis: {e}"),
                "run `pc db login NAME`",
            ),
        )
    })?;
    if let Err(e) =
        portcullis_ca::verify_signed_by(&state.user_ca_der, "user", cert, OffsetDateTime::now_utc())
    {
        return Err(denied(
            Some(&identity),
            refusal(
                Unauthenticated,
                format!("Portcullis: certificate {e}"),
                "log in again: `pc login`, then `pc db login NAME`",
            ),
        ));
    }
    if identity.cluster_name != agent.identity.host.cluster_name {
        return Err(denied(
            Some(&identity),
            refusal(
                Unauthenticated,
                "Portcullis: certificate from another cluster",
                "",
            ),
        ));
    }
    let Some(route) = identity
        .route
        .clone()
        .filter(|r| r.protocol == asked.protocol)
    else {
        return Err(denied(
            Some(&identity),
            refusal(
                Unauthenticated,
                format!(
                    "Portcullis: the certificate is not routed to a {} database",
                    asked.protocol.display_name()
                ),
                "run `pc db login NAME`",
            ),
        ));
    };
    let Some(spec) = agent.databases.get(&route.service_name).cloned() else {
        return Err(denied(
            Some(&identity),
            refusal(
                Unavailable,
                format!(
                    "Portcullis: this agent does not serve {:?}",
                    route.service_name
                ),
                "",
            ),
        ));
    };
    if spec.protocol != asked.protocol {
        return Err(denied(
            Some(&identity),
            refusal(
                Unauthenticated,
                format!(
                    "Portcullis: database {:?} speaks {}, not {}",
                    spec.name,
                    spec.protocol.display_name(),
                    asked.protocol.display_name()
                ),
                "run `pc db login NAME` for the database you mean",
            ),
        ));
    }
    if let Some(lock) = state.lock_for(&identity.username) {
        let msg = if lock.message.is_empty() {
            "your access is locked by an administrator".to_owned()
        } else {
            format!("your access is locked: {}", lock.message)
        };
        return Err(denied(
            Some(&identity),
            refusal(
                Unauthenticated,
                format!("Portcullis: {msg}"),
                "ask an administrator",
            ),
        ));
    }
    if let Some(asked_user) = asked.db_user {
        if asked_user != route.db_user {
            return Err(denied(
                Some(&identity),
                refusal(
                    Unauthenticated,
                    format!(
                        "Portcullis: the certificate is for database user {:?}, not {asked_user:?}",
                        route.db_user
                    ),
                    "connect with that user, or run `pc db login NAME --db-user=USER`",
                ),
            ));
        }
    }
    let db_name = match (&route.db_name, asked.db_name) {
        (Some(d), Some(a)) if d != a => {
            return Err(denied(
                Some(&identity),
                refusal(
                    Unauthenticated,
                    format!("Portcullis: the certificate is for database {d:?}, not {a:?}"),
                    "connect to that database, or run `pc db login NAME --db-name=DB`",
                ),
            ))
        }
        (Some(d), _) => Some(d.clone()),
        (None, a) => a.map(str::to_owned),
    };
    let checker = AccessChecker::new(state.roles_named(&identity.roles), &identity.traits);
    let Some(db) = agent.databases.as_database(&spec.name) else {
        return Err(denied(
            Some(&identity),
            refusal(Unavailable, "Portcullis: database vanished", ""),
        ));
    };
    if let Err(d) = checker.check_database(&db, &route.db_user, db_name.as_deref()) {
        tracing::info!(user = %identity.username, db = %spec.name, reason = %d.reason(), "session denied");
        return Err(denied(
            Some(&identity),
            refusal(Forbidden, format!("Portcullis: {d}"), ""),
        ));
    }
    let mut session = Session {
        base: Fragment::new(),
        head: Fragment::new(),
        db_user: route.db_user,
        db_name,
        spec,
        sid: sid.to_owned(),
        client_addr: client_addr.to_owned(),
        checker,
        identity,
        protocol: asked.protocol,
    };
    session.set_base_fields(agent);
    Ok(session)
}

impl Session {
    /// Whether the roles allow switching to database `name` (MySQL `USE`, `COM_INIT_DB`).
    pub fn check_db_name(&self, agent: &Agent, name: &str) -> Result<(), Refusal> {
        if let Some(d) = self
            .identity
            .route
            .as_ref()
            .and_then(|r| r.db_name.as_ref())
        {
            if d != name {
                return Err(refusal(
                    RefusalKind::Forbidden,
                    format!("Portcullis: the certificate is for database {d:?}, not {name:?}"),
                    "run `pc db login NAME --db-name=DB` for the other database",
                ));
            }
        }
        let Some(db) = agent.databases.as_database(&self.spec.name) else {
            return Err(refusal(
                RefusalKind::Unavailable,
                "Portcullis: database vanished",
                "",
            ));
        };
        self.checker
            .check_database(&db, &self.db_user, Some(name))
            .map_err(|d| refusal(RefusalKind::Forbidden, format!("Portcullis: {d}"), ""))
    }
}

/// [`authorize`], then the audit spool's admission (fail closed when it is full), recording
/// the `db.session.start` failure event of a refusal; the caller sends the refusal in its
/// protocol.
pub async fn admit(
    agent: &Agent,
    cert: &[u8],
    asked: Asked<'_>,
    sid: &str,
    client_addr: &str,
) -> Result<Session, Refusal> {
    let session = match authorize(agent, cert, asked, sid, client_addr) {
        Ok(s) => s,
        Err(denied) => {
            let (identity, r) = *denied;
            let e = start_failure_event(
                agent,
                asked.protocol,
                identity,
                sid,
                client_addr,
                &r.message,
            );
            agent.audit.send(e).await;
            return Err(r);
        }
    };
    if !agent.audit.admit_session() {
        let r = audit_refusal();
        record_start_failure(agent, &session, &r).await;
        return Err(r);
    }
    Ok(session)
}

/// The `db.session.start` failure event for a session refused before it was authorised.
pub fn start_failure_event(
    agent: &Agent,
    protocol: DbProtocol,
    identity: Option<Identity>,
    sid: &str,
    client_addr: &str,
    error: &str,
) -> Event {
    let mut e = Event::new(
        EventKind::DbSessionStartFailure,
        &agent.identity.host.cluster_name,
    )
    .with("sid", sid)
    .with("success", false)
    .with("error", error)
    .with("db_protocol", protocol.as_str())
    .with("server_id", agent.identity.host.host_id.clone())
    .with("addr.remote", client_addr);
    if let Some(id) = identity {
        e.set("user", id.username.clone());
        if let Some(route) = id.route {
            e.set("db_service", route.service_name);
            e.set("db_user", route.db_user);
            if let Some(n) = route.db_name {
                e.set("db_name", n);
            }
        }
    }
    e
}

/// Records that an authorised session could not start (`db.session.start`, success false).
pub async fn record_start_failure(agent: &Agent, session: &Session, r: &Refusal) {
    agent
        .audit
        .send(
            session
                .event(EventKind::DbSessionStartFailure)
                .with("success", false)
                .with("error", r.message.clone()),
        )
        .await;
}

/// Records `db.session.end`, with why the agent ended it when it did.
pub async fn record_end(agent: &Agent, session: &Session, ended: Option<&Refusal>) {
    let mut end = session.event(EventKind::DbSessionEnd);
    if let Some(r) = ended {
        end.set("reason", r.message.clone());
        if let Some(code) = r.end {
            end.set("end_reason", code.as_str());
        }
    }
    agent.audit.send(end).await;
}

/// Runs a relay's two directions until one ends; returns why the agent ended the session, if
/// it did (the server side returns the refusal it sent the client).
pub async fn first_to_end(
    sid: &str,
    client_to_server: impl std::future::Future<Output = Result<(), String>>,
    server_to_client: impl std::future::Future<Output = Result<(), Refusal>>,
) -> Option<Refusal> {
    tokio::select! {
        r = client_to_server => {
            if let Err(e) = r {
                tracing::debug!(%sid, error = %e, "client side ended");
            }
            None
        }
        r = server_to_client => match r {
            Ok(()) => None,
            Err(r) => {
                tracing::info!(%sid, reason = %r.message, "session ended by the agent");
                Some(r)
            }
        },
    }
}

/// Seconds since the epoch, for idle tracking.
pub fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// When the client last sent something, shared between a relay and [`must_end`].
#[derive(Clone, Debug)]
pub struct Activity(Arc<AtomicI64>);

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(AtomicI64::new(now_secs())))
    }
}

impl Activity {
    /// The client did something now.
    pub fn touch(&self) {
        self.0.store(now_secs(), Ordering::Relaxed);
    }

    fn last(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Resolves when the session must end: a lock on the user, the certificate's expiry (with
/// `disconnect_expired_cert`), `client_idle_timeout`, or a refusal sent on `refused` (the
/// audit log cannot be written). Never resolves otherwise.
pub async fn must_end(
    agent: &Agent,
    session: &Session,
    activity: Activity,
    refused: tokio::sync::oneshot::Receiver<Refusal>,
) -> Refusal {
    use RefusalKind::Shutdown;
    let options = session.options();
    let mut state = agent.state.subscribe();
    let user = session.identity.username.clone();
    let expires = session.identity.expires;
    let expiry = async {
        if options.disconnect_expired_cert {
            let left = expires - OffsetDateTime::now_utc();
            tokio::time::sleep(Duration::try_from(left).unwrap_or(Duration::ZERO)).await;
            return refusal(
                Shutdown,
                "Portcullis: your certificate expired; the session ends",
                "log in again: `pc login`, then `pc db login NAME`",
            )
            .ending(SessionEndReason::CertExpired);
        }
        std::future::pending().await
    };
    let lock = async {
        loop {
            if let Some(l) = state.borrow_and_update().lock_for(&user) {
                let msg = if l.message.is_empty() {
                    "an administrator locked your access".to_owned()
                } else {
                    format!("an administrator locked your access: {}", l.message)
                };
                return refusal(Shutdown, format!("Portcullis: {msg}; the session ends"), "")
                    .ending(SessionEndReason::Locked);
            }
            if state.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    };
    let idle = async {
        let Some(limit) = options.client_idle_timeout else {
            return std::future::pending().await;
        };
        loop {
            let idle_for = now_secs() - activity.last();
            let left = limit.as_secs() as i64 - idle_for;
            if left <= 0 {
                return refusal(
                    Shutdown,
                    format!(
                        "Portcullis: the session was idle for {}s and ends",
                        limit.as_secs()
                    ),
                    "",
                )
                .ending(SessionEndReason::IdleTimeout);
            }
            tokio::time::sleep(Duration::from_secs(left as u64)).await;
        }
    };
    let audit = async {
        match refused.await {
            Ok(r) => r,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = expiry => r,
        r = lock => r,
        r = idle => r,
        r = audit => r,
    }
}
