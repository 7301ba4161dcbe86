//! The Redis engine: one session from the client's first command to its end.
//!
//! 1. Re-verify the forwarded certificate, refuse locked users, evaluate the roles (the db
//!    user is the certificate's; Redis has no database name to check).
//! 2. Connect to Redis over TLS with a client certificate from the db CA and log in with
//!    `AUTH <db user> <password>`: Redis 7.0 cannot map a certificate to an ACL user, so the
//!    agent holds each db user's password (`db_service.databases[].passwords`, from a file or
//!    an environment variable). Users never see or send it.
//! 3. Relay. Every client command is parsed and recorded as a `db.session.query` event before
//!    Redis sees it (arguments of `AUTH`, `HELLO … AUTH` and other password-bearing commands
//!    masked). A client's own `AUTH user pass` / `HELLO n AUTH user pass` may only name the
//!    certificate's db user: the agent swaps in the real password (the client's is ignored);
//!    another user gets `-NOPERM`. Replies are scanned as they stream (never buffered whole)
//!    to know where one ends, so an error can be injected between replies when the session
//!    must end (lock, expired certificate, idle timeout).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portcullis_audit::{Event, EventKind};
use portcullis_core::database::DbProtocol;
use portcullis_wire::resp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify};

use crate::query_text::{query_field, AuditedQuery};
use crate::session::{
    admit, must_end, record_activity, record_end, record_start_failure, refusal, Activity, Asked,
    Refusal, RefusalKind, Session,
};
use crate::spec::DbSpec;
use crate::Agent;

/// Time allowed to connect and log in to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest command a client may send (Redis itself allows 512 MiB bulk strings; a command is
/// held whole until it is audited, so the agent caps it lower).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024 * 1024;
/// How long a refused client's first command is awaited, so it reads the error as the reply
/// instead of losing it to a connection reset.
const FIRST_COMMAND_WAIT: Duration = Duration::from_secs(2);
/// How long earlier replies are awaited before a local answer (an `-NOPERM`) is sent.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// The RESP error prefix for a refusal.
fn error_prefix(kind: RefusalKind) -> &'static str {
    match kind {
        RefusalKind::Unauthenticated | RefusalKind::Forbidden => "NOPERM",
        _ => "ERR",
    }
}

/// A refusal as a RESP error line.
fn error_line(r: &Refusal) -> Vec<u8> {
    resp::error_reply(error_prefix(r.kind), &r.one_line())
}

/// Refuses a session before it started: waits briefly for the client's first command, answers
/// it with the error, closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, r: &Refusal) {
    let mut buf = BytesMut::with_capacity(1024);
    let _ = tokio::time::timeout(FIRST_COMMAND_WAIT, client.read_buf(&mut buf)).await;
    let _ = client.write_all(&error_line(r)).await;
    let _ = client.flush().await;
    let _ = client.shutdown().await;
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
    let asked = Asked {
        protocol: DbProtocol::Redis,
        db_user: None,
        db_name: None,
    };
    let session = match admit(&agent, &cert, asked, &sid, &client_addr).await {
        Ok(s) => s,
        Err(r) => return refuse(&mut client, &r).await,
    };
    let password = match password_for(&session.spec, &session.db_user) {
        Ok(p) => p,
        Err(r) => {
            record_start_failure(&agent, &session, &r).await;
            refuse(&mut client, &r).await;
            return;
        }
    };
    let server = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        connect(&agent, &session, password.as_deref()),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(r)) => {
            record_start_failure(&agent, &session, &r).await;
            refuse(&mut client, &r).await;
            return;
        }
        Err(_) => {
            let r = refusal(
                RefusalKind::Unavailable,
                format!(
                    "Portcullis: Redis at {} did not answer in time",
                    session.spec.uri
                ),
                "",
            );
            record_start_failure(&agent, &session, &r).await;
            refuse(&mut client, &r).await;
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
    tracing::info!(sid = %session.sid, user = %session.identity.username, db = %session.spec.name, db_user = %session.db_user, "redis session started");
    let ended = relay(&agent, &session, client, server, password).await;
    record_end(&agent, &session, ended.as_ref()).await;
    tracing::info!(sid = %session.sid, "redis session ended");
}

