//! PostgreSQL clients at the proxy: check the certificate, pick an agent, relay.
//!
//! The proxy reads the route from the client certificate and nothing of the session itself;
//! the agent re-verifies everything. Refusals reach the client as a PostgreSQL FATAL error
//! (after reading its startup packet, so the error is not lost to a connection reset) and as a
//! `db.session.start` failure event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use portcullis_audit::{Event, EventKind};
use portcullis_ca::CaError;
use portcullis_core::database::DbProtocol;
use portcullis_core::identity::Identity;
use portcullis_tunnel::{write_header, StreamHeader};
use portcullis_wire::postgres::{
    sqlstate, CancelRequest, ErrorResponse, Framer, InitialPacket, Message,
};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Proxy;

/// Time to open a stream to one agent before trying the next.
pub const AGENT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

fn failure_event(
    proxy: &Proxy,
    identity: Option<&Identity>,
    addr: SocketAddr,
    sid: &str,
    error: &str,
) -> Event {
    failure_event_for(proxy, DbProtocol::Postgres, identity, addr, sid, error)
}

/// A `db.session.start` failure event for a session the proxy refused.
pub(crate) fn failure_event_for(
    proxy: &Proxy,
    protocol: DbProtocol,
    identity: Option<&Identity>,
    addr: SocketAddr,
    sid: &str,
    error: &str,
) -> Event {
    let mut e = Event::new(EventKind::DbSessionStartFailure, proxy.auth.cluster_name())
        .with("sid", sid)
        .with("success", false)
        .with("error", error)
        .with("db_protocol", protocol.as_str())
        .with("addr.remote", addr.to_string());
    if let Some(id) = identity {
        e.set("user", id.username.clone());
        if let Some(r) = &id.route {
            e.set("db_service", r.service_name.clone());
            e.set("db_user", r.db_user.clone());
            if let Some(n) = &r.db_name {
                e.set("db_name", n.clone());
            }
        }
    }
    e
}

/// A TLS handshake with a database client failed (unknown CA, …): log and audit it; the client
/// already got a TLS alert.
pub fn handshake_failed(proxy: &Proxy, addr: SocketAddr, err: &std::io::Error) {
    let msg = format!("TLS handshake failed: {err}");
    tracing::info!(%addr, error = %err, "database client refused at TLS");
    proxy.auth.emit(failure_event(
        proxy,
        None,
        addr,
        &uuid::Uuid::new_v4().to_string(),
        &msg,
    ));
}

/// Time a client has to send its first packet after the TLS handshake.
pub const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the client's first (untyped) packet, whole; bytes after it stay in `buf`.
async fn read_first_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<bytes::Bytes, ()> {
    let framer = Framer::new();
    loop {
        match framer.check_startup(buf) {
            Ok(Some(n)) => return Ok(buf.split_to(n).freeze()),
            Ok(None) => {}
            Err(_) => return Err(()),
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
}

/// Sends a FATAL error and closes (the startup packet has been read already).
async fn send_error<S: AsyncWrite + Unpin>(stream: &mut S, code: &str, message: &str, hint: &str) {
    let mut out = BytesMut::new();
    let mut err = ErrorResponse::fatal(code, message);
    if !hint.is_empty() {
        err = err.hint(hint);
    }
    if err.encode(&mut out).is_ok() {
        let _ = stream.write_all(&out).await;
        let _ = stream.flush().await;
    }
    let _ = stream.shutdown().await;
}

/// Sends a FATAL error and closes, after reading (and discarding) the client's startup packet.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    code: &str,
    message: &str,
    hint: &str,
) {
    let mut buf = BytesMut::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), read_first_packet(stream, &mut buf)).await;
    send_error(stream, code, message, hint).await;
}

