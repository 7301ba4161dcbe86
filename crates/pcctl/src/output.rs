//! Printing: aligned tables for people, JSON/YAML for machines.

use serde::Serialize;

use crate::cli::Format;

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    for line in portcullis_client::cli::table_lines(header, rows) {
        println!("{line}");
    }
}

/// Prints `value` as JSON or YAML; returns false for `Format::Text` so the caller prints text.
pub fn structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        Format::Yaml => {
            print!("{}", serde_norway::to_string(value)?);
            Ok(true)
        }
        Format::Text => Ok(false),
    }
}

/// RFC 3339 without sub-seconds.
pub fn time(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
