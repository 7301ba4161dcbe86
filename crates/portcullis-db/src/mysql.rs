//! The MySQL/MariaDB engine: one session from the client's HandshakeResponse41 to its end.
//!
//! The proxy has played the server's greeting, taken TLS with the client certificate and read
//! the client's HandshakeResponse41; the stream starts with that packet (its sequence id says
//! which id our answer carries). The agent then:
//!
//! 1. re-verifies the certificate, refuses locked users, checks that the client's user name is
//!    the certificate's db user and evaluates the roles against the database, the db user and
//!    the initial schema;
//! 2. connects to the database, asks for TLS (SSLRequest), presents a client certificate
//!    `CN=<db user>` from the db CA (accounts are `REQUIRE SUBJECT '/CN=…'` or `REQUIRE X509`)
//!    and logs in with an empty password, completing any auth switch or
//!    `caching_sha2_password` exchange;
//! 3. answers the client OK (the server's own status), then relays. Every command the client
//!    sends (sequence id 0) is decoded and recorded before the database sees it; `USE x` and
//!    COM_INIT_DB are checked against the roles' `db_names`; COM_CHANGE_USER is refused. Server
//!    packets are relayed whole (never buffered past one 16 MiB physical packet), watched only
//!    for COM_STMT_PREPARE_OK, so COM_STMT_EXECUTE parameters can be decoded, and so an error
//!    can be injected between packets when the session must end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portcullis_audit::{Event, EventKind, Fragment};
use portcullis_core::database::DbProtocol;
use portcullis_wire::mysql::{
    self, capability::*, error_code, AuthReply, Command, ErrPacket, ErrorCode, HandshakeResponse41,
    HandshakeV10, MysqlString, PacketFramer, PreparedStatements, ServerGreeting, SslRequest,
    StmtPrepareOk,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::query_text::{query_field, query_fragment, AuditedQuery};
use crate::session::{
    admit, must_end, record_activity, record_end, record_start_failure, refusal, Activity, Asked,
    Refusal, RefusalKind, Session,
};
use crate::Agent;

/// Time the proxy has to pass the client's HandshakeResponse41.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed to connect and log in to the database.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest command a client may send (MySQL's `max_allowed_packet` is 64 MiB by default in
/// MySQL 8, 16 MiB in MariaDB); a command is held whole until it is audited.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024 * 1024;
/// Prepared statements whose text the agent remembers per session, for their execute events.
pub const MAX_TRACKED_STATEMENTS: usize = 10_000;

/// Capabilities the agent lets through to the database (what the proxy offers clients).
const PASSED: u64 = PROXIED;

/// Capabilities that change the shape of the conversation: if the client negotiated one with
/// the proxy, the database must support it too.
const MUST_MATCH: u64 = CLIENT_PROTOCOL_41
    | CLIENT_DEPRECATE_EOF
    | CLIENT_SESSION_TRACK
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

/// The MySQL error a refusal of `kind` carries.
fn error_code_of(kind: RefusalKind) -> ErrorCode {
    match kind {
        RefusalKind::Unauthenticated => error_code::ER_ACCESS_DENIED_ERROR,
        RefusalKind::Forbidden => error_code::ER_DBACCESS_DENIED_ERROR,
        RefusalKind::Unavailable => error_code::ER_UNKNOWN_ERROR,
        RefusalKind::Protocol => error_code::ER_HANDSHAKE_ERROR,
        RefusalKind::Shutdown => error_code::ER_CONNECTION_KILLED,
        RefusalKind::ConnectionFailure => error_code::ER_NET_READ_ERROR,
    }
}

/// An ERR packet with sequence id `seq`.
pub fn err_packet(seq: u8, code: ErrorCode, message: &str) -> BytesMut {
    let mut payload = BytesMut::new();
    let mut out = BytesMut::new();
    if ErrPacket::new(code, message.to_owned())
        .encode(&mut payload)
        .is_ok()
    {
        mysql::write_packets(&mut out, seq, &payload);
    }
    out
}

async fn send_refusal<W: AsyncWrite + Unpin>(w: &mut W, seq: u8, r: &Refusal) {
    let out = err_packet(seq, error_code_of(r.kind), &r.one_line());
    let _ = w.write_all(&out).await;
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// Per-database MySQL settings the engine follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlOptions {
    /// Let clients use `LOAD DATA LOCAL INFILE` (off by default: the server could ask the
    /// client for any file it can read).
    pub allow_load_data_local: bool,
}

/// Reads the client's HandshakeResponse41 the proxy forwarded.
async fn read_login<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
) -> Result<(HandshakeResponse41, u8), String> {
    let framer = PacketFramer::handshake();
    loop {
        if let Some(p) = framer.split_logical(buf).map_err(|e| e.to_string())? {
            let login = HandshakeResponse41::decode(p.payload).map_err(|e| e.to_string())?;
            return Ok((login, p.last_seq));
        }
        if client.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the client closed before logging in".into());
        }
    }
}

