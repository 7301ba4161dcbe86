//! Splitting client commands off a connection's read buffer, resumably.
//!
//! Redis reads a command as either a multibulk array (`*N`, then N `$len` bulk strings) or,
//! for any line not starting with `*`, an inline command. [`CommandParser`] does the same,
//! remembering how far it got so that a command arriving in many reads (a 512 MiB `SET`, or a
//! million-argument `MSET`) is scanned once, not once per read.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::inline::{split_args, Token};
use super::line::{parse_int, pending_len, short_line, ShortLine, MAX_INT_LEN};
use super::{Command, CommandFormat, Limits, RespError};

/// Most argument slots reserved before the arguments have arrived: a declared count is only
/// a claim, so the vector grows with the bytes actually received instead.
const MAX_PREALLOCATED_ARGS: usize = 16;

/// Splits client commands off a read buffer, remembering its progress between calls.
///
/// Keep one per connection, next to the connection's `BytesMut`. After every read, call
/// [`CommandParser::parse`] until it returns `Ok(None)`. Between calls the caller may only
/// append to the buffer: the parser's progress is a set of offsets into it. (If the buffer
/// is found shorter than the parser's progress, the parser starts over rather than misread.)
///
/// Each call costs time proportional to the bytes that arrived since the last one (plus the
/// header of a bulk string still arriving), so a large command is never rescanned from its
/// start, and what the parser allocates is proportional to what the peer actually sent.
#[derive(Debug, Clone)]
pub struct CommandParser {
    limits: Limits,
    state: State,
}

/// Where the parser is within the command at the front of the buffer.
#[derive(Debug, Clone)]
enum State {
    /// Nothing of the current command has been parsed.
    Start,
    /// A multibulk command whose header has been read.
    Multibulk {
        /// Elements still to read.
        remaining: usize,
        /// The elements read so far, as ranges of the buffer.
        args: Vec<Range<usize>>,
        /// Offset of the next element.
        pos: usize,
    },
    /// An inline command whose line end has not arrived: every byte before `scanned` has been
    /// checked (no newline, no NUL).
    Inline {
        /// Bytes already scanned.
        scanned: usize,
    },
}

impl CommandParser {
    /// A parser enforcing `limits` ([`Limits::max_elements`], [`Limits::max_bulk`] and
    /// [`Limits::max_inline`]; commands are never nested).
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Start,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any progress, for a caller that cleared or replaced its buffer.
    pub fn reset(&mut self) {
        self.state = State::Start;
    }

