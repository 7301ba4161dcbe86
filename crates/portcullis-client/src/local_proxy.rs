//! `pc proxy db`: a local, plaintext PostgreSQL endpoint that forwards each connection to the
//! proxy over TLS with the user's database certificate.
//!
//! For tools that cannot present client certificates (GUI clients, ORMs, old drivers), the
//! tunnel listens on `127.0.0.1` only. For each local connection it answers the client's
//! SSLRequest/GSSENCRequest with `N` (the local hop is plaintext), reads the StartupMessage,
//! opens a connection to the proxy (SSLRequest, `S`, TLS with the database certificate,
//! verifying the proxy against the cluster's host CA), forwards the StartupMessage and then
//! relays bytes both ways. A CancelRequest (psql's Ctrl-C) is forwarded the same way.
//!
//! The startup phase is bounded by timeouts and a 10 KiB packet limit; the startup packet is
//! parsed by a small function here (not the shared wire codec) because only its framing
//! matters. Anyone able to connect to `127.0.0.1:PORT` uses the tunnel's identity: it is the
//! same trust boundary as the key file itself, and the listener never binds another address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_ca::identity_file::IdentityFile;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Largest startup packet accepted from a local client.
pub const MAX_STARTUP_LEN: usize = 10 * 1024;
/// Time a local client has to send its startup packet.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to reach the proxy and finish TLS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Most connections relayed at once.
pub const MAX_CONNECTIONS: usize = 512;

/// `SSLRequest` code.
pub const SSL_REQUEST: u32 = 80_877_103;
/// `GSSENCRequest` code.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// `CancelRequest` code.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol major version 3, in the StartupMessage's version field.
pub const PROTOCOL_MAJOR_3: u32 = 3;

/// What went wrong with one tunnelled connection.
#[derive(Debug, Error)]
pub enum TunnelError {
    /// The local client's first packet was not what PostgreSQL clients send.
    #[error("local client: {0}")]
    Startup(#[from] StartupError),
    /// The local client went away before it finished starting up.
    #[error("local client closed the connection before its startup message")]
    ClientClosed,
    /// The local client was too slow.
    #[error("local client sent no startup message within {0:?}")]
    StartupTimeout(Duration),
    /// The proxy could not be reached.
    #[error("cannot reach the proxy at {addr}: {detail}; check the address and that the proxy is running")]
    Connect {
        /// The proxy.
        addr: String,
        /// Cause.
        detail: String,
    },
    /// The proxy did not accept TLS for PostgreSQL.
    #[error("the proxy at {addr} answered the SSLRequest with {answer:?} instead of 'S'; is it a Portcullis proxy with PostgreSQL enabled?")]
    NoTls {
        /// The proxy.
        addr: String,
        /// The byte it answered.
        answer: char,
    },
    /// The TLS handshake with the proxy failed.
    #[error("TLS with the proxy at {addr} failed: {detail}")]
    Tls {
        /// The proxy.
        addr: String,
        /// Cause, with a hint.
        detail: String,
    },
    /// Local set-up (certificate, key, CA) is unusable.
    #[error("{0}")]
    Setup(String),
    /// Relaying failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Why a local client's startup packet was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StartupError {
    /// The length field is below the 8-byte minimum.
    #[error("startup packet length {0} is too short")]
    TooShort(u32),
    /// The length field is above [`MAX_STARTUP_LEN`].
    #[error("startup packet length {0} is over the {MAX_STARTUP_LEN}-byte limit")]
    TooLarge(u32),
    /// The client started TLS directly (PostgreSQL 17 `sslnegotiation=direct`).
    #[error(
        "the client started TLS, but this local tunnel is plaintext; connect with sslmode=disable"
    )]
    DirectTls,
    /// Not protocol 3.x and not a known request code.
    #[error("unsupported protocol version or request code {0}")]
    UnsupportedVersion(u32),
    /// The parameters are not NUL-terminated pairs.
    #[error("malformed startup parameters: {0}")]
    Malformed(&'static str),
    /// The client kept negotiating encryption.
    #[error("too many encryption requests before the startup message")]
    TooManyRequests,
}

/// A packet a client sends before authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// `SSLRequest`: answered `N`.
    SslRequest,
    /// `GSSENCRequest`: answered `N`.
    GssEncRequest,
    /// `CancelRequest`: forwarded as it is (`raw` is the whole packet).
    Cancel {
        /// The packet.
        raw: Vec<u8>,
    },
    /// `StartupMessage`: forwarded as it is.
    Startup {
        /// The whole packet.
        raw: Vec<u8>,
        /// Protocol version (`3 << 16 | minor`).
        version: u32,
        /// `user`, `database`, `application_name`, …
        params: Vec<(String, String)>,
    },
}

