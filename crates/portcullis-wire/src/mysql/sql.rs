//! Finding `USE db` statements in COM_QUERY text, so the agent can enforce which databases a
//! session may switch to.

/// The database names of every `USE` statement in `sql` (one or several `;`-separated
/// statements), unquoted, in order of appearance.
///
/// It tokenizes the text the way the server does as far as statement boundaries go: string
/// literals (`'…'`, `"…"`), quoted identifiers (`` `…` ``, with ` `` ` for a backtick), comments
/// (`-- `, `#`, `/* */`) and semicolons; `USE` counts only as the first word of a statement.
/// Executable comments (`/*! … */`, `/*!50700 … */`, MariaDB's `/*M! … */`) are read as code,
/// since the server runs their content.
///
/// Whether a backslash escapes a quote depends on the session's `sql_mode`
/// (NO_BACKSLASH_ESCAPES), which a client can change; the text is therefore read both ways
/// and a name found under either reading is returned (after the names of the first reading),
/// so a statement cannot be hidden inside what only one reading takes for a string.
///
/// This is a check on the text, meant for refusing queries that name a database outside the
/// allowed set. It cannot see a `USE` built at run time (there is none in MySQL's prepared
/// statement syntax, but stored code may change the schema); the authoritative record of the
/// current database is the schema item of the OK packets' session state
/// ([`super::OkPacket::schema_change`]) when `CLIENT_SESSION_TRACK` is negotiated.
pub fn use_statements(sql: &str) -> Vec<String> {
    let mut names = scan(sql.as_bytes(), true);
    for name in scan(sql.as_bytes(), false) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// An unquoted word (keyword or identifier).
    Word(String),
    /// A quoted identifier or string literal, unquoted.
    Quoted(String),
    Semicolon,
    Other,
}

struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    backslash_escapes: bool,
    in_executable_comment: bool,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.at.saturating_add(ahead)).copied()
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.peek(0) {
            self.at += 1;
            if b == b'\n' {
                break;
            }
        }
    }

    /// Reads a quoted run after its opening `quote`, handling doubled quotes and (for
    /// strings, when enabled) backslash escapes. An unterminated run takes the rest.
    fn quoted(&mut self, quote: u8, escapes: bool) -> String {
        let mut out = Vec::new();
        while let Some(b) = self.peek(0) {
            self.at += 1;
            if b == quote {
                if self.peek(0) == Some(quote) {
                    self.at += 1;
                    out.push(quote);
                    continue;
                }
                break;
            }
            if b == b'\\' && escapes {
                if let Some(next) = self.peek(0) {
                    self.at += 1;
                    out.push(next);
                }
                continue;
            }
            out.push(b);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            let b = self.peek(0)?;
            match b {
                b if b.is_ascii_whitespace() => self.at += 1,
                b'#' => self.skip_line(),
                b'-' if self.peek(1) == Some(b'-')
                    && self
                        .peek(2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) =>
                {
                    self.skip_line()
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    let executable = match (self.peek(2), self.peek(3)) {
                        (Some(b'!'), _) => Some(3),
                        (Some(b'M'), Some(b'!')) => Some(4),
                        _ => None,
                    };
                    match executable {
                        Some(opener) if !self.in_executable_comment => {
                            self.at += opener;
                            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                                self.at += 1;
                            }
                            self.in_executable_comment = true;
                        }
                        _ => {
                            let body = self.src.get(self.at + 2..).unwrap_or_default();
                            let end = body.windows(2).position(|w| w == b"*/");
                            self.at = match end {
                                Some(end) => self.at + 2 + end + 2,
                                None => self.src.len(),
                            };
                        }
                    }
                }
                b'*' if self.in_executable_comment && self.peek(1) == Some(b'/') => {
                    self.at += 2;
                    self.in_executable_comment = false;
                }
                b'\'' | b'"' => {
                    self.at += 1;
                    return Some(Token::Quoted(self.quoted(b, self.backslash_escapes)));
                }
                b'`' => {
                    self.at += 1;
                    return Some(Token::Quoted(self.quoted(b'`', false)));
                }
                b';' => {
                    self.at += 1;
                    return Some(Token::Semicolon);
                }
                b if is_word_byte(b) => {
                    let start = self.at;
                    while self.peek(0).is_some_and(is_word_byte) {
                        self.at += 1;
                    }
                    let word = self.src.get(start..self.at).unwrap_or_default();
                    return Some(Token::Word(String::from_utf8_lossy(word).into_owned()));
                }
                _ => {
                    self.at += 1;
                    return Some(Token::Other);
                }
            }
        }
    }
}