fn text(s: &MysqlString) -> String {
    s.to_string_lossy().into_owned()
}

/// Runs one session on a stream from the proxy.
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
    let (login, last_seq) =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_login(&mut client, &mut cbuf)).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::debug!(%sid, error = %e, "bad MySQL login packet");
                let r = refusal(RefusalKind::Protocol, format!("Portcullis: {e}"), "");
                send_refusal(&mut client, 2, &r).await;
                return;
            }
            Err(_) => return,
        };
    let reply_seq = last_seq.wrapping_add(1);
    let username = text(&login.username);
    let database = login.database.as_ref().map(text).filter(|d| !d.is_empty());
    let asked = Asked {
        protocol: DbProtocol::Mysql,
        db_user: Some(&username),
        db_name: database.as_deref(),
    };
    let session = match admit(&agent, &cert, asked, &sid, &client_addr).await {
        Ok(s) => s,
        Err(r) => return send_refusal(&mut client, reply_seq, &r).await,
    };
    let options = agent
        .databases
        .get(&session.spec.name)
        .map(|s| s.mysql.clone())
        .unwrap_or_default();
    let started =
        tokio::time::timeout(CONNECT_TIMEOUT, connect(&agent, &session, &login, &options)).await;
    let (server, ok_payload, caps) = match started {
        Ok(Ok(x)) => x,
        Ok(Err(r)) => {
            record_start_failure(&agent, &session, &r).await;
            send_refusal(&mut client, reply_seq, &r).await;
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
            record_start_failure(&agent, &session, &r).await;
            send_refusal(&mut client, reply_seq, &r).await;
            return;
        }
    };
    // The client's login succeeds with the server's own OK (status flags, session state).
    let mut out = BytesMut::new();
    mysql::write_packets(&mut out, reply_seq, &ok_payload);
    if client.write_all(&out).await.is_err() || client.flush().await.is_err() {
        return;
    }
    agent
        .audit
        .send(
            session
                .event(EventKind::DbSessionStart)
                .with("success", true),
        )
        .await;
    tracing::info!(sid = %session.sid, user = %session.identity.username, db = %session.spec.name, db_user = %session.db_user, "mysql session started");
    let ended = relay(&agent, &session, client, server, cbuf, caps).await;
    record_end(&agent, &session, ended.as_ref()).await;
    tracing::info!(sid = %session.sid, "mysql session ended");
}

/// Any stream to a database (TLS over TCP).
pub type ServerStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Reads one logical packet from the database during the login.
async fn read_packet<S: AsyncRead + Unpin>(
    server: &mut S,
    buf: &mut BytesMut,
) -> Result<mysql::LogicalPacket, String> {
    let framer = PacketFramer::handshake();
    loop {
        if let Some(p) = framer.split_logical(buf).map_err(|e| e.to_string())? {
            return Ok(p);
        }
        if server.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("the database closed the connection during login".into());
        }
    }
}