/// A TLS-protected PostgreSQL session (after SSLRequest or direct TLS).
pub async fn session<S>(
    proxy: Arc<Proxy>,
    mut tls: tokio_rustls::server::TlsStream<S>,
    addr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let sid = uuid::Uuid::new_v4().to_string();
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let Some(cert) = cert else {
        let msg = "a client certificate is required";
        proxy
            .auth
            .emit(failure_event(&proxy, None, addr, &sid, msg));
        return refuse(
            &mut tls,
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            "Portcullis: a client certificate is required",
            "run `pc db login NAME` and connect with the sslcert/sslkey it prints (or `pc db connect NAME`)",
        )
        .await;
    };
    let identity = portcullis_ca::decode_user_identity(&cert).ok();
    if let Err(e) = proxy
        .auth
        .user_ca()
        .verify(&cert, OffsetDateTime::now_utc())
    {
        let (message, hint) = match &e {
            CaError::Rejected(m) if m.contains("expired") => (
                "Portcullis: your certificate has expired".to_owned(),
                "log in again: `pc login`, then `pc db login NAME`",
            ),
            other => (
                format!("Portcullis: certificate refused: {other}"),
                "run `pc db login NAME` for a fresh certificate",
            ),
        };
        proxy.auth.emit(failure_event(
            &proxy,
            identity.as_ref(),
            addr,
            &sid,
            &message,
        ));
        return refuse(
            &mut tls,
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            &message,
            hint,
        )
        .await;
    }
    let Some(identity) = identity else {
        let msg = "Portcullis: the certificate carries no identity";
        proxy
            .auth
            .emit(failure_event(&proxy, None, addr, &sid, msg));
        return refuse(
            &mut tls,
            sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            msg,
            "run `pc db login NAME`",
        )
        .await;
    };
    let route = match &identity.route {
        Some(r) if r.protocol == DbProtocol::Postgres => r.clone(),
        Some(r) => {
            let msg = format!(
                "Portcullis: this certificate is for {} database {:?}, not PostgreSQL",
                r.protocol, r.service_name
            );
            proxy
                .auth
                .emit(failure_event(&proxy, Some(&identity), addr, &sid, &msg));
            return refuse(
                &mut tls,
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                &msg,
                "run `pc db login NAME` for the PostgreSQL database",
            )
            .await;
        }
        None => {
            let msg = "Portcullis: this certificate is not routed to a database";
            proxy
                .auth
                .emit(failure_event(&proxy, Some(&identity), addr, &sid, msg));
            return refuse(
                &mut tls,
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                msg,
                "run `pc db login NAME` and use the certificate it writes",
            )
            .await;
        }
    };
    let local = proxy
        .local
        .get()
        .filter(|l| l.serves(&route.service_name))
        .cloned();
    let agents = proxy.registry.agents_for(&route.service_name);
    if agents.is_empty() && local.is_none() {
        let msg = format!(
            "Portcullis: database {:?} is not available: no agent serving it is connected",
            route.service_name
        );
        proxy
            .auth
            .emit(failure_event(&proxy, Some(&identity), addr, &sid, &msg));
        return refuse(
            &mut tls,
            sqlstate::CANNOT_CONNECT_NOW,
            &msg,
            "check that its database agent is running (`pc db ls` lists what is online)",
        )
        .await;
    }
    // Read the first packet here: a CancelRequest inside TLS (libpq 17, `pc proxy db`) must
    // reach every agent, like a plaintext one; a startup is forwarded after the header.
    let mut pending = BytesMut::with_capacity(1024);
    let first = tokio::time::timeout(
        FIRST_PACKET_TIMEOUT,
        read_first_packet(&mut tls, &mut pending),
    )
    .await;
    let Ok(Ok(first)) = first else {
        return;
    };
    let mut decode_buf = BytesMut::from(first.as_ref());
    let decoded = Framer::new()
        .split_startup(&mut decode_buf)
        .ok()
        .flatten()
        .map(|p| InitialPacket::decode(&p));
    match decoded {
        Some(Ok(InitialPacket::CancelRequest(c))) => {
            forward_cancel(&proxy, c.process_id, &c.secret_key).await;
            let _ = tls.shutdown().await;
            return;
        }
        Some(Ok(InitialPacket::Startup(_))) => {}
        Some(Ok(_)) => {
            return send_error(
                &mut tls,
                sqlstate::PROTOCOL_VIOLATION,
                "Portcullis: unexpected encryption request inside TLS",
                "",
            )
            .await;
        }
        Some(Err(e)) => {
            return send_error(
                &mut tls,
                sqlstate::PROTOCOL_VIOLATION,
                &format!("Portcullis: bad startup packet: {e}"),
                "",
            )
            .await;
        }
        None => return,
    }
    if let Some(local) = local {
        // Same process: hand the client's stream itself to the agent.
        let mut replay = first.to_vec();
        replay.extend_from_slice(&pending);
        let stream = Box::new(crate::listener::Rewind::new(replay, tls));
        local.session(stream, cert, addr.to_string(), sid).await;
        return;
    }
    let header = StreamHeader::db(&cert, addr.to_string(), sid.clone());
    if let Some((stream, tunnel)) = open_to_agent(
        agents,
        &header,
        &[&first, &pending],
        &sid,
        &identity.username,
    )
    .await
    {
        let mut lost = BytesMut::new();
        let _ = ErrorResponse::fatal(
            sqlstate::CONNECTION_FAILURE,
            "Portcullis: the connection to the database agent was lost",
        )
        .hint("reconnect; if it persists, check the database agent")
        .encode(&mut lost);
        relay(tls, stream, &sid, tunnel, &lost).await;
        return;
    }
    let msg = format!(
        "Portcullis: no agent serving {:?} answered",
        route.service_name
    );
    proxy
        .auth
        .emit(failure_event(&proxy, Some(&identity), addr, &sid, &msg));
    send_error(
        &mut tls,
        sqlstate::CANNOT_CONNECT_NOW,
        &msg,
        "try again in a moment; if it persists, check the database agent",
    )
    .await
}

