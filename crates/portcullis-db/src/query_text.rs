//! Query text as the audit log stores it, the same for every protocol: secrets masked,
//! invalid UTF-8 flagged, long text cut at `db_service.audit.max_query_bytes` with the
//! original length kept, so an auditor can tell what was changed on the way in.

use std::borrow::Cow;

use portcullis_audit::{Event, Fragment};

/// What follows query text cut at `db_service.audit.max_query_bytes`.
pub const TRUNCATED_MARKER: &str = "…[truncated]";

/// Most bytes of one bound parameter kept in an event; longer values (blobs) are cut with
/// [`TRUNCATED_MARKER`] and their length. Without a cap a single large parameter makes an event
/// larger than any batch auth accepts.
pub const MAX_PARAM_BYTES: usize = 4096;
/// Largest `db_service.audit.max_query_bytes` allowed: with query text and parameters each at
/// most this long, and JSON escaping at worst six bytes per byte, every event fits
/// [`portcullis_api::MAX_EVENTS_BODY`] (a test checks it).
pub const MAX_QUERY_BYTES_CEILING: usize = 512 * 1024;

/// A parameter value as text, cut to [`MAX_PARAM_BYTES`] (borrowed when `render` can borrow:
/// most parameters are short UTF-8 text).
pub fn param_text<'a>(value: &'a [u8], render: impl Fn(&'a [u8]) -> Cow<'a, str>) -> Cow<'a, str> {
    if value.len() <= MAX_PARAM_BYTES {
        return render(value);
    }
    let head = value.get(..MAX_PARAM_BYTES).unwrap_or_default();
    Cow::Owned(format!(
        "{}{TRUNCATED_MARKER} ({} bytes)",
        render(head),
        value.len()
    ))
}

/// Parameters as stored: each cut to [`MAX_PARAM_BYTES`], and once they add up to `max` bytes
/// the rest replaced by one [`TRUNCATED_MARKER`] entry saying how many were left out.
pub fn capped_params<'a, S: Into<Cow<'a, str>>>(
    params: impl ExactSizeIterator<Item = S>,
    max: usize,
) -> Vec<Cow<'a, str>> {
    let total = params.len();
    let mut out = Vec::with_capacity(total.min(64));
    let mut used = 0usize;
    for p in params {
        let p = p.into();
        if used + p.len() > max && !out.is_empty() {
            out.push(Cow::Owned(format!(
                "{TRUNCATED_MARKER} ({} more parameters)",
                total - out.len()
            )));
            break;
        }
        used += p.len();
        out.push(p);
    }
    out
}

/// Query text ready for an event, with what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedQuery {
    /// The text stored.
    pub text: String,
    /// Original length in bytes.
    pub length: usize,
    /// The original was not valid UTF-8 (replacement characters stand in).
    pub invalid_utf8: bool,
    /// Secrets were masked.
    pub masked: bool,
    /// The text was cut.
    pub truncated: bool,
}

impl AuditedQuery {
    /// `text` (already masked and made UTF-8), cut to at most `max` bytes at a character
    /// boundary; `length` is the original's size in bytes.
    pub fn new(text: String, length: usize, invalid_utf8: bool, masked: bool, max: usize) -> Self {
        let truncated = text.len() > max;
        let text = if truncated {
            let mut cut = max;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut t = String::with_capacity(cut + TRUNCATED_MARKER.len());
            t.push_str(text.get(..cut).unwrap_or_default());
            t.push_str(TRUNCATED_MARKER);
            t
        } else {
            text
        };
        Self {
            text,
            length,
            invalid_utf8,
            masked,
            truncated,
        }
    }
}

/// Sets `<key>` and, when they apply, `<key>_length` (original bytes, when truncated),
/// `<key>_truncated`, `<key>_invalid_utf8` and `<key>_masked`.
pub fn query_field(e: &mut Event, key: &str, q: &AuditedQuery) {
    e.set(key, &q.text);
    if q.truncated || q.invalid_utf8 || q.masked {
        e.add_fragment(&flags_fragment(key, q));
    }
}

/// The fields [`query_field`] adds, serialised once: a prepared statement's text goes into
/// every `statements.execute` event that runs it.
pub fn query_fragment(key: &str, q: &AuditedQuery) -> Fragment {
    let mut f = Fragment::new().with(key, &q.text);
    f.extend(&flags_fragment(key, q));
    f
}

/// `<key>_length`, `<key>_truncated`, `<key>_invalid_utf8` and `<key>_masked`, those that apply.
fn flags_fragment(key: &str, q: &AuditedQuery) -> Fragment {
    let mut f = Fragment::new();
    if q.truncated {
        f = f
            .with(&format!("{key}_length"), q.length)
            .with(&format!("{key}_truncated"), true);
    }
    if q.invalid_utf8 {
        f = f.with(&format!("{key}_invalid_utf8"), true);
    }
    if q.masked {
        f = f.with(&format!("{key}_masked"), true);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_parameters_are_capped() {
        let params = (0..1000).map(|i| format!("value-{i:04}"));
        let out = capped_params(params, 100);
        assert_eq!(out.len(), 11);
        assert_eq!(out[10], format!("{TRUNCATED_MARKER} (990 more parameters)"));
        assert_eq!(capped_params(["a".to_owned()].into_iter(), 0), ["a"]);
    }

    #[test]
    fn long_parameters_are_cut() {
        let lossy = |b| String::from_utf8_lossy(b);
        assert_eq!(param_text(b"short", lossy), "short");
        let big = vec![b'x'; MAX_PARAM_BYTES + 10];
        let t = param_text(&big, lossy);
        assert!(t.ends_with(&format!("{TRUNCATED_MARKER} ({} bytes)", big.len())));
        assert!(t.len() < MAX_PARAM_BYTES + 64);
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let q = AuditedQuery::new("ééé".into(), 6, false, false, 3);
        assert_eq!(q.text, format!("é{TRUNCATED_MARKER}"));
        assert!(q.truncated);
        assert_eq!(q.length, 6);
        let short = AuditedQuery::new("abc".into(), 3, false, false, 3);
        assert_eq!((short.text.as_str(), short.truncated), ("abc", false));
    }
}