    /// Splits the next complete command off the front of `buf` (without copying it), or
    /// returns `Ok(None)` when more bytes are needed.
    ///
    /// Blank inline lines and empty arrays (`*0`, `*-1`) are consumed and skipped, as Redis
    /// skips them. On error `buf` is left as it was (less any blank lines skipped); the stream
    /// cannot be resynchronised, so reply with [`super::error_reply`] and close.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, RespError> {
        let result = self.parse_inner(buf);
        if result.is_err() {
            self.state = State::Start;
        }
        result
    }

    fn parse_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, RespError> {
        loop {
            match &mut self.state {
                State::Start => match buf.first() {
                    None => return Ok(None),
                    Some(b'*') => {
                        let invalid = RespError::InvalidLength {
                            kind: b'*',
                            offset: 0,
                        };
                        let (count, next) = match short_line(buf, 0, MAX_INT_LEN) {
                            ShortLine::Done(count, next) => (count, next),
                            ShortLine::Incomplete => return Ok(None),
                            ShortLine::TooLong => return Err(invalid),
                        };
                        let count = parse_int(count).ok_or(invalid.clone())?;
                        match count {
                            // Redis skips empty commands.
                            0 | -1 => buf.advance(next),
                            ..=-2 => return Err(invalid),
                            _ => {
                                let remaining = self.check_count(count)?;
                                self.state = State::Multibulk {
                                    remaining,
                                    args: Vec::with_capacity(remaining.min(MAX_PREALLOCATED_ARGS)),
                                    pos: next,
                                };
                            }
                        }
                    }
                    Some(_) => self.state = State::Inline { scanned: 0 },
                },
                State::Multibulk {
                    remaining,
                    args,
                    pos,
                } => {
                    if *pos > buf.len() {
                        // The caller broke the append-only contract: start over.
                        self.state = State::Start;
                        continue;
                    }
                    while *remaining > 0 {
                        let Some(arg) = read_bulk(buf, *pos, &self.limits)? else {
                            return Ok(None);
                        };
                        *pos = arg.end.saturating_add(2);
                        args.push(arg);
                        *remaining -= 1;
                    }
                    let raw = buf.split_to(*pos).freeze();
                    let args = args.iter().map(|r| raw.slice(r.clone())).collect();
                    self.state = State::Start;
                    return Ok(Some(Command {
                        raw,
                        args,
                        format: CommandFormat::Multibulk,
                    }));
                }
                State::Inline { scanned } => {
                    if *scanned > buf.len() {
                        self.state = State::Start;
                        continue;
                    }
                    let Some(newline) = scan_inline(buf, scanned, &self.limits)? else {
                        return Ok(None);
                    };
                    let command = inline_command(buf, newline, &self.limits)?;
                    self.state = State::Start;
                    if let Some(command) = command {
                        return Ok(Some(command));
                    }
                }
            }
        }
    }

    /// Checks a multibulk count against the limit.
    fn check_count(&self, count: i64) -> Result<usize, RespError> {
        let too_many = || RespError::TooManyElements {
            count: count.unsigned_abs(),
            max: self.limits.max_elements,
            offset: 0,
        };
        let n = usize::try_from(count).map_err(|_| too_many())?;
        if n > self.limits.max_elements {
            return Err(too_many());
        }
        Ok(n)
    }
}

/// Parses the next complete command off `buf` with a one-off [`CommandParser`].
///
/// Convenient for tests and for a buffer that holds whole commands; a connection that reads
/// commands in pieces should keep a [`CommandParser`], which does not rescan what it already
/// read each time more bytes arrive.
pub fn parse_command(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, RespError> {
    CommandParser::new(*limits).parse(buf)
}

/// Reads the bulk string at `pos` of a multibulk command: the range of its payload, or `None`
/// if it has not fully arrived. Only the header is read; the payload is skipped by length.
fn read_bulk(buf: &[u8], pos: usize, limits: &Limits) -> Result<Option<Range<usize>>, RespError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    if kind != b'$' {
        return Err(RespError::ExpectedBulk {
            found: kind,
            offset: pos,
        });
    }
    let invalid = RespError::InvalidLength {
        kind: b'$',
        offset: pos,
    };
    let (len, start) = match short_line(buf, pos, MAX_INT_LEN) {
        ShortLine::Done(len, next) => (len, next),
        ShortLine::Incomplete => return Ok(None),
        ShortLine::TooLong => return Err(invalid),
    };
    let len = parse_int(len).ok_or(invalid.clone())?;
    let len = u64::try_from(len).map_err(|_| invalid)?;
    let too_large = RespError::BulkTooLarge {
        len,
        max: limits.max_bulk,
        offset: pos,
    };
    let len = usize::try_from(len).map_err(|_| too_large.clone())?;
    if len > limits.max_bulk {
        return Err(too_large);
    }
    let end = start.checked_add(len).ok_or(too_large.clone())?;
    let after = end.checked_add(2).ok_or(too_large)?;
    match buf.get(end..after) {
        None => Ok(None),
        Some(b"\r\n") => Ok(Some(start..end)),
        Some(_) => Err(RespError::MissingCrlf { offset: end }),
    }
}

