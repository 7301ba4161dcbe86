//! Secrets kept out of the audit log, whatever the protocol.
//!
//! * SQL ([`mask_sql`]): the string literal right after the keyword `PASSWORD` (so
//!   `CREATE ROLE … PASSWORD '…'`, `ALTER USER … ENCRYPTED PASSWORD '…'`, the SCRAM verifier
//!   psql's `\password` sends, `OPTIONS (password '…')` of foreign servers and user mappings)
//!   becomes `'***'`. Literals in any PostgreSQL form are recognised — `'…'` with `''`,
//!   `E'…'` with backslash escapes, `U&'…'`, `$$…$$` and `$tag$…$tag$` — and the keyword is
//!   only looked for outside literals, quoted identifiers and comments, so `where password =
//!   'x'` (a comparison, not a definition) is left alone.
//! * Command arrays ([`mask_command`]), e.g. Redis: the arguments of `AUTH`, the credentials
//!   after `HELLO … AUTH`, and `CONFIG SET requirepass|masterauth`.

use std::borrow::Cow;

/// Whether `b` contains `password` in any letter case (a quick scan before tokenising).
fn mentions_password(b: &[u8]) -> bool {
    let mut from = 0;
    // `c | 0x20 == b'p'` holds for `p` and `P` only.
    while let Some(p) = b
        .get(from..)
        .and_then(|r| r.iter().position(|&c| c | 0x20 == b'p'))
    {
        let at = from + p;
        if b.get(at..at + 8)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"password"))
        {
            return true;
        }
        from = at + 1;
    }
    false
}

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// `sql` with every password literal replaced by `'***'`; borrowed when nothing was masked.
pub fn mask_sql(sql: &str) -> Cow<'_, str> {
    let b = sql.as_bytes();
    // Most statements never mention the keyword: no need to tokenise them.
    if !mentions_password(b) {
        return Cow::Borrowed(sql);
    }
    let mut out: Option<String> = None;
    let mut copied = 0; // bytes of `sql` already copied to `out`
    let mut i = 0;
    let mut after_password = false;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(0);
        // Comments and whitespace keep "the previous token was PASSWORD".
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            i = b
                .get(i..)
                .and_then(|r| r.iter().position(|&x| x == b'\n'))
                .map_or(b.len(), |p| i + p + 1);
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
            continue;
        }
        if let Some(end) = literal_end(b, i) {
            if after_password {
                let o = out.get_or_insert_with(|| String::with_capacity(sql.len()));
                o.push_str(sql.get(copied..i).unwrap_or_default());
                o.push('\'');
                o.push_str(MASK);
                o.push('\'');
                copied = end;
            }
            after_password = false;
            i = end;
            continue;
        }
        if c == b'"' {
            i = quoted_end(b, i, b'"', false);
            after_password = false;
            continue;
        }
        if is_ident_start(c) {
            let start = i;
            while i < b.len() && is_ident_char(b.get(i).copied().unwrap_or(0)) {
                i += 1;
            }
            after_password = sql
                .get(start..i)
                .is_some_and(|w| w.eq_ignore_ascii_case("password"));
            continue;
        }
        after_password = false;
        i += char_len(c);
    }
    match out {
        None => Cow::Borrowed(sql),
        Some(mut o) => {
            o.push_str(sql.get(copied..).unwrap_or_default());
            Cow::Owned(o)
        }
    }
}