/// Connects, upgrades to TLS with the db client certificate and logs in as the db user;
/// returns the stream, the server's OK payload and the capabilities in force.
async fn connect(
    agent: &Agent,
    s: &Session,
    login: &HandshakeResponse41,
    options: &MysqlOptions,
) -> Result<(ServerStream, Bytes, u64), Refusal> {
    let unavailable = |m: String| refusal(RefusalKind::Unavailable, format!("Portcullis: {m}"), "");
    let config = agent
        .dbcerts
        .client_config(&s.spec, &s.db_user)
        .await
        .map_err(unavailable)?;
    let name = crate::dbcerts::server_name(&s.spec).map_err(unavailable)?;
    let mut tcp = TcpStream::connect(&s.spec.uri)
        .await
        .map_err(|e| unavailable(format!("connecting to {}: {e}", s.spec.uri)))?;
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(1024);
    let greeting = read_packet(&mut tcp, &mut buf).await.map_err(unavailable)?;
    let hello = match ServerGreeting::decode(greeting.payload) {
        Ok(ServerGreeting::Handshake(h)) => h,
        Ok(ServerGreeting::Err(e)) => {
            return Err(unavailable(format!(
                "the database refused the connection: {}",
                text(&e.message)
            )))
        }
        Err(e) => return Err(unavailable(format!("bad greeting from the database: {e}"))),
    };
    if hello.capabilities & CLIENT_SSL == 0 {
        return Err(unavailable(format!(
            "the database at {} does not offer TLS (configure ssl_cert/ssl_key; see docs/database-certificates.md)",
            s.spec.uri
        )));
    }
    let wanted = login.capabilities & PASSED;
    let missing = wanted & MUST_MATCH & !hello.capabilities;
    if missing != 0 {
        return Err(unavailable(format!(
            "the database at {} lacks protocol features the client uses (capability flags {missing:#x}); upgrade it to MySQL 5.7+ or MariaDB 10.2+",
            s.spec.uri
        )));
    }
    let mut caps = (wanted & hello.capabilities)
        | CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_SSL;
    if !options.allow_load_data_local {
        caps &= !CLIENT_LOCAL_FILES;
    }
    let database = s.db_name.clone();
    if database.is_some() {
        caps |= CLIENT_CONNECT_WITH_DB;
    } else {
        caps &= !CLIENT_CONNECT_WITH_DB;
    }
    if hello.capabilities & CLIENT_CONNECT_ATTRS != 0 {
        caps |= CLIENT_CONNECT_ATTRS;
    }
    let mut seq = mysql::Sequence::starting_at(greeting.last_seq.wrapping_add(1));
    let mut out = BytesMut::new();
    let mut payload = BytesMut::new();
    SslRequest {
        capabilities: caps,
        max_packet_size: login.max_packet_size,
        charset: login.charset,
    }
    .encode(&mut payload)
    .map_err(|e| unavailable(e.to_string()))?;
    seq.write(&mut out, &payload);
    tcp.write_all(&out)
        .await
        .map_err(|e| unavailable(format!("database connection: {e}")))?;
    let mut server = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| unavailable(format!("TLS to the database at {}: {e}", s.spec.uri)))?;
    let mut response = HandshakeResponse41::new(s.db_user.clone(), caps);
    response.max_packet_size = login.max_packet_size;
    response.charset = login.charset;
    response.database = database.map(MysqlString::from);
    response.auth_plugin_name = Some(hello.auth_plugin_name.clone());
    let mut attrs: Vec<(MysqlString, MysqlString)> = login
        .connect_attrs
        .iter()
        .filter(|(k, _)| k.as_bytes() != b"portcullis_user")
        .cloned()
        .collect();
    attrs.push((
        MysqlString::from("portcullis_user".to_owned()),
        MysqlString::from(s.identity.username.clone()),
    ));
    response.connect_attrs = attrs;
    let mut payload = BytesMut::new();
    response
        .encode(&mut payload)
        .map_err(|e| unavailable(e.to_string()))?;
    let mut out = BytesMut::new();
    seq.write(&mut out, &payload);
    let io = |e: std::io::Error| unavailable(format!("database connection: {e}"));
    server.write_all(&out).await.map_err(io)?;
    server.flush().await.map_err(io)?;
    let mut buf = BytesMut::with_capacity(1024);
    // A few rounds at most: auth switch, caching_sha2's "fast auth" or "full auth".
    for _ in 0..6 {
        let p = read_packet(&mut server, &mut buf)
            .await
            .map_err(unavailable)?;
        seq = mysql::Sequence::starting_at(p.last_seq.wrapping_add(1));
        let payload = p.payload.clone();
        match AuthReply::decode(p.payload, caps) {
            Ok(AuthReply::Ok(_)) => return Ok((server, payload, caps)),
            Ok(AuthReply::Err(e)) => {
                return Err(refusal(
                    RefusalKind::Unauthenticated,
                    format!(
                        "Portcullis: the database refused the login as {:?}: {}",
                        s.db_user,
                        text(&e.message)
                    ),
                    "the account must exist and accept the certificate (CREATE USER … REQUIRE SUBJECT '/CN=USER'); see docs/database-certificates.md",
                ))
            }
            Ok(AuthReply::AuthSwitch(_)) => {
                // Whatever the plugin, the certificate is the credential: an empty password.
                let mut out = BytesMut::new();
                seq.write(&mut out, &[]);
                server.write_all(&out).await.map_err(io)?;
                server.flush().await.map_err(io)?;
            }
            Ok(AuthReply::MoreData(m)) => match m.data.first() {
                // caching_sha2_password: fast auth succeeded; the OK follows.
                Some(3) => {}
                // Full authentication: over TLS the password is sent as is (empty).
                Some(4) => {
                    let mut out = BytesMut::new();
                    seq.write(&mut out, &[0]);
                    server.write_all(&out).await.map_err(io)?;
                    server.flush().await.map_err(io)?;
                }
                _ => {
                    return Err(unavailable(
                        "the database asked for an authentication exchange the agent does not support"
                            .into(),
                    ))
                }
            },
            Err(e) => return Err(unavailable(format!("bad login reply from the database: {e}"))),
        }
    }
    Err(unavailable(
        "the database's login did not finish".to_owned(),
    ))
}

