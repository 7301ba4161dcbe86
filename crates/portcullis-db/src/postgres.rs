//! The PostgreSQL engine: one session from the client's startup packet to its end.
//!
//! 1. Read the startup packet from the tunnel stream.
//! 2. Re-verify the forwarded certificate against the user CA, refuse locked users, check the
//!    route and evaluate the roles against this database's labels, db user and db name.
//! 3. Connect to the database over TLS with a client certificate `CN=<db user>` from the db CA
//!    and send the client's startup parameters with the routed user and database.
//! 4. Relay the startup exchange (the client gets the server's real BackendKeyData and
//!    ParameterStatus), then relay both ways: client messages are framed and the ones the
//!    audit log needs are decoded; server messages are framed only to find message
//!    boundaries, so a FATAL can be injected between messages when the session must end
//!    (lock, expired certificate, idle timeout).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portcullis_audit::{Event, EventKind, Fragment, Json, Stamp};
use portcullis_core::database::DbProtocol;
use portcullis_wire::postgres::{
    sqlstate, Authentication, BackendMessage, CancelRequest, ErrorResponse, Frame, Framer,
    FrontendMessage, InitialPacket, Message, PgString, StartupMessage, Target,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::query_text::{query_field, query_fragment, AuditedQuery};
use crate::session::{
    admit, must_end, record_activity, record_end, record_start_failure, refusal, Activity, Asked,
    Refusal, RefusalKind, Session,
};
use crate::spec::DbSpec;
use crate::Agent;

/// Time a client has to send its startup packet.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to connect to the database and finish its startup.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Prepared statements and portals remembered per session for auditing Execute.
pub const MAX_TRACKED: usize = 10_000;

/// Sessions' cancel keys, so a CancelRequest arriving through any proxy reaches the database.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    keys: Mutex<HashMap<(i32, Bytes), (String, String)>>,
}

impl CancelRegistry {
    fn insert(&self, pid: i32, secret: Bytes, db: &str, db_user: &str) {
        if let Ok(mut m) = self.keys.lock() {
            m.insert((pid, secret), (db.to_owned(), db_user.to_owned()));
        }
    }

    fn remove(&self, pid: i32, secret: &Bytes) {
        if let Ok(mut m) = self.keys.lock() {
            m.remove(&(pid, secret.clone()));
        }
    }

    fn get(&self, pid: i32, secret: &Bytes) -> Option<(String, String)> {
        self.keys.lock().ok()?.get(&(pid, secret.clone())).cloned()
    }
}

/// Delivers a cancel request to the database if one of our sessions holds the key.
pub async fn cancel(agent: &Agent, process_id: i32, secret_key: Bytes) {
    let Some((db, db_user)) = agent.cancels.get(process_id, &secret_key) else {
        return;
    };
    let Some(spec) = agent.databases.get(&db).cloned() else {
        return;
    };
    let result = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let mut server = connect(agent, &spec, &db_user).await?;
        let mut out = BytesMut::new();
        InitialPacket::CancelRequest(CancelRequest {
            process_id,
            secret_key,
        })
        .encode(&mut out)
        .map_err(|e| e.to_string())?;
        server.write_all(&out).await.map_err(|e| e.to_string())?;
        server.flush().await.map_err(|e| e.to_string())?;
        let _ = server.shutdown().await;
        Ok::<_, String>(())
    })
    .await;
    match result {
        Ok(Ok(())) => tracing::info!(db = %db, pid = process_id, "cancel request delivered"),
        Ok(Err(e)) => tracing::warn!(db = %db, error = %e, "cancel request failed"),
        Err(_) => tracing::warn!(db = %db, "cancel request timed out"),
    }
}

/// The SQLSTATE a refusal of `kind` carries.
fn sqlstate_of(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Unauthenticated => sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
        RefusalKind::Forbidden => sqlstate::INSUFFICIENT_PRIVILEGE,
        RefusalKind::Unavailable => sqlstate::CANNOT_CONNECT_NOW,
        RefusalKind::Protocol => sqlstate::PROTOCOL_VIOLATION,
        RefusalKind::Shutdown => sqlstate::ADMIN_SHUTDOWN,
        RefusalKind::ConnectionFailure => sqlstate::CONNECTION_FAILURE,
    }
}