impl StartupPacket {
    /// A parameter of a StartupMessage.
    pub fn param(&self, key: &str) -> Option<&str> {
        match self {
            Self::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

fn be_u32(b: &[u8]) -> Option<u32> {
    let arr: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(arr))
}

/// Parses one pre-authentication packet from the front of `buf`: `Ok(None)` when more bytes
/// are needed, else the packet and how many bytes it took.
pub fn parse_startup(buf: &[u8]) -> Result<Option<(StartupPacket, usize)>, StartupError> {
    if buf.first() == Some(&0x16) {
        return Err(StartupError::DirectTls);
    }
    let Some(len) = be_u32(buf) else {
        return Ok(None);
    };
    if len < 8 {
        return Err(StartupError::TooShort(len));
    }
    if len as usize > MAX_STARTUP_LEN {
        return Err(StartupError::TooLarge(len));
    }
    let len = len as usize;
    let Some(packet) = buf.get(..len) else {
        return Ok(None);
    };
    let code = be_u32(packet.get(4..).unwrap_or_default()).unwrap_or_default();
    let parsed = match code {
        SSL_REQUEST | GSSENC_REQUEST if len != 8 => {
            return Err(StartupError::Malformed("encryption request with a body"))
        }
        SSL_REQUEST => StartupPacket::SslRequest,
        GSSENC_REQUEST => StartupPacket::GssEncRequest,
        CANCEL_REQUEST => StartupPacket::Cancel {
            raw: packet.to_vec(),
        },
        v if v >> 16 == PROTOCOL_MAJOR_3 => StartupPacket::Startup {
            raw: packet.to_vec(),
            version: v,
            params: parse_params(packet.get(8..).unwrap_or_default())?,
        },
        other => return Err(StartupError::UnsupportedVersion(other)),
    };
    Ok(Some((parsed, len)))
}

fn parse_params(mut body: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let mut out = Vec::new();
    loop {
        let (key, rest) = cstr(body)?;
        if key.is_empty() {
            if !rest.is_empty() {
                return Err(StartupError::Malformed("bytes after the terminator"));
            }
            return Ok(out);
        }
        let (value, rest) = cstr(rest)?;
        out.push((key, value));
        body = rest;
    }
}

fn cstr(b: &[u8]) -> Result<(String, &[u8]), StartupError> {
    let nul = b
        .iter()
        .position(|&c| c == 0)
        .ok_or(StartupError::Malformed("missing NUL terminator"))?;
    let s = std::str::from_utf8(b.get(..nul).unwrap_or_default())
        .map_err(|_| StartupError::Malformed("not UTF-8"))?;
    Ok((s.to_owned(), b.get(nul + 1..).unwrap_or_default()))
}

/// Reads one packet, buffering in `buf` (bytes after it stay in `buf`).
async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<StartupPacket, TunnelError> {
    loop {
        if let Some((packet, used)) = parse_startup(buf)? {
            buf.drain(..used);
            return Ok(packet);
        }
        let mut chunk = [0u8; 1024];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(TunnelError::ClientClosed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Runs the local client's side of the startup: answers encryption requests with `N` and
/// returns its StartupMessage (or CancelRequest) and any bytes it sent after it.
pub async fn accept_startup<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
) -> Result<(StartupPacket, Vec<u8>), TunnelError> {
    let mut buf = Vec::new();
    for _ in 0..4 {
        match read_packet(client, &mut buf).await? {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                client.write_all(b"N").await?;
                client.flush().await?;
            }
            other => return Ok((other, buf)),
        }
    }
    Err(StartupError::TooManyRequests.into())
}

/// A PostgreSQL `ErrorResponse` (severity FATAL, SQLSTATE 08006), so psql shows why the
/// tunnel could not connect instead of "server closed the connection unexpectedly".
pub fn error_response(message: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "08006"),
        (b'M', message),
    ] {
        body.push(tag);
        body.extend(value.bytes().filter(|&b| b != 0));
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(
        &u32::try_from(body.len() + 4)
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&body);
    out
}

/// Where and how to reach the proxy: PostgreSQL's SSLRequest then TLS, or (for MySQL) TLS from
/// the first byte with an ALPN naming the protocol.
pub struct Upstream {
    addr: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    /// `Some`: direct TLS with this ALPN; `None`: PostgreSQL's SSLRequest first.
    alpn: Option<Vec<u8>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// The proxy at `addr` (`host:port`), authenticated as `identity` (the database
    /// certificate, its key, and the host CA to verify the proxy with).
    pub fn new(addr: &str, identity: &IdentityFile) -> Result<Self, TunnelError> {
        Self::build(addr, identity, None)
    }

    /// The proxy at `addr`, reached with TLS from the first byte and ALPN `alpn` (MySQL:
    /// `portcullis-mysql`; the proxy then plays the MySQL server itself).
    pub fn direct(addr: &str, identity: &IdentityFile, alpn: &[u8]) -> Result<Self, TunnelError> {
        Self::build(addr, identity, Some(alpn.to_vec()))
    }

    fn build(
        addr: &str,
        identity: &IdentityFile,
        alpn: Option<Vec<u8>>,
    ) -> Result<Self, TunnelError> {
        let mut roots = RootCertStore::empty();
        for der in &identity.ca_ders {
            roots.add(CertificateDer::from(der.clone())).map_err(|e| {
                TunnelError::Setup(format!(
                    "the host CA certificate is unusable: {e}; run pc login again"
                ))
            })?;
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.to_vec()));
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TunnelError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![CertificateDer::from(identity.cert_der.clone())], key)
        .map_err(|e| {
            TunnelError::Setup(format!(
                "the database certificate or key is unusable: {e}; run pc db login again"
            ))
        })?;
        if let Some(a) = &alpn {
            config.alpn_protocols = vec![a.clone()];
        }
        let host = match addr.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| TunnelError::Setup(format!("{addr:?} is not a host:port address")))?;
        Ok(Self {
            addr: addr.to_owned(),
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            alpn,
        })
    }

    /// Connects: TCP, SSLRequest, `S`, TLS.
    pub async fn connect(&self) -> Result<TlsStream<TcpStream>, TunnelError> {
        let work = async {
            let mut tcp =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|e| TunnelError::Connect {
                        addr: self.addr.clone(),
                        detail: e.to_string(),
                    })?;
            let _ = tcp.set_nodelay(true);
            if self.alpn.is_some() {
                return self
                    .tls
                    .connect(self.server_name.clone(), tcp)
                    .await
                    .map_err(|e| TunnelError::Tls {
                        addr: self.addr.clone(),
                        detail: tls_hint(&e),
                    });
            }
            let mut ssl_request = 8u32.to_be_bytes().to_vec();
            ssl_request.extend_from_slice(&SSL_REQUEST.to_be_bytes());
            tcp.write_all(&ssl_request).await?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer).await?;
            if answer != *b"S" {
                return Err(TunnelError::NoTls {
                    addr: self.addr.clone(),
                    answer: char::from(answer[0]),
                });
            }
            self.tls
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| TunnelError::Tls {
                    addr: self.addr.clone(),
                    detail: tls_hint(&e),
                })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, work)
            .await
            .map_err(|_| TunnelError::Connect {
                addr: self.addr.clone(),
                detail: format!("timed out after {CONNECT_TIMEOUT:?}"),
            })?
    }
}

