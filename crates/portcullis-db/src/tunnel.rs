//! The agent's side of the reverse tunnel: dial the proxy, announce databases, serve the
//! streams the proxy opens; reconnect with exponential backoff and jitter.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portcullis_api::DatabaseHeartbeat;
use portcullis_tunnel::control::{ControlMessage, HEARTBEAT_INTERVAL};
use portcullis_tunnel::header::{decode_b64, write_json};
use portcullis_tunnel::mux::Mode;
use portcullis_tunnel::{read_header, write_header, StreamHeader, TunnelStream};
use rand::Rng;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::identity::ClientSlot;
use crate::Agent;

/// Time a stream's header may take to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// How long auth keeps our databases listed without a heartbeat.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(30);

/// Serves one tunnel over `io` until it closes; returns why.
pub async fn serve<IO>(agent: Arc<Agent>, io: IO) -> String
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tunnel, mut inbound) = portcullis_tunnel::spawn(io, Mode::Client);
    let mut control = match tunnel.open().await {
        Ok(s) => s,
        Err(e) => return format!("opening the control stream: {e}"),
    };
    if let Err(e) = write_header(&mut control, &StreamHeader::Control).await {
        return format!("control stream: {e}");
    }
    let announcer = {
        let agent = Arc::clone(&agent);
        let tunnel = tunnel.clone();
        tokio::spawn(async move {
            let mut changes = agent.databases.subscribe();
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            let mut msg = ControlMessage::Databases {
                databases: agent.databases.infos(),
            };
            loop {
                if write_json(&mut control, &msg).await.is_err() {
                    tunnel.close();
                    return;
                }
                tokio::select! {
                    _ = tick.tick() => msg = ControlMessage::Heartbeat,
                    r = changes.changed() => {
                        if r.is_err() { return; }
                        msg = ControlMessage::Databases { databases: agent.databases.infos() };
                    }
                }
            }
        })
    };
    tracing::info!("tunnel to the proxy is up");
    let reason = loop {
        tokio::select! {
            s = inbound.recv() => match s {
                Some(stream) => {
                    let agent = Arc::clone(&agent);
                    tokio::spawn(dispatch(agent, stream));
                }
                None => break "closed".to_owned(),
            },
            _ = tunnel.closed() => break "closed".to_owned(),
        }
    };
    announcer.abort();
    reason
}

async fn dispatch(agent: Arc<Agent>, mut stream: TunnelStream) {
    let header = match tokio::time::timeout(HEADER_TIMEOUT, read_header(&mut stream)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "bad stream from the proxy");
            return;
        }
        Err(_) => return,
    };
    match header {
        StreamHeader::Db {
            client_cert,
            client_addr,
            sid,
        } => {
            let Ok(cert) = decode_b64(&client_cert) else {
                return;
            };
            crate::session_for(agent, stream, cert, client_addr, sid).await;
        }
        StreamHeader::Cancel {
            process_id,
            secret_key,
        } => {
            let Ok(key) = decode_b64(&secret_key) else {
                return;
            };
            crate::postgres::cancel(&agent, process_id, Bytes::from(key)).await;
        }
        StreamHeader::Control => {}
    }
}

/// Registers our databases with auth every third of [`REGISTRATION_TTL`] so `pc db ls` lists
/// them while we live, and drops them soon after we vanish.
pub async fn heartbeat_forever(agent: Arc<Agent>, api: Arc<ClientSlot>) {
    loop {
        let body = DatabaseHeartbeat {
            databases: agent.databases.infos(),
            ttl_seconds: REGISTRATION_TTL.as_secs(),
        };
        if let Err(e) = api
            .get()
            .put::<_, u64>("/v1/databases/heartbeat", &body)
            .await
        {
            tracing::warn!(error = %e, "database heartbeat failed; retrying");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        tokio::time::sleep(REGISTRATION_TTL / 3).await;
    }
}

async fn dial(
    agent: &Agent,
    proxy_addr: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let file = agent.identity.file();
    let mut roots = rustls::RootCertStore::empty();
    for ca in &file.ca_ders {
        roots
            .add(CertificateDer::from(ca.clone()))
            .map_err(|e| e.to_string())?;
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(file.key_pkcs8.to_vec()));
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(vec![CertificateDer::from(file.cert_der.clone())], key)
    .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![portcullis_tunnel::TUNNEL_ALPN.to_vec()];
    let host = match proxy_addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        None => proxy_addr.to_owned(),
    };
    let name =
        ServerName::try_from(host).map_err(|_| format!("{proxy_addr:?} is not host:port"))?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(proxy_addr))
        .await
        .map_err(|_| format!("connecting to the proxy at {proxy_addr} timed out"))?
        .map_err(|e| format!("connecting to the proxy at {proxy_addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS to the proxy timed out".to_owned())?
    .map_err(|e| format!("TLS to the proxy: {e}"))
}

/// Keeps a tunnel to the proxy at `proxy_addr` up for as long as the process runs.
pub async fn run(agent: Arc<Agent>, proxy_addr: String) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match dial(&agent, &proxy_addr).await {
            Ok(tls) => {
                let started = tokio::time::Instant::now();
                let reason = serve(Arc::clone(&agent), tls).await;
                tracing::warn!(proxy = %proxy_addr, %reason, "tunnel to the proxy lost; reconnecting");
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = MIN_BACKOFF;
                }
            }
            Err(e) => {
                tracing::warn!(proxy = %proxy_addr, error = %e, "cannot reach the proxy; retrying")
            }
        }
        // Full jitter: spread reconnecting agents out after a proxy restart.
        let ms = rand::thread_rng()
            .gen_range(backoff.as_millis() as u64 / 2..=backoff.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
