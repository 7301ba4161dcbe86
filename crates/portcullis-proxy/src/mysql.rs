//! MySQL/MariaDB clients at the proxy.
//!
//! MySQL's server speaks first, so MySQL clients get a port of their own
//! (`proxy_service.mysql_listen_addr`, 3036 by default) where the proxy plays the server's
//! greeting, requires TLS (the client's SSLRequest) with a client certificate, and reads the
//! client's HandshakeResponse41. The password in it is ignored: the certificate is the
//! credential. The route in the certificate picks the agent; the login packet is forwarded
//! after the stream header and the agent answers it (OK, or an ERR saying why).
//!
//! The same exchange runs on the main port for `pc proxy db` (TLS with ALPN
//! [`MYSQL_ALPN`]): the greeting then offers no TLS, since the stream already is.
//!
//! Refusals reach the client as ERR packets with MySQL's codes (1045 access denied, 3159
//! secure transport required, 1043 bad handshake) and as `db.session.start` failure events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use portcullis_ca::CaError;
use portcullis_core::database::DbProtocol;
use portcullis_core::identity::Identity;
use portcullis_tunnel::StreamHeader;
use portcullis_wire::mysql::{
    self, capability::*, error_code, AuthMoreData, AuthSwitchRequest, ErrPacket, ErrorCode,
    HandshakeResponse41, HandshakeV10, PacketFramer, SslRequest,
};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::postgres::{failure_event_for, open_to_agent, relay};
use crate::Proxy;

/// ALPN for MySQL sessions on the main port (`pc proxy db`).
pub const MYSQL_ALPN: &[u8] = b"portcullis-mysql";
/// The version clients are greeted with when none is configured or announced.
pub const DEFAULT_SERVER_VERSION: &str = "8.0.36-Portcullis";
/// Time a client has for each handshake step.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the proxy offers clients.
pub const OFFERED: u64 = PROXIED;

/// Accepts MySQL clients until `shutdown` turns true.
pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    crate::listener::accept_loop(listener, shutdown, "mysql", move |tcp, addr| {
        plain(Arc::clone(&proxy), tcp, addr)
    })
    .await;
}

/// A 20-byte scramble without NUL bytes (clients treat it as a C string).
fn scramble() -> [u8; 20] {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut s = [0u8; 20];
    for o in s.iter_mut() {
        *o = rng.gen_range(1..=126);
    }
    s
}

/// The greeting (sequence id 0).
fn greeting(proxy: &Proxy, tls: bool) -> BytesMut {
    let mut caps = OFFERED;
    if tls {
        caps |= CLIENT_SSL;
    }
    let version = proxy.mysql_version();
    let id = rand_connection_id();
    let hello = HandshakeV10::new(version, id, scramble(), caps, "mysql_native_password");
    let mut payload = BytesMut::new();
    let mut out = BytesMut::new();
    if hello.encode(&mut payload).is_ok() {
        mysql::write_packets(&mut out, 0, &payload);
    }
    out
}

fn rand_connection_id() -> u32 {
    use rand::Rng;
    rand::thread_rng().gen_range(1..0x7fff_ffff)
}