async fn send_fatal<W: AsyncWrite + Unpin>(w: &mut W, r: &Refusal) {
    let mut out = BytesMut::new();
    let mut e = ErrorResponse::fatal(sqlstate_of(r.kind), &r.message);
    if !r.hint.is_empty() {
        e = e.hint(r.hint);
    }
    if e.encode(&mut out).is_ok() {
        let _ = w.write_all(&out).await;
        let _ = w.flush().await;
    }
}

/// Refuses a session that was authorised but could not start: a `db.session.start` failure
/// event, then the FATAL to the client.
async fn refuse_started<C: AsyncWrite + Unpin>(
    agent: &Agent,
    session: &Session,
    client: &mut C,
    r: &Refusal,
) {
    record_start_failure(agent, session, r).await;
    send_fatal(client, r).await;
}

/// Any stream to a database (TLS over TCP).
pub type ServerStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects to the database and upgrades to TLS with the db client certificate.
async fn connect(agent: &Agent, spec: &DbSpec, db_user: &str) -> Result<ServerStream, String> {
    let config = agent.dbcerts.client_config(spec, db_user).await?;
    let name = crate::dbcerts::server_name(spec)?;
    let mut tcp = TcpStream::connect(&spec.uri)
        .await
        .map_err(|e| format!("connecting to {}: {e}", spec.uri))?;
    let _ = tcp.set_nodelay(true);
    let mut out = BytesMut::new();
    InitialPacket::SslRequest
        .encode(&mut out)
        .map_err(|e| e.to_string())?;
    tcp.write_all(&out).await.map_err(|e| e.to_string())?;
    let answer = tcp
        .read_u8()
        .await
        .map_err(|e| format!("reading the TLS answer from {}: {e}", spec.uri))?;
    if answer != b'S' {
        return Err(format!("the database at {} does not accept TLS (set ssl = on; see docs/database-certificates.md)", spec.uri));
    }
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS to the database at {}: {e}", spec.uri))
}

/// What a client opens a tunnel stream with.
enum Opening {
    Startup(StartupMessage),
    /// A CancelRequest sent inside TLS (`pc proxy db` forwards one so; libpq 17 sends one so).
    Cancel(CancelRequest),
}

async fn read_startup<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
) -> Result<Opening, String> {
    let framer = Framer::new();
    loop {
        if let Some(packet) = framer.split_startup(buf).map_err(|e| e.to_string())? {
            return match InitialPacket::decode(&packet).map_err(|e| e.to_string())? {
                InitialPacket::Startup(s) => Ok(Opening::Startup(s)),
                InitialPacket::CancelRequest(c) => Ok(Opening::Cancel(c)),
                other => Err(format!("expected a startup message, got {other:?}")),
            };
        }
        if client.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the client closed before sending its startup message".into());
        }
    }
}

/// Runs one session on a tunnel stream.
pub async fn session<S>(
    agent: Arc<Agent>,
    mut client: S,
    cert: Vec<u8>,
    client_addr: String,
    sid: String,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut cbuf = BytesMut::with_capacity(16 * 1024);
    let startup =
        match tokio::time::timeout(STARTUP_TIMEOUT, read_startup(&mut client, &mut cbuf)).await {
            Ok(Ok(Opening::Startup(s))) => s,
            Ok(Ok(Opening::Cancel(c))) => {
                // The key is the secret, as on a plaintext CancelRequest; nothing is answered.
                cancel(&agent, c.process_id, c.secret_key).await;
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(%sid, error = %e, "bad startup");
                send_fatal(
                    &mut client,
                    &refusal(RefusalKind::Protocol, format!("Portcullis: {e}"), ""),
                )
                .await;
                return;
            }
            Err(_) => return,
        };
    let asked = Asked {
        protocol: DbProtocol::Postgres,
        db_user: Some(startup.user().unwrap_or_default()),
        db_name: Some(
            startup
                .database()
                .unwrap_or(startup.user().unwrap_or_default()),
        ),
    };
    let session = match admit(&agent, &cert, asked, &sid, &client_addr).await {
        Ok(s) => s,
        Err(r) => return send_fatal(&mut client, &r).await,
    };
    let started = tokio::time::timeout(
        CONNECT_TIMEOUT,
        start_server(&agent, &session, &startup, &mut client),
    )
    .await;
    let (server, key) = match started {
        Ok(Ok(x)) => x,
        Ok(Err(r)) => {
            refuse_started(&agent, &session, &mut client, &r).await;
            return;
        }
        Err(_) => {
            let r = refusal(
                RefusalKind::Unavailable,
                format!(
                    "Portcullis: the database at {} did not answer in time",
                    session.spec.uri
                ),
                "",
            );
            refuse_started(&agent, &session, &mut client, &r).await;
            return;
        }
    };
    agent
        .audit
        .send(
            session
                .event(EventKind::DbSessionStart)
                .with("success", true),
        )
        .await;
    if let Some((pid, secret)) = &key {
        agent
            .cancels
            .insert(*pid, secret.clone(), &session.spec.name, &session.db_user);
    }
    tracing::info!(sid = %session.sid, user = %session.identity.username, db = %session.spec.name, db_user = %session.db_user, "session started");
    let reason = relay(&agent, &session, client, server, cbuf).await;
    if let Some((pid, secret)) = &key {
        agent.cancels.remove(*pid, secret);
    }
    record_end(&agent, &session, reason.as_ref()).await;
    tracing::info!(sid = %session.sid, "session ended");
}

