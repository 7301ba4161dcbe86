//! Decoding one reply into a [`Reply`] tree.

use bytes::Bytes;

use super::item::{read_item, Item};
use super::{frame_value, Limits, Reply, RespError};

/// Most child slots reserved for an aggregate before its children are decoded.
const MAX_PREALLOCATED_CHILDREN: u64 = 64;

/// An aggregate whose children are being decoded.
struct Partial {
    kind: u8,
    remaining: u64,
    items: Vec<Reply>,
}

/// Decodes the first complete value at the start of `buf`: the reply and how many bytes it
/// took, `Ok(None)` if it has not fully arrived, or an error if it is malformed.
///
/// The value is framed first ([`frame_value`], with the same limits), so nothing is built until
/// all of its bytes are there and a declared count never sizes an allocation. Decoding is
/// iterative. Attributes are skipped (see [`Reply`]). Meant for the small replies the agent
/// reads itself; relayed replies should only be framed.
///
/// ```
/// use portcullis_wire::resp::{decode_reply, Limits, Reply};
/// let limits = Limits::default();
/// let (reply, used) = decode_reply(b"-WRONGPASS invalid username-password pair\r\n+OK\r\n", &limits)
///     .unwrap().unwrap();
/// assert_eq!(reply.error_code(), Some("WRONGPASS"));
/// assert_eq!(used, 43);
/// assert!(decode_reply(b"%1\r\n$5\r\nproto\r\n:3", &limits).unwrap().is_none());
/// let (hello, _) = decode_reply(b"%1\r\n$5\r\nproto\r\n:3\r\n", &limits).unwrap().unwrap();
/// assert_eq!(hello.get(b"proto"), Some(&Reply::Integer(3)));
/// ```
pub fn decode_reply(buf: &[u8], limits: &Limits) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(len) = frame_value(buf, limits)? else {
        return Ok(None);
    };
    let framed = buf.get(..len).unwrap_or_default();
    let mut stack: Vec<Partial> = Vec::new();
    let mut pos = 0;
    loop {
        let mut resume = 0;
        let value = match read_item(framed, pos, limits, &mut resume)? {
            // Cannot happen for a framed value; answer as the framer would for a prefix.
            Item::Incomplete => return Ok(None),
            Item::Null { kind, next } => {
                pos = next;
                Some(match kind {
                    b'$' => Reply::Bulk(None),
                    b'*' => Reply::Array(None),
                    _ => Reply::Null,
                })
            }
            Item::Leaf {
                kind,
                content,
                next,
            } => {
                pos = next;
                Some(leaf(kind, framed.get(content).unwrap_or_default()))
            }
            Item::Open {
                kind,
                children,
                next,
            } => {
                pos = next;
                let partial = Partial {
                    kind,
                    remaining: children,
                    items: Vec::with_capacity(
                        usize::try_from(children.min(MAX_PREALLOCATED_CHILDREN)).unwrap_or(0),
                    ),
                };
                if children == 0 {
                    partial.finish()
                } else {
                    stack.push(partial);
                    None
                }
            }
        };
        let Some(mut value) = value else {
            continue;
        };
        // Hand the value to its parent, closing every aggregate it completes.
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(Some((value, len)));
            };
            top.items.push(value);
            top.remaining = top.remaining.saturating_sub(1);
            if top.remaining > 0 {
                break;
            }
            let Some(done) = stack.pop() else {
                break;
            };
            match done.finish() {
                Some(v) => value = v,
                // An attribute ended: the value it annotates comes next, in the same slot.
                None => break,
            }
        }
    }
}

impl Partial {
    /// The finished aggregate, or `None` for an attribute (dropped).
    fn finish(self) -> Option<Reply> {
        Some(match self.kind {
            b'*' => Reply::Array(Some(self.items)),
            b'~' => Reply::Set(self.items),
            b'>' => Reply::Push(self.items),
            b'%' => {
                let mut pairs = Vec::with_capacity(self.items.len() / 2);
                let mut items = self.items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    pairs.push((k, v));
                }
                Reply::Map(pairs)
            }
            _ => return None,
        })
    }
}

/// A value without children from its type byte and content (already validated by the reader).
fn leaf(kind: u8, content: &[u8]) -> Reply {
    let text = || String::from_utf8_lossy(content).into_owned();
    match kind {
        b'+' => Reply::Simple(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Integer(
            std::str::from_utf8(content)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
        ),
        b'#' => Reply::Boolean(matches!(content, b"t" | b"T")),
        b',' => Reply::Double(
            std::str::from_utf8(content)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN),
        ),
        b'(' => Reply::BigNumber(text()),
        b'!' => Reply::BulkError(Bytes::copy_from_slice(content)),
        b'=' => {
            let (format, text) = content.split_at_checked(4).unwrap_or((b"txt:", content));
            let &[a, b, c, _] = format else {
                return Reply::Bulk(Some(Bytes::copy_from_slice(content)));
            };
            Reply::Verbatim {
                format: [a, b, c],
                text: Bytes::copy_from_slice(text),
            }
        }
        _ => Reply::Bulk(Some(Bytes::copy_from_slice(content))),
    }
}
