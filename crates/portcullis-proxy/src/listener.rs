//! The public port: read the first bytes, decide who is calling, hand over.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use portcullis_wire::sniff::{sniff, Sniffed};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::LazyConfigAcceptor;

use crate::{mysql, postgres, redis, tunnel_server, web, Proxy};

/// Most connections handled at once.
pub const MAX_CONNECTIONS: usize = 32_768;
/// Time a visitor has to say who it is (first bytes, TLS handshake).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` turns true.
pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    accept_loop(listener, shutdown, "", move |tcp, addr| {
        handle(Arc::clone(&proxy), tcp, addr)
    })
    .await;
}

/// Accepts connections until `shutdown` turns true, each handled by `handle` in its own task,
/// at most [`MAX_CONNECTIONS`] at once; `what` names the port in logs.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, port = what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let work = handle(tcp, addr);
        tokio::spawn(async move {
            let _permit = permit;
            work.await;
        });
    }
}

/// Reads at most 8 bytes — never more than the first packet's header — until the sniffer
/// decides. Reading no further matters: bytes a client sends before our TLS answer must not
/// be carried into the TLS session (CVE-2021-23214).
async fn read_head(tcp: &mut TcpStream) -> io::Result<(Sniffed, [u8; 8], usize)> {
    let mut head = [0u8; 8];
    let mut n = 0;
    loop {
        let Some(space) = head.get_mut(n..) else {
            return Ok((Sniffed::Unknown, head, n));
        };
        let read = tcp.read(space).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n += read;
        match sniff(head.get(..n).unwrap_or_default()) {
            Sniffed::Incomplete if n < head.len() => continue,
            decided => return Ok((decided, head, n)),
        }
    }
}

async fn handle(proxy: Arc<Proxy>, mut tcp: TcpStream, addr: SocketAddr) {
    // A client may send GSSENCRequest first (answered N) and then SSLRequest: allow one retry.
    for _ in 0..2 {
        let (kind, head, n) = match tokio::time::timeout(HELLO_TIMEOUT, read_head(&mut tcp)).await {
            Ok(Ok(h)) => h,
            _ => return,
        };
        let head = head.get(..n).unwrap_or_default().to_vec();
        match kind {
            Sniffed::Tls => return tls(proxy, Rewind::new(head, tcp), addr).await,
            Sniffed::PostgresSslRequest => {
                if tcp.write_all(b"S").await.is_err() {
                    return;
                }
                let tls = match tokio::time::timeout(
                    HELLO_TIMEOUT,
                    tokio_rustls::TlsAcceptor::from(Arc::clone(&proxy.tls.db))
                        .accept(Rewind::new(Vec::new(), tcp)),
                )
                .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => return postgres::handshake_failed(&proxy, addr, &e),
                    Err(_) => return,
                };
                return postgres::session(proxy, tls, addr).await;
            }
            Sniffed::PostgresGssEncRequest => {
                if tcp.write_all(b"N").await.is_err() {
                    return;
                }
                continue;
            }
            Sniffed::PostgresCancel => return postgres::cancel(proxy, tcp, head).await,
            Sniffed::PostgresStartup => return postgres::plaintext_refused(tcp, head).await,
            Sniffed::RespPlaintext => return redis::plaintext_refused(tcp).await,
            Sniffed::Http => {
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 58\r\n\r\nThis is a Portcullis proxy: it only speaks https://, TLS.\n",
                    )
                    .await;
                let _ = tcp.shutdown().await;
                return;
            }
            Sniffed::Incomplete | Sniffed::Unknown => return,
        }
    }
}

async fn tls(proxy: Arc<Proxy>, io: Rewind<TcpStream>, addr: SocketAddr) {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match tokio::time::timeout(HELLO_TIMEOUT, acceptor).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    let alpn: Vec<Vec<u8>> = start
        .client_hello()
        .alpn()
        .map(|protos| protos.map(|p| p.to_vec()).collect())
        .unwrap_or_default();
    let has = |p: &[u8]| alpn.iter().any(|a| a.as_slice() == p);
    if has(portcullis_tunnel::TUNNEL_ALPN) {
        match tokio::time::timeout(
            HELLO_TIMEOUT,
            start.into_stream(Arc::clone(&proxy.tls.tunnel)),
        )
        .await
        {
            Ok(Ok(tls)) => tunnel_server::serve(proxy, tls, addr).await,
            Ok(Err(e)) => tracing::warn!(%addr, error = %e, "agent TLS handshake failed"),
            Err(_) => {}
        }
    } else if has(mysql::MYSQL_ALPN) {
        match tokio::time::timeout(
            HELLO_TIMEOUT,
            start.into_stream(Arc::clone(&proxy.tls.db_mysql)),
        )
        .await
        {
            Ok(Ok(tls)) => mysql::over_alpn(proxy, tls, addr).await,
            Ok(Err(e)) => postgres::handshake_failed(&proxy, addr, &e),
            Err(_) => {}
        }
    } else if has(crate::tls::POSTGRES_ALPN) {
        match tokio::time::timeout(
            HELLO_TIMEOUT,
            start.into_stream(Arc::clone(&proxy.tls.db_direct)),
        )
        .await
        {
            Ok(Ok(tls)) => postgres::session(proxy, tls, addr).await,
            Ok(Err(e)) => postgres::handshake_failed(&proxy, addr, &e),
            Err(_) => {}
        }
    } else {
        let http = has(b"http/1.1") || has(b"h2");
        match tokio::time::timeout(HELLO_TIMEOUT, start.into_stream(Arc::clone(&proxy.tls.web)))
            .await
        {
            Ok(Ok(tls)) if !http => not_http(proxy, tls, addr).await,
            Ok(Ok(tls)) => web::serve(proxy, tls, addr).await,
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
            Err(_) => {}
        }
    }
}

/// A TLS client that offered no HTTP ALPN: a Redis client (certificate routed to Redis, or a
/// `*` first byte without a certificate), else HTTPS.
async fn not_http<S>(
    proxy: Arc<Proxy>,
    mut tls: tokio_rustls::server::TlsStream<S>,
    addr: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    if let Some(cert) = cert {
        if let Some(identity) = redis::routed_to_redis(&cert) {
            return redis::session(proxy, tls, addr, cert, identity).await;
        }
        return web::serve(proxy, tls, addr).await;
    }
    // No certificate: look at the first byte to tell a Redis client from an HTTP one.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HELLO_TIMEOUT, tls.read(&mut first)).await {
        Ok(Ok(1)) if first[0] == b'*' => {
            redis::no_certificate(&proxy, Rewind::new(first.to_vec(), tls), addr).await
        }
        Ok(Ok(1)) => {
            let cert = None;
            web::serve_with(proxy, Rewind::new(first.to_vec(), tls), addr, cert).await
        }
        _ => {}
    }
}

/// A stream that first yields bytes already read (the sniffed prefix), then the inner stream.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    /// Replays `prefix` before reading from `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(rest) = self.prefix.get(self.pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
