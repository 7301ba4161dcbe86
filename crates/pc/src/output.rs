//! Printing: aligned tables, times, remaining validity, shell quoting.

use time::OffsetDateTime;

/// `outln!` that ends the process quietly when stdout is closed (`pc db ls | head`), instead
/// of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::output::stdout_failed(e);
        }
    }};
}

/// What to do when printing fails: a closed pipe ends the process successfully, anything else
/// is reported.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(1);
}

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    for line in portcullis_client::cli::table_lines(header, rows) {
        outln!("{line}");
    }
}

/// RFC 3339 without sub-seconds.
pub fn time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// "valid for 11h59m", or "EXPIRED".
pub fn validity(expires: OffsetDateTime, now: OffsetDateTime) -> String {
    let left = expires - now;
    if left <= time::Duration::ZERO {
        return "EXPIRED".to_owned();
    }
    let secs = left.whole_seconds();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let text = if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    };
    format!("valid for {text}")
}

/// Quotes `s` for a POSIX shell (single quotes, `'` as `'\''`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=,+".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Quotes a libpq connection-string value (`'…'` with `\'` and `\\` when needed).
pub fn libpq_quote(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\']) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_text() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            validity(
                now + time::Duration::minutes(11 * 60 + 59) + time::Duration::seconds(30),
                now
            ),
            "valid for 11h59m"
        );
        assert_eq!(
            validity(now + time::Duration::minutes(5), now),
            "valid for 5m"
        );
        assert_eq!(
            validity(now + time::Duration::seconds(9), now),
            "valid for 9s"
        );
        assert_eq!(validity(now, now), "EXPIRED");
        assert_eq!(validity(now - time::Duration::hours(1), now), "EXPIRED");
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote("/home/a/.portcullis/x.crt"),
            "/home/a/.portcullis/x.crt"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(libpq_quote("/a b/c"), "'/a b/c'");
        assert_eq!(libpq_quote("x"), "x");
        assert_eq!(libpq_quote(r"a'b\c"), r"'a\'b\\c'");
    }
}