fn scan(src: &[u8], backslash_escapes: bool) -> Vec<String> {
    let mut lexer = Lexer {
        src,
        at: 0,
        backslash_escapes,
        in_executable_comment: false,
    };
    let mut names = Vec::new();
    let mut statement_start = true;
    let mut after_use = false;
    while let Some(token) = lexer.next_token() {
        match token {
            Token::Semicolon => {
                statement_start = true;
                after_use = false;
            }
            Token::Word(w) if statement_start && w.eq_ignore_ascii_case("use") => {
                statement_start = false;
                after_use = true;
            }
            Token::Word(name) | Token::Quoted(name) if after_use => {
                names.push(name);
                after_use = false;
            }
            _ => {
                statement_start = false;
                after_use = false;
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::use_statements;

    #[test]
    fn finds_use_statements() {
        assert_eq!(use_statements("USE shop"), ["shop"]);
        assert_eq!(use_statements("  use\n`my db`;"), ["my db"]);
        assert_eq!(
            use_statements("select 1; USE a; select 2;use b"),
            ["a", "b"]
        );
        assert_eq!(use_statements("USE `we``ird`"), ["we`ird"]);
        assert_eq!(use_statements("/* hi */ USE /* there */ x"), ["x"]);
        assert_eq!(use_statements("USE\"quoted\""), ["quoted"]);
        assert_eq!(use_statements("-- c\nUSE a"), ["a"]);
        assert_eq!(use_statements("# c\nUSE a # trailing"), ["a"]);
        assert_eq!(use_statements("/*!40101 USE hidden */"), ["hidden"]);
        assert_eq!(
            use_statements("/*M!100100 USE maria*/; USE b"),
            ["maria", "b"]
        );
        assert_eq!(use_statements("USE ünïcode"), ["ünïcode"]);
    }

    #[test]
    fn ignores_non_statements() {
        assert!(use_statements("SELECT 'USE x'").is_empty());
        assert!(use_statements("SELECT \"a; USE x\"").is_empty());
        assert!(use_statements("SELECT `USE`").is_empty());
        assert!(use_statements("-- USE x").is_empty());
        assert!(use_statements("# USE x").is_empty());
        assert!(use_statements("/* USE x */").is_empty());
        assert!(use_statements("/* ; USE x").is_empty());
        assert!(use_statements("SELECT user FROM t").is_empty());
        assert!(use_statements("SELECT 1 USE x").is_empty());
        assert!(use_statements("users").is_empty());
        assert!(use_statements("USE").is_empty());
        assert!(use_statements("").is_empty());
    }

    #[test]
    fn double_dash_needs_a_space() {
        // `1--1` is arithmetic, so the statement goes on and the second is a USE.
        assert_eq!(use_statements("SELECT 1--1;USE a"), ["a"]);
        assert_eq!(
            use_statements("SELECT 1 --\tx\nUSE a"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn both_backslash_readings() {
        // With backslash escapes this is one string; with NO_BACKSLASH_ESCAPES the string ends
        // at the backslash and the USE runs.
        assert_eq!(use_statements(r"SELECT 'a\'; USE secret; -- '"), ["secret"]);
        // And the other way round: only the escaping reading sees this one.
        assert_eq!(use_statements(r"SELECT 'a\'' ; USE x; '"), ["x"]);
        assert_eq!(use_statements(r"SELECT 'it''s'; USE x"), ["x"]);
    }
}
