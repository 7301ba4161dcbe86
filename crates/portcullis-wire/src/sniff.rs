//! Protocol sniffing for the proxy's single public port.
//!
//! The proxy serves TLS (web, API, tunnels, direct-TLS PostgreSQL), PostgreSQL's in-band
//! SSLRequest, and must turn away plaintext clients with an error they can read. [`sniff`]
//! looks only at the first bytes and never panics: like linkerd's ClientHello reader it
//! answers [`Sniffed::Incomplete`] until it has enough bytes to decide (at most 8).

use crate::postgres::{
    CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_CANCEL_KEY_LEN, MAX_STARTUP_PACKET_LEN,
    SSL_REQUEST_CODE,
};

/// What the first bytes of a connection look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sniffed {
    /// Not enough bytes yet; read more and sniff again.
    Incomplete,
    /// A TLS handshake record (`0x16 0x03`): web, API, tunnels, and PostgreSQL 17's direct TLS
    /// (ALPN `postgresql`).
    Tls,
    /// PostgreSQL SSLRequest: answer `S`, then TLS.
    PostgresSslRequest,
    /// PostgreSQL GSSENCRequest: answer `N`; the client then sends SSLRequest or gives up.
    PostgresGssEncRequest,
    /// PostgreSQL CancelRequest.
    PostgresCancel,
    /// A plaintext PostgreSQL StartupMessage: answer with an ErrorResponse saying TLS is
    /// required.
    PostgresStartup,
    /// A plaintext HTTP request: answer that https is required.
    Http,
    /// A plaintext Redis command (`*` starts a RESP array): answer a RESP error saying TLS
    /// with a client certificate is required.
    RespPlaintext,
    /// None of the above: close the connection.
    Unknown,
}

/// HTTP methods recognised, each with its trailing space.
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Classifies a connection from its first bytes. Never panics; returns
/// [`Sniffed::Incomplete`] while `buf` is a prefix of something recognisable.
pub fn sniff(buf: &[u8]) -> Sniffed {
    match buf.first() {
        None => Sniffed::Incomplete,
        Some(0x16) => match buf.get(1) {
            None => Sniffed::Incomplete,
            Some(0x03) => Sniffed::Tls,
            Some(_) => Sniffed::Unknown,
        },
        // A PostgreSQL length is at most MAX_STARTUP_PACKET_LEN, so its first byte is zero.
        Some(0) => sniff_postgres(buf),
        Some(b'*') => Sniffed::RespPlaintext,
        Some(_) => sniff_http(buf),
    }
}

/// Plain HTTP: a known method and its space, or a prefix of one (wait for more).
fn sniff_http(buf: &[u8]) -> Sniffed {
    let mut prefix = false;
    for m in HTTP_METHODS {
        if buf.starts_with(m) {
            return Sniffed::Http;
        }
        if m.starts_with(buf) {
            prefix = true;
        }
    }
    if prefix {
        Sniffed::Incomplete
    } else {
        Sniffed::Unknown
    }
}

/// A PostgreSQL first packet: a plausible length (8..=10 000), then the code decides.
fn sniff_postgres(buf: &[u8]) -> Sniffed {
    let Some(len) = crate::postgres::be_u32_at(buf, 0) else {
        // Partial length: reject early when it can already not be small enough.
        return if buf.get(1).is_some_and(|&b| b != 0) {
            Sniffed::Unknown
        } else {
            Sniffed::Incomplete
        };
    };
    let Ok(len) = usize::try_from(len) else {
        return Sniffed::Unknown;
    };
    if !(8..=MAX_STARTUP_PACKET_LEN).contains(&len) {
        return Sniffed::Unknown;
    }
    let Some(code) = crate::postgres::be_u32_at(buf, 4) else {
        return Sniffed::Incomplete;
    };
    match code {
        SSL_REQUEST_CODE if len == 8 => Sniffed::PostgresSslRequest,
        GSSENC_REQUEST_CODE if len == 8 => Sniffed::PostgresGssEncRequest,
        CANCEL_REQUEST_CODE if (13..=12 + MAX_CANCEL_KEY_LEN).contains(&len) => {
            Sniffed::PostgresCancel
        }
        // Protocol 2.x and 3.x startups: the proxy refuses them in plaintext either way, and
        // decoding the packet later says precisely what is wrong.
        code if matches!(code >> 16, 2 | 3) => Sniffed::PostgresStartup,
        _ => Sniffed::Unknown,
    }
}