fn tls_hint(e: &io::Error) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        format!("{text}: the proxy's certificate is not signed by the host CA pc trusts for it; run pc login again, and if that is refused, ask your administrator")
    } else if text.contains("expired") || text.contains("certificate") {
        format!("{text}: your database certificate may have expired or been refused; run pc db login again")
    } else {
        text
    }
}

/// Relays one local client: startup, connection to the proxy, then bytes both ways until
/// either side closes. Errors before the relay starts are also sent to the client as a
/// PostgreSQL error, so its user sees them.
pub async fn handle_client<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    upstream: &Upstream,
) -> Result<(), TunnelError> {
    let (packet, leftover) =
        match tokio::time::timeout(STARTUP_TIMEOUT, accept_startup(&mut client)).await {
            Ok(r) => r?,
            Err(_) => return Err(TunnelError::StartupTimeout(STARTUP_TIMEOUT)),
        };
    let (raw, is_startup) = match packet {
        StartupPacket::Startup { raw, .. } => (raw, true),
        StartupPacket::Cancel { raw } => (raw, false),
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
            return Err(StartupError::TooManyRequests.into())
        }
    };
    let mut server = match upstream.connect().await {
        Ok(s) => s,
        Err(e) => {
            if is_startup {
                let _ = client
                    .write_all(&error_response(&format!("pc proxy: {e}")))
                    .await;
                let _ = client.flush().await;
            }
            return Err(e);
        }
    };
    server.write_all(&raw).await?;
    if !leftover.is_empty() {
        server.write_all(&leftover).await?;
    }
    server.flush().await?;
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok(_) => Ok(()),
        // A peer that hangs up without a TLS close_notify is routine for PostgreSQL.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Relays one local MySQL client: connects to the proxy (direct TLS with the MySQL ALPN) and
/// relays bytes both ways; the proxy greets the client.
pub async fn handle_raw_client<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    upstream: &Upstream,
) -> Result<(), TunnelError> {
    let mut server = upstream.connect().await?;
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Binds `127.0.0.1:port` (0 picks a free port; read it from the listener).
pub async fn bind(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Accepts local clients forever, relaying each in its own task; `report` hears about every
/// connection that failed (one line, with the client's address).
pub async fn serve<F>(listener: TcpListener, upstream: Arc<Upstream>, report: F) -> io::Result<()>
where
    F: Fn(String) + Send + Sync + 'static,
{
    let report = Arc::new(report);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                report(format!("accepting a local connection failed: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            report(format!(
                "{peer}: refused, already relaying {MAX_CONNECTIONS} connections"
            ));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let upstream = Arc::clone(&upstream);
        let report = Arc::clone(&report);
        tokio::spawn(async move {
            let done = if upstream.alpn.is_some() {
                handle_raw_client(stream, &upstream).await
            } else {
                handle_client(stream, &upstream).await
            };
            if let Err(e) = done {
                report(format!("{peer}: {e}"));
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests;
