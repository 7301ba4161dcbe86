//! Searching stored events: the query, the fields a filter reads from each line, ordering
//! and the opaque paging cursor, shared by every sink.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::Deserialize;
use time::OffsetDateTime;

/// Largest page a search returns.
pub const MAX_LIMIT: usize = 10_000;
/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;

/// Which end of the time range comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Newest first (searches).
    #[default]
    NewestFirst,
    /// Oldest first (exports, session transcripts).
    OldestFirst,
}

/// A position in the total order of events: time (microseconds, the precision every sink
/// keeps) then uid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Unix time in microseconds.
    pub micros: i64,
    /// The event's uid.
    pub uid: String,
}

impl Position {
    /// The cursor text: `<micros>_<uid>`.
    pub fn to_cursor(&self) -> String {
        format!("{}_{}", self.micros, self.uid)
    }

    /// Parses a cursor made by [`to_cursor`](Self::to_cursor).
    pub fn from_cursor(s: &str) -> Result<Self, String> {
        let (m, uid) = s
            .split_once('_')
            .ok_or_else(|| "cursor: not a cursor from a previous page".to_owned())?;
        let micros = m
            .parse()
            .map_err(|_| "cursor: not a cursor from a previous page".to_owned())?;
        Ok(Self {
            micros,
            uid: uid.to_owned(),
        })
    }

    /// The time as a timestamp.
    pub fn time(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.micros) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Microseconds since the epoch of `t`.
pub fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1000)).unwrap_or(i64::MAX)
}

/// What to find. Every filter that is set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Events at or after this time.
    pub from: Option<OffsetDateTime>,
    /// Events before this time.
    pub to: Option<OffsetDateTime>,
    /// The `user` field equals this.
    pub user: Option<String>,
    /// The `event` field equals this, or starts with it when it ends with `*`
    /// (`db.session.*`).
    pub event: Option<String>,
    /// The `db_service` field equals this.
    pub db: Option<String>,
    /// The `sid` field equals this.
    pub sid: Option<String>,
    /// The event's JSON text contains this (ASCII case-insensitive).
    pub contains: Option<String>,
    /// At most this many events (capped at [`MAX_LIMIT`]).
    pub limit: usize,
    /// Continue after this position (from the previous page's `next_cursor`).
    pub after: Option<Position>,
    /// Ordering.
    pub order: Order,
}

impl Query {
    /// The effective page size.
    pub fn page_size(&self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        }
    }

    /// Whether `pos` lies beyond the cursor in this query's order.
    pub fn after_cursor(&self, pos: &Position) -> bool {
        match &self.after {
            None => true,
            Some(c) => match self.order {
                Order::NewestFirst => pos < c,
                Order::OldestFirst => pos > c,
            },
        }
    }

    /// Compares positions in this query's order.
    pub fn cmp(&self, a: &Position, b: &Position) -> Ordering {
        match self.order {
            Order::NewestFirst => b.cmp(a),
            Order::OldestFirst => a.cmp(b),
        }
    }

    /// Whether an event line with fields `head` matches (the time range and the cursor
    /// included).
    pub fn matches(&self, line: &str, head: &Head<'_>, pos: &Position) -> bool {
        if let Some(from) = self.from {
            if pos.micros < micros(from) {
                return false;
            }
        }
        if let Some(to) = self.to {
            if pos.micros >= micros(to) {
                return false;
            }
        }
        if !self.after_cursor(pos) {
            return false;
        }
        let eq = |want: &Option<String>, have: &Option<Cow<'_, str>>| match want {
            None => true,
            Some(w) => have.as_deref() == Some(w.as_str()),
        };
        if !eq(&self.user, &head.user)
            || !eq(&self.db, &head.db_service)
            || !eq(&self.sid, &head.sid)
        {
            return false;
        }
        if let Some(want) = &self.event {
            let ok = match want.strip_suffix('*') {
                Some(prefix) => head.event.starts_with(prefix),
                None => head.event == want.as_str(),
            };
            if !ok {
                return false;
            }
        }
        if let Some(needle) = &self.contains {
            if !contains_ignore_ascii_case(line, needle) {
                return false;
            }
        }
        true
    }
}