/// What the client side tells the server side about the exchange in progress.
#[derive(Default)]
struct Exchange {
    /// The `db_query` fields (text, and whether it was cut or masked) of a COM_STMT_PREPARE
    /// whose COM_STMT_PREPARE_OK is awaited, serialised once.
    preparing: Option<Fragment>,
    /// The statements' `db_query` fields by id, for their execute events.
    queries: HashMap<u32, Fragment>,
    statements: PreparedStatements,
}

/// Audit text of a query: secrets masked, cut at the configured size.
fn audited(sql: &MysqlString, max: usize) -> AuditedQuery {
    let lossy = sql.to_string_lossy();
    let invalid_utf8 = matches!(lossy, std::borrow::Cow::Owned(_));
    let masked_text = crate::mask::mask_sql(&lossy);
    let masked = matches!(masked_text, std::borrow::Cow::Owned(_));
    AuditedQuery::new(
        masked_text.into_owned(),
        sql.len(),
        invalid_utf8,
        masked,
        max,
    )
}

/// What the relay does with one client command.
enum Verdict {
    /// Forward it.
    Forward,
    /// Answer the client with this refusal instead (the command is not forwarded).
    Refuse(Refusal),
    /// Forward it and end the session (COM_QUIT).
    Quit,
}

/// Events for one command and what to do with it.
fn judge(
    agent: &Agent,
    s: &Session,
    base: &mut Fragment,
    ex: &mut Exchange,
    command: &Command,
    events: &mut Vec<Event>,
) -> Verdict {
    let max = agent.audit.max_query_bytes();
    let event = |kind: EventKind, base: &Fragment| {
        Event::new(kind, &s.identity.cluster_name).with_fragment(base)
    };
    let failed = |base: &Fragment, what: String, r: &Refusal| {
        let mut e = event(EventKind::DbSessionQueryFailed, base);
        e.set("db_query", what);
        e.set("db_query_parameters", Vec::<String>::new());
        e.set("error", r.message.clone());
        e
    };
    match command {
        Command::Query(q) => {
            let uses = mysql::use_statements(&q.query.to_string_lossy());
            for db in &uses {
                if let Err(r) = s.check_db_name(agent, db) {
                    events.push(failed(base, audited(&q.query, max).text, &r));
                    return Verdict::Refuse(r);
                }
            }
            let mut e = event(EventKind::DbSessionQuery, base);
            query_field(&mut e, "db_query", &audited(&q.query, max));
            e.set("db_query_parameters", Vec::<String>::new());
            events.push(e);
            if let Some(db) = uses.last() {
                *base = s.base_fields(agent, Some(db));
            }
        }
        Command::InitDb(i) => {
            let db = text(&i.schema);
            if let Err(r) = s.check_db_name(agent, &db) {
                events.push(failed(base, format!("COM_INIT_DB {db}"), &r));
                return Verdict::Refuse(r);
            }
            events.push(event(EventKind::MysqlInitDb, base).with("schema_name", &db));
            *base = s.base_fields(agent, Some(&db));
        }
        Command::ChangeUser(c) => {
            let r = refusal(
                RefusalKind::Forbidden,
                format!(
                    "Portcullis: COM_CHANGE_USER (to {:?}) is not allowed: a session runs as the certificate's db user",
                    text(&c.username)
                ),
                "reconnect with a certificate for the other user: `pc db login NAME --db-user=USER`",
            );
            events.push(failed(
                base,
                format!("COM_CHANGE_USER {}", text(&c.username)),
                &r,
            ));
            return Verdict::Refuse(r);
        }
        Command::StmtPrepare(p) => {
            let q = audited(&p.query, max);
            let mut e = event(EventKind::MysqlStatementPrepare, base);
            query_field(&mut e, "query", &q);
            events.push(e);
            ex.preparing = Some(query_fragment("db_query", &q));
        }
        Command::StmtExecute(x) => {
            let params = crate::query_text::capped_params(
                x.params.iter().map(|p| param_display(&p.value)),
                max,
            );
            // The statement's text rides on the execute event (as `db_query`, the field SIEM
            // rules search), so one event holds what ran and with what.
            let mut e = event(EventKind::MysqlStatementExecute, base)
                .with("statement_id", x.statement_id)
                .with("parameters", &params);
            if let Some(query) = ex.queries.get(&x.statement_id) {
                e.add_fragment(query);
            }
            events.push(e);
        }
        Command::StmtSendLongData(d) => events.push(
            event(EventKind::MysqlStatementSendLongData, base)
                .with("statement_id", d.statement_id)
                .with("parameter_id", d.param_id)
                .with("data_size", d.data.len()),
        ),
        Command::StmtClose(c) => {
            ex.queries.remove(&c.statement_id);
            events.push(
                event(EventKind::MysqlStatementClose, base).with("statement_id", c.statement_id),
            )
        }
        Command::StmtReset(r) => events
            .push(event(EventKind::MysqlStatementReset, base).with("statement_id", r.statement_id)),
        Command::StmtFetch(f) => events.push(
            event(EventKind::MysqlStatementFetch, base)
                .with("statement_id", f.statement_id)
                .with("rows_count", f.num_rows),
        ),
        Command::CreateDb(c) => {
            events.push(event(EventKind::MysqlCreateDb, base).with("schema_name", text(&c.schema)))
        }
        Command::DropDb(d) => {
            events.push(event(EventKind::MysqlDropDb, base).with("schema_name", text(&d.schema)))
        }
        Command::ProcessKill(k) => events
            .push(event(EventKind::MysqlProcessKill, base).with("process_id", k.connection_id)),
        Command::Debug => events.push(event(EventKind::MysqlDebug, base)),
        Command::Other(0x08) => events.push(event(EventKind::MysqlShutDown, base)),
        Command::Other(0x07) => events.push(event(EventKind::MysqlRefresh, base)),
        Command::Other(code) => {
            // Replication, COM_MULTI, COM_STMT_BULK_EXECUTE…: commands whose contents the
            // agent does not decode would run unaudited; refused.
            let r = refusal(
                RefusalKind::Protocol,
                format!(
                    "Portcullis: {} is not supported through Portcullis",
                    mysql::command_name(*code)
                ),
                "",
            );
            events.push(failed(base, mysql::command_name(*code).to_owned(), &r));
            return Verdict::Refuse(r);
        }
        Command::Quit => return Verdict::Quit,
        Command::ResetConnection => {
            ex.queries.clear();
            let mut e = event(EventKind::DbSessionQuery, base);
            e.set("db_query", "COM_RESET_CONNECTION");
            e.set("db_query_parameters", Vec::<String>::new());
            events.push(e);
        }
        // Ping, Statistics, FieldList, SetOption and other housekeeping: no event (as Teleport).
        _ => {}
    }
    ex.statements.on_command(command);
    Verdict::Forward
}

