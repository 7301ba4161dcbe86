//! A decoded server reply, for the few replies the agent reads itself (`AUTH`, `HELLO`).

use bytes::Bytes;

use super::encode::{put_bulk, put_header, put_line};

/// A RESP2 or RESP3 value, decoded by [`super::decode_reply`].
///
/// The agent relays ordinary replies as bytes ([`super::ReplyFramer`]); it decodes only what it
/// must act on during login: `+OK`, `-WRONGPASS …`, `-NOAUTH …`, and the map (RESP3) or flat
/// array (RESP2) that `HELLO` returns. Attributes (`|`) are dropped by the decoder: they are
/// optional metadata that no login step needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+`: a simple string (`OK`, `PONG`). Not UTF-8 bytes become U+FFFD.
    Simple(String),
    /// `-`: an error, code first (`WRONGPASS invalid username-password pair`). Not UTF-8 bytes
    /// become U+FFFD.
    Error(String),
    /// `:`: a signed 64-bit integer.
    Integer(i64),
    /// `$`: a bulk string; `None` for RESP2's null bulk string `$-1`.
    Bulk(Option<Bytes>),
    /// `*`: an array; `None` for RESP2's null array `*-1`.
    Array(Option<Vec<Reply>>),
    /// `%`: a RESP3 map, pairs in wire order (keys may repeat; nothing is deduplicated).
    Map(Vec<(Reply, Reply)>),
    /// `~`: a RESP3 set, in wire order.
    Set(Vec<Reply>),
    /// `>`: a RESP3 push (pub/sub messages, client-side caching invalidations).
    Push(Vec<Reply>),
    /// `_`: RESP3's null.
    Null,
    /// `#`: a RESP3 boolean.
    Boolean(bool),
    /// `,`: a RESP3 double (`inf`, `-inf` and `nan` included).
    Double(f64),
    /// `(`: a RESP3 big number, as its decimal digits (an optional `-`, then digits).
    BigNumber(String),
    /// `!`: a RESP3 bulk error, code first.
    BulkError(Bytes),
    /// `=`: a RESP3 verbatim string.
    Verbatim {
        /// Its three-byte format: `txt` or `mkd`.
        format: [u8; 3],
        /// The text after `xxx:`.
        text: Bytes,
    },
}

impl Reply {
    /// Whether this is `+OK`, the success reply of `AUTH`, `SELECT` and most setters.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Simple(s) if s == "OK")
    }

    /// The code of an error reply: its first word (`ERR`, `WRONGPASS`, `NOAUTH`, `NOPERM`…),
    /// or `None` if this is not an error.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Error(e) => e.split(' ').next(),
            _ => None,
        }
    }

    /// The bytes of a string reply (simple, bulk or verbatim), or `None` for anything else.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Simple(s) => Some(s.as_bytes()),
            Self::Bulk(Some(b)) | Self::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }

    /// The value for `key` in a map reply, or in an array of alternating keys and values (how
    /// RESP2 carries `HELLO`'s map); `None` if there is no such key or this is neither. Keys
    /// are compared as bytes; the first match wins.
    pub fn get(&self, key: &[u8]) -> Option<&Reply> {
        match self {
            Self::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key))
                .map(|(_, v)| v),
            Self::Array(Some(items)) => items.chunks_exact(2).find_map(|kv| match kv {
                [k, v] if k.as_bytes() == Some(key) => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Appends the value's RESP encoding to `dst` (RESP3 types in RESP3 form).
    ///
    /// CR and LF in simple strings, errors and big numbers become spaces, so the output always
    /// frames as exactly one value; a big number that is not an optional `-` and digits is
    /// written anyway and will be refused by a strict reader. Recursive: meant for replies
    /// decoded by this module (at most [`super::Limits::max_depth`] deep) or built by hand.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        match self {
            Self::Simple(s) => put_line(dst, b'+', s.as_bytes()),
            Self::Error(s) => put_line(dst, b'-', s.as_bytes()),
            Self::Integer(n) => put_header(dst, b':', n),
            Self::Bulk(None) => dst.extend_from_slice(b"$-1\r\n"),
            Self::Bulk(Some(b)) => put_bulk(dst, b'$', b),
            Self::Array(None) => dst.extend_from_slice(b"*-1\r\n"),
            Self::Array(Some(items)) => put_all(dst, b'*', items),
            Self::Set(items) => put_all(dst, b'~', items),
            Self::Push(items) => put_all(dst, b'>', items),
            Self::Map(pairs) => {
                put_header(dst, b'%', pairs.len());
                for (k, v) in pairs {
                    k.encode(dst);
                    v.encode(dst);
                }
            }
            Self::Null => dst.extend_from_slice(b"_\r\n"),
            Self::Boolean(b) => dst.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Self::Double(d) => {
                let text = if d.is_nan() {
                    "nan".to_owned()
                } else if d.is_infinite() {
                    if *d > 0.0 { "inf" } else { "-inf" }.to_owned()
                } else {
                    // Debug is the shortest text that reads back as the same double.
                    format!("{d:?}")
                };
                put_line(dst, b',', text.as_bytes());
            }
            Self::BigNumber(s) => put_line(dst, b'(', s.as_bytes()),
            Self::BulkError(b) => put_bulk(dst, b'!', b),
            Self::Verbatim { format, text } => {
                put_header(dst, b'=', text.len().saturating_add(4));
                dst.extend_from_slice(format);
                dst.push(b':');
                dst.extend_from_slice(text);
                dst.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The value's RESP encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut dst = Vec::new();
        self.encode(&mut dst);
        dst
    }
}

/// Appends an aggregate's header and items.
fn put_all(dst: &mut Vec<u8>, kind: u8, items: &[Reply]) {
    put_header(dst, kind, items.len());
    for item in items {
        item.encode(dst);
    }
}