/// Opens a stream to the first of `agents` that takes the session (in the order given; the
/// registry shuffles them): the stream header, then `initial` (bytes already read from the
/// client). Agents that fail or do not answer within [`AGENT_OPEN_TIMEOUT`] are skipped.
pub(crate) async fn open_to_agent(
    agents: Vec<crate::registry::AgentEntry>,
    header: &StreamHeader,
    initial: &[&[u8]],
    sid: &str,
    user: &str,
) -> Option<(
    portcullis_tunnel::TunnelStream,
    portcullis_tunnel::TunnelHandle,
)> {
    for agent in agents {
        let opened = tokio::time::timeout(AGENT_OPEN_TIMEOUT, async {
            let mut stream = agent.tunnel.open().await.map_err(|e| e.to_string())?;
            write_header(&mut stream, header)
                .await
                .map_err(|e| e.to_string())?;
            for bytes in initial.iter().filter(|b| !b.is_empty()) {
                stream.write_all(bytes).await.map_err(|e| e.to_string())?;
            }
            stream.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(stream)
        })
        .await;
        match opened {
            Ok(Ok(stream)) => {
                tracing::debug!(%sid, %user, agent = %agent.host_id, "session routed");
                return Some((stream, agent.tunnel));
            }
            Ok(Err(e)) => {
                tracing::warn!(%sid, agent = %agent.host_id, error = %e, "agent did not take the session; trying the next")
            }
            Err(_) => {
                tracing::warn!(%sid, agent = %agent.host_id, "agent did not answer in time; trying the next")
            }
        }
    }
    None
}

