//! Tests for role parsing, validation and presets.

use super::*;

/// The example from DESIGN.md, section Roles, verbatim.
const DESIGN_EXAMPLE: &str = r#"
kind: role
version: v1
metadata: { name: developer }
spec:
  options: { max_session_ttl: 8h, client_idle_timeout: 30m, disconnect_expired_cert: true }
  allow:
    db_labels: { env: [staging, dev] }
    db_users: ["{{internal.db_users}}", readonly]
    db_names: ["*"]
  deny:
    db_labels: { env: production }
"#;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn parse_err(yaml: &str) -> String {
    match Role::from_yaml(yaml) {
        Ok(r) => panic!("parsed: {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parses_the_design_example() {
    let role = Role::from_yaml(DESIGN_EXAMPLE).unwrap();
    assert_eq!(role.kind, "role");
    assert_eq!(role.version, "v1");
    assert_eq!(role.name(), "developer");
    assert_eq!(role.metadata.description, "");
    let o = role.spec.options;
    assert_eq!(o.max_session_ttl, Some(Duration::from_hours(8)));
    assert_eq!(o.client_idle_timeout, Some(Duration::from_mins(30)));
    assert_eq!(o.disconnect_expired_cert, Some(true));
    assert_eq!(o.require_mfa, None);
    let allow = &role.spec.allow;
    assert_eq!(
        allow.db_labels,
        LabelSelector::from([("env".into(), strings(&["staging", "dev"]))])
    );
    assert_eq!(
        allow.db_users,
        strings(&["{{internal.db_users}}", "readonly"])
    );
    assert_eq!(allow.db_names, strings(&["*"]));
    assert!(allow.rules.is_empty());
    assert_eq!(
        role.spec.deny.db_labels,
        LabelSelector::from([("env".into(), strings(&["production"]))])
    );
}

#[test]
fn parses_the_full_example_with_rules_and_all_options() {
    let role = Role::from_yaml(
        r#"
kind: role
version: v1
metadata: { name: developer, description: "optional" }
spec:
  options: { max_session_ttl: 8h, client_idle_timeout: 30m, disconnect_expired_cert: true, require_mfa: false }
  allow:
    db_labels: { env: [staging, dev] }
    db_users: ["{{internal.db_users}}", readonly]
    db_names: ["*"]
    rules: [ { resources: [user, role], verbs: [list, read, create, update, delete] } ]
  deny:
    db_labels: { env: production }
"#,
    )
    .unwrap();
    assert_eq!(role.metadata.description, "optional");
    assert_eq!(role.spec.options.require_mfa, Some(false));
    assert_eq!(
        role.spec.allow.rules,
        vec![Rule::new(
            &["user", "role"],
            &["list", "read", "create", "update", "delete"]
        )]
    );
}

#[test]
fn minimal_role_has_defaults() {
    let role = Role::from_yaml("kind: role\nversion: v1\nmetadata: {name: empty}\n").unwrap();
    assert_eq!(role, Role::new("empty"));
    assert!(role.spec.options.is_empty());
    assert!(role.spec.allow.is_empty());
}

#[test]
fn values_may_be_a_string_or_a_list_and_scalars_become_text() {
    let role = Role::from_yaml(
        r#"
kind: role
version: v1
metadata: { name: r }
spec:
  options: { max_session_ttl: 3600 }
  allow:
    db_labels: { env: dev, tier: 1, pci: false, team: [a, 2] }
    db_users: app
    db_names: [shop, 7]
"#,
    )
    .unwrap();
    let labels = &role.spec.allow.db_labels;
    assert_eq!(labels.get("env"), Some(&strings(&["dev"])));
    assert_eq!(labels.get("tier"), Some(&strings(&["1"])));
    assert_eq!(labels.get("pci"), Some(&strings(&["false"])));
    assert_eq!(labels.get("team"), Some(&strings(&["a", "2"])));
    assert_eq!(role.spec.allow.db_users, strings(&["app"]));
    assert_eq!(role.spec.allow.db_names, strings(&["shop", "7"]));
    assert_eq!(
        role.spec.options.max_session_ttl,
        Some(Duration::from_hours(1))
    );
}

#[test]
fn malformed_yaml_and_unknown_fields_are_refused_with_clear_messages() {
    let head = "kind: role\nversion: v1\nmetadata: { name: r }\n";
    // (yaml, fragments the message must contain)
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "kind: role\nversion: v1\nmetadata: { name: r\n".into(),
            vec!["invalid role YAML", "line"],
        ),
        ("just a string".into(), vec!["invalid role YAML"]),
        (
            "kind: role\nmetadata: { name: r }\n".into(),
            vec!["missing field `version`"],
        ),
        (
            format!("{head}colour: blue\n"),
            vec!["unknown field `colour`", "expected one of"],
        ),
        (
            format!("{head}spec: {{ alow: {{}} }}\n"),
            vec!["spec", "unknown field `alow`", "allow"],
        ),
        (
            format!("{head}spec: {{ allow: {{ db_label: {{ env: dev }} }} }}\n"),
            vec!["spec.allow", "unknown field `db_label`", "db_labels"],
        ),
        (
            format!("{head}spec: {{ options: {{ max_ttl: 8h }} }}\n"),
            vec!["spec.options", "unknown field `max_ttl`", "max_session_ttl"],
        ),
        (
            format!("{head}spec: {{ options: {{ max_session_ttl: 8 hours }} }}\n"),
            vec![
                "spec.options.max_session_ttl",
                "invalid duration \"8 hours\"",
                "use a number and a unit: 30s, 15m, 8h, 1h30m, 2d",
            ],
        ),
        (
            format!("{head}spec: {{ options: {{ require_mfa: maybe }} }}\n"),
            vec!["spec.options.require_mfa", "expected a boolean"],
        ),
        (
            format!(
                "{head}spec: {{ allow: {{ rules: [ {{ resources: [user], verbs: [read], \
                 where: x }} ] }} }}\n"
            ),
            vec!["unknown field `where`", "resources", "verbs"],
        ),
        (
            format!("{head}spec: {{ allow: {{ db_users: {{ a: b }} }} }}\n"),
            vec!["spec.allow.db_users", "a string or a list of strings"],
        ),
        (
            format!("{head}spec: {{ allow: {{ db_labels: {{ env: [[dev]] }} }} }}\n"),
            vec!["spec.allow.db_labels", "a string"],
        ),
        (
            format!("{head}metadata2: {{}}\n"),
            vec!["unknown field `metadata2`"],
        ),
        (
            "kind: role\nversion: v1\nmetadata: { name: r, labels: {} }\n".into(),
            vec!["metadata", "unknown field `labels`"],
        ),
    ];
    for (yaml, fragments) in cases {
        let msg = parse_err(&yaml);
        for f in fragments {
            assert!(msg.contains(f), "{yaml}\n→ {msg}\n(missing {f:?})");
        }
    }
}

