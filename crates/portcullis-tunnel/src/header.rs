//! The first bytes of every tunnel stream: a 4-byte big-endian length, then that much JSON.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest header accepted (a certificate and a few fields).
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// What a stream is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamHeader {
    /// A database session. The proxy verified the client certificate during its TLS handshake;
    /// the agent verifies it again before doing anything.
    Db {
        /// The client's certificate, DER, base64.
        client_cert: String,
        /// The client's address as the proxy saw it.
        client_addr: String,
        /// Session id chosen by the proxy, for correlating logs.
        sid: String,
    },
    /// A PostgreSQL CancelRequest to deliver to whichever session holds this key.
    Cancel {
        /// The backend process id from BackendKeyData.
        process_id: i32,
        /// The secret key, base64.
        secret_key: String,
    },
    /// The agent's control stream (agent → proxy): announcements and heartbeats.
    Control,
}

impl StreamHeader {
    /// A database-session header.
    pub fn db(client_cert_der: &[u8], client_addr: String, sid: String) -> Self {
        Self::Db {
            client_cert: base64::engine::general_purpose::STANDARD.encode(client_cert_der),
            client_addr,
            sid,
        }
    }
}

/// Decodes a base64 field of a header.
pub fn decode_b64(s: &str) -> Result<Vec<u8>, HeaderError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| HeaderError::Invalid("a base64 field is malformed".into()))
}

/// A header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The stream failed or ended early.
    #[error("tunnel stream: {0}")]
    Io(#[from] std::io::Error),
    /// Too big.
    #[error("tunnel stream header of {0} bytes is larger than {MAX_HEADER_LEN}")]
    TooLarge(usize),
    /// Not a header we understand.
    #[error("tunnel stream header: {0}")]
    Invalid(String),
}

/// Writes a length-prefixed JSON value.
pub async fn write_json<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> Result<(), HeaderError> {
    let body = serde_json::to_vec(value).map_err(|e| HeaderError::Invalid(e.to_string()))?;
    if body.len() > MAX_HEADER_LEN {
        return Err(HeaderError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// Reads a length-prefixed JSON value.
pub async fn read_json<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<T, HeaderError> {
    let len = r.read_u32().await? as usize;
    if len > MAX_HEADER_LEN {
        return Err(HeaderError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| HeaderError::Invalid(e.to_string()))
}

/// Writes a stream header.
pub async fn write_header<W: AsyncWrite + Unpin>(
    w: &mut W,
    h: &StreamHeader,
) -> Result<(), HeaderError> {
    write_json(w, h).await
}

/// Reads a stream header.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<StreamHeader, HeaderError> {
    read_json(r).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let h = StreamHeader::db(b"cert", "127.0.0.1:5".into(), "sid".into());
        write_header(&mut a, &h).await.unwrap();
        assert_eq!(read_header(&mut b).await.unwrap(), h);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_header(&mut b).await,
            Err(HeaderError::TooLarge(_))
        ));
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 0, 0, 2, b'{', b'}']).await.unwrap();
        assert!(matches!(
            read_header(&mut b).await,
            Err(HeaderError::Invalid(_))
        ));
    }
}
