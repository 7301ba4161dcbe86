//! HTTPS visitors: the auth API, with the caller's verified certificate and address.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use portcullis_auth::api::caller::Peer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::Proxy;

/// Serves the API on an accepted TLS connection.
pub async fn serve<S>(proxy: Arc<Proxy>, tls: TlsStream<S>, addr: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Arc::new(c.as_ref().to_vec()));
    serve_with(proxy, tls, addr, cert).await;
}

/// Serves the API on a stream whose client certificate (if any) was already read.
pub async fn serve_with<S>(proxy: Arc<Proxy>, io: S, addr: SocketAddr, cert: Option<Arc<Vec<u8>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    portcullis_auth::tls::serve_http(TokioIo::new(io), Peer { addr, cert }, proxy.api.clone())
        .await;
}
