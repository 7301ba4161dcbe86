//! Finding where replies end in a stream that is forwarded as it arrives.
//!
//! The agent relays Redis replies without holding them (a `GET` of a 100 MiB value or an
//! `LRANGE` of millions of elements streams straight through), yet it must know when it is
//! between two replies: that is where an error can be injected when a session must end, and
//! counting replies puts the agent's own answers in order. [`ReplyScanner`] keeps only a
//! small state — a stack of remaining element counts, the bytes of a bulk payload still to
//! skip, the digits of a header being read — so each byte is looked at once, whatever the
//! chunking.

use super::{Limits, RespError};

/// Longest header line kept (type byte, sign, up to 20 digits, CR).
const MAX_HEADER: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a type byte.
    Start,
    /// Inside a line whose content is not needed (`+`, `-`, `:`, `_`, `#`, `,`, `(`); `cr`
    /// when the previous byte was CR.
    Line { kind: u8, len: usize, cr: bool },
    /// Reading the length or count of `kind` (digits kept in `header`).
    Header { kind: u8 },
    /// Skipping a bulk payload.
    Payload { left: u64 },
    /// Expecting the CR (`got` = 0) or LF (`got` = 1) after a payload.
    PayloadEnd { got: u8 },
}

/// Tells where complete RESP2/RESP3 values end in a byte stream fed in any chunks.
#[derive(Debug, Clone)]
pub struct ReplyScanner {
    limits: Limits,
    state: State,
    header: Vec<u8>,
    /// Elements each open aggregate still waits for.
    stack: Vec<u64>,
    /// Whether the top-level value being read is a RESP3 push (not a reply to a command).
    push: bool,
    /// Bytes consumed so far, for error offsets.
    offset: usize,
}

