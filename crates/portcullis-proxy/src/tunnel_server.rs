//! Agents dialling in: verify the host certificate, run the tunnel, keep the registry current
//! from the agent's control stream, drop the agent when it falls silent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::{Event, EventKind};
use portcullis_core::identity::{HostIdentity, SystemRole};
use portcullis_tunnel::control::{ControlMessage, HEARTBEAT_TIMEOUT};
use portcullis_tunnel::header::read_json;
use portcullis_tunnel::mux::Mode;
use portcullis_tunnel::{read_header, StreamHeader};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::registry::AgentEntry;
use crate::Proxy;

/// Time an agent has to open its control stream after connecting.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves an agent that connected over TLS with the tunnel ALPN.
pub async fn serve<S>(proxy: Arc<Proxy>, tls: TlsStream<S>, addr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(cert) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
    else {
        tracing::warn!(%addr, "agent connected without a certificate");
        return;
    };
    let host = match verify_agent(&proxy, &cert) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "agent refused");
            return;
        }
    };
    run(proxy, tls, host, addr.to_string()).await;
}

fn verify_agent(proxy: &Proxy, cert: &[u8]) -> Result<HostIdentity, String> {
    proxy
        .auth
        .host_ca()
        .verify(cert, OffsetDateTime::now_utc())
        .map_err(|e| e.to_string())?;
    let host = portcullis_ca::decode_host_identity(cert).map_err(|e| e.to_string())?;
    if host.cluster_name != proxy.auth.cluster_name() {
        return Err(format!("certificate from cluster {:?}", host.cluster_name));
    }
    if !host.has_role(SystemRole::Db) {
        return Err("the certificate is not a database agent's".into());
    }
    Ok(host)
}

/// An `agent.connect` / `agent.disconnect` event for `host`, connected from `from`.
fn agent_event(proxy: &Proxy, kind: EventKind, host: &HostIdentity, from: &str) -> Event {
    Event::new(kind, proxy.auth.cluster_name())
        .with("user", format!("{}@{}", host.node_name, host.host_id))
        .with("server_id", &host.host_id)
        .with("node_name", &host.node_name)
        .with("addr.remote", from)
}

/// Runs the tunnel with an agent over `io` (TLS, or an in-memory pipe in one process) until it
/// closes or misses heartbeats.
pub async fn run<IO>(proxy: Arc<Proxy>, io: IO, host: HostIdentity, from: String)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tunnel, mut inbound) = portcullis_tunnel::spawn(io, Mode::Server);
    let control = tokio::time::timeout(CONTROL_TIMEOUT, async {
        let mut stream = inbound.recv().await?;
        match read_header(&mut stream).await {
            Ok(StreamHeader::Control) => Some(stream),
            _ => None,
        }
    })
    .await;
    let Ok(Some(mut control)) = control else {
        tracing::warn!(host_id = %host.host_id, %from, "agent did not open its control stream; closing");
        tunnel.close();
        return;
    };
    proxy.registry.insert(AgentEntry {
        host_id: host.host_id.clone(),
        node_name: host.node_name.clone(),
        tunnel: tunnel.clone(),
        databases: Vec::new(),
    });
    tracing::info!(host_id = %host.host_id, node = %host.node_name, %from, "agent connected");
    proxy
        .auth
        .emit(agent_event(&proxy, EventKind::AgentConnect, &host, &from));
    // Streams the agent opens to us are not used yet; refuse them by dropping.
    tokio::spawn(async move { while inbound.recv().await.is_some() {} });
    let reason = loop {
        match tokio::time::timeout(
            HEARTBEAT_TIMEOUT,
            read_json::<_, ControlMessage>(&mut control),
        )
        .await
        {
            Ok(Ok(ControlMessage::Databases { databases })) => {
                tracing::info!(host_id = %host.host_id, count = databases.len(), "agent databases");
                proxy.registry.set_databases(&host.host_id, databases);
            }
            Ok(Ok(ControlMessage::Heartbeat)) => {}
            Ok(Err(e)) => {
                tracing::info!(host_id = %host.host_id, reason = %e, "agent disconnected");
                break format!("the tunnel closed: {e}");
            }
            Err(_) => {
                tracing::warn!(host_id = %host.host_id, "agent missed its heartbeats; dropping its tunnel");
                break format!(
                    "no heartbeat for {}s; the proxy dropped the tunnel",
                    HEARTBEAT_TIMEOUT.as_secs()
                );
            }
        }
    };
    proxy
        .auth
        .emit(agent_event(&proxy, EventKind::AgentDisconnect, &host, &from).with("reason", reason));
    proxy.registry.remove(&host.host_id, &tunnel);
    tunnel.close();
}
