//! Reads the head of one audit event line — its `uid` and `event` — and checks that the
//! whole line is one JSON object that every reader of the log can parse.
//!
//! Auth runs this on every event an agent sends: tens of thousands a second behind a busy
//! proxy. serde's derive does the same job token by token, and skipping the fields it does
//! not want (most of an event is strings) cost auth about 0.9 µs per event on the CI-class
//! machine. Here strings are skipped eight bytes at a time, and the line is walked once.
//!
//! The fast walk only ever *accepts*: whatever it is not sure of — an escape in a top-level
//! key or in the uid or event, a `\u` escape of a surrogate, a number that is not a short
//! integer, a duplicate or missing head field, any syntax error — is handed to serde_json,
//! which gives the answer and the error message. So the lines accepted are exactly those
//! serde_json reads both as the head *and* as a [`serde_json::Value`] (what search and
//! export parse later): a line that would break a reader is never stored.
//! `head_tests.rs` checks the walk against serde_json on every malformed case and on a
//! million mutated lines; `fuzz/fuzz_targets/event_head.rs` keeps looking.

use std::borrow::Cow;

/// The fields auth reads from an event line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHead<'a> {
    /// The event's unique id (auth stores each once).
    pub uid: Cow<'a, str>,
    /// The event's name.
    pub event: Cow<'a, str>,
    /// The line holds a CR or LF (whitespace between tokens: a JSON string cannot hold one
    /// raw), so it must be re-serialised to stay one line in a JSON-lines file.
    pub line_break: bool,
}

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not a JSON object at all.
    #[error("every event must be a JSON object (one per line)")]
    NotObject,
    /// Not valid JSON, or no string `uid` and `event` (exactly one of each).
    #[error("every event must be a JSON object with string fields uid and event ({0})")]
    Invalid(String),
    /// `uid` or `event` is the empty string.
    #[error("an event has an empty uid or event name")]
    Empty,
}

/// Deepest nesting serde_json reads (its recursion limit): deeper lines are refused, as
/// every reader of the log would refuse them.
const MAX_DEPTH: usize = 127;

/// Reads and checks one event line (without its `\n`).
pub fn event_head(text: &str) -> Result<EventHead<'_>, HeadError> {
    // serde would also read a struct from an array (`["uid", "event"]`).
    if !text.trim_start().starts_with('{') {
        return Err(HeadError::NotObject);
    }
    let head = match fast_head(text) {
        Some(head) => head,
        None => serde_head(text)?,
    };
    if head.uid.is_empty() || head.event.is_empty() {
        return Err(HeadError::Empty);
    }
    Ok(head)
}

/// The fields as serde reads them; a duplicate `uid` or `event` is refused (otherwise
/// readers taking the last one would see another uid than the one deduplicated).
#[derive(serde::Deserialize)]
struct SerdeHead<'a> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
}

/// The slow path and the reference: serde_json reads the head, then the whole line as a
/// value (which, unlike skipping, refuses a lone surrogate anywhere in it).
pub fn serde_head(text: &str) -> Result<EventHead<'_>, HeadError> {
    let bad = |e: serde_json::Error| HeadError::Invalid(e.to_string());
    let head: SerdeHead<'_> = serde_json::from_str(text).map_err(bad)?;
    serde_json::from_str::<serde_json::Value>(text).map_err(bad)?;
    Ok(EventHead {
        uid: head.uid,
        event: head.event,
        line_break: has_line_break(text.as_bytes()),
    })
}

fn has_line_break(b: &[u8]) -> bool {
    b.iter().any(|&c| c == b'\n' || c == b'\r')
}

