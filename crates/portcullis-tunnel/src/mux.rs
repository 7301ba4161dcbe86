//! Multiplexing one connection into many streams (yamux), with a driver task that owns the
//! connection, opens outbound streams on request and hands inbound ones to the caller.

use std::collections::VecDeque;
use std::future::Future;
use std::task::Poll;

use futures::io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

/// One stream of a tunnel, usable with tokio's I/O traits.
pub type TunnelStream = Compat<yamux::Stream>;

/// Most streams open at once on one tunnel (each idle session holds one).
pub const MAX_STREAMS: usize = 16_384;
/// Inbound streams waiting to be picked up before new ones are refused.
pub const INBOUND_QUEUE: usize = 1024;

type OpenRequest = oneshot::Sender<Result<TunnelStream, TunnelError>>;

/// A tunnel failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TunnelError {
    /// The tunnel is gone (peer went away, network dropped).
    #[error("the tunnel to the agent is closed")]
    Closed,
    /// yamux refused.
    #[error("tunnel: {0}")]
    Mux(String),
}

/// A handle to a running tunnel: opens streams, tells when it closed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TunnelHandle {
    open: mpsc::Sender<OpenRequest>,
    closed: watch::Receiver<bool>,
    shutdown: std::sync::Arc<watch::Sender<bool>>,
}

impl TunnelHandle {
    /// Opens a new stream to the peer.
    pub async fn open(&self) -> Result<TunnelStream, TunnelError> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.map_err(|_| TunnelError::Closed)?;
        rx.await.map_err(|_| TunnelError::Closed)?
    }

    /// Whether `other` is a handle to the same tunnel.
    pub fn same_tunnel(&self, other: &TunnelHandle) -> bool {
        self.open.same_channel(&other.open)
    }

    /// Asks the driver to close the connection (e.g. after missed heartbeats).
    pub fn close(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Whether the tunnel has closed.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the tunnel closes.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

fn config() -> yamux::Config {
    let mut cfg = yamux::Config::default();
    // Each stream may buffer up to 256 KiB (yamux's default window); the connection window
    // must cover all streams (yamux checks this, so set it first). It is a limit, not an
    // allocation.
    cfg.set_max_connection_receive_window(Some(MAX_STREAMS * 256 * 1024));
    cfg.set_max_num_streams(MAX_STREAMS);
    cfg
}

/// Which side of the connection we are: the dialer is the client.
pub use yamux::Mode;

/// Starts multiplexing `io`. Returns a handle for opening streams and a receiver of streams
/// the peer opens. The driver task ends when the connection fails or the peer closes it.
pub fn spawn<IO>(io: IO, mode: Mode) -> (TunnelHandle, mpsc::Receiver<TunnelStream>)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // yamux writes a frame's 12-byte header and its body separately and flushes after each
    // frame; without a buffer underneath, every frame became two TLS records and two syscalls.
    // The buffer joins them; yamux's flush still sends each frame at once.
    spawn_compat(
        tokio::io::BufWriter::with_capacity(WRITE_BUFFER, io).compat(),
        mode,
    )
}

/// Bytes buffered under yamux before a write reaches the connection.
pub const WRITE_BUFFER: usize = 64 * 1024;

fn spawn_compat<IO>(io: IO, mode: Mode) -> (TunnelHandle, mpsc::Receiver<TunnelStream>)
where
    IO: FuturesRead + FuturesWrite + Send + Unpin + 'static,
{
    let (open_tx, mut open_rx) = mpsc::channel::<OpenRequest>(256);
    let (inbound_tx, inbound_rx) = mpsc::channel::<TunnelStream>(INBOUND_QUEUE);
    let (closed_tx, closed_rx) = watch::channel(false);
    let (shutdown_tx, mut shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut conn = yamux::Connection::new(io, config(), mode);
        let mut pending: VecDeque<OpenRequest> = VecDeque::new();
        let mut requests_open = true;
        let mut closing = false;
        let mut shutdown_signal = Box::pin(async move {
            while !*shutdown_rx.borrow() {
                if shutdown_rx.changed().await.is_err() {
                    // Every handle is gone: nobody can open streams, but inbound ones may still
                    // be served, so keep running.
                    std::future::pending::<()>().await;
                }
            }
        });
        let reason = std::future::poll_fn(|cx| {
            if !closing && shutdown_signal.as_mut().poll(cx).is_ready() {
                closing = true;
            }
            if closing {
                return match conn.poll_close(cx) {
                    Poll::Ready(_) => Poll::Ready("closed by us".to_owned()),
                    Poll::Pending => Poll::Pending,
                };
            }
            while requests_open {
                match open_rx.poll_recv(cx) {
                    Poll::Ready(Some(req)) => pending.push_back(req),
                    Poll::Ready(None) => requests_open = false,
                    Poll::Pending => break,
                }
            }
            while !pending.is_empty() {
                match conn.poll_new_outbound(cx) {
                    Poll::Ready(Ok(stream)) => {
                        if let Some(req) = pending.pop_front() {
                            let _ = req.send(Ok(stream.compat()));
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        let err = TunnelError::Mux(e.to_string());
                        for req in pending.drain(..) {
                            let _ = req.send(Err(err.clone()));
                        }
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            loop {
                match conn.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(stream))) => {
                        if inbound_tx.try_send(stream.compat()).is_err() {
                            tracing::warn!(
                                "tunnel: too many inbound streams waiting; refusing one"
                            );
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(e.to_string()),
                    Poll::Ready(None) => return Poll::Ready("closed by the peer".to_owned()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
        tracing::debug!(%reason, "tunnel closed");
        for req in pending.drain(..) {
            let _ = req.send(Err(TunnelError::Closed));
        }
        let _ = closed_tx.send(true);
        // Answer open requests that arrive after the end.
        open_rx.close();
        while let Some(req) = open_rx.recv().await {
            let _ = req.send(Err(TunnelError::Closed));
        }
    });
    (
        TunnelHandle {
            open: open_tx,
            closed: closed_rx,
            shutdown: std::sync::Arc::new(shutdown_tx),
        },
        inbound_rx,
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn streams_both_ways_and_close() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (proxy, _proxy_in) = spawn(a, Mode::Server);
        let (agent, mut agent_in) = spawn(b, Mode::Client);
        let server = tokio::spawn(async move {
            let mut handled = 0;
            while let Some(mut s) = agent_in.recv().await {
                let mut buf = vec![0u8; 5];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
                s.flush().await.unwrap();
                handled += 1;
                if handled == 50 {
                    break;
                }
            }
            handled
        });
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let p = proxy.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = p.open().await.unwrap();
                s.write_all(b"hello").await.unwrap();
                s.flush().await.unwrap();
                let mut buf = vec![0u8; 5];
                s.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"hello");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(server.await.unwrap(), 50);
        drop(agent);
        assert!(!proxy.is_closed());
    }

    #[tokio::test]
    async fn peer_gone_closes_the_tunnel() {
        let (a, b) = tokio::io::duplex(1024);
        let (proxy, _in) = spawn(a, Mode::Server);
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), proxy.closed())
            .await
            .unwrap();
        assert!(proxy.open().await.is_err());
    }
}
