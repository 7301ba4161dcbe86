//! One RESP2/RESP3 value header: its type byte and what follows it up to its children.
//!
//! Shared by the framer (which only needs to know where a value ends) and the decoder (which
//! also needs its content), so the two can never disagree about what is valid.

use std::ops::Range;

use super::line::{find_crlf, parse_int, pending_len, short_line, ShortLine, MAX_INT_LEN};
use super::{Limits, RespError};

/// Longest double hiredis accepts (`MAX_LONG_DOUBLE_CHARS`).
const MAX_DOUBLE_LEN: usize = 5 * 1024;

/// What starts at an offset of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// Not enough bytes to tell.
    Incomplete,
    /// A complete value without children: its type byte, the range of its content (the line
    /// after the type byte, or a bulk payload) and the offset after it.
    Leaf {
        kind: u8,
        content: Range<usize>,
        next: usize,
    },
    /// A null: `_`, `$-1` or `*-1`.
    Null { kind: u8, next: usize },
    /// The header of an aggregate: its type byte, how many values follow as its children
    /// (twice the declared count for maps and attributes) and the offset of the first one.
    Open {
        kind: u8,
        children: u64,
        next: usize,
    },
}

/// Reads the value header at `start`.
///
/// `resume` is where to continue looking for the end of a long line (simple string, error,
/// double, big number) whose end had not arrived at the last call; the caller keeps it while
/// `start` stays the same, and sets it to 0 otherwise. That keeps framing linear in the bytes
/// received even when a long line arrives in many pieces.
pub(crate) fn read_item(
    buf: &[u8],
    start: usize,
    limits: &Limits,
    resume: &mut usize,
) -> Result<Item, RespError> {
    let Some(&kind) = buf.get(start) else {
        return Ok(Item::Incomplete);
    };
    let invalid_value = RespError::InvalidValue {
        kind,
        offset: start,
    };
    match kind {
        b'+' | b'-' | b',' | b'(' => {
            let max = match kind {
                b'+' | b'-' => limits.max_bulk,
                b',' => limits.max_inline.min(MAX_DOUBLE_LEN),
                _ => limits.max_inline,
            };
            let Some((content, next)) = long_line(buf, start, kind, max, resume)? else {
                return Ok(Item::Incomplete);
            };
            let text = buf.get(content.clone()).unwrap_or_default();
            let valid = match kind {
                b',' => is_double(text),
                b'(' => is_big_number(text),
                _ => true,
            };
            if !valid {
                return Err(invalid_value);
            }
            Ok(Item::Leaf {
                kind,
                content,
                next,
            })
        }
        b':' | b'#' | b'_' => {
            let max = match kind {
                b':' => MAX_INT_LEN,
                b'#' => 1,
                _ => 0,
            };
            let (text, next) = match short_line(buf, start, max) {
                ShortLine::Done(text, next) => (text, next),
                ShortLine::Incomplete => return Ok(Item::Incomplete),
                ShortLine::TooLong => return Err(invalid_value),
            };
            let valid = match kind {
                b':' => parse_int(text).is_some(),
                b'#' => matches!(text, b"t" | b"f" | b"T" | b"F"),
                _ => text.is_empty(),
            };
            if !valid {
                return Err(invalid_value);
            }
            if kind == b'_' {
                return Ok(Item::Null { kind, next });
            }
            let content_start = start.saturating_add(1);
            Ok(Item::Leaf {
                kind,
                content: content_start..content_start.saturating_add(text.len()),
                next,
            })
        }
        b'$' | b'=' | b'!' => {
            let Some((len, header_end)) = header(buf, start, kind)? else {
                return Ok(Item::Incomplete);
            };
            if len == -1 && kind == b'$' {
                return Ok(Item::Null {
                    kind,
                    next: header_end,
                });
            }
            let invalid = RespError::InvalidLength {
                kind,
                offset: start,
            };
            let len = u64::try_from(len).map_err(|_| invalid)?;
            let too_large = RespError::BulkTooLarge {
                len,
                max: limits.max_bulk,
                offset: start,
            };
            let len = usize::try_from(len).map_err(|_| too_large.clone())?;
            if len > limits.max_bulk {
                return Err(too_large);
            }
            let end = header_end.checked_add(len).ok_or(too_large.clone())?;
            let next = end.checked_add(2).ok_or(too_large)?;
            match buf.get(end..next) {
                None => return Ok(Item::Incomplete),
                Some(b"\r\n") => {}
                Some(_) => return Err(RespError::MissingCrlf { offset: end }),
            }
            // A verbatim string starts with a three-byte format and a colon (`txt:`).
            if kind == b'=' && buf.get(header_end..end).and_then(|p| p.get(3)) != Some(&b':') {
                return Err(invalid_value);
            }
            Ok(Item::Leaf {
                kind,
                content: header_end..end,
                next,
            })
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => {
            let Some((count, next)) = header(buf, start, kind)? else {
                return Ok(Item::Incomplete);
            };
            if count == -1 && kind == b'*' {
                return Ok(Item::Null { kind, next });
            }
            let count = u64::try_from(count).map_err(|_| RespError::InvalidLength {
                kind,
                offset: start,
            })?;
            if usize::try_from(count).map_or(true, |c| c > limits.max_elements) {
                return Err(RespError::TooManyElements {
                    count,
                    max: limits.max_elements,
                    offset: start,
                });
            }
            // Maps and attributes count pairs. The count fits in an i64, so doubling it
            // cannot overflow a u64.
            let children = match kind {
                b'%' | b'|' => count.saturating_mul(2),
                _ => count,
            };
            Ok(Item::Open {
                kind,
                children,
                next,
            })
        }
        _ => Err(RespError::UnknownType {
            byte: kind,
            offset: start,
        }),
    }
}

/// Reads a count or length header: the integer and the offset after its line.
fn header(buf: &[u8], start: usize, kind: u8) -> Result<Option<(i64, usize)>, RespError> {
    let invalid = RespError::InvalidLength {
        kind,
        offset: start,
    };
    match short_line(buf, start, MAX_INT_LEN) {
        ShortLine::Done(text, next) => Ok(Some((parse_int(text).ok_or(invalid)?, next))),
        ShortLine::Incomplete => Ok(None),
        ShortLine::TooLong => Err(invalid),
    }
}

/// Finds the end of a line that may be long, resuming at `resume`: the range of its content
/// and the offset after its CRLF, or `None` if its end has not arrived.
fn long_line(
    buf: &[u8],
    start: usize,
    kind: u8,
    max: usize,
    resume: &mut usize,
) -> Result<Option<(Range<usize>, usize)>, RespError> {
    let content_start = start.saturating_add(1);
    let too_long = RespError::LineTooLong {
        kind,
        max,
        offset: start,
    };
    match find_crlf(buf, content_start.max(*resume)) {
        Some(cr) => {
            if cr.saturating_sub(content_start) > max {
                return Err(too_long);
            }
            Ok(Some((content_start..cr, cr.saturating_add(2))))
        }
        None => {
            if pending_len(buf, content_start) > max {
                return Err(too_long);
            }
            // Every CR before the last byte has been checked; the last byte may be a CR whose
            // LF is still to come.
            *resume = buf.len().saturating_sub(1).max(content_start);
            Ok(None)
        }
    }
}

/// A RESP3 double: what `strtod` would read whole, plus `inf`, `-inf` and `nan`.
fn is_double(text: &[u8]) -> bool {
    std::str::from_utf8(text).is_ok_and(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            && s.parse::<f64>().is_ok()
    })
}

/// A RESP3 big number: an optional `-` and at least one digit.
fn is_big_number(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}
