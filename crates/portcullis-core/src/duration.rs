//! Durations as operators write them in config files and roles: `8h`, `30m`, `1h30m`, `2d`.
//!
//! Teleport (and Go programs in general) spell durations this way, so policies and configs
//! translate without edits. [`Duration`] wraps [`std::time::Duration`] and adds the parsing,
//! printing and serde support that the plain type lacks.
//!
//! # Accepted format
//!
//! One or more `<integer><unit>` pairs, written without spaces, whose values are added:
//!
//! | unit | meaning |
//! |---|---|
//! | `d` | day (24 hours; there is no calendar arithmetic) |
//! | `h` | hour |
//! | `m` | minute |
//! | `s` | second |
//! | `ms` | millisecond |
//! | `us`, `µs` | microsecond |
//! | `ns` | nanosecond |
//!
//! The bare string `0` is also accepted. Negative values, fractions (`1.5h`), signs, spaces and
//! values beyond [`std::time::Duration::MAX`] are refused with a message showing the format.
//!
//! # Printing
//!
//! [`Display`](fmt::Display) prints the canonical short form: hours, minutes, seconds and
//! sub-second units, largest first, omitting zero parts (`1h30m`, `48h`, `1s500ms`, `0s`). Days
//! are never printed, so the output is also valid input for Go's `time.ParseDuration` and can be
//! pasted back into a Teleport config. Parsing the printed form always yields the same value.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The hint appended to every parse error, so that a mistyped config value tells the operator
/// what to write instead.
pub const DURATION_FORMAT_HINT: &str = "use a number and a unit: 30s, 15m, 8h, 1h30m, 2d";

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A non-negative span of time written in config and roles as `8h`, `30m`, `1h30m`, `2d`.
///
/// It exists so that every config field and role option parses, prints and (de)serializes
/// durations the same way; see the [module documentation](self) for the format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// No time at all; printed as `0s`.
    pub const ZERO: Duration = Duration(std::time::Duration::ZERO);

    /// A duration of `secs` seconds, for defaults written in code.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    /// A duration of `mins` minutes, for defaults written in code; saturates on overflow.
    pub const fn from_mins(mins: u64) -> Self {
        Duration::from_secs(mins.saturating_mul(60))
    }

    /// A duration of `hours` hours, for defaults written in code; saturates on overflow.
    pub const fn from_hours(hours: u64) -> Self {
        Duration::from_secs(hours.saturating_mul(3600))
    }

    /// The standard-library value, for timers and arithmetic.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whether this is zero, which some options treat as "not set".
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// A duration string was refused; the message names the problem and shows the accepted format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}; {DURATION_FORMAT_HINT}")]
pub struct ParseDurationError {
    /// The refused text, truncated to a readable length.
    input: String,
    /// Which rule it broke.
    reason: &'static str,
}

impl ParseDurationError {
    fn new(input: &str, reason: &'static str) -> Self {
        // Config values are short; cap what we echo back so a pasted blob does not flood logs.
        const MAX_ECHO: usize = 64;
        let input = if input.chars().count() > MAX_ECHO {
            let mut s: String = input.chars().take(MAX_ECHO).collect();
            s.push('…');
            s
        } else {
            input.to_owned()
        };
        ParseDurationError { input, reason }
    }