/// An ERR packet with sequence id `seq`.
fn err(seq: u8, code: ErrorCode, message: &str) -> BytesMut {
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

async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, seq: u8, code: ErrorCode, message: &str) {
    let _ = stream.write_all(&err(seq, code, message)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// Reads one handshake packet (at most 128 KiB) and checks its sequence id.
async fn read_handshake_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    seq: u8,
) -> Result<mysql::LogicalPacket, String> {
    let framer = PacketFramer::handshake();
    let read = async {
        loop {
            if let Some(p) = framer.split_logical(buf).map_err(|e| e.to_string())? {
                if p.first_seq != seq {
                    return Err(format!(
                        "packets out of order: sequence id {} where {seq} was expected",
                        p.first_seq
                    ));
                }
                return Ok(p);
            }
            if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
                return Err("the client closed the connection during the handshake".into());
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .map_err(|_| "the client was silent for too long during the handshake".to_owned())?
}

/// Finishes the client's side of authentication so it waits for the final OK or ERR: the
/// password is ignored, but each client plugin expects its own exchange. `caching_sha2_password`
/// (MySQL 8+ drivers) is told "fast auth success"; a client that named another plugin and sent
/// nothing yet (MariaDB's `client_ed25519`) is asked to run it with a fresh nonce, and its
/// answer is read and dropped. Returns the login packet re-framed with the sequence id of the
/// client's last packet (the agent answers with the next one) and that next id.
async fn client_auth<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &mut S,
    buf: &mut BytesMut,
    packet: mysql::LogicalPacket,
) -> Result<(BytesMut, u8), (String, u8)> {
    let next = packet.last_seq.wrapping_add(1);
    let login =
        HandshakeResponse41::decode(packet.payload.clone()).map_err(|e| (e.to_string(), next))?;
    let plugin = login
        .auth_plugin_name
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mysql_native_password".to_owned());
    let io = |e: std::io::Error| (e.to_string(), next);
    let mut last = packet.last_seq;
    if plugin == "caching_sha2_password" && !login.auth_response.is_empty() {
        let mut payload = BytesMut::new();
        AuthMoreData::fast_auth_success().encode(&mut payload);
        let mut out = BytesMut::new();
        mysql::write_packets(&mut out, next, &payload);
        tls.write_all(&out).await.map_err(io)?;
        tls.flush().await.map_err(io)?;
        last = next;
    } else if plugin != "mysql_native_password" && login.auth_response.is_empty() {
        let switch = if plugin == "client_ed25519" {
            let mut nonce = scramble().to_vec();
            nonce.extend_from_slice(&scramble()[..12]);
            AuthSwitchRequest::new("client_ed25519", bytes::Bytes::from(nonce))
        } else {
            AuthSwitchRequest::with_scramble("mysql_native_password", &scramble())
        };
        let mut payload = BytesMut::new();
        switch
            .encode(&mut payload)
            .map_err(|e| (e.to_string(), next))?;
        let mut out = BytesMut::new();
        mysql::write_packets(&mut out, next, &payload);
        tls.write_all(&out).await.map_err(io)?;
        tls.flush().await.map_err(io)?;
        let answer = read_handshake_packet(tls, buf, next.wrapping_add(1))
            .await
            .map_err(|e| (e, next.wrapping_add(2)))?;
        last = answer.last_seq;
    }
    let mut out = BytesMut::new();
    mysql::write_packets(&mut out, last, &packet.payload);
    Ok((out, last.wrapping_add(1)))
}

/// A client on the MySQL port: greeting, SSLRequest, TLS, login.
async fn plain(proxy: Arc<Proxy>, mut tcp: TcpStream, addr: SocketAddr) {
    if tcp.write_all(&greeting(&proxy, true)).await.is_err() {
        return;
    }
    let mut buf = BytesMut::with_capacity(512);
    let first = match read_handshake_packet(&mut tcp, &mut buf, 1).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(%addr, error = %e, "bad MySQL handshake");
            return refuse(
                &mut tcp,
                2,
                error_code::ER_HANDSHAKE_ERROR,
                &format!("Portcullis: bad handshake: {e}"),
            )
            .await;
        }
    };
    let wants_tls = SslRequest::matches(&first.payload)
        && SslRequest::decode(first.payload.clone())
            .is_ok_and(|r| r.capabilities & CLIENT_SSL != 0);
    if !wants_tls {
        let msg = "Portcullis: TLS with a client certificate is required";
        proxy.auth.emit(failure_event_for(
            &proxy,
            DbProtocol::Mysql,
            None,
            addr,
            &uuid::Uuid::new_v4().to_string(),
            msg,
        ));
        return refuse(
            &mut tcp,
            2,
            error_code::ER_SECURE_TRANSPORT_REQUIRED,
            "Portcullis: TLS with a client certificate is required; connect with the [client_NAME] group `pc db login NAME` writes to ~/.my.cnf (or `pc db connect NAME`)",
        )
        .await;
    }
    let tls = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        // MySQL has no answer to the SSLRequest: the client's TLS ClientHello may already
        // have arrived behind it.
        tokio_rustls::TlsAcceptor::from(Arc::clone(&proxy.tls.db))
            .accept(crate::listener::Rewind::new(buf.to_vec(), tcp)),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let msg = format!("TLS handshake failed: {e}");
            tracing::info!(%addr, error = %e, "MySQL client refused at TLS");
            proxy.auth.emit(failure_event_for(
                &proxy,
                DbProtocol::Mysql,
                None,
                addr,
                &uuid::Uuid::new_v4().to_string(),
                &msg,
            ));
            return;
        }
        Err(_) => return,
    };
    login(proxy, tls, addr, 2).await;
}

/// A MySQL session on the main port (`pc proxy db`): TLS with ALPN [`MYSQL_ALPN`] is already
/// up; the greeting offers no TLS.
pub async fn over_alpn<S>(
    proxy: Arc<Proxy>,
    mut tls: tokio_rustls::server::TlsStream<S>,
    addr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if tls.write_all(&greeting(&proxy, false)).await.is_err() || tls.flush().await.is_err() {
        return;
    }
    login(proxy, tls, addr, 1).await;
}

