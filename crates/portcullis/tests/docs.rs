//! The user guide must say what the code does: these tests fail when they drift apart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;

use portcullis_core::role::{preset_access, Role};

fn doc(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fenced blocks with the given info string.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{lang}") => current = Some(String::new()),
            Some(_) if line.trim_start() == "```" => out.push(current.take().unwrap()),
            Some(buf) => {
                buf.push_str(line);
                buf.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn config_reference_shows_exactly_the_sample() {
    let yaml = blocks(&doc("config-reference.md"), "yaml");
    assert_eq!(
        yaml.len(),
        1,
        "config-reference.md should have one yaml block"
    );
    assert_eq!(
        yaml[0],
        portcullis::sample::SAMPLE_CONFIG,
        "docs/config-reference.md is out of date: paste the output of `portcullis configure`"
    );
}

#[test]
fn role_examples_are_valid_roles() {
    for name in ["roles.md", "getting-started.md"] {
        let text = doc(name);
        let mut found = 0;
        for block in blocks(&text, "yaml") {
            if block.contains("kind: role") {
                let role =
                    Role::from_yaml(&block).unwrap_or_else(|e| panic!("{name}: {e}\n{block}"));
                if role.name() == "access" {
                    assert_eq!(
                        role,
                        preset_access(),
                        "{name}: the access preset differs from the code"
                    );
                }
                found += 1;
            }
        }
        // getting-started embeds its role in a heredoc inside a sh block.
        for block in blocks(&text, "sh") {
            if let Some(start) = block.find("kind: role") {
                let body: String = block[start..]
                    .lines()
                    .take_while(|l| *l != "YAML")
                    .map(|l| format!("{l}\n"))
                    .collect();
                Role::from_yaml(&body).unwrap_or_else(|e| panic!("{name}: {e}\n{body}"));
                found += 1;
            }
        }
        assert!(found > 0, "{name} has no role example");
    }
}