type Key = Option<(i32, Bytes)>;

/// Connects to the database, sends the startup, relays its answers to the client until the
/// first ReadyForQuery.
async fn start_server<S: AsyncWrite + Unpin>(
    agent: &Agent,
    s: &Session,
    startup: &StartupMessage,
    client: &mut S,
) -> Result<(ServerStream, Key), Refusal> {
    let mut server = connect(agent, &s.spec, &s.db_user)
        .await
        .map_err(|e| refusal(RefusalKind::Unavailable, format!("Portcullis: {e}"), ""))?;
    let mut msg = StartupMessage::new(startup.protocol_version, s.db_user.clone());
    for (k, v) in &startup.params {
        if k != "user" && k != "database" {
            msg.set_param(k.clone(), v.clone());
        }
    }
    msg.set_param("database", s.db_name.clone().unwrap_or_default());
    let mut out = BytesMut::new();
    InitialPacket::Startup(msg)
        .encode(&mut out)
        .map_err(|e| refusal(RefusalKind::Protocol, format!("Portcullis: {e}"), ""))?;
    let io = |e: std::io::Error| {
        refusal(
            RefusalKind::ConnectionFailure,
            format!("Portcullis: database connection: {e}"),
            "",
        )
    };
    server.write_all(&out).await.map_err(io)?;
    server.flush().await.map_err(io)?;
    let framer = Framer::new();
    let mut sbuf = BytesMut::with_capacity(16 * 1024);
    let mut key: Key = None;
    loop {
        while let Some(frame) = framer.split(&mut sbuf).map_err(|e| {
            refusal(
                RefusalKind::Protocol,
                format!("Portcullis: from the database: {e}"),
                "",
            )
        })? {
            match BackendMessage::decode(&frame) {
                Ok(BackendMessage::Authentication(Authentication::Ok)) => {}
                Ok(BackendMessage::Authentication(other)) => {
                    let _ = server.shutdown().await;
                    return Err(refusal(
                        RefusalKind::Unauthenticated,
                        format!(
                            "Portcullis: the database asked for a password ({}) instead of accepting the certificate for {:?}",
                            auth_name(&other),
                            s.db_user
                        ),
                        "configure certificate authentication (pg_hba.conf `cert`) for this user; see docs/database-certificates.md",
                    ));
                }
                Ok(BackendMessage::BackendKeyData(k)) => {
                    key = Some((k.process_id, k.secret_key.clone()))
                }
                Ok(BackendMessage::ErrorResponse(e)) => {
                    write_frame(client, &frame).await.map_err(io)?;
                    let _ = client.flush().await;
                    return Err(refusal(
                        RefusalKind::ConnectionFailure,
                        format!(
                            "database refused the session: {}",
                            e.message()
                                .map(|m| m.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        ),
                        "",
                    ));
                }
                Ok(BackendMessage::ReadyForQuery(_)) => {
                    write_frame(client, &frame).await.map_err(io)?;
                    client.flush().await.map_err(io)?;
                    return Ok((server, key));
                }
                _ => {}
            }
            write_frame(client, &frame).await.map_err(io)?;
        }
        client.flush().await.map_err(io)?;
        if server.read_buf(&mut sbuf).await.map_err(io)? == 0 {
            return Err(refusal(
                RefusalKind::ConnectionFailure,
                "Portcullis: the database closed the connection during startup",
                "",
            ));
        }
    }
}

fn auth_name(a: &Authentication) -> &'static str {
    match a {
        Authentication::CleartextPassword => "password",
        Authentication::Md5Password { .. } => "md5",
        Authentication::Sasl { .. }
        | Authentication::SaslContinue(_)
        | Authentication::SaslFinal(_) => "SCRAM",
        _ => "another method",
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> std::io::Result<()> {
    let header = frame
        .header()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    w.write_all(&header).await?;
    w.write_all(&frame.body).await
}

/// Length of the complete messages at the start of `buf` (type byte + length-prefixed body).
fn complete_prefix(framer: &Framer, buf: &[u8]) -> Result<usize, String> {
    let mut at = 0;
    while let Some(rest) = buf.get(at..) {
        match framer.check(rest).map_err(|e| e.to_string())? {
            Some(n) => at += n,
            None => break,
        }
    }
    Ok(at)
}

/// Splits a run of complete messages into frames without copying.
fn frames(mut chunk: Bytes) -> impl Iterator<Item = Frame> {
    std::iter::from_fn(move || {
        if chunk.len() < 5 {
            return None;
        }
        let tag = *chunk.first()?;
        let len = u32::from_be_bytes(chunk.get(1..5)?.try_into().ok()?) as usize;
        let total = 1 + len;
        if chunk.len() < total {
            return None;
        }
        let frame = chunk.split_to(total);
        Some(Frame::new(tag, frame.slice(5..)))
    })
}

/// Per-session audit state for the extended protocol: what a later Execute needs for its
/// `db.session.query` event, serialised once when the statement is parsed and bound.
#[derive(Default)]
struct Statements {
    /// Prepared statement name → the statement.
    statements: Named<Statement>,
    /// Portal name → what was bound to it.
    portals: Named<Portal>,
}

/// Statements or portals by name, at most [`MAX_TRACKED`] named ones. The unnamed one (`""`:
/// what most drivers bind every portal to, and JDBC its first statements) has a slot of its
/// own, so finding it is a branch rather than a hash and a key comparison through a pointer
/// (the lookups showed up as cache misses under load).
struct Named<T> {
    unnamed: Option<T>,
    named: HashMap<String, T>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self {
            unnamed: None,
            named: HashMap::new(),
        }
    }
}

impl<T> Named<T> {
    fn get(&self, name: &str) -> Option<&T> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// Stores `value` under `name`, in place of what was there; a new name is dropped once
    /// [`MAX_TRACKED`] are held (its Execute then reports no query text).
    fn put(&mut self, name: &str, value: T) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else if let Some(slot) = self.named.get_mut(name) {
            *slot = value;
        } else if self.named.len() < MAX_TRACKED {
            self.named.insert(name.to_owned(), value);
        }
    }

    fn remove(&mut self, name: &str) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
}