    /// The refused text (possibly truncated).
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Nanoseconds in one of each unit, longest spellings first so `ms` is not read as `m` + `s`.
const UNITS: [(&str, u128); 8] = [
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
    ("d", 86_400 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
];

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| Err(ParseDurationError::new(s, reason));
        if s.is_empty() {
            return err("it is empty");
        }
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        if s.starts_with('-') {
            return err("negative durations are not allowed");
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (digits, after) = rest.split_at(digits_end);
            if digits.is_empty() {
                return err("expected a number");
            }
            let mut value: u128 = 0;
            for b in digits.bytes() {
                value = match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u128::from(b - b'0')))
                {
                    Some(v) => v,
                    None => return err("it is too large"),
                };
            }
            if after.starts_with('.') {
                return err("fractions are not allowed");
            }
            let Some((unit, nanos_per_unit)) = UNITS
                .iter()
                .find(|(unit, _)| after.starts_with(unit))
                .copied()
            else {
                return if after.is_empty() {
                    err("a unit is missing")
                } else {
                    err("unknown unit")
                };
            };
            total = match value
                .checked_mul(nanos_per_unit)
                .and_then(|v| total.checked_add(v))
            {
                Some(t) => t,
                None => return err("it is too large"),
            };
            rest = after.get(unit.len()..).unwrap_or_default();
        }
        let secs = u64::try_from(total / NANOS_PER_SEC);
        let nanos = u32::try_from(total % NANOS_PER_SEC);
        match (secs, nanos) {
            (Ok(secs), Ok(nanos)) => Ok(Duration(std::time::Duration::new(secs, nanos))),
            _ => err("it is too large"),
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        let parts = [
            (secs / 3600, "h"),
            (secs % 3600 / 60, "m"),
            (secs % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from(nanos / 1_000 % 1_000), "us"),
            (u64::from(nanos % 1_000), "ns"),
        ];
        for (value, unit) in parts {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a duration such as \"8h\" or a whole number of seconds ({DURATION_FORMAT_HINT})"
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v).map(Duration::from_secs).map_err(|_| {
            E::custom(format_args!(
                "invalid duration {v}: negative durations are not allowed; {DURATION_FORMAT_HINT}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration as Std;

    #[test]
    fn parses_accepted_forms() {
        let cases: &[(&str, Std)] = &[
            ("0", Std::ZERO),
            ("0s", Std::ZERO),
            ("8h", Std::from_secs(8 * 3600)),
            ("30m", Std::from_secs(30 * 60)),
            ("1h30m", Std::from_secs(5400)),
            ("90s", Std::from_secs(90)),
            ("500ms", Std::from_millis(500)),
            ("2d", Std::from_secs(2 * 86_400)),
            ("1d12h", Std::from_secs(36 * 3600)),
            ("1m30s", Std::from_secs(90)),
            ("1s500ms", Std::from_millis(1500)),
            ("3us", Std::from_micros(3)),
            ("3µs", Std::from_micros(3)),
            ("7ns", Std::from_nanos(7)),
            ("30m1h", Std::from_secs(5400)),
            ("007s", Std::from_secs(7)),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Duration>(), Ok(Duration(*want)), "{input}");
        }
    }

    #[test]
    fn refuses_bad_forms_with_reason_and_hint() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("h", "expected a number"),
            ("-1h", "negative durations are not allowed"),
            ("+1h", "expected a number"),
            ("1x", "unknown unit"),
            ("1", "a unit is missing"),
            ("1h30", "a unit is missing"),
            ("1.5h", "fractions are not allowed"),
            (" 1h", "expected a number"),
            ("1h ", "expected a number"),
            ("1 h", "unknown unit"),
            ("1H", "unknown unit"),
            (
                "99999999999999999999999999999999999999999h",
                "it is too large",
            ),
            ("213503982334602d", "it is too large"),
            ("18446744073709551616s", "it is too large"),
        ];
        for (input, reason) in cases {
            let err = match input.parse::<Duration>() {
                Err(e) => e,
                Ok(d) => panic!("{input:?} parsed as {d}"),
            };
            let msg = err.to_string();
            assert!(msg.contains(reason), "{input:?}: {msg}");
            assert!(msg.contains(DURATION_FORMAT_HINT), "{input:?}: {msg}");
        }
    }

    #[test]
    fn error_message_is_exact() {
        let err = "1x".parse::<Duration>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid duration \"1x\": unknown unit; \
                 use a number and a unit: 30s, 15m, 8h, 1h30m, 2d"
            )
        );
    }

    #[test]
    fn long_input_is_truncated_in_errors() {
        let long = "x".repeat(1000);
        let err = long.parse::<Duration>().err().map(|e| e.input().to_owned());
        assert_eq!(err.map(|s| s.chars().count()), Some(65));
    }

    #[test]
    fn max_value_parses_and_prints() {
        let max = Duration(Std::MAX);
        let printed = max.to_string();
        assert_eq!(printed.parse::<Duration>(), Ok(max));
    }

    #[test]
    fn displays_canonical_short_form() {
        let cases: &[(Std, &str)] = &[
            (Std::ZERO, "0s"),
            (Std::from_secs(5400), "1h30m"),
            (Std::from_secs(12 * 3600), "12h"),
            (Std::from_secs(2 * 86_400), "48h"),
            (Std::from_secs(90), "1m30s"),
            (Std::from_millis(500), "500ms"),
            (Std::from_millis(1500), "1s500ms"),
            (Std::from_nanos(1_001_001), "1ms1us1ns"),
            (Std::from_secs(3601), "1h1s"),
        ];
        for (d, want) in cases {
            assert_eq!(Duration(*d).to_string(), *want);
        }
    }

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Holder {
        ttl: Duration,
    }

    #[test]
    fn serde_reads_strings_and_integer_seconds() {
        let h: Holder = serde_json::from_str(r#"{"ttl":"1h30m"}"#).unwrap();
        assert_eq!(h.ttl, Duration::from_secs(5400));
        let h: Holder = serde_json::from_str(r#"{"ttl":90}"#).unwrap();
        assert_eq!(h.ttl, Duration::from_secs(90));
        let h: Holder = serde_norway::from_str("ttl: 8h").unwrap();
        assert_eq!(h.ttl, Duration::from_hours(8));
        let h: Holder = serde_norway::from_str("ttl: 0").unwrap();
        assert_eq!(h.ttl, Duration::ZERO);
        assert_eq!(
            serde_json::to_string(&Holder {
                ttl: Duration::from_mins(90)
            })
            .unwrap(),
            r#"{"ttl":"1h30m"}"#
        );
    }

    #[test]
    fn serde_refuses_bad_values_with_hint() {
        for bad in [
            r#"{"ttl":"1x"}"#,
            r#"{"ttl":-5}"#,
            r#"{"ttl":1.5}"#,
            r#"{"ttl":true}"#,
        ] {
            let err = serde_json::from_str::<Holder>(bad).unwrap_err().to_string();
            assert!(err.contains(DURATION_FORMAT_HINT), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration(Std::new(secs, nanos));
            prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }

        #[test]
        fn small_values_round_trip(secs in 0u64..10_000_000, millis in 0u32..1000) {
            let d = Duration(Std::new(secs, millis * 1_000_000));
            prop_assert_eq!(d.to_string().parse::<Duration>(), Ok(d));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<Duration>();
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[0-9]{0,25}(d|h|m|s|ms|us|µs|ns|x|\\.|-)?[0-9]{0,3}[a-z]{0,2}") {
            let _ = s.parse::<Duration>();
        }
    }
}
