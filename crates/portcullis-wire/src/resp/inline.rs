//! Inline commands: a plain text line split into arguments the way Redis' `sdssplitargs`
//! splits it, quoting rules included.
//!
//! Redis accepts any line that does not start with `*` as a command (this is what `telnet`
//! and `nc` users type, and what `redis-cli` never sends). The proxy must split such a line
//! exactly as Redis will: if it saw `GET "a b"` as three arguments where Redis sees two, a
//! policy check would look at a different command than the one that runs.

use std::ops::Range;

/// One argument of an inline command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// An unquoted argument: these bytes of the line, unchanged (shared, not copied, later).
    Span(Range<usize>),
    /// A quoted argument, unescaped.
    Owned(Vec<u8>),
}

impl Token {
    /// Appends the byte at `at` of `line`, which directly follows the token so far while it is
    /// unquoted.
    fn push_from(&mut self, line: &[u8], at: usize) {
        match self {
            Self::Span(r) => r.end = at.saturating_add(1),
            Self::Owned(v) => {
                if let Some(&b) = line.get(at) {
                    v.push(b);
                }
            }
        }
    }

    /// Appends a byte that is not a copy of the line (an unescaped or quoted byte).
    fn push(&mut self, line: &[u8], b: u8) {
        if let Self::Span(r) = self {
            let so_far = line.get(r.clone()).unwrap_or_default().to_vec();
            *self = Self::Owned(so_far);
        }
        if let Self::Owned(v) = self {
            v.push(b);
        }
    }

    /// Turns the token into an owned one (a quote opened inside it).
    fn own(&mut self, line: &[u8]) {
        if let Self::Span(r) = self {
            *self = Self::Owned(line.get(r.clone()).unwrap_or_default().to_vec());
        }
    }
}

/// C's `isspace` in the C locale, which `sdssplitargs` uses to skip blanks between arguments
/// and to check what follows a closing quote.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The value of an ASCII hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `line` (without its line ending, and without NUL bytes: the caller refuses those)
/// into arguments, or returns the offset of the quote that opens an unbalanced argument.
///
/// This follows `sdssplitargs` byte for byte, quirks included:
/// - arguments are separated by runs of C whitespace (space, `\t`, `\n`, `\r`, `\v`, `\f`),
///   but only space, `\t`, `\n` and `\r` end an unquoted argument: `\v` and `\f` inside one
///   are part of it;
/// - a quote may open in the middle of an argument (`a"b c"` is the one argument `ab c`);
/// - in double quotes, `\xHH` is a byte, `\n \r \t \b \a` are control characters and a
///   backslash before any other byte stands for that byte;
/// - in single quotes, only `\'` is an escape;
/// - a closing quote must be followed by whitespace or the end of the line.
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Token>, usize> {
    // `sdssplitargs` reads a C string: past the end there is a NUL.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut tokens = Vec::new();
    let mut p = 0usize;
    loop {
        while at(p) != 0 && is_c_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Ok(tokens);
        }
        let mut token = Token::Span(p..p);
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        let mut quote = p;
        while !done {
            let c = at(p);
            if in_double {
                let escaped = at(p + 1);
                if c == b'\\' && escaped == b'x' {
                    if let (Some(hi), Some(lo)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                        token.push(line, hi * 16 + lo);
                        p += 3;
                    } else {
                        // Not a valid \xHH: a backslash before `x` stands for `x`.
                        token.push(line, b'x');
                        p += 1;
                    }
                } else if c == b'\\' && escaped != 0 {
                    p += 1;
                    token.push(
                        line,
                        match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        },
                    );
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(quote);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(quote);
                } else {
                    token.push(line, c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    token.push(line, b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return Err(quote);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(quote);
                } else {
                    token.push(line, c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => {
                        in_double = true;
                        quote = p;
                        token.own(line);
                    }
                    b'\'' => {
                        in_single = true;
                        quote = p;
                        token.own(line);
                    }
                    _ => token.push_from(line, p),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        tokens.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, usize> {
        Ok(split_args(line)?
            .into_iter()
            .map(|t| match t {
                Token::Span(r) => line[r].to_vec(),
                Token::Owned(v) => v,
            })
            .collect())
    }

    fn ok(line: &str, want: &[&[u8]]) {
        let got = split(line.as_bytes()).unwrap();
        let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
        assert_eq!(got, want, "{line:?}");
    }

    #[test]
    fn splits_like_sdssplitargs() {
        ok("", &[]);
        ok("   \t ", &[]);
        ok("PING", &[b"PING"]);
        ok("  set  key   value ", &[b"set", b"key", b"value"]);
        ok("set \"a b\" 'c d'", &[b"set", b"a b", b"c d"]);
        ok("x \"\\x41\\x4a\\x7a\"", &[b"x", b"AJz"]);
        ok("x \"\\xZZ\"", &[b"x", b"xZZ"]);
        ok("x \"\\x4\"", &[b"x", b"x4"]);
        ok(
            "x \"a\\n\\r\\t\\b\\a\\\\\\\"q\"",
            &[b"x", b"a\n\r\t\x08\x07\\\"q"],
        );
        ok("x 'it\\'s' 'a\\b'", &[b"x", b"it's", b"a\\b"]);
        ok("a\"b c\"", &[b"ab c"]);
        ok("a'b c'", &[b"ab c"]);
        ok("\"\"", &[b""]);
        ok("''", &[b""]);
        ok("a\x0bb", &[b"a\x0bb"]);
        ok("\x0b a", &[b"a"]);
        ok("a\rb", &[b"a", b"b"]);
        ok("\"x\"\t", &[b"x"]);
    }

    #[test]
    fn unbalanced_quotes_are_refused() {
        assert_eq!(split(b"set \"abc"), Err(4));
        assert_eq!(split(b"set 'abc"), Err(4));
        assert_eq!(split(b"set \"a\"b"), Err(4));
        assert_eq!(split(b"set 'a'b"), Err(4));
        assert_eq!(split(b"x \"abc\\"), Err(2));
        assert_eq!(split(b"x 'abc\\'"), Err(2));
        assert_eq!(split(b"ab\"c"), Err(2));
    }

    #[test]
    fn unquoted_arguments_are_spans() {
        let tokens = split_args(b"get key").unwrap();
        assert_eq!(tokens, vec![Token::Span(0..3), Token::Span(4..7)]);
    }
}