/// A parsed statement.
struct Statement {
    /// Its name, shared with the portals bound to it.
    name: Arc<str>,
    /// Its `db_query` fields.
    query: Arc<Fragment>,
}

/// A bound portal: the statement as it was when bound (PostgreSQL keeps a portal's plan when
/// its statement is closed or replaced) and the parameters.
struct Portal {
    statement: Arc<str>,
    query: Option<Arc<Fragment>>,
    params: Json,
}

fn text(s: &PgString) -> String {
    s.to_string_lossy().into_owned()
}

fn audited_query(raw: &PgString, max: usize) -> AuditedQuery {
    let lossy = raw.to_string_lossy();
    let invalid_utf8 = matches!(lossy, Cow::Owned(_));
    let masked_text = crate::mask::mask_sql(&lossy);
    let masked = matches!(masked_text, Cow::Owned(_));
    AuditedQuery::new(
        masked_text.into_owned(),
        raw.len(),
        invalid_utf8,
        masked,
        max,
    )
}

fn param_text(p: &Option<Bytes>, binary: bool) -> String {
    match p {
        None => "NULL".into(),
        Some(b) if binary => crate::query_text::param_text(b, |b| {
            use base64::Engine as _;
            format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        }),
        Some(b) => crate::query_text::param_text(b, |b| String::from_utf8_lossy(b).into_owned()),
    }
}

