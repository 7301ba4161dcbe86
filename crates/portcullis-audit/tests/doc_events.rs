//! `docs/audit-events.md` and the event model agree: every kind is documented once with its
//! name, code and fields, nothing is documented that the code does not know, and every example
//! is valid JSON with the documented name, code and fields.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use portcullis_audit::{EventKind, COMMON_FIELDS};
use serde_json::Value;

/// One `### \`name\` CODE` section of the document.
#[derive(Debug)]
struct Section {
    name: String,
    code: String,
    body: String,
}

fn doc() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit-events.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sections(doc: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in doc.lines() {
        if let Some(head) = line.strip_prefix("### ") {
            let head = head.trim();
            let (name, code) = head
                .strip_prefix('`')
                .and_then(|h| h.split_once('`'))
                .unwrap_or_else(|| panic!("event heading must be ### `name` CODE: {line:?}"));
            let code = code.trim();
            assert!(
                !code.is_empty() && !code.contains(' '),
                "event heading must be ### `name` CODE: {line:?}"
            );
            out.push(Section {
                name: name.to_owned(),
                code: code.to_owned(),
                body: String::new(),
            });
        } else if line.starts_with("## ") {
            // A new top-level part ends the events.
            if !out.is_empty() {
                break;
            }
        } else if let Some(s) = out.last_mut() {
            s.body.push_str(line);
            s.body.push('\n');
        }
    }
    out
}

fn example(s: &Section) -> Value {
    let start = s
        .body
        .find("```json\n")
        .unwrap_or_else(|| panic!("{} {}: no ```json example", s.name, s.code))
        + "```json\n".len();
    let len = s.body[start..]
        .find("```")
        .unwrap_or_else(|| panic!("{} {}: unterminated example", s.name, s.code));
    serde_json::from_str(&s.body[start..start + len])
        .unwrap_or_else(|e| panic!("{} {}: example is not valid JSON: {e}", s.name, s.code))
}

/// The field table of a section: field name → "always" or not.
fn field_table(s: &Section) -> HashMap<String, bool> {
    let mut out = HashMap::new();
    for line in s.body.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| `name` | always | meaning |" splits into ["", "`name`", "always", "meaning", ""].
        if cells.len() < 4 {
            continue;
        }
        let Some(name) = cells[1].strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
            continue;
        };
        let always = match cells[2] {
            "always" => true,
            "when it applies" => false,
            other => panic!("{} {}: field {name}: presence {other:?}", s.name, s.code),
        };
        assert!(
            out.insert(name.to_owned(), always).is_none(),
            "{} {}: field {name} listed twice",
            s.name,
            s.code
        );
    }
    out
}

#[test]
fn every_event_kind_is_documented_and_nothing_else() {
    let doc = doc();
    let secs = sections(&doc);
    let documented: Vec<(String, String)> = secs
        .iter()
        .map(|s| (s.name.clone(), s.code.clone()))
        .collect();
    let unique: BTreeSet<_> = documented.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        documented.len(),
        "an event is documented twice"
    );
    for s in &secs {
        assert!(
            EventKind::from_name_code(&s.name, &s.code).is_some(),
            "docs/audit-events.md documents {} {} but the code has no such event (or the code differs)",
            s.name,
            s.code
        );
    }
    for k in EventKind::ALL {
        assert!(
            unique.contains(&(k.name().to_owned(), k.code().to_owned())),
            "{k:?} ({} {}) is missing from docs/audit-events.md",
            k.name(),
            k.code()
        );
        let row = format!("| `{}` | `{}` |", k.name(), k.code());
        assert!(
            doc.contains(&row),
            "the summary table lacks {} {}",
            k.name(),
            k.code()
        );
    }
}

#[test]
fn documented_fields_match_the_model() {
    for s in sections(&doc()) {
        let kind = EventKind::from_name_code(&s.name, &s.code).unwrap();
        let table = field_table(&s);
        let model: HashMap<String, bool> = kind
            .fields()
            .into_iter()
            .map(|f| (f.name.to_owned(), f.always))
            .collect();
        assert_eq!(
            table, model,
            "{} {}: the field table differs from EventKind::{kind:?}.fields()",
            s.name, s.code
        );
    }
}

#[test]
fn examples_are_valid_events_of_their_kind() {
    for s in sections(&doc()) {
        let kind = EventKind::from_name_code(&s.name, &s.code).unwrap();
        let ex = example(&s);
        let obj = ex
            .as_object()
            .unwrap_or_else(|| panic!("{} {}: example is not an object", s.name, s.code));
        assert_eq!(
            ex["event"],
            kind.name(),
            "{} {}: example event",
            s.name,
            s.code
        );
        assert_eq!(
            ex["code"],
            kind.code(),
            "{} {}: example code",
            s.name,
            s.code
        );
        for f in COMMON_FIELDS {
            assert!(
                obj.contains_key(f),
                "{} {}: example lacks {f}",
                s.name,
                s.code
            );
        }
        let fields = kind.fields();
        for f in fields.iter().filter(|f| f.always) {
            assert!(
                obj.contains_key(f.name),
                "{} {}: example lacks {}",
                s.name,
                s.code,
                f.name
            );
        }
        for key in obj.keys() {
            assert!(
                COMMON_FIELDS.contains(&key.as_str()) || fields.iter().any(|f| f.name == key),
                "{} {}: example has {key}, which the model does not list",
                s.name,
                s.code
            );
        }
        assert!(
            time::OffsetDateTime::parse(
                ex["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "{} {}: time is not RFC 3339",
            s.name,
            s.code
        );
    }
}

#[test]
fn the_parser_catches_disagreement() {
    // A section the code does not know, and a code that differs, are both caught.
    let doc = "## Events\n\n### `user.login` T1000X\n\n```json\n{}\n```\n\n### `no.such` T0000I\n";
    let secs = sections(doc);
    assert_eq!(secs.len(), 2);
    assert!(EventKind::from_name_code(&secs[0].name, &secs[0].code).is_none());
    assert!(EventKind::from_name_code(&secs[1].name, &secs[1].code).is_none());
}