#[test]
fn unknown_field_message_is_exact() {
    let msg = parse_err(
        "kind: role\nversion: v1\nmetadata: { name: r }\nspec: { allow: { db_label: {} } }\n",
    );
    assert_eq!(
        msg,
        "invalid role YAML: spec.allow: unknown field `db_label`, expected one of \
         `db_labels`, `db_users`, `db_names`, `rules` at line 4 column 18"
    );
}

/// Builds a role from a YAML `spec` body so each validation case is one line.
fn with_spec(spec: &str) -> Role {
    let yaml = format!("kind: role\nversion: v1\nmetadata: {{ name: r }}\nspec: {spec}\n");
    serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

#[test]
fn validation_names_the_field_and_the_fix() {
    // (spec, expected path, fragment of the message)
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{ options: { max_session_ttl: 0 } }"#,
            "spec.options.max_session_ttl",
            "longer than 0",
        ),
        (
            r#"{ options: { client_idle_timeout: 0s } }"#,
            "spec.options.client_idle_timeout",
            "remove the option",
        ),
        (
            r#"{ allow: { db_labels: { env: "^[a$" } } }"#,
            "spec.allow.db_labels.env[0]",
            "regex \"^[a$\" does not compile (unclosed character class)",
        ),
        (
            r#"{ deny: { db_users: [ok, "^(x$"] } }"#,
            "spec.deny.db_users[1]",
            "does not compile",
        ),
        (
            r#"{ allow: { db_names: ["^{{internal.x}}[$"] } }"#,
            "spec.allow.db_names[0]",
            "does not compile",
        ),
        (
            r#"{ allow: { db_users: ["^a{99999999}$"] } }"#,
            "spec.allow.db_users[0]",
            "does not compile",
        ),
        (
            r#"{ allow: { db_users: ["{{internal.db_users"] } }"#,
            "spec.allow.db_users[0]",
            "unbalanced \"{{\"",
        ),
        (
            r#"{ allow: { db_users: ["internal.db_users}}"] } }"#,
            "spec.allow.db_users[0]",
            "unbalanced \"}}\"",
        ),
        (
            r#"{ allow: { db_users: ["{{ {{internal.x}} }}"] } }"#,
            "spec.allow.db_users[0]",
            "cannot nest",
        ),
        (
            r#"{ allow: { db_users: ["{{internal.a}}{{internal.b}}"] } }"#,
            "spec.allow.db_users[0]",
            "more than one template",
        ),
        (
            r#"{ allow: { db_users: ["{{traits.db_users}}"] } }"#,
            "spec.allow.db_users[0]",
            "unknown template namespace \"traits\"",
        ),
        (
            r#"{ allow: { db_users: ["{{internal}}"] } }"#,
            "spec.allow.db_users[0]",
            "bad trait name",
        ),
        (
            r#"{ allow: { db_users: ["{{email.local(external.email)}}"] } }"#,
            "spec.allow.db_users[0]",
            "unknown template namespace",
        ),
        (
            r#"{ allow: { db_labels: { env: "{{external.e x}}" } } }"#,
            "spec.allow.db_labels.env[0]",
            "bad trait name",
        ),
        (
            r#"{ allow: { db_names: [""] } }"#,
            "spec.allow.db_names[0]",
            "empty value",
        ),
        (
            r#"{ allow: { db_labels: { env: [] } } }"#,
            "spec.allow.db_labels.env",
            "at least one value",
        ),
        (
            r#"{ allow: { db_labels: { "*": prod } } }"#,
            "spec.allow.db_labels.*",
            "only works with the value \"*\"",
        ),
        (
            r#"{ allow: { db_labels: { "": x } } }"#,
            "spec.allow.db_labels",
            "label key is empty",
        ),
        (
            r#"{ deny: { db_labels: { "{{internal.k}}": x } } }"#,
            "spec.deny.db_labels.{{internal.k}}",
            "not keys",
        ),
        (
            r#"{ allow: { rules: [ { resources: [users], verbs: [read] } ] } }"#,
            "spec.allow.rules[0].resources[0]",
            "unknown \"users\": use one of user, role, token, lock, database, cluster, event, \
             session, cert, or *",
        ),
        (
            r#"{ deny: { rules: [ { resources: [user], verbs: [read, write] } ] } }"#,
            "spec.deny.rules[0].verbs[1]",
            "unknown \"write\": use one of list, read, create, update, delete, or *",
        ),
        (
            r#"{ allow: { rules: [ { resources: [], verbs: [read] } ] } }"#,
            "spec.allow.rules[0].resources",
            "list at least one",
        ),
    ];
    for (spec, path, fragment) in cases {
        let err = with_spec(spec).validate().unwrap_err();
        let problem = err
            .problems()
            .iter()
            .find(|p| p.path == *path)
            .unwrap_or_else(|| panic!("{spec}: no problem at {path}: {err}"));
        assert!(
            problem.message.contains(fragment),
            "{spec}: {problem} (wanted {fragment:?})"
        );
        assert!(err.to_string().starts_with("invalid role \"r\": "), "{err}");
    }
}