/// What the events of one client message are made with.
struct Audit<'a> {
    /// The session's shared fields ([`Session::head`]).
    head: &'a Fragment,
    /// When the message arrived.
    stamp: Stamp,
    /// The longest query text or parameter list stored.
    max_query_bytes: usize,
}

impl Audit<'_> {
    fn event(&self, kind: EventKind) -> Event {
        Event::stamped(kind, &self.stamp, self.head)
    }
}

/// The audit events one client message produces (Execute yields two: the statement event and
/// the `db.session.query` with the bound parameters).
fn audit_frontend(a: &Audit<'_>, st: &mut Statements, frame: &Frame, out: &mut Vec<Event>) {
    if let Some(e) = audit_frontend_one(a, st, frame, out) {
        out.push(e);
    }
}

fn audit_frontend_one(
    a: &Audit<'_>,
    st: &mut Statements,
    frame: &Frame,
    extra: &mut Vec<Event>,
) -> Option<Event> {
    let msg = FrontendMessage::decode(frame).ok()?;
    match msg {
        FrontendMessage::Query(q) => {
            let mut e = a.event(EventKind::DbSessionQuery);
            let q = audited_query(&q.sql, a.max_query_bytes);
            query_field(&mut e, "db_query", &q);
            e.set("db_query_parameters", Vec::<String>::new());
            Some(e)
        }
        FrontendMessage::Parse(p) => {
            let name = text(&p.name);
            let query = audited_query(&p.query, a.max_query_bytes);
            let mut e = a
                .event(EventKind::PostgresParse)
                .with("statement_name", &name);
            query_field(&mut e, "query", &query);
            let statement = Statement {
                name: Arc::from(name.as_str()),
                query: Arc::new(query_fragment("db_query", &query)),
            };
            st.statements.put(&name, statement);
            Some(e)
        }
        FrontendMessage::Bind(b) => {
            let name = b.statement.to_string_lossy();
            let (statement, query) = match st.statements.get(&name) {
                Some(known) => (Arc::clone(&known.name), Some(Arc::clone(&known.query))),
                None => (Arc::from(&*name), None),
            };
            let params = Json::of(&crate::query_text::capped_params(
                b.params.iter().enumerate().map(|(i, p)| {
                    let binary = match b.param_formats.as_slice() {
                        [] => false,
                        [one] => *one == 1,
                        many => many.get(i).copied() == Some(1),
                    };
                    param_text(p, binary)
                }),
                a.max_query_bytes,
            ));
            let portal_name = b.portal.to_string_lossy();
            let e = a
                .event(EventKind::PostgresBind)
                .with("statement_name", &*statement)
                .with("portal_name", &*portal_name)
                .with_json("parameters", &params);
            let bound = Portal {
                statement,
                query,
                params,
            };
            // Pipelined clients bind the same (often unnamed) portal over and over: its entry
            // is reused rather than a key allocated each time.
            st.portals.put(&portal_name, bound);
            Some(e)
        }
        FrontendMessage::Execute(x) => {
            let portal = x.portal.to_string_lossy();
            let mut out = a
                .event(EventKind::PostgresExecute)
                .with("portal_name", &*portal);
            if let Some(p) = st.portals.get(&portal) {
                if let Some(q) = &p.query {
                    // Also the query event SIEM rules look for, with the bound parameters.
                    let mut qe = a.event(EventKind::DbSessionQuery);
                    qe.add_fragment(q);
                    qe.set_json("db_query_parameters", &p.params);
                    extra.push(qe);
                }
                out.set("statement_name", &*p.statement);
            }
            Some(out)
        }
        FrontendMessage::Close(c) => {
            let name = text(&c.name);
            let e = a.event(EventKind::PostgresClose);
            Some(match c.target {
                Target::Statement => {
                    st.statements.remove(&name);
                    e.with("statement_name", name)
                }
                Target::Portal => {
                    st.portals.remove(&name);
                    e.with("portal_name", name)
                }
            })
        }
        FrontendMessage::FunctionCall(f) => {
            // Capped like a Bind's parameters: a call may carry 65,535 arguments.
            let args = crate::query_text::capped_params(
                f.args.iter().map(|a| param_text(a, true)),
                a.max_query_bytes,
            );
            Some(
                a.event(EventKind::PostgresFunctionCall)
                    .with("function_oid", f.function_oid)
                    .with("function_args", args),
            )
        }
        _ => None,
    }
}

