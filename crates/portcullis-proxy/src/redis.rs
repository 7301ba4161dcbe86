//! Redis clients at the proxy. Redis speaks TLS from the first byte and has no startup
//! packet to route by, so a TLS client whose certificate is routed to a Redis database is a
//! Redis session; the route picks the agent. The proxy parses nothing of the session; the
//! agent re-verifies everything. Refusals reach the client as RESP errors (after its first
//! command, so the error is read as the reply and not lost to a reset) and as a
//! `db.session.start` failure event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use portcullis_ca::CaError;
use portcullis_core::database::DbProtocol;
use portcullis_core::identity::Identity;
use portcullis_tunnel::StreamHeader;
use portcullis_wire::resp;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::postgres::{failure_event_for, open_to_agent, relay};
use crate::Proxy;

/// How long a refused client's first command is awaited before the error is sent.
const FIRST_COMMAND_WAIT: Duration = Duration::from_secs(2);

/// Whether `cert` is a user certificate routed to a Redis database (the proxy's test for
/// "this TLS client is a Redis session").
pub fn routed_to_redis(cert: &[u8]) -> Option<Identity> {
    portcullis_ca::decode_user_identity(cert).ok().filter(|id| {
        id.route
            .as_ref()
            .is_some_and(|r| r.protocol == DbProtocol::Redis)
    })
}

/// Answers the client's first command with a RESP error and closes.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, kind: &str, message: &str) {
    let mut buf = BytesMut::with_capacity(1024);
    let _ = tokio::time::timeout(FIRST_COMMAND_WAIT, stream.read_buf(&mut buf)).await;
    let _ = stream.write_all(&resp::error_reply(kind, message)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// A plaintext RESP command on the public port: say that TLS and a certificate are needed.
pub async fn plaintext_refused<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let _ = stream
        .write_all(&resp::error_reply(
            "ERR",
            "Portcullis: TLS with a client certificate is required; connect with redis-cli --tls --cert --key --cacert as `pc db config NAME` prints (or `pc db connect NAME`)",
        ))
        .await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

/// A TLS client without a certificate whose first byte is `*`: a Redis client that forgot
/// its certificate.
pub async fn no_certificate<S: AsyncRead + AsyncWrite + Unpin>(
    proxy: &Proxy,
    mut stream: S,
    addr: SocketAddr,
) {
    let msg = "Portcullis: a client certificate is required";
    proxy.auth.emit(failure_event_for(
        proxy,
        DbProtocol::Redis,
        None,
        addr,
        &uuid::Uuid::new_v4().to_string(),
        msg,
    ));
    refuse(
        &mut stream,
        "NOPERM",
        "Portcullis: a client certificate is required (run `pc db login NAME`, then connect with the --cert/--key `pc db config NAME` prints)",
    )
    .await;
}

/// A Redis session: the certificate is routed to a Redis database.
pub async fn session<S>(
    proxy: Arc<Proxy>,
    mut tls: tokio_rustls::server::TlsStream<S>,
    addr: SocketAddr,
    cert: Vec<u8>,
    identity: Identity,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let sid = uuid::Uuid::new_v4().to_string();
    let fail = |msg: &str| {
        proxy.auth.emit(failure_event_for(
            &proxy,
            DbProtocol::Redis,
            Some(&identity),
            addr,
            &sid,
            msg,
        ))
    };
    if let Err(e) = proxy
        .auth
        .user_ca()
        .verify(&cert, OffsetDateTime::now_utc())
    {
        let message = match &e {
            CaError::Rejected(m) if m.contains("expired") => {
                "Portcullis: your certificate has expired (log in again: `pc login`, then `pc db login NAME`)".to_owned()
            }
            other => format!("Portcullis: certificate refused: {other} (run `pc db login NAME`)"),
        };
        fail(&message);
        return refuse(&mut tls, "NOPERM", &message).await;
    }
    let Some(route) = identity.route.clone() else {
        return;
    };
    let local = proxy
        .local
        .get()
        .filter(|l| l.serves(&route.service_name))
        .cloned();
    if let Some(local) = local {
        // Same process: hand the client's stream itself to the agent.
        local
            .session(Box::new(tls), cert, addr.to_string(), sid)
            .await;
        return;
    }
    let agents = proxy.registry.agents_for(&route.service_name);
    let header = StreamHeader::db(&cert, addr.to_string(), sid.clone());
    if let Some((stream, tunnel)) =
        open_to_agent(agents, &header, &[], &sid, &identity.username).await
    {
        let lost = resp::error_reply(
            "ERR",
            "Portcullis: the connection to the database agent was lost; reconnect",
        );
        relay(tls, stream, &sid, tunnel, &lost).await;
        return;
    }
    let msg = format!(
        "Portcullis: database {:?} is not available: no agent serving it is connected (check that its database agent is running; `pc db ls` lists what is online)",
        route.service_name
    );
    fail(&msg);
    refuse(&mut tls, "ERR", &msg).await;
}
