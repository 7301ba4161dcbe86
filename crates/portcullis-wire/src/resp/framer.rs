//! Framing server replies: where the first complete RESP2/RESP3 value in a buffer ends.
//!
//! The agent relays replies without decoding them, but must know where each one ends to pair
//! it with its command for the audit log and to tell when a pipeline has drained. Framing is
//! iterative (an explicit stack of open aggregates, bounded by [`Limits::max_depth`]), never
//! recursive, so a hostile `*1\r\n*1\r\n…` costs an error, not a stack overflow.

use bytes::{Bytes, BytesMut};

use super::item::{read_item, Item};
use super::{Limits, RespError};

/// An aggregate whose children are still being framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    /// Children still to come.
    remaining: u64,
    /// An attribute (`|`): when it ends, the value it annotates follows in the same slot.
    attribute: bool,
}

/// Finds where the first complete value of a buffer ends, remembering its progress between
/// calls so that a large reply arriving in pieces is scanned once.
///
/// Keep one per connection (server direction), next to the connection's `BytesMut`, and call
/// [`ReplyFramer::frame`] (or [`ReplyFramer::split`]) after every read. Between calls that
/// return `Ok(None)` the caller may only append to the buffer: the framer's progress is an
/// offset into it (if the buffer is found shorter than that, the framer starts over). After
/// `Ok(Some(n))` the framer is ready for the next value, which starts at byte `n`: drop the
/// first `n` bytes before the next call.
///
/// Each call costs time proportional to the bytes that arrived since the previous one plus one
/// value header: a complete element is never looked at again, and a bulk string's payload is
/// skipped by its length, never scanned, so a 512 MiB reply in 16 KiB reads costs O(reads).
/// Memory is one small entry per open aggregate, at most [`Limits::max_depth`] of them.
///
/// Use [`Limits::replies`] rather than the command defaults: Redis legitimately sends arrays
/// of more than a million elements.
#[derive(Debug, Clone)]
pub struct ReplyFramer {
    limits: Limits,
    /// Offset of the next value header to read.
    pos: usize,
    /// Open aggregates, innermost last.
    stack: Vec<Open>,
    /// Where to resume looking for the end of a long line at `pos`.
    resume: usize,
}

impl ReplyFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pos: 0,
            stack: Vec::new(),
            resume: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any progress, for a caller that cleared or replaced its buffer.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.stack.clear();
        self.resume = 0;
    }

    /// How many bytes at the front of the buffer are known to belong to the value being framed
    /// (0 when no value is in progress).
    pub fn progress(&self) -> usize {
        self.pos
    }

    /// The length in bytes of the first complete value at the start of `buf`, or `Ok(None)`
    /// if it has not fully arrived.
    ///
    /// An attribute (`|`) and the value it annotates count as one value. After an error the
    /// framer is reset, but the stream cannot be resynchronised: close the connection.
    pub fn frame(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        if buf.len() < self.pos {
            // The caller broke the append-only contract: start over rather than misread.
            self.reset();
        }
        let result = self.frame_inner(buf);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    /// Like [`ReplyFramer::frame`], but splits the value off the front of `buf` without
    /// copying it.
    pub fn split(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, RespError> {
        Ok(self.frame(buf)?.map(|n| buf.split_to(n).freeze()))
    }

    fn frame_inner(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        loop {
            let start = self.pos;
            let item = read_item(buf, start, &self.limits, &mut self.resume)?;
            let (next, opened) = match item {
                Item::Incomplete => return Ok(None),
                Item::Leaf { next, .. } | Item::Null { next, .. } => (next, None),
                Item::Open {
                    kind,
                    children,
                    next,
                } => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(RespError::TooDeep {
                            max: self.limits.max_depth,
                            offset: start,
                        });
                    }
                    (next, Some((children, kind == b'|')))
                }
            };
            self.pos = next;
            self.resume = 0;
            let value_done = match opened {
                None => true,
                Some((0, true)) => false, // an empty attribute: the annotated value follows
                Some((0, false)) => true, // an empty aggregate is a whole value
                Some((remaining, attribute)) => {
                    self.stack.push(Open {
                        remaining,
                        attribute,
                    });
                    false
                }
            };
            if value_done && self.complete_one() {
                return Ok(Some(self.pos));
            }
        }
    }

    /// Records that a value has been framed; returns whether that completed the top-level
    /// value.
    fn complete_one(&mut self) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return true;
            };
            top.remaining = top.remaining.saturating_sub(1);
            if top.remaining > 0 {
                return false;
            }
            let attribute = top.attribute;
            self.stack.pop();
            if attribute {
                // The attribute is done; the value it annotates fills its slot next.
                return false;
            }
        }
    }
}

/// The length in bytes of the first complete RESP2/RESP3 value at the start of `buf`,
/// `Ok(None)` if it has not fully arrived, or an error if it is malformed or nested deeper than
/// [`Limits::max_depth`].
///
/// This is a one-off [`ReplyFramer`]: each call scans the buffer from its start. That is fine
/// for a buffer that holds whole replies; a connection that reads replies in pieces should keep
/// a [`ReplyFramer`] instead, or at least call this only when new bytes arrived (each call is
/// then linear in the buffer, bulk payloads excluded, but a large reply is rescanned per read).
pub fn frame_value(buf: &[u8], limits: &Limits) -> Result<Option<usize>, RespError> {
    ReplyFramer::new(*limits).frame(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> Result<Option<usize>, RespError> {
        frame_value(buf, &Limits::replies())
    }

    #[test]
    fn scalars() {
        for v in [
            &b"+OK\r\n"[..],
            b"-ERR no\r\n",
            b":-12\r\n",
            b"$3\r\nabc\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"_\r\n",
            b"#t\r\n",
            b",3.14\r\n",
            b",-inf\r\n",
            b"(123456789012345678901234567890\r\n",
            b"!3\r\nERR\r\n",
            b"=7\r\ntxt:abc\r\n",
        ] {
            let mut with_tail = v.to_vec();
            with_tail.extend_from_slice(b"+next\r\n");
            assert_eq!(
                frame(&with_tail),
                Ok(Some(v.len())),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn aggregates_and_attributes() {
        for v in [
            &b"*0\r\n"[..],
            b"*2\r\n:1\r\n*1\r\n+a\r\n",
            b"%1\r\n+k\r\n$1\r\nv\r\n",
            b"~2\r\n#t\r\n#f\r\n",
            b">2\r\n+message\r\n+x\r\n",
            b"|1\r\n+key\r\n+val\r\n:5\r\n",
            b"|0\r\n:5\r\n",
            b"|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n*1\r\n|1\r\n+e\r\n+f\r\n:1\r\n",
        ] {
            let mut with_tail = v.to_vec();
            with_tail.extend_from_slice(b":0\r\n");
            assert_eq!(
                frame(&with_tail),
                Ok(Some(v.len())),
                "{:?}",
                String::from_utf8_lossy(v)
            );
            for n in 0..v.len() {
                assert_eq!(
                    frame(&v[..n]),
                    Ok(None),
                    "prefix {n} of {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
    }

    #[test]
    fn depth_is_bounded() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::replies()
        };
        assert_eq!(frame_value(b"*1\r\n*1\r\n:1\r\n", &limits), Ok(Some(12)));
        assert_eq!(
            frame_value(b"*1\r\n*1\r\n*0\r\n", &limits),
            Err(RespError::TooDeep { max: 2, offset: 8 })
        );
    }
}