/// Relays until either side ends or the session must stop; returns why it stopped, if the
/// proxy ended it.
async fn relay<C>(
    agent: &Arc<Agent>,
    s: &Session,
    client: C,
    server: ServerStream,
    mut cbuf: BytesMut,
) -> Option<Refusal>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut server_r, mut server_w) = tokio::io::split(server);
    let activity = Activity::default();
    let framer = Framer::new();
    // The client side asks the server side to end the session with a FATAL.
    let (refuse_tx, refuse_rx) = tokio::sync::oneshot::channel::<Refusal>();

    // Client → server: frame, audit, forward in one write per read.
    let c2s = {
        let activity = activity.clone();
        async move {
            let mut st = Statements::default();
            let mut refuse_tx = Some(refuse_tx);
            loop {
                let n = complete_prefix(&framer, &cbuf)
                    .map_err(|e| format!("client sent a bad message: {e}"))?;
                if n > 0 {
                    let chunk = cbuf.split_to(n).freeze();
                    let mut terminate = false;
                    let mut events = Vec::new();
                    let audit_queries = s.spec.audit_queries;
                    // One clock read for everything the client sent at once.
                    let audit = audit_queries.then(|| Audit {
                        head: s.head(),
                        stamp: Stamp::now(),
                        max_query_bytes: agent.audit.max_query_bytes(),
                    });
                    for frame in frames(chunk.clone()) {
                        if frame.tag == b'X' {
                            terminate = true;
                        }
                        if let Some(a) = &audit {
                            audit_frontend(a, &mut st, &frame, &mut events);
                        }
                    }
                    // The events are on disk before the database sees the messages: a query
                    // that ran is in the audit log whatever dies afterwards.
                    if !record_activity(agent, s, events, &mut refuse_tx).await {
                        // The server side sends the FATAL and ends the session.
                        return std::future::pending().await;
                    }
                    server_w
                        .write_all(&chunk)
                        .await
                        .map_err(|e| e.to_string())?;
                    server_w.flush().await.map_err(|e| e.to_string())?;
                    if terminate {
                        return Ok::<_, String>(());
                    }
                }
                match client_r.read_buf(&mut cbuf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => activity.touch(),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    };

    // Why the session must end, if it must.
    let stop = must_end(agent, s, activity, refuse_rx);

    let failed = |m: String| refusal(RefusalKind::ConnectionFailure, m, "");
    // Server → client: forward whole messages only, so a FATAL can follow at a boundary.
    let s2c = async move {
        tokio::pin!(stop);
        let mut sbuf = BytesMut::with_capacity(16 * 1024);
        loop {
            tokio::select! {
                biased;
                r = &mut stop => {
                    send_fatal(&mut client_w, &r).await;
                    let _ = client_w.shutdown().await;
                    return Err(r);
                }
                read = server_r.read_buf(&mut sbuf) => {
                    match read {
                        Ok(0) => {
                            if !sbuf.is_empty() {
                                let _ = client_w.write_all(&sbuf).await;
                            }
                            let _ = client_w.flush().await;
                            let _ = client_w.shutdown().await;
                            return Ok(());
                        }
                        Ok(_) => {
                            let n = complete_prefix(&framer, &sbuf).map_err(|e| failed(format!("database sent a bad message: {e}")))?;
                            if n > 0 {
                                let chunk = sbuf.split_to(n);
                                client_w.write_all(&chunk).await.map_err(|e| failed(e.to_string()))?;
                                client_w.flush().await.map_err(|e| failed(e.to_string()))?;
                            }
                        }
                        Err(e) => return Err(failed(e.to_string())),
                    }
                }
            }
        }
    };

    crate::session::first_to_end(&s.sid, c2s, s2c).await
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
