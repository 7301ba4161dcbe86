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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portcullis_audit::{EventKind, Lines, Stamp};
use portcullis_core::database::DbProtocol;
use portcullis_wire::postgres::{
    sqlstate, Authentication, BackendMessage, CancelRequest, ErrorResponse, Frame, Framer,
    InitialPacket, Message, StartupMessage,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::postgres_audit::{ClientAudit, Context};
use crate::session::{
    admit, must_end, record_end, record_lines, record_start_failure, refusal, Activity, Asked,
    Refusal, RefusalKind, Session,
};
use crate::spec::DbSpec;
use crate::Agent;

/// Time a client has to send its startup packet.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to connect to the database and finish its startup.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
pub use crate::postgres_audit::MAX_TRACKED;

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
pub(crate) fn frames(mut chunk: Bytes) -> impl Iterator<Item = Frame> {
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
            let mut st = ClientAudit::new();
            // One buffer for every message's events, kept between messages.
            let mut events = Lines::new();
            let mut refuse_tx = Some(refuse_tx);
            loop {
                let n = complete_prefix(&framer, &cbuf)
                    .map_err(|e| format!("client sent a bad message: {e}"))?;
                if n > 0 {
                    let chunk = cbuf.split_to(n).freeze();
                    let mut terminate = false;
                    let audit_queries = s.spec.audit_queries;
                    // One clock read for everything the client sent at once.
                    let audit = audit_queries.then(|| Context {
                        head: s.head(),
                        stamp: Stamp::now(),
                        max_query_bytes: agent.audit.max_query_bytes(),
                    });
                    for frame in frames(chunk.clone()) {
                        if frame.tag == b'X' {
                            terminate = true;
                        }
                        if let Some(a) = &audit {
                            st.message(a, &frame, &mut events);
                        }
                    }
                    // The events are on disk before the database sees the messages: a query
                    // that ran is in the audit log whatever dies afterwards.
                    let recorded = record_lines(agent, s, &events, &mut refuse_tx).await;
                    // Emptied now, so an idle session keeps no large buffer.
                    events.clear();
                    if !recorded {
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