/// Inside TLS: reads the HandshakeResponse41 (sequence id `seq`), checks the certificate and
/// hands the session to an agent.
async fn login<S>(
    proxy: Arc<Proxy>,
    mut tls: tokio_rustls::server::TlsStream<S>,
    addr: SocketAddr,
    seq: u8,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let sid = uuid::Uuid::new_v4().to_string();
    let mut buf = BytesMut::with_capacity(1024);
    let (packet, reply) = match read_handshake_packet(&mut tls, &mut buf, seq).await {
        Ok(p) => match client_auth(&mut tls, &mut buf, p).await {
            Ok(x) => x,
            Err((e, seq)) => {
                return refuse(
                    &mut tls,
                    seq,
                    error_code::ER_HANDSHAKE_ERROR,
                    &format!("Portcullis: bad handshake: {e}"),
                )
                .await
            }
        },
        Err(e) => {
            return refuse(
                &mut tls,
                seq.wrapping_add(1),
                error_code::ER_HANDSHAKE_ERROR,
                &format!("Portcullis: bad handshake: {e}"),
            )
            .await
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let fail = |identity: Option<&Identity>, msg: &str| {
        proxy.auth.emit(failure_event_for(
            &proxy,
            DbProtocol::Mysql,
            identity,
            addr,
            &sid,
            msg,
        ))
    };
    let Some(cert) = cert else {
        fail(None, "a client certificate is required");
        return refuse(
            &mut tls,
            reply,
            error_code::ER_ACCESS_DENIED_ERROR,
            "Portcullis: a client certificate is required; run `pc db login NAME` and connect with the [client_NAME] group it writes to ~/.my.cnf (or `pc db connect NAME`)",
        )
        .await;
    };
    let identity = portcullis_ca::decode_user_identity(&cert).ok();
    if let Err(e) = proxy
        .auth
        .user_ca()
        .verify(&cert, OffsetDateTime::now_utc())
    {
        let message = match &e {
            CaError::Rejected(m) if m.contains("expired") => {
                "Portcullis: your certificate has expired; log in again: `pc login`, then `pc db login NAME`".to_owned()
            }
            other => format!("Portcullis: certificate refused: {other}; run `pc db login NAME`"),
        };
        fail(identity.as_ref(), &message);
        return refuse(
            &mut tls,
            reply,
            error_code::ER_ACCESS_DENIED_ERROR,
            &message,
        )
        .await;
    }
    let Some(identity) = identity else {
        let msg = "Portcullis: the certificate carries no identity; run `pc db login NAME`";
        fail(None, msg);
        return refuse(&mut tls, reply, error_code::ER_ACCESS_DENIED_ERROR, msg).await;
    };
    let route = match &identity.route {
        Some(r) if r.protocol == DbProtocol::Mysql => r.clone(),
        Some(r) => {
            let msg = format!(
                "Portcullis: this certificate is for {} database {:?}, not MySQL; run `pc db login NAME` for the MySQL database",
                r.protocol.display_name(),
                r.service_name
            );
            fail(Some(&identity), &msg);
            return refuse(&mut tls, reply, error_code::ER_ACCESS_DENIED_ERROR, &msg).await;
        }
        None => {
            let msg = "Portcullis: this certificate is not routed to a database; run `pc db login NAME` and use the certificate it writes";
            fail(Some(&identity), msg);
            return refuse(&mut tls, reply, error_code::ER_ACCESS_DENIED_ERROR, msg).await;
        }
    };
    let local = proxy
        .local
        .get()
        .filter(|l| l.serves(&route.service_name))
        .cloned();
    if let Some(local) = local {
        let mut replay = packet.to_vec();
        replay.extend_from_slice(&buf);
        let stream = Box::new(crate::listener::Rewind::new(replay, tls));
        local.session(stream, cert, addr.to_string(), sid).await;
        return;
    }
    let agents = proxy.registry.agents_for(&route.service_name);
    let header = StreamHeader::db(&cert, addr.to_string(), sid.clone());
    if let Some((stream, tunnel)) =
        open_to_agent(agents, &header, &[&packet, &buf], &sid, &identity.username).await
    {
        let lost = err(
            0,
            error_code::ER_NET_READ_ERROR,
            "Portcullis: the connection to the database agent was lost; reconnect",
        );
        relay(tls, stream, &sid, tunnel, &lost).await;
        return;
    }
    let msg = format!(
        "Portcullis: database {:?} is not available: no agent serving it is connected (check that its database agent is running; `pc db ls` lists what is online)",
        route.service_name
    );
    fail(Some(&identity), &msg);
    refuse(&mut tls, reply, error_code::ER_UNKNOWN_ERROR, &msg).await;
}