/// The one-pass walk; `None` when serde_json must decide.
fn fast_head(text: &str) -> Option<EventHead<'_>> {
    let mut s = Walk {
        b: text.as_bytes(),
        i: 0,
        line_break: false,
    };
    s.ws();
    s.eat(b'{')?;
    let (mut uid, mut event) = (None, None);
    s.ws();
    if s.peek()? == b'}' {
        return None; // no uid: serde says so
    }
    loop {
        let (k0, k1, escaped) = s.string()?;
        if escaped {
            return None; // the key's meaning needs unescaping
        }
        s.ws();
        s.eat(b':')?;
        s.ws();
        let key = s.b.get(k0..k1)?;
        let slot = match key {
            b"uid" => Some(&mut uid),
            b"event" => Some(&mut event),
            _ => None,
        };
        match slot {
            Some(slot) => {
                if slot.is_some() || s.peek()? != b'"' {
                    return None; // a duplicate, or not a string
                }
                let (v0, v1, escaped) = s.string()?;
                if escaped {
                    return None;
                }
                *slot = Some(text.get(v0..v1)?);
            }
            None => s.value(1)?,
        }
        s.ws();
        match s.bump()? {
            b',' => s.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    if s.i != s.b.len() {
        return None; // trailing characters
    }
    Some(EventHead {
        uid: Cow::Borrowed(uid?),
        event: Cow::Borrowed(event?),
        line_break: s.line_break,
    })
}

/// A position in the line. Every method returns `None` where serde_json must decide.
struct Walk<'a> {
    b: &'a [u8],
    i: usize,
    line_break: bool,
}

impl Walk<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.bump()? == want).then_some(())
    }

    /// JSON whitespace (space, tab, CR, LF).
    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.line_break = true,
                _ => return,
            }
            self.i += 1;
        }
    }

    /// Any value, `depth` levels down (the top-level object is level 1).
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        if self.b.get(self.i..end)? != word {
            return None;
        }
        self.i = end;
        Some(())
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.items(depth, b'{', b'}', true)
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.items(depth, b'[', b']', false)
    }

    /// The items of an object (`keyed`: each a string key, `:` and a value) or of an array,
    /// from `open` to `close`.
    fn items(&mut self, depth: usize, open: u8, close: u8, keyed: bool) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
        self.ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            if keyed {
                if self.peek()? != b'"' {
                    return None;
                }
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.value(depth)?;
            self.ws();
            match self.bump()? {
                b',' => self.ws(),
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// A short integer (at most 18 digits: no overflow in any reader); anything else —
    /// fractions, exponents, long digit runs — is serde_json's to judge.
    fn number(&mut self) -> Option<()> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        let start = self.i;
        match self.bump()? {
            b'0' => {}
            b'1'..=b'9' => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if self.i - start > 18 {
            return None;
        }
        match self.peek() {
            Some(b'0'..=b'9' | b'.' | b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    /// A string starting at the current `"`; returns where its contents start and end and
    /// whether they hold an escape.
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = skip_plain(self.b, self.i);
            match self.bump()? {
                b'"' => return Some((start, self.i - 1, escaped)),
                b'\\' => {
                    escaped = true;
                    match self.bump()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            let code = hex.iter().try_fold(0u32, |code, &c| {
                                Some(code << 4 | char::from(c).to_digit(16)?)
                            })?;
                            // Surrogates must pair up: serde_json decides.
                            if (0xD800..=0xDFFF).contains(&code) {
                                return None;
                            }
                            self.i += 4;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a raw control character
            }
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The index of the first byte at or after `i` that ends a run of plain string contents:
/// `"`, `\` or a control character (below 0x20); `b.len()` if none.
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let flags = special_bytes(u64::from_le_bytes(bytes));
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// The high bit of each byte of `w` that is `"`, `\` or below 0x20 is set in the result;
/// bytes *after* the first such byte may be flagged too (a borrow carries), never bytes
/// before it, so the lowest flag is exact. UTF-8 bytes (0x80 and up) are never flagged.
fn special_bytes(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    let is_control = w.wrapping_sub(ONES * 0x20) & !w;
    (is_quote | is_backslash | is_control) & HIGHS
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