#[test]
fn validation_reports_every_problem_at_once() {
    let mut role = with_spec(r#"{ allow: { db_users: ["{{x.y}}", "^(a$"] } }"#);
    role.kind = "user".into();
    role.version = "v2".into();
    role.metadata.name = "bad name".into();
    let err = role.validate().unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "kind",
            "version",
            "metadata.name",
            "spec.allow.db_users[0]",
            "spec.allow.db_users[1]"
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "invalid role \"bad name\": kind: must be \"role\", not \"user\"; \
             version: must be \"v1\", not \"v2\"; metadata.name: invalid role name \"bad name\""
        ),
        "{msg}"
    );
    assert_eq!(err.role(), "bad name");
}

#[test]
fn from_yaml_runs_validation() {
    let msg = parse_err(
        "kind: role\nversion: v1\nmetadata: { name: r }\nspec: { allow: { db_users: [\"{{foo.x}}\"] } }\n",
    );
    assert!(
        msg.contains("spec.allow.db_users[0]: unknown template namespace \"foo\""),
        "{msg}"
    );
    let msg = parse_err("kind: user\nversion: v1\nmetadata: { name: r }\n");
    assert!(msg.contains("kind: must be \"role\""), "{msg}");
}

#[test]
fn valid_values_pass_validation() {
    let role = with_spec(
        r#"{ allow: { db_labels: { "*": "*", env: ["dev-*", "^(prod|stage)-[0-9]+$", "{{ external.env }}"] },
                      db_users: ["{{internal.db_users}}", "pre-{{internal.x}}-suf", "^{{internal.x}}-[a-z]+$", "*", "app-*"],
                      db_names: ["{{external.team}}_db", "^$"],
                      rules: [ { resources: ["*"], verbs: ["*"] } ] } }"#,
    );
    assert_eq!(role.validate(), Ok(()));
}