/// Relays a session between the client and an agent's tunnel stream. If the tunnel fails
/// (the agent died, the network dropped) rather than ending cleanly, the client gets `lost`
/// (an error in its protocol saying so) instead of a bare connection reset.
pub(crate) async fn relay<C, T>(
    client: C,
    tunnel: T,
    sid: &str,
    agent: portcullis_tunnel::TunnelHandle,
    lost: &[u8],
) where
    C: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut tunnel_r, mut tunnel_w) = tokio::io::split(tunnel);
    let up = async {
        let r = tokio::io::copy_buf(
            &mut tokio::io::BufReader::with_capacity(16 * 1024, &mut client_r),
            &mut tunnel_w,
        )
        .await;
        let _ = tunnel_w.shutdown().await;
        r
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tunnel_r.read(&mut buf).await {
                Ok(0) => {
                    // A stream ends cleanly both when the agent ends the session (it has sent
                    // its own FATAL) and when the whole tunnel goes down (the agent died):
                    // tell them apart by the tunnel.
                    let gone = agent.is_closed()
                        || tokio::time::timeout(Duration::from_millis(200), agent.closed())
                            .await
                            .is_ok();
                    if gone {
                        return Err(std::io::Error::from(std::io::ErrorKind::ConnectionAborted));
                    }
                    let _ = client_w.shutdown().await;
                    return Ok(());
                }
                Ok(n) => {
                    client_w.write_all(buf.get(..n).unwrap_or_default()).await?;
                    client_w.flush().await?;
                }
                Err(e) => return Err(e),
            }
        }
    };
    tokio::select! {
        _ = up => {}
        r = down => {
            if let Err(e) = r {
                tracing::info!(%sid, error = %e, "tunnel to the agent failed mid-session");
                let _ = client_w.write_all(lost).await;
                let _ = client_w.flush().await;
                let _ = client_w.shutdown().await;
            }
        }
    }
}

/// A plaintext startup: say that TLS and a certificate are required.
pub async fn plaintext_refused(mut tcp: TcpStream, head: Vec<u8>) {
    let mut rewound = crate::listener::Rewind::new(head, &mut tcp);
    refuse(
        &mut rewound,
        sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
        "Portcullis: TLS with a client certificate is required",
        "connect with sslmode=verify-full and the certificate from `pc db login NAME` (or use `pc db connect NAME`, or `pc proxy db NAME` for clients without certificate support)",
    )
    .await;
}

/// A CancelRequest (plaintext, as libpq sends it): hand it to every agent; the one running the
/// session with that key cancels it. The key is the secret; nothing is answered.
pub async fn cancel(proxy: Arc<Proxy>, mut tcp: TcpStream, head: Vec<u8>) {
    let mut buf = BytesMut::from(head.as_slice());
    let framer = Framer::new();
    let packet = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match framer.split_startup(&mut buf) {
                Ok(Some(p)) => return Some(p),
                Err(_) => return None,
                Ok(None) => {}
            }
            match tcp.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await;
    let Ok(Some(packet)) = packet else { return };
    let Ok(InitialPacket::CancelRequest(CancelRequest {
        process_id,
        secret_key,
    })) = InitialPacket::decode(&packet)
    else {
        return;
    };
    forward_cancel(&proxy, process_id, &secret_key).await;
}

/// Delivers a cancel key to every connected agent.
pub async fn forward_cancel(proxy: &Proxy, process_id: i32, secret_key: &[u8]) {
    use base64::Engine as _;
    let header = StreamHeader::Cancel {
        process_id,
        secret_key: base64::engine::general_purpose::STANDARD.encode(secret_key),
    };
    if let Some(local) = proxy.local.get() {
        tokio::spawn(local.cancel(process_id, bytes::Bytes::copy_from_slice(secret_key)));
    }
    for agent in proxy.registry.all() {
        let header = header.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(AGENT_OPEN_TIMEOUT, async {
                let mut s = agent.tunnel.open().await.ok()?;
                write_header(&mut s, &header).await.ok()?;
                let _ = s.shutdown().await;
                Some(())
            })
            .await;
        });
    }
}