/// Whether `hay` contains `needle`, ignoring ASCII case.
pub fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() {
        return true;
    }
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The fields searches read from an event line.
#[derive(Debug, Deserialize)]
pub struct Head<'a> {
    /// Unique id.
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    /// RFC 3339 time.
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    /// Event name.
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// User, if any.
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    /// Session id, if any.
    #[serde(borrow, default)]
    pub sid: Option<Cow<'a, str>>,
    /// Database service, if any.
    #[serde(borrow, default)]
    pub db_service: Option<Cow<'a, str>>,
}

impl<'a> Head<'a> {
    /// Reads the head of one line; `None` for lines that are not events.
    pub fn parse(line: &'a str) -> Option<(Self, Position)> {
        let head: Head<'a> = serde_json::from_str(line).ok()?;
        let t = OffsetDateTime::parse(&head.time, &time::format_description::well_known::Rfc3339)
            .ok()?;
        let pos = Position {
            micros: micros(t),
            uid: head.uid.to_string(),
        };
        Some((head, pos))
    }
}

/// One page of results: event lines in order, and the cursor of the next page when there
/// may be one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Event JSON lines.
    pub events: Vec<String>,
    /// Pass as the next query's `after` for the next page.
    pub next_cursor: Option<String>,
}

/// Parses a time for `--from`/`--since`: RFC 3339, a date (`2026-11-21`, midnight UTC), or a
/// duration ago (`90s`, `15m`, `1h`, `2d`, `1w`; `now`).
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date_fmt) {
        return Ok(d.midnight().assume_utc());
    }
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| bad_time(s))?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad_time(s))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad_time(s)),
    };
    let ago = n.checked_mul(secs).ok_or_else(|| bad_time(s))?;
    Ok(now - time::Duration::seconds(ago))
}

fn bad_time(s: &str) -> String {
    format!(
        "{s:?} is not a time: use RFC 3339 (2026-11-21T09:30:00Z), a date (2026-11-21) \
         or a duration ago (30m, 1h, 2d)"
    )
}

/// Formats a time as RFC 3339 (UTC).
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_form() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            parse_time("1h", now).unwrap(),
            now - time::Duration::hours(1)
        );
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("2026-11-21T09:30:00Z", now).unwrap(),
            time::macros::datetime!(2026-11-21 09:30:00 UTC)
        );
        assert_eq!(
            parse_time("2026-11-21", now).unwrap(),
            time::macros::datetime!(2026-11-21 00:00:00 UTC)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5y", now).is_err());
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let p = Position {
            micros: 42,
            uid: "a_b".into(),
        };
        assert_eq!(Position::from_cursor(&p.to_cursor()).unwrap(), p);
        assert!(Position::from_cursor("nope").is_err());
    }

    #[test]
    fn filters_match_fields_prefixes_and_text() {
        let line = r#"{"uid":"u1","time":"2026-11-21T10:00:00Z","event":"db.session.query","user":"alice","sid":"s1","db_service":"pg","db_query":"SELECT Secret"}"#;
        let (head, pos) = Head::parse(line).unwrap();
        let q = |f: &dyn Fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q.matches(line, &head, &pos)
        };
        assert!(q(&|_| {}));
        assert!(q(&|q| q.user = Some("alice".into())));
        assert!(!q(&|q| q.user = Some("bob".into())));
        assert!(q(&|q| q.event = Some("db.session.*".into())));
        assert!(!q(&|q| q.event = Some("db.session".into())));
        assert!(q(&|q| q.contains = Some("select secret".into())));
        assert!(q(&|q| q.db = Some("pg".into())));
        assert!(!q(&|q| q.sid = Some("s2".into())));
        assert!(!q(
            &|q| q.from = Some(time::macros::datetime!(2026-11-21 10:00:01 UTC))
        ));
        assert!(!q(
            &|q| q.to = Some(time::macros::datetime!(2026-11-21 10:00:00 UTC))
        ));
    }
}