/// Looks for the newline ending an inline command, from where the last call stopped. Returns
/// its offset, or `None` (having recorded progress in `scanned`) if it has not arrived.
fn scan_inline(
    buf: &[u8],
    scanned: &mut usize,
    limits: &Limits,
) -> Result<Option<usize>, RespError> {
    let rest = buf.get(*scanned..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n' || b == 0) {
        Some(i) => {
            let at = scanned.saturating_add(i);
            // The length check comes first, so that the answer does not depend on whether the
            // line was too long before or after its NUL or newline arrived.
            if pending_len(buf.get(..at).unwrap_or_default(), 0) > limits.max_inline {
                return Err(RespError::LineTooLong {
                    kind: 0,
                    max: limits.max_inline,
                    offset: 0,
                });
            }
            if buf.get(at) == Some(&0) {
                return Err(RespError::InlineNul { offset: at });
            }
            Ok(Some(at))
        }
        None => {
            if pending_len(buf, 0) > limits.max_inline {
                return Err(RespError::LineTooLong {
                    kind: 0,
                    max: limits.max_inline,
                    offset: 0,
                });
            }
            *scanned = buf.len();
            Ok(None)
        }
    }
}

/// Splits off the inline command whose newline is at `newline`; `None` for a blank line
/// (consumed and skipped, as Redis does).
fn inline_command(
    buf: &mut BytesMut,
    newline: usize,
    limits: &Limits,
) -> Result<Option<Command>, RespError> {
    // Like Redis, the line ends at `\n`, and a `\r` before it is part of the line ending.
    let content_end = match newline.checked_sub(1) {
        Some(cr) if buf.get(cr) == Some(&b'\r') => cr,
        _ => newline,
    };
    if content_end > limits.max_inline {
        return Err(RespError::LineTooLong {
            kind: 0,
            max: limits.max_inline,
            offset: 0,
        });
    }
    let line = buf.get(..content_end).unwrap_or_default();
    let tokens = split_args(line).map_err(|offset| RespError::UnbalancedQuotes { offset })?;
    let raw = buf.split_to(newline.saturating_add(1)).freeze();
    if tokens.is_empty() {
        return Ok(None);
    }
    let args = tokens
        .into_iter()
        .map(|t| match t {
            Token::Span(r) => raw.slice(r),
            Token::Owned(v) => Bytes::from(v),
        })
        .collect();
    Ok(Some(Command {
        raw,
        args,
        format: CommandFormat::Inline,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, RespError> {
        let mut buf = BytesMut::from(input);
        let mut parser = CommandParser::new(Limits::default());
        let mut out = Vec::new();
        while let Some(c) = parser.parse(&mut buf)? {
            out.push(c.args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        assert_eq!(
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET a b\r\n").unwrap(),
            vec![
                vec![b"GET".to_vec(), b"k".to_vec()],
                vec![b"SET".to_vec(), b"a".to_vec(), b"b".to_vec()]
            ]
        );
    }

    #[test]
    fn blank_commands_are_skipped() {
        let mut buf = BytesMut::from(&b"\r\n\n  \r\n*0\r\n*-1\r\n"[..]);
        assert_eq!(parse_command(&mut buf, &Limits::default()), Ok(None));
        assert!(buf.is_empty(), "skipped bytes are consumed");
        assert_eq!(
            parse_all(b"\r\n*0\r\nPING\r\n").unwrap(),
            vec![vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn arguments_share_the_raw_bytes() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nrest"[..]);
        let c = parse_command(&mut buf, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(&c.raw[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(&buf[..], b"rest");
        let raw = c.raw.as_ptr_range();
        for a in &c.args {
            assert!(raw.contains(&a.as_ptr()));
        }
    }

    #[test]
    fn resumes_where_it_stopped() {
        let whole = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut parser = CommandParser::new(Limits::default());
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = parser.parse(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == whole.len() - 1, "at byte {i}");
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_shrunk_buffer_restarts_the_parse() {
        let mut parser = CommandParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n"[..]);
        assert_eq!(parser.parse(&mut buf), Ok(None));
        buf.clear();
        buf.extend_from_slice(b"PING\r\n");
        assert_eq!(
            parser.parse(&mut buf).unwrap().unwrap().name_upper(),
            "PING"
        );
    }
}