/// The password the agent logs in with as `db_user`: `None` for Redis' `default` user when
/// none is configured (a server without `requirepass`).
pub fn password_for(spec: &DbSpec, db_user: &str) -> Result<Option<String>, Refusal> {
    let Some(source) = spec.passwords.get(db_user) else {
        if db_user == "default" {
            return Ok(None);
        }
        return Err(refusal(
            RefusalKind::Unavailable,
            format!(
                "Portcullis: this agent has no password for Redis user {db_user:?} of {:?}",
                spec.name
            ),
            "an administrator adds it to db_service.databases[].passwords (file:PATH or env:VAR) on the agent",
        ));
    };
    crate::spec::read_secret(source).map(Some).map_err(|e| {
        tracing::error!(db = %spec.name, %db_user, error = %e, "cannot read the Redis password");
        refusal(
            RefusalKind::Unavailable,
            format!("Portcullis: the agent cannot read the password for Redis user {db_user:?}"),
            "an administrator checks db_service.databases[].passwords and the agent's log",
        )
    })
}

/// Any stream to Redis (TLS over TCP).
pub type ServerStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects over TLS with the db client certificate and logs in as the db user.
async fn connect(
    agent: &Agent,
    s: &Session,
    password: Option<&str>,
) -> Result<ServerStream, Refusal> {
    let unavailable = |m: String| refusal(RefusalKind::Unavailable, format!("Portcullis: {m}"), "");
    let config = agent
        .dbcerts
        .client_config(&s.spec, &s.db_user)
        .await
        .map_err(unavailable)?;
    let name = crate::dbcerts::server_name(&s.spec).map_err(unavailable)?;
    let tcp = TcpStream::connect(&s.spec.uri)
        .await
        .map_err(|e| unavailable(format!("connecting to Redis at {}: {e}", s.spec.uri)))?;
    let _ = tcp.set_nodelay(true);
    let mut server = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            unavailable(format!(
                "TLS to Redis at {}: {e} (is tls-port set? see docs/database-certificates.md)",
                s.spec.uri
            ))
        })?;
    let Some(password) = password else {
        return Ok(server);
    };
    let auth = resp::encode_command(&[b"AUTH", s.db_user.as_bytes(), password.as_bytes()]);
    server
        .write_all(&auth)
        .await
        .map_err(|e| unavailable(format!("Redis connection: {e}")))?;
    server
        .flush()
        .await
        .map_err(|e| unavailable(format!("Redis connection: {e}")))?;
    let mut buf = BytesMut::with_capacity(256);
    loop {
        match resp::decode_reply(&buf, &resp::Limits::default()) {
            Ok(Some((resp::Reply::Simple(_), _))) => return Ok(server),
            Ok(Some((resp::Reply::Error(e), _))) => {
                return Err(refusal(
                    RefusalKind::Unavailable,
                    format!(
                        "Portcullis: Redis refused the agent's login as {:?}: {e}",
                        s.db_user
                    ),
                    "an administrator checks the user's ACL and the password in db_service.databases[].passwords",
                ))
            }
            Ok(Some(_)) | Err(_) => {
                return Err(unavailable("Redis answered AUTH with something else".into()))
            }
            Ok(None) if buf.len() > 64 * 1024 => {
                return Err(unavailable("Redis answered AUTH with too much".into()))
            }
            Ok(None) => {}
        }
        match server.read_buf(&mut buf).await {
            Ok(0) => {
                return Err(unavailable(
                    "Redis closed the connection during login".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(unavailable(format!("Redis connection: {e}"))),
        }
    }
}

/// Arguments whose values are secrets, as positions or markers.
fn masked_args(args: &[Bytes]) -> Vec<bool> {
    let mut mask = vec![false; args.len()];
    // Only the few commands below carry secrets; the others are not uppercased at all.
    let secret_bearing = ["AUTH", "HELLO", "MIGRATE", "ACL", "CONFIG"];
    if !args.first().is_some_and(|a| {
        secret_bearing
            .iter()
            .any(|c| a.eq_ignore_ascii_case(c.as_bytes()))
    }) {
        return mask;
    }
    let name = |i: usize| args.get(i).map(|a| a.to_ascii_uppercase());
    let set = |m: &mut Vec<bool>, i: usize| {
        if let Some(x) = m.get_mut(i) {
            *x = true;
        }
    };
    match name(0).as_deref() {
        // `AUTH pass` or `AUTH user pass`: the last argument.
        Some(b"AUTH") if args.len() > 1 => set(&mut mask, args.len() - 1),
        Some(b"HELLO") => {
            for i in 2..args.len() {
                if name(i).as_deref() == Some(b"AUTH") {
                    set(&mut mask, i + 2);
                }
            }
        }
        Some(b"MIGRATE") => {
            for i in 6..args.len() {
                match name(i).as_deref() {
                    Some(b"AUTH") => set(&mut mask, i + 1),
                    Some(b"AUTH2") => set(&mut mask, i + 2),
                    _ => {}
                }
            }
        }
        Some(b"ACL") if name(1).as_deref() == Some(b"SETUSER") => {
            for (i, a) in args.iter().enumerate().skip(3) {
                if matches!(a.first(), Some(b'>' | b'<' | b'#' | b'!')) {
                    set(&mut mask, i);
                }
            }
        }
        Some(b"CONFIG") if name(1).as_deref() == Some(b"SET") => {
            let mut i = 2;
            while i + 1 < args.len() {
                if matches!(
                    name(i).as_deref(),
                    Some(b"REQUIREPASS" | b"MASTERAUTH" | b"MASTERUSER")
                ) {
                    set(&mut mask, i + 1);
                }
                i += 2;
            }
        }
        _ => {}
    }
    mask
}

/// A command as audit text: arguments separated by spaces, quoted (with `\"`, `\\`, `\n`,
/// `\xHH` escapes) when they are empty or hold anything but plain printable characters;
/// secrets replaced by `******`. Returns the text and whether anything was masked.
pub fn command_text(args: &[Bytes], max: usize) -> (String, bool) {
    let mask = masked_args(args);
    let mut out = String::new();
    let mut masked = false;
    for (i, a) in args.iter().enumerate() {
        if out.len() > max {
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        if mask.get(i).copied().unwrap_or(false) {
            out.push_str("******");
            masked = true;
            continue;
        }
        let plain = !a.is_empty()
            && a.iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
        if plain {
            let room = max.saturating_sub(out.len()) + 1;
            out.extend(a.iter().take(room).map(|&b| b as char));
            continue;
        }
        out.push('"');
        for &b in a.iter() {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                b' '..=b'~' => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
            if out.len() > max {
                break;
            }
        }
        out.push('"');
    }
    (out, masked)
}

/// What the relay does with one client command.
enum Action {
    /// Forward the bytes as they came.
    Forward,
    /// Forward these bytes instead (an `AUTH` with the agent's password).
    Rewrite(Vec<u8>),
    /// Answer the client locally, in order, without forwarding.
    Answer(Vec<u8>),
}

/// The user a client's `AUTH` names: `AUTH pass` means `default`.
fn auth_user(args: &[Bytes]) -> Option<&[u8]> {
    match args.len() {
        2 => Some(b"default"),
        3 => args.get(1).map(|a| a.as_ref()),
        _ => None,
    }
}

fn not_allowed(s: &Session, user: &[u8]) -> Vec<u8> {
    resp::error_reply(
        "NOPERM",
        &format!(
            "Portcullis: your certificate allows Redis user {:?}, not {:?} (run `pc db login NAME --db-user=USER` for another user)",
            s.db_user,
            String::from_utf8_lossy(user)
        ),
    )
}

/// Decides what to do with `args` (AUTH and HELLO … AUTH are checked against the route).
fn action(s: &Session, args: &[Bytes], password: Option<&str>) -> Action {
    let Some(name) = args.first() else {
        return Action::Forward;
    };
    if name.eq_ignore_ascii_case(b"AUTH") {
        let Some(user) = auth_user(args) else {
            return Action::Forward; // Redis answers the arity error itself.
        };
        if user != s.db_user.as_bytes() {
            return Action::Answer(not_allowed(s, user));
        }
        return match password {
            Some(p) => Action::Rewrite(resp::encode_command(&[
                b"AUTH",
                s.db_user.as_bytes(),
                p.as_bytes(),
            ])),
            None => Action::Answer(b"+OK\r\n".to_vec()),
        };
    }
    if name.eq_ignore_ascii_case(b"HELLO") {
        let Some(at) = args.iter().position(|a| a.eq_ignore_ascii_case(b"AUTH")) else {
            return Action::Forward;
        };
        let Some(user) = args.get(at + 1) else {
            return Action::Forward;
        };
        if user.as_ref() != s.db_user.as_bytes() {
            return Action::Answer(not_allowed(s, user));
        }
        let mut out: Vec<&[u8]> = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            if i == at {
                if let Some(p) = password {
                    out.extend([b"AUTH".as_slice(), s.db_user.as_bytes(), p.as_bytes()]);
                }
            } else if i != at + 1 && i != at + 2 {
                out.push(a.as_ref());
            }
        }
        return Action::Rewrite(resp::encode_command(&out));
    }
    Action::Forward
}

/// Replies the server owes the client, to put local answers in order.
#[derive(Default)]
struct Owed {
    sent: AtomicU64,
    got: AtomicU64,
    progress: Notify,
}

/// Relays until either side ends or the session must end; returns why, if the agent ended it.
async fn relay<C>(
    agent: &Arc<Agent>,
    s: &Session,
    client: C,
    server: ServerStream,
    password: Option<String>,
) -> Option<Refusal>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_r, client_w) = tokio::io::split(client);
    let (mut server_r, mut server_w) = tokio::io::split(server);
    let client_w = Arc::new(Mutex::new(client_w));
    let owed = Arc::new(Owed::default());
    let activity = Activity::default();
    let (refuse_tx, refuse_rx) = tokio::sync::oneshot::channel::<Refusal>();
    let limits = resp::Limits {
        max_bulk: MAX_COMMAND_BYTES,
        ..resp::Limits::default()
    };

    // Client → server: parse, audit, forward.
    let c2s = {
        let activity = activity.clone();
        let owed = Arc::clone(&owed);
        let client_w = Arc::clone(&client_w);
        async move {
            let mut cbuf = BytesMut::with_capacity(16 * 1024);
            let mut parser = resp::CommandParser::new(limits);
            let mut refuse_tx = Some(refuse_tx);
            let max = agent.audit.max_query_bytes();
            let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
            loop {
                let mut commands = Vec::new();
                loop {
                    match parser.parse(&mut cbuf) {
                        Ok(Some(cmd)) => commands.push(cmd),
                        Ok(None) => break,
                        Err(e) => {
                            let msg = format!("Portcullis: bad command: {e}");
                            let mut w = client_w.lock().await;
                            let _ = w.write_all(&resp::error_reply("ERR", &msg)).await;
                            let _ = w.flush().await;
                            let _ = w.shutdown().await;
                            return Err(msg);
                        }
                    }
                }
                if !commands.is_empty() {
                    let mut events = Vec::with_capacity(commands.len());
                    for cmd in commands.iter().filter(|_| s.spec.audit_queries) {
                        if cmd.args.is_empty() {
                            continue;
                        }
                        let (text, masked) = command_text(&cmd.args, max);
                        let len = cmd.args.iter().map(|a| a.len() + 1).sum::<usize>();
                        let q = AuditedQuery::new(text, len.saturating_sub(1), false, masked, max);
                        let mut e: Event = s.event(EventKind::DbSessionQuery);
                        query_field(&mut e, "db_query", &q);
                        e.set("db_query_parameters", Vec::<String>::new());
                        events.push(e);
                    }
                    // On disk before Redis sees the commands.
                    if !record_activity(agent, s, events, &mut refuse_tx).await {
                        return std::future::pending().await;
                    }
                    out.clear();
                    let mut owed_now = 0u64;
                    for cmd in &commands {
                        match action(s, &cmd.args, password.as_deref()) {
                            Action::Forward => {
                                out.extend_from_slice(&cmd.raw);
                                owed_now += 1;
                            }
                            Action::Rewrite(bytes) => {
                                out.extend_from_slice(&bytes);
                                owed_now += 1;
                            }
                            Action::Answer(bytes) => {
                                // In order: after the replies to everything forwarded before.
                                if !out.is_empty() {
                                    owed.sent.fetch_add(owed_now, Ordering::SeqCst);
                                    owed_now = 0;
                                    server_w.write_all(&out).await.map_err(|e| e.to_string())?;
                                    server_w.flush().await.map_err(|e| e.to_string())?;
                                    out.clear();
                                }
                                let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
                                loop {
                                    let wait = owed.progress.notified();
                                    if owed.got.load(Ordering::SeqCst)
                                        >= owed.sent.load(Ordering::SeqCst)
                                    {
                                        break;
                                    }
                                    if tokio::time::timeout_at(deadline, wait).await.is_err() {
                                        break;
                                    }
                                }
                                let mut w = client_w.lock().await;
                                w.write_all(&bytes).await.map_err(|e| e.to_string())?;
                                w.flush().await.map_err(|e| e.to_string())?;
                            }
                        }
                    }
                    if !out.is_empty() {
                        owed.sent.fetch_add(owed_now, Ordering::SeqCst);
                        server_w.write_all(&out).await.map_err(|e| e.to_string())?;
                        server_w.flush().await.map_err(|e| e.to_string())?;
                    }
                    if out.capacity() > 1024 * 1024 {
                        out = Vec::with_capacity(16 * 1024);
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
    // Server → client: forward as it streams; know where replies end.
    let s2c = async move {
        tokio::pin!(stop);
        let mut scanner = resp::ReplyScanner::new(resp::Limits::replies());
        let mut sbuf = BytesMut::with_capacity(16 * 1024);
        let mut ending: Option<(Refusal, tokio::time::Instant)> = None;
        loop {
            if let Some((r, deadline)) = &ending {
                if scanner.at_boundary() || tokio::time::Instant::now() >= *deadline {
                    let mut w = client_w.lock().await;
                    if scanner.at_boundary() {
                        let _ = w.write_all(&error_line(r)).await;
                    }
                    let _ = w.flush().await;
                    let _ = w.shutdown().await;
                    return Err(r.clone());
                }
            }
            let deadline = ending.as_ref().map(|(_, d)| *d);
            tokio::select! {
                biased;
                r = &mut stop, if ending.is_none() => {
                    ending = Some((r, tokio::time::Instant::now() + DRAIN_WAIT));
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
                read = server_r.read_buf(&mut sbuf) => {
                    match read {
                        Ok(0) => {
                            let mut w = client_w.lock().await;
                            let _ = w.flush().await;
                            let _ = w.shutdown().await;
                            return Ok(());
                        }
                        Ok(_) => {
                            let done = scanner
                                .feed(&sbuf)
                                .map_err(|e| failed(format!("Redis sent a bad reply: {e}")))?;
                            let chunk = sbuf.split();
                            {
                                let mut w = client_w.lock().await;
                                w.write_all(&chunk).await.map_err(|e| failed(e.to_string()))?;
                                w.flush().await.map_err(|e| failed(e.to_string()))?;
                            }
                            if done > 0 {
                                owed.got.fetch_add(done as u64, Ordering::SeqCst);
                                owed.progress.notify_waiters();
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
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn command_text_quotes_and_masks() {
        let (t, m) = command_text(&args(&["SET", "k", "hello world"]), 1000);
        assert_eq!((t.as_str(), m), ("SET k \"hello world\"", false));
        let (t, m) = command_text(&args(&["AUTH", "app", "s3cret"]), 1000);
        assert_eq!((t.as_str(), m), ("AUTH app ******", true));
        let (t, _) = command_text(&args(&["AUTH", "s3cret"]), 1000);
        assert_eq!(t, "AUTH ******");
        let (t, _) = command_text(
            &args(&["HELLO", "3", "AUTH", "app", "pw", "SETNAME", "x"]),
            1000,
        );
        assert_eq!(t, "HELLO 3 AUTH app ****** SETNAME x");
        let (t, _) = command_text(&args(&["ACL", "SETUSER", "bob", "on", ">pw", "~*"]), 1000);
        assert_eq!(t, "ACL SETUSER bob on ****** ~*");
        let (t, _) = command_text(&args(&["CONFIG", "SET", "requirepass", "pw"]), 1000);
        assert_eq!(t, "CONFIG SET requirepass ******");
        let (t, _) = command_text(
            &[
                Bytes::from_static(b"SET"),
                Bytes::from_static(b"\x00\xff\""),
            ],
            1000,
        );
        assert_eq!(t, "SET \"\\x00\\xff\\\"\"");
        let (t, _) = command_text(&args(&["GET", ""]), 1000);
        assert_eq!(t, "GET \"\"");
    }

    #[test]
    fn long_commands_stop_rendering_early() {
        let big = "x".repeat(10_000);
        let (t, _) = command_text(&args(&["SET", "k", &big, "tail"]), 100);
        assert!(t.len() < 200, "{}", t.len());
    }
}