/// A parameter as text; long strings and blobs cut to [`crate::query_text::MAX_PARAM_BYTES`].
fn param_display(v: &mysql::BinaryValue) -> String {
    match v {
        mysql::BinaryValue::Bytes(b) => {
            crate::query_text::param_text(b.as_bytes(), portcullis_wire::utf8_lossy).into_owned()
        }
        other => other.to_string(),
    }
}

/// Relays until either side ends or the session must end; returns why, if the agent ended it.
async fn relay<C>(
    agent: &Arc<Agent>,
    s: &Session,
    client: C,
    server: ServerStream,
    mut cbuf: BytesMut,
    caps: u64,
) -> Option<Refusal>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, client_w) = tokio::io::split(client);
    let (mut server_r, mut server_w) = tokio::io::split(server);
    let client_w = Arc::new(tokio::sync::Mutex::new(client_w));
    let exchange = Arc::new(Mutex::new(Exchange::default()));
    // The sequence id of the last server packet relayed in the current exchange.
    let last_seq = Arc::new(AtomicU8::new(0));
    let activity = Activity::default();
    let (refuse_tx, refuse_rx) = tokio::sync::oneshot::channel::<Refusal>();

    let c2s = {
        let activity = activity.clone();
        let client_w = Arc::clone(&client_w);
        let exchange = Arc::clone(&exchange);
        let last_seq = Arc::clone(&last_seq);
        async move {
            let mut refuse_tx = Some(refuse_tx);
            let framer = PacketFramer::new().with_max_packet_len(MAX_COMMAND_BYTES);
            let mut base = s.base.clone();
            loop {
                loop {
                    let packet = match framer.split_logical(&mut cbuf) {
                        Ok(Some(p)) => p,
                        Ok(None) => break,
                        Err(e) => {
                            let msg = format!("Portcullis: bad packet from the client: {e}");
                            let mut w = client_w.lock().await;
                            let code = if matches!(
                                e,
                                portcullis_wire::WireError::MessageTooLarge { .. }
                            ) {
                                error_code::ER_NET_PACKET_TOO_LARGE
                            } else {
                                error_code::ER_NET_PACKETS_OUT_OF_ORDER
                            };
                            let _ = w.write_all(&err_packet(1, code, &msg)).await;
                            let _ = w.flush().await;
                            return Err(msg);
                        }
                    };
                    if packet.first_seq != 0 {
                        // Not a command: the rest of an exchange (LOAD DATA LOCAL contents).
                        server_w
                            .write_all(&packet.raw)
                            .await
                            .map_err(|e| e.to_string())?;
                        server_w.flush().await.map_err(|e| e.to_string())?;
                        continue;
                    }
                    let mut events = Vec::new();
                    let verdict = {
                        let mut ex = match exchange.lock() {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        match Command::decode(packet.payload.clone(), caps, &ex.statements) {
                            Ok(cmd) => judge(agent, s, &mut base, &mut ex, &cmd, &mut events),
                            Err(portcullis_wire::WireError::UnknownStatement { statement_id }) => {
                                // A statement the agent never saw prepared: the database
                                // answers "unknown statement"; recorded as such.
                                let mut ev =
                                    Event::new(EventKind::DbSessionQuery, &s.identity.cluster_name)
                                        .with_fragment(&base);
                                ev.set(
                                    "db_query",
                                    format!("COM_STMT_EXECUTE of unknown statement {statement_id}"),
                                );
                                ev.set("db_query_parameters", Vec::<String>::new());
                                events.push(ev);
                                Verdict::Forward
                            }
                            Err(e) => {
                                // What the audit log cannot read does not reach the database.
                                let code = packet.payload.first().copied().unwrap_or(0);
                                let r = refusal(
                                    RefusalKind::Protocol,
                                    format!(
                                        "Portcullis: {} could not be read and was not run: {e}",
                                        mysql::command_name(code)
                                    ),
                                    "",
                                );
                                let mut ev = Event::new(
                                    EventKind::DbSessionQueryFailed,
                                    &s.identity.cluster_name,
                                )
                                .with_fragment(&base);
                                ev.set("db_query", mysql::command_name(code));
                                ev.set("db_query_parameters", Vec::<String>::new());
                                ev.set("error", r.message.clone());
                                events.push(ev);
                                Verdict::Refuse(r)
                            }
                        }
                    };
                    // On disk before the database sees the command.
                    if !record_activity(agent, s, events, &mut refuse_tx).await {
                        return std::future::pending().await;
                    }
                    match verdict {
                        Verdict::Forward | Verdict::Quit => {
                            last_seq.store(0, Ordering::SeqCst);
                            server_w
                                .write_all(&packet.raw)
                                .await
                                .map_err(|e| e.to_string())?;
                            server_w.flush().await.map_err(|e| e.to_string())?;
                            if matches!(verdict, Verdict::Quit) {
                                return Ok(());
                            }
                        }
                        Verdict::Refuse(r) => {
                            // Commands are not pipelined: the client waits for this answer.
                            let code = match r.kind {
                                RefusalKind::Protocol => error_code::ER_UNKNOWN_COM_ERROR,
                                kind => error_code_of(kind),
                            };
                            let mut w = client_w.lock().await;
                            w.write_all(&err_packet(1, code, &r.one_line()))
                                .await
                                .map_err(|e| e.to_string())?;
                            w.flush().await.map_err(|e| e.to_string())?;
                        }
                    }
                }
                match client_r.read_buf(&mut cbuf).await {
                    Ok(0) => return Ok::<_, String>(()),
                    Ok(_) => activity.touch(),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    };

    let stop = must_end(agent, s, activity, refuse_rx);
    let failed = |m: String| refusal(RefusalKind::ConnectionFailure, m, "");
    // Server → client: whole physical packets, watched for COM_STMT_PREPARE_OK.
    let s2c = async move {
        tokio::pin!(stop);
        let mut sbuf = BytesMut::with_capacity(16 * 1024);
        let mut last_packet_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                r = &mut stop => {
                    // Mid-answer, the ERR continues the exchange; a client that is idle (its
                    // last answer complete a while ago) reads it as the answer to its next
                    // command, which starts at 1.
                    let last = last_seq.load(Ordering::SeqCst);
                    let idle = last_packet_at.elapsed() > Duration::from_millis(100);
                    let seq = if last == 0 || idle { 1 } else { last.wrapping_add(1) };
                    let mut w = client_w.lock().await;
                    let _ = w.write_all(&err_packet(seq, error_code_of(r.kind), &r.one_line())).await;
                    let _ = w.flush().await;
                    let _ = w.shutdown().await;
                    return Err(r);
                }
                read = server_r.read_buf(&mut sbuf) => {
                    match read {
                        Ok(0) => {
                            let mut w = client_w.lock().await;
                            let _ = w.flush().await;
                            let _ = w.shutdown().await;
                            return Ok(());
                        }
                        Ok(_) => {
                            // Whole physical packets (at most 16 MiB each) go on at once.
                            let mut upto = 0usize;
                            while let Some(&[a, b, c, seq]) = sbuf.get(upto..upto + mysql::HEADER_LEN) {
                                let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
                                let end = upto + mysql::HEADER_LEN + len;
                                let Some(payload) = sbuf.get(upto + mysql::HEADER_LEN..end) else {
                                    break;
                                };
                                if seq == 1 {
                                    watch_prepare(&exchange, payload);
                                }
                                last_seq.store(seq, Ordering::SeqCst);
                                upto = end;
                            }
                            if upto > 0 {
                                last_packet_at = tokio::time::Instant::now();
                                let chunk = sbuf.split_to(upto);
                                let mut w = client_w.lock().await;
                                w.write_all(&chunk).await.map_err(|e| failed(e.to_string()))?;
                                w.flush().await.map_err(|e| failed(e.to_string()))?;
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

/// The first packet of the answer to a COM_STMT_PREPARE: learn the statement.
fn watch_prepare(exchange: &Mutex<Exchange>, payload: &[u8]) {
    let mut ex = match exchange.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let Some(query) = ex.preparing.take() else {
        return;
    };
    match payload.first() {
        Some(0x00) => {
            if let Ok(ok) = StmtPrepareOk::decode(Bytes::copy_from_slice(payload)) {
                ex.statements.on_prepare_ok(&ok);
                if ex.queries.len() < MAX_TRACKED_STATEMENTS {
                    ex.queries.insert(ok.statement_id, query);
                }
            }
        }
        _ => ex.statements.on_prepare_error(),
    }
}

/// Reads a database's greeting to learn its version (for the proxy's own greeting).
pub async fn probe_version(uri: &str) -> Result<String, String> {
    let mut tcp = TcpStream::connect(uri)
        .await
        .map_err(|e| format!("connecting to {uri}: {e}"))?;
    let mut buf = BytesMut::with_capacity(512);
    let p = read_packet(&mut tcp, &mut buf).await?;
    match ServerGreeting::decode(p.payload) {
        Ok(ServerGreeting::Handshake(h)) => Ok(version_of(&h)),
        Ok(ServerGreeting::Err(e)) => Err(text(&e.message)),
        Err(e) => Err(e.to_string()),
    }
}

/// The server version a client should see (MariaDB's `5.5.5-` prefix kept: clients use it to
/// tell MariaDB from MySQL).
fn version_of(h: &HandshakeV10) -> String {
    text(&h.server_version)
}