fn char_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Past the end of a (nested) `/* … */` comment starting at `i`.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b.get(i) == Some(&b'*') && b.get(i + 1) == Some(&b'/') {
            depth = depth.saturating_sub(1);
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Past the closing `quote` of a quoted run opening at `i` (doubled quotes are part of it;
/// with `backslash`, `\x` is too). Unterminated: the end of the text.
fn quoted_end(b: &[u8], i: usize, quote: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        let c = b.get(j).copied().unwrap_or(0);
        if backslash && c == b'\\' {
            j += 2;
        } else if c == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// If a string literal starts at `i`, past its end.
fn literal_end(b: &[u8], i: usize) -> Option<usize> {
    let c = b.get(i).copied()?;
    // A prefix only counts at the start of a word (`fooE'x'` is not an E string).
    let word_start = i == 0 || !b.get(i - 1).copied().is_some_and(is_ident_char);
    match c {
        b'\'' => Some(quoted_end(b, i, b'\'', false)),
        b'e' | b'E' if word_start && b.get(i + 1) == Some(&b'\'') => {
            Some(quoted_end(b, i + 1, b'\'', true))
        }
        b'u' | b'U'
            if word_start && b.get(i + 1) == Some(&b'&') && b.get(i + 2) == Some(&b'\'') =>
        {
            Some(quoted_end(b, i + 2, b'\'', false))
        }
        b'$' if word_start => {
            // $tag$ … $tag$, tag empty or an identifier without `$`.
            let rest = b.get(i + 1..)?;
            let tag_len = rest.iter().position(|&x| x == b'$')?;
            let tag = rest.get(..tag_len)?;
            if tag.first().is_some_and(u8::is_ascii_digit)
                || !tag
                    .iter()
                    .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x >= 0x80)
            {
                return None;
            }
            let delim = b.get(i..i + tag_len + 2)?;
            let body = i + tag_len + 2;
            let close = b
                .get(body..)?
                .windows(delim.len())
                .position(|w| w == delim)
                .map_or(b.len(), |p| body + p + delim.len());
            Some(close)
        }
        _ => None,
    }
}

/// Masks the secrets in a command given as its arguments (e.g. Redis `AUTH user pass`);
/// returns whether anything was masked.
pub fn mask_command(args: &mut [String]) -> bool {
    let is = |a: &str, w: &str| a.eq_ignore_ascii_case(w);
    let mut masked = false;
    let mut mask = |a: &mut String| {
        *a = MASK.to_owned();
        masked = true;
    };
    let Some(first) = args.first().map(|a| a.to_ascii_uppercase()) else {
        return false;
    };
    let first = &first;
    if is(first, "AUTH") {
        for a in args.iter_mut().skip(1) {
            mask(a);
        }
    } else if is(first, "HELLO") || is(first, "MIGRATE") {
        // HELLO [ver] [AUTH user pass] …; MIGRATE … [AUTH pass | AUTH2 user pass] …
        let mut i = 1;
        while i < args.len() {
            let n = if args.get(i).is_some_and(|a| is(a, "AUTH")) {
                if is(first, "HELLO") {
                    2
                } else {
                    1
                }
            } else if args.get(i).is_some_and(|a| is(a, "AUTH2")) {
                2
            } else {
                0
            };
            for a in args.iter_mut().skip(i + 1).take(n) {
                mask(a);
            }
            i += 1 + n;
        }
    } else if is(first, "CONFIG") && args.get(1).is_some_and(|a| is(a, "SET")) {
        let mut i = 2;
        while i + 1 < args.len() {
            let secret = args
                .get(i)
                .is_some_and(|k| is(k, "requirepass") || is(k, "masterauth"));
            if secret {
                if let Some(v) = args.get_mut(i + 1) {
                    mask(v);
                }
            }
            i += 2;
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask_sql(s).into_owned()
    }

    #[test]
    fn role_passwords_are_masked() {
        assert_eq!(
            m("ALTER ROLE app PASSWORD 'hunter2'"),
            "ALTER ROLE app PASSWORD '***'"
        );
        assert_eq!(
            m("create user bob with login encrypted password 'it''s secret' valid until 'infinity'"),
            "create user bob with login encrypted password '***' valid until 'infinity'"
        );
        assert_eq!(
            m("ALTER USER x PASSWORD 'SCRAM-SHA-256$4096:abc$def:ghi'"),
            "ALTER USER x PASSWORD '***'"
        );
        assert_eq!(
            m("alter role r password null"),
            "alter role r password null"
        );
    }

    #[test]
    fn every_literal_form() {
        assert_eq!(
            m(r"ALTER ROLE a PASSWORD E'x\'y\\' LOGIN"),
            "ALTER ROLE a PASSWORD '***' LOGIN"
        );
        assert_eq!(
            m("ALTER ROLE a PASSWORD $$p'w$$"),
            "ALTER ROLE a PASSWORD '***'"
        );
        assert_eq!(
            m("ALTER ROLE a PASSWORD $t$x$$y$t$ VALID UNTIL 'x'"),
            "ALTER ROLE a PASSWORD '***' VALID UNTIL 'x'"
        );
        assert_eq!(
            m("ALTER ROLE a PASSWORD U&'d\\0061t'"),
            "ALTER ROLE a PASSWORD '***'"
        );
        assert_eq!(
            m("ALTER ROLE a PASSWORD /* c */ -- c\n 'pw'"),
            "ALTER ROLE a PASSWORD /* c */ -- c\n '***'"
        );
        // Unterminated: everything after the keyword is the secret.
        assert_eq!(
            m("ALTER ROLE a PASSWORD 'abc"),
            "ALTER ROLE a PASSWORD '***'"
        );
    }

    #[test]
    fn only_password_definitions() {
        for s in [
            "select * from users where password = 'x'",
            "select 'password' , 'x'",
            "select \"password\" 'x'",
            "select 1 -- password 'x'",
            "select $$ password 'x' $$",
            "insert into t(password) values ('x')",
            "select mypassword 'x'",
        ] {
            assert_eq!(m(s), s, "{s}");
            assert!(matches!(mask_sql(s), Cow::Borrowed(_)));
        }
        assert_eq!(
            m("CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'p')"),
            "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password '***')"
        );
        assert_eq!(
            m("select 'é'; alter role a password 'ü'; select 'ß'"),
            "select 'é'; alter role a password '***'; select 'ß'"
        );
    }

    #[test]
    fn the_quick_scan_finds_the_keyword_in_any_case_and_place() {
        assert!(mentions_password(b"ALTER ROLE a PaSsWoRd 'x'"));
        assert!(mentions_password(b"password"));
        assert!(!mentions_password(b"select 1 -- p"));
        assert!(!mentions_password(b"passwor"));
        assert!(!mentions_password(b""));
        assert!(!mentions_password("pässword".as_bytes()));
        assert_eq!(
            mask_sql("ALTER ROLE a PASSWORD 'x'"),
            "ALTER ROLE a PASSWORD '***'"
        );
        assert!(matches!(mask_sql("select 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn commands() {
        let mut a: Vec<String> = ["auth", "user", "pw"].map(String::from).into();
        assert!(mask_command(&mut a));
        assert_eq!(a, ["auth", "***", "***"]);
        let mut a: Vec<String> = ["HELLO", "3", "AUTH", "u", "p", "SETNAME", "n"]
            .map(String::from)
            .into();
        assert!(mask_command(&mut a));
        assert_eq!(a, ["HELLO", "3", "AUTH", "***", "***", "SETNAME", "n"]);
        let mut a: Vec<String> = ["CONFIG", "SET", "maxmemory", "1", "requirepass", "s"]
            .map(String::from)
            .into();
        assert!(mask_command(&mut a));
        assert_eq!(a, ["CONFIG", "SET", "maxmemory", "1", "requirepass", "***"]);
        let mut a: Vec<String> = ["GET", "auth"].map(String::from).into();
        assert!(!mask_command(&mut a));
    }
}