#[test]
fn templates_parse() {
    // (value, expected (prefix, trait, suffix) or None)
    type Parts = Option<(&'static str, &'static str, &'static str)>;
    let cases: &[(&str, Parts)] = &[
        ("readonly", None),
        ("*", None),
        ("{{internal.db_users}}", Some(("", "db_users", ""))),
        ("{{ external.team }}", Some(("", "team", ""))),
        ("pre-{{internal.x}}-suf", Some(("pre-", "x", "-suf"))),
        (
            "{{external.http://schemas/claims/name}}",
            Some(("", "http://schemas/claims/name", "")),
        ),
        ("{{internal.a.b}}", Some(("", "a.b", ""))),
    ];
    for (value, want) in cases {
        let got = parse_template(value)
            .unwrap()
            .map(|t| (t.prefix, t.trait_name, t.suffix));
        assert_eq!(got, *want, "{value}");
    }
}

#[test]
fn presets_are_valid_and_as_documented() {
    for role in presets() {
        assert_eq!(role.validate(), Ok(()), "{}", role.name());
        assert!(!role.metadata.description.is_empty());
        let again = Role::from_yaml(&role.to_yaml().unwrap()).unwrap();
        assert_eq!(again, role, "YAML round trip of {}", role.name());
    }
    let names: Vec<String> = presets().iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(names, ["access", "editor", "auditor"]);

    let access = preset_access();
    assert_eq!(
        access.spec.allow.db_labels,
        LabelSelector::from([("*".into(), strings(&["*"]))])
    );
    assert_eq!(
        access.spec.allow.db_users,
        strings(&["{{internal.db_users}}"])
    );
    assert_eq!(
        access.spec.allow.db_names,
        strings(&["{{internal.db_names}}"])
    );
    assert!(access.spec.allow.rules.is_empty());
    assert!(access.spec.deny.is_empty());

    let editor = preset_editor();
    assert_eq!(
        editor.spec.allow.rules,
        vec![Rule::new(
            &["user", "role", "token", "lock", "database", "cluster", "cert"],
            &KNOWN_VERBS
        )]
    );
    assert!(editor.spec.allow.db_labels.is_empty());

    let auditor = preset_auditor();
    assert_eq!(
        auditor.spec.allow.rules,
        vec![Rule::new(&["event", "session"], &["list", "read"])]
    );
    assert!(auditor.spec.allow.db_labels.is_empty());
}

#[test]
fn design_example_round_trips_through_yaml() {
    let role = Role::from_yaml(DESIGN_EXAMPLE).unwrap();
    let yaml = role.to_yaml().unwrap();
    assert_eq!(Role::from_yaml(&yaml).unwrap(), role);
    assert!(yaml.contains("max_session_ttl: 8h"), "{yaml}");
}

#[test]
fn yaml_stream_reads_several_roles() {
    let stream = format!(
        "{DESIGN_EXAMPLE}---\n---\n{}",
        preset_auditor().to_yaml().unwrap()
    );
    let roles = Role::from_yaml_stream(&stream).unwrap();
    let names: Vec<&str> = roles.iter().map(Role::name).collect();
    assert_eq!(names, ["developer", "auditor"]);

    let bad = format!(
        "{DESIGN_EXAMPLE}---\nkind: role\nversion: v1\nmetadata: {{ name: x }}\nbogus: 1\n"
    );
    let msg = Role::from_yaml_stream(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("document 2") && msg.contains("unknown field `bogus`"),
        "{msg}"
    );
}