impl ReplyScanner {
    /// A scanner at the start of a stream.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Start,
            header: Vec::with_capacity(MAX_HEADER),
            stack: Vec::new(),
            push: false,
            offset: 0,
        }
    }

    /// Whether the bytes fed so far end exactly between two values.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Start && self.stack.is_empty()
    }

    /// Scans `data` (the bytes following those already fed) and returns how many top-level
    /// values other than pushes ended in it. After an error the stream is out of sync.
    pub fn feed(&mut self, data: &[u8]) -> Result<usize, RespError> {
        let mut done = 0;
        let mut i = 0;
        while i < data.len() {
            if let State::Payload { left } = self.state {
                let avail = (data.len() - i) as u64;
                let take = left.min(avail);
                i += take as usize;
                self.offset += take as usize;
                self.state = if take == left {
                    State::PayloadEnd { got: 0 }
                } else {
                    State::Payload { left: left - take }
                };
                continue;
            }
            let Some(&b) = data.get(i) else { break };
            i += 1;
            self.offset += 1;
            match self.state {
                State::Start => {
                    if self.stack.is_empty() {
                        self.push = b == b'>';
                    }
                    match b {
                        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
                            self.state = State::Line {
                                kind: b,
                                len: 0,
                                cr: false,
                            }
                        }
                        b'$' | b'!' | b'=' | b'*' | b'~' | b'>' | b'%' | b'|' => {
                            self.header.clear();
                            self.state = State::Header { kind: b };
                        }
                        _ => {
                            return Err(RespError::UnknownType {
                                byte: b,
                                offset: self.offset - 1,
                            })
                        }
                    }
                }
                State::Line { kind, len, cr } => {
                    if cr {
                        if b != b'\n' {
                            return Err(RespError::MissingCrlf {
                                offset: self.offset - 1,
                            });
                        }
                        self.state = State::Start;
                        if self.value_done() {
                            done += 1;
                        }
                    } else if b == b'\r' {
                        self.state = State::Line {
                            kind,
                            len,
                            cr: true,
                        };
                    } else {
                        let len = len + 1;
                        if len > self.limits.max_bulk {
                            return Err(RespError::LineTooLong {
                                kind,
                                max: self.limits.max_bulk,
                                offset: self.offset - len,
                            });
                        }
                        self.state = State::Line { kind, len, cr };
                    }
                }
                State::Header { kind } => {
                    if b != b'\n' {
                        if self.header.len() >= MAX_HEADER {
                            return Err(RespError::InvalidLength {
                                kind,
                                offset: self.offset,
                            });
                        }
                        self.header.push(b);
                        continue;
                    }
                    let n = self.header_number(kind)?;
                    self.begin(kind, n)?;
                    if self.state == State::Start && self.value_done_if_empty(kind, n) {
                        done += 1;
                    }
                }
                State::PayloadEnd { got } => {
                    let want = if got == 0 { b'\r' } else { b'\n' };
                    if b != want {
                        return Err(RespError::MissingCrlf {
                            offset: self.offset - 1,
                        });
                    }
                    if got == 0 {
                        self.state = State::PayloadEnd { got: 1 };
                    } else {
                        self.state = State::Start;
                        if self.value_done() {
                            done += 1;
                        }
                    }
                }
                State::Payload { .. } => {}
            }
        }
        Ok(done)
    }

    /// The number in the header just read (`-1` for null), checked.
    fn header_number(&self, kind: u8) -> Result<i64, RespError> {
        let bad = || RespError::InvalidLength {
            kind,
            offset: self.offset,
        };
        let digits = match self.header.split_last() {
            Some((b'\r', d)) => d,
            _ => return Err(bad()),
        };
        let text = std::str::from_utf8(digits).map_err(|_| bad())?;
        if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
            return Err(bad());
        }
        let n: i64 = text.parse().map_err(|_| bad())?;
        if n < -1 || (n == -1 && !matches!(kind, b'$' | b'*' | b'!')) {
            return Err(bad());
        }
        Ok(n)
    }

    /// Starts the value `kind` with length or count `n`.
    fn begin(&mut self, kind: u8, n: i64) -> Result<(), RespError> {
        self.state = State::Start;
        if n < 0 {
            return Ok(());
        }
        let n = n as u64;
        match kind {
            b'$' | b'!' | b'=' => {
                if n > self.limits.max_bulk as u64 {
                    return Err(RespError::BulkTooLarge {
                        len: n,
                        max: self.limits.max_bulk,
                        offset: self.offset,
                    });
                }
                self.state = if n == 0 {
                    State::PayloadEnd { got: 0 }
                } else {
                    State::Payload { left: n }
                };
            }
            _ => {
                if n > self.limits.max_elements as u64 {
                    return Err(RespError::TooManyElements {
                        count: n,
                        max: self.limits.max_elements,
                        offset: self.offset,
                    });
                }
                // A map has two children per entry; an attribute's entries are followed by
                // the value they annotate.
                let children = match kind {
                    b'%' => n * 2,
                    b'|' => n * 2 + 1,
                    _ => n,
                };
                if children > 0 {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(RespError::TooDeep {
                            max: self.limits.max_depth,
                            offset: self.offset,
                        });
                    }
                    self.stack.push(children);
                }
            }
        }
        Ok(())
    }

    /// After `begin`: a null or an empty aggregate is a whole value already.
    fn value_done_if_empty(&mut self, kind: u8, n: i64) -> bool {
        let empty = n < 0 || (n == 0 && !matches!(kind, b'$' | b'!' | b'=' | b'|'));
        empty && self.value_done()
    }

    /// A value ended: count it against its parents; true if a top-level non-push value ended.
    fn value_done(&mut self) -> bool {
        while let Some(top) = self.stack.last_mut() {
            *top = top.saturating_sub(1);
            if *top > 0 {
                return false;
            }
            self.stack.pop();
        }
        !self.push
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(data: &[u8]) -> Result<(usize, bool), RespError> {
        let mut s = ReplyScanner::new(Limits::default());
        let n = s.feed(data)?;
        Ok((n, s.at_boundary()))
    }

    #[test]
    fn counts_values_of_every_type() {
        assert_eq!(count(b"+OK\r\n-ERR x\r\n:1\r\n").unwrap(), (3, true));
        assert_eq!(count(b"$3\r\nabc\r\n$-1\r\n$0\r\n\r\n").unwrap(), (3, true));
        assert_eq!(
            count(b"*2\r\n$1\r\na\r\n:2\r\n*0\r\n*-1\r\n").unwrap(),
            (3, true)
        );
        assert_eq!(count(b"%1\r\n+k\r\n+v\r\n~1\r\n_\r\n").unwrap(), (2, true));
        assert_eq!(
            count(b"#t\r\n,1.5\r\n(123\r\n=7\r\ntxt:abc\r\n!3\r\nerr\r\n").unwrap(),
            (5, true)
        );
        assert_eq!(count(b"|1\r\n+a\r\n+b\r\n:7\r\n").unwrap(), (1, true));
        assert_eq!(
            count(b">3\r\n+message\r\n+ch\r\n+hi\r\n+OK\r\n").unwrap(),
            (1, true)
        );
        assert_eq!(count(b"*2\r\n*1\r\n:1\r\n").unwrap(), (0, false));
        assert_eq!(count(b"$5\r\nab").unwrap(), (0, false));
    }

    #[test]
    fn any_chunking_gives_the_same_answer() {
        let data = b"*3\r\n$5\r\nhello\r\n%1\r\n+k\r\n*2\r\n:1\r\n_\r\n|1\r\n+a\r\n+b\r\n#f\r\n+OK\r\n>2\r\n+x\r\n+y\r\n$2\r\nhi\r\n";
        let whole = count(data).unwrap();
        assert_eq!(whole, (3, true));
        for size in 1..data.len() {
            let mut s = ReplyScanner::new(Limits::default());
            let n: usize = data.chunks(size).map(|c| s.feed(c).unwrap()).sum();
            assert_eq!((n, s.at_boundary()), whole, "chunks of {size}");
        }
    }

    #[test]
    fn big_bulk_streams_without_holding_it() {
        let mut s = ReplyScanner::new(Limits::default());
        assert_eq!(s.feed(b"$10000000\r\n").unwrap(), 0);
        let chunk = vec![b'x'; 65536];
        let mut left = 10_000_000usize;
        while left > 0 {
            let n = left.min(chunk.len());
            assert_eq!(s.feed(&chunk[..n]).unwrap(), 0);
            left -= n;
        }
        assert!(!s.at_boundary());
        assert_eq!(s.feed(b"\r\n").unwrap(), 1);
        assert!(s.at_boundary());
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [
            &b"?x\r\n"[..],
            b"$-5\r\n",
            b"$abc\r\n",
            b"$3\r\nabcd\r\n",
            b"*01\r\n",
            b"%-1\r\n",
            b"+OK\rX",
            b"$99999999999999999999999\r\n",
            b"*9999999999\r\n",
        ] {
            assert!(count(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = b"*1\r\n".repeat(1_000_000);
        assert!(matches!(count(&deep), Err(RespError::TooDeep { .. })));
    }
}
