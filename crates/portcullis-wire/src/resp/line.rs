//! Lines: finding CRLF and reading the integers in count and length headers, exactly as
//! strictly as Redis does.

/// Longest decimal integer Redis' `string2ll` accepts (`LONG_STR_SIZE - 1`): 20 characters,
/// as in `-9223372036854775808`. A header line longer than this can never become valid, so it
/// is refused without waiting for its end.
pub(crate) const MAX_INT_LEN: usize = 20;

/// Parses a signed 64-bit decimal integer the way Redis' `string2ll` does: optional `-`, then
/// either a lone `0` or a digit 1–9 followed by digits; no `+`, no spaces, no leading zeros, no
/// `-0`, at most [`MAX_INT_LEN`] characters, no overflow.
///
/// Being exactly as strict as Redis matters: a lenient parser could read a length Redis would
/// refuse (or read differently), and the proxy and the server would then disagree about where a
/// command ends.
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > MAX_INT_LEN {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulate as a negative number so that i64::MIN parses without overflow.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Index of the `\r` of the first CRLF at or after `from`, or `None` if there is none yet.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let cr = at.checked_add(buf.get(at..)?.iter().position(|&b| b == b'\r')?)?;
        let next = cr.checked_add(1)?;
        match buf.get(next) {
            Some(b'\n') => return Some(cr),
            Some(_) => at = next,
            None => return None,
        }
    }
}

/// A short line: the type byte at `start`, at most `max` content bytes, CRLF.
pub(crate) enum ShortLine<'a> {
    /// The line is complete: its content (without type byte and CRLF) and the offset after it.
    Done(&'a [u8], usize),
    /// Its end has not arrived, and it may still turn out valid.
    Incomplete,
    /// More than `max` content bytes and no CRLF: it can never become valid.
    TooLong,
}

/// Reads the short line starting at `start` (headers, integers, booleans, nulls), looking at no
/// more than `max + 3` bytes whatever the buffer holds, so hostile input costs O(1) per call.
pub(crate) fn short_line(buf: &[u8], start: usize, max: usize) -> ShortLine<'_> {
    let Some(content_start) = start.checked_add(1) else {
        return ShortLine::TooLong;
    };
    let window_end = content_start.saturating_add(max).saturating_add(2);
    let window = buf.get(..window_end.min(buf.len())).unwrap_or(buf);
    match find_crlf(window, content_start) {
        Some(cr) => match buf.get(content_start..cr) {
            Some(content) => ShortLine::Done(content, cr.saturating_add(2)),
            None => ShortLine::TooLong,
        },
        None if buf.len() >= window_end => ShortLine::TooLong,
        None => ShortLine::Incomplete,
    }
}

/// Number of bytes of a line whose end has not arrived, not counting a final `\r` that may be
/// the start of its CRLF. Used to refuse over-long lines as early as, and exactly when, the
/// complete line would be refused.
pub(crate) fn pending_len(buf: &[u8], content_start: usize) -> usize {
    let len = buf.len().saturating_sub(content_start);
    if buf.last() == Some(&b'\r') {
        len.saturating_sub(1)
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_is_as_strict_as_redis() {
        for (s, v) in [
            (&b"0"[..], Some(0)),
            (b"1", Some(1)),
            (b"-1", Some(-1)),
            (b"1234567890", Some(1_234_567_890)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"-9223372036854775809", None),
            (b"", None),
            (b"-", None),
            (b"-0", None),
            (b"00", None),
            (b"01", None),
            (b"+1", None),
            (b" 1", None),
            (b"1 ", None),
            (b"1a", None),
            (b"abc", None),
            (b"000000000000000000001", None),
        ] {
            assert_eq!(parse_int(s), v, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn find_crlf_skips_lone_cr() {
        assert_eq!(find_crlf(b"a\rb\r\n", 0), Some(3));
        assert_eq!(find_crlf(b"a\r", 0), None);
        assert_eq!(find_crlf(b"\r\n", 0), Some(0));
        assert_eq!(find_crlf(b"\r\n\r\n", 1), Some(2));
        assert_eq!(find_crlf(b"ab", 5), None);
    }

    #[test]
    fn short_line_bounds_its_scan() {
        assert!(matches!(
            short_line(b"$3\r\n", 0, 20),
            ShortLine::Done(b"3", 4)
        ));
        assert!(matches!(short_line(b"$3\r", 0, 20), ShortLine::Incomplete));
        assert!(matches!(short_line(b"$123", 0, 2), ShortLine::Incomplete));
        assert!(matches!(
            short_line(b"$12\r\n", 0, 2),
            ShortLine::Done(b"12", 5)
        ));
        assert!(matches!(short_line(b"$1234", 0, 2), ShortLine::TooLong));
        assert!(matches!(short_line(b"$123\r\n", 0, 2), ShortLine::TooLong));
    }
}
