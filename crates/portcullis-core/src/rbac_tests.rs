//! Table-driven tests for the RBAC checker: one table per rule in the module docs.

use super::*;
use crate::database::DbProtocol;
use crate::duration::Duration;
use crate::role::{preset_access, preset_auditor, preset_editor};
use proptest::prelude::*;
use std::time::Duration as Std;

// ---- helpers ----

/// A role named `name` whose `spec` is the given YAML flow mapping. Not validated, so tests can
/// also feed the checker roles that `validate` would refuse.
fn role(name: &str, spec: &str) -> Role {
    let yaml = format!("kind: role\nversion: v1\nmetadata: {{ name: {name} }}\nspec: {spec}\n");
    serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn db(name: &str, labels: &[(&str, &str)]) -> Database {
    Database {
        name: name.into(),
        protocol: DbProtocol::Postgres,
        uri: "localhost:5432".into(),
        description: String::new(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

fn traits(t: &[(&str, &[&str])]) -> Traits {
    t.iter()
        .map(|(k, vs)| ((*k).into(), vs.iter().map(|v| (*v).into()).collect()))
        .collect()
}

fn no_traits() -> Traits {
    Traits::new()
}

/// One `check_database` case.
struct DbCase {
    what: &'static str,
    roles: Vec<Role>,
    traits: Traits,
    db: Database,
    user: &'static str,
    name: Option<&'static str>,
    /// `None` = allowed; `Some(fragment)` = denied, and the audit reason contains `fragment`.
    denied: Option<&'static str>,
}

fn run(cases: Vec<DbCase>) {
    for c in cases {
        let checker = AccessChecker::new(c.roles, &c.traits);
        let got = checker.check_database(&c.db, c.user, c.name);
        match (got, c.denied) {
            (Ok(()), None) => {}
            (Err(e), Some(fragment)) => assert!(
                e.reason().contains(fragment),
                "{}: reason {:?} lacks {fragment:?}",
                c.what,
                e.reason()
            ),
            (got, _) => panic!("{}: got {got:?}, wanted denied={:?}", c.what, c.denied),
        }
    }
}

const DEV_X: &str = "{ allow: { db_labels: { env: dev }, db_users: [x], db_names: [a] } }";

// ---- deny first ----

#[test]
fn deny_rules_are_evaluated_first_and_any_match_denies() {
    let allow_all = role(
        "all",
        r#"{ allow: { db_labels: { "*": "*" }, db_users: ["*"], db_names: ["*"] } }"#,
    );
    let dev = db("orders", &[("env", "dev")]);
    let prod = db("orders", &[("env", "production")]);
    run(vec![
        DbCase {
            what: "deny db_labels beats an allow in the same role",
            roles: vec![role(
                "r",
                r#"{ allow: { db_labels: { "*": "*" }, db_users: ["*"], db_names: ["*"] },
                     deny: { db_labels: { env: production } } }"#,
            )],
            traits: no_traits(),
            db: prod.clone(),
            user: "x",
            name: Some("a"),
            denied: Some("role \"r\" denies database \"orders\""),
        },
        DbCase {
            what: "deny db_labels in another role beats an allow",
            roles: vec![
                allow_all.clone(),
                role("no-prod", "{ deny: { db_labels: { env: production } } }"),
            ],
            traits: no_traits(),
            db: prod.clone(),
            user: "x",
            name: Some("a"),
            denied: Some("role \"no-prod\""),
        },
        DbCase {
            what: "deny db_labels that do not match leave the allow in force",
            roles: vec![
                allow_all.clone(),
                role("no-prod", "{ deny: { db_labels: { env: production } } }"),
            ],
            traits: no_traits(),
            db: dev.clone(),
            user: "x",
            name: Some("a"),
            denied: None,
        },
        DbCase {
            what: "deny db_labels *:* denies every database, even one without labels",
            roles: vec![
                allow_all.clone(),
                role("lockdown", r#"{ deny: { db_labels: { "*": "*" } } }"#),
            ],
            traits: no_traits(),
            db: db("bare", &[]),
            user: "x",
            name: None,
            denied: Some("deny.db_labels"),
        },
        DbCase {
            what: "deny db_users applies on its own, whatever the labels",
            roles: vec![
                allow_all.clone(),
                role("no-su", "{ deny: { db_users: [postgres] } }"),
            ],
            traits: no_traits(),
            db: dev.clone(),
            user: "postgres",
            name: Some("a"),
            denied: Some("deny.db_users matches \"postgres\""),
        },
        DbCase {
            what: "deny db_users does not touch other users",
            roles: vec![
                allow_all.clone(),
                role("no-su", "{ deny: { db_users: [postgres] } }"),
            ],
            traits: no_traits(),
            db: dev.clone(),
            user: "app",
            name: Some("a"),
            denied: None,
        },
        DbCase {
            what: "deny db_names applies on its own",
            roles: vec![
                allow_all.clone(),
                role("no-sys", "{ deny: { db_names: [\"sys*\"] } }"),
            ],
            traits: no_traits(),
            db: dev.clone(),
            user: "x",
            name: Some("system"),
            denied: Some("deny.db_names matches \"system\""),
        },
        DbCase {
            what: "deny db_names is not checked when there is no db name",
            roles: vec![
                allow_all.clone(),
                role("no-names", "{ deny: { db_names: [\"*\"] } }"),
            ],
            traits: no_traits(),
            db: dev.clone(),
            user: "x",
            name: None,
            denied: None,
        },
        DbCase {
            what: "deny with a template expands from traits",
            roles: vec![
                allow_all.clone(),
                role(
                    "no-own",
                    "{ deny: { db_users: [\"{{internal.blocked}}\"] } }",
                ),
            ],
            traits: traits(&[("blocked", &["eve"])]),
            db: dev.clone(),
            user: "eve",
            name: None,
            denied: Some("deny.db_users"),
        },
        DbCase {
            what: "deny with a missing trait denies nothing",
            roles: vec![
                allow_all,
                role(
                    "no-own",
                    "{ deny: { db_users: [\"{{internal.blocked}}\"] } }",
                ),
            ],
            traits: no_traits(),
            db: dev,
            user: "eve",
            name: None,
            denied: None,
        },
    ]);
}

// ---- allow: one role must grant labels, user and name together ----

#[test]
fn allow_requires_one_role_to_grant_labels_user_and_name_together() {
    let a = role(
        "a",
        "{ allow: { db_labels: { env: dev }, db_users: [x], db_names: [shop] } }",
    );
    let b = role(
        "b",
        "{ allow: { db_labels: { env: prod }, db_users: [y], db_names: [billing] } }",
    );
    let dev = db("orders", &[("env", "dev")]);
    let prod = db("ledger", &[("env", "prod")]);
    let case = |what, d: &Database, user, name, denied| DbCase {
        what,
        roles: vec![a.clone(), b.clone()],
        traits: no_traits(),
        db: d.clone(),
        user,
        name,
        denied,
    };
    run(vec![
        case("role a grants x/shop on dev", &dev, "x", Some("shop"), None),
        case(
            "role b grants y/billing on prod",
            &prod,
            "y",
            Some("billing"),
            None,
        ),
        case(
            "y is only allowed on prod: not on dev",
            &dev,
            "y",
            Some("shop"),
            Some("do not allow db_user \"y\""),
        ),
        case(
            "billing is only allowed with role b: not on dev",
            &dev,
            "x",
            Some("billing"),
            Some("do not allow db_name \"billing\""),
        ),
        case(
            "x is only allowed on dev: not on prod",
            &prod,
            "x",
            Some("billing"),
            Some("do not allow db_user \"x\""),
        ),
        case(
            "no role matches env=qa",
            &db("qa1", &[("env", "qa")]),
            "x",
            Some("shop"),
            Some("no role's allow.db_labels match"),
        ),
    ]);
    // Same labels in both roles: user from one, name from the other is still refused.
    run(vec![DbCase {
        what: "db user and db name from different roles on the same database",
        roles: vec![
            role(
                "a",
                "{ allow: { db_labels: { env: dev }, db_users: [x], db_names: [a] } }",
            ),
            role(
                "b",
                "{ allow: { db_labels: { env: dev }, db_users: [y], db_names: [b] } }",
            ),
        ],
        traits: no_traits(),
        db: dev,
        user: "x",
        name: Some("b"),
        denied: Some("do not allow db_name \"b\""),
    }]);
}

// ---- label selectors ----

#[test]
fn label_selectors() {
    let users = r#"db_users: ["*"], db_names: ["*"]"#;
    let sel = |labels: &str| {
        role(
            "r",
            &format!("{{ allow: {{ db_labels: {labels}, {users} }} }}"),
        )
    };
    // (what, allow.db_labels, database labels, allowed?)
    type Labels = &'static [(&'static str, &'static str)];
    let cases: &[(&str, &str, Labels, bool)] = &[
        (
            "no allow.db_labels matches nothing",
            "{}",
            &[("env", "dev")],
            false,
        ),
        (
            "*:* matches a labelled database",
            r#"{ "*": "*" }"#,
            &[("env", "dev")],
            true,
        ),
        (
            "*:* matches a database without labels",
            r#"{ "*": "*" }"#,
            &[],
            true,
        ),
        (
            "a key requires the label",
            "{ env: dev }",
            &[("team", "dev")],
            false,
        ),
        (
            "the value must match",
            "{ env: dev }",
            &[("env", "prod")],
            false,
        ),
        ("exact value", "{ env: dev }", &[("env", "dev")], true),
        (
            "any listed value",
            "{ env: [staging, dev] }",
            &[("env", "dev")],
            true,
        ),
        (
            "none of the listed values",
            "{ env: [staging, dev] }",
            &[("env", "prod")],
            false,
        ),
        (
            "every key must match",
            "{ env: dev, team: a }",
            &[("env", "dev")],
            false,
        ),
        (
            "every key matching",
            "{ env: dev, team: a }",
            &[("env", "dev"), ("team", "a"), ("x", "y")],
            true,
        ),
        (
            "*:* with another key still needs it",
            r#"{ "*": "*", env: dev }"#,
            &[],
            false,
        ),
        (
            "value * needs the key present",
            "{ env: \"*\" }",
            &[],
            false,
        ),
        (
            "value * with the key present",
            "{ env: \"*\" }",
            &[("env", "")],
            true,
        ),
        (
            "keys are not globs",
            r#"{ "e*": dev }"#,
            &[("env", "dev")],
            false,
        ),
        (
            "empty value list matches nothing",
            "{ env: [] }",
            &[("env", "dev")],
            false,
        ),
    ];
    for (what, labels, db_labels, allowed) in cases {
        let checker = AccessChecker::new(vec![sel(labels)], &no_traits());
        let d = db("d", db_labels);
        assert_eq!(checker.can_access_database(&d), *allowed, "{what}");
        assert_eq!(
            checker.check_database(&d, "u", Some("n")).is_ok(),
            *allowed,
            "{what}"
        );
    }
}

// ---- value patterns ----

#[test]
fn value_patterns_globs_and_regexes() {
    // (pattern in allow.db_users, db user, allowed?)
    let cases: &[(&str, &str, bool)] = &[
        ("*", "anything", true),
        ("*", "", false), // empty db users are always refused
        ("readonly", "readonly", true),
        ("readonly", "readonly2", false),
        ("readonly", "Readonly", false),
        ("app-*", "app-", true),
        ("app-*", "app-reader", true),
        ("app-*", "xapp-reader", false),
        ("*-ro", "orders-ro", true),
        ("*-ro", "orders-rw", false),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXcYYb", false),
        ("a.b", "a.b", true),
        ("a.b", "axb", false),
        ("a?", "a?", true),
        ("a?", "ab", false),
        ("[ab]", "a", false),
        ("[ab]", "[ab]", true),
        ("x+", "xx", false),
        ("^(prod|stage)-[0-9]+$", "prod-12", true),
        ("^(prod|stage)-[0-9]+$", "prod-12x", false),
        ("^(prod|stage)-[0-9]+$", "dev-1", false),
        ("^a|b$", "a", true),
        ("^a|b$", "b", true),
        ("^a|b$", "ab", false),
        ("^a|b$", "xb", false),
        ("^a|b$", "ax", false),
        ("^[a-z]+$", "abc\n", false),
        ("^.*$", "multi\nline", false),
        ("^(?s).*$", "multi\nline", true),
        ("*", "multi\nline", true),
        ("a*", "a\nb", true),
        ("^$", "", false),
        ("^", "^", true),
        ("$", "$", true),
    ];
    for (pattern, user, allowed) in cases {
        let r = role(
            "r",
            &format!(r#"{{ allow: {{ db_labels: {{ "*": "*" }}, db_users: [{pattern:?}] }} }}"#),
        );
        let checker = AccessChecker::new(vec![r], &no_traits());
        let d = db("d", &[]);
        assert_eq!(
            checker.check_database(&d, user, None).is_ok(),
            *allowed,
            "db_user {pattern:?} vs {user:?}"
        );
    }
}

#[test]
fn label_values_use_the_same_patterns() {
    // (pattern in allow.db_labels.env, env label, allowed?)
    let cases: &[(&str, &str, bool)] = &[
        ("dev-*", "dev-eu", true),
        ("dev-*", "prod-eu", false),
        ("^(dev|qa)-[a-z]{2}$", "qa-us", true),
        ("^(dev|qa)-[a-z]{2}$", "qa-usa", false),
        ("prod", "prod", true),
        ("prod", "production", false),
    ];
    for (pattern, env, allowed) in cases {
        let r = role(
            "r",
            &format!(r#"{{ allow: {{ db_labels: {{ env: {pattern:?} }}, db_users: ["*"] }} }}"#),
        );
        let checker = AccessChecker::new(vec![r], &no_traits());
        assert_eq!(
            checker.can_access_database(&db("d", &[("env", env)])),
            *allowed,
            "{pattern:?} vs {env:?}"
        );
    }
}

#[test]
fn db_names_use_the_same_patterns() {
    // (pattern in allow.db_names, db name, allowed?)
    let cases: &[(&str, &str, bool)] = &[
        ("*", "shop", true),
        ("shop", "shop", true),
        ("shop", "shop2", false),
        ("shop_*", "shop_eu", true),
        ("^shop_(eu|us)$", "shop_us", true),
        ("^shop_(eu|us)$", "shop_uk", false),
    ];
    for (pattern, name, allowed) in cases {
        let r = role(
            "r",
            &format!(
                r#"{{ allow: {{ db_labels: {{ "*": "*" }}, db_users: [x], db_names: [{pattern:?}] }} }}"#
            ),
        );
        let checker = AccessChecker::new(vec![r], &no_traits());
        assert_eq!(
            checker
                .check_database(&db("d", &[]), "x", Some(name))
                .is_ok(),
            *allowed,
            "{pattern:?} vs {name:?}"
        );
    }
}

// ---- templates ----

#[test]
fn templates_expand_from_traits_and_trait_values_are_literal() {
    let t = traits(&[
        ("db_users", &["alice", "reports"]),
        ("team", &["red"]),
        ("star", &["*"]),
        ("regexy", &["^.*$"]),
        ("dotted", &["a.b"]),
        ("globby", &["re*"]),
        ("blank", &[""]),
        ("env", &["dev"]),
    ]);
    // (allow.db_users entry, db user, allowed?)
    let cases: &[(&str, &str, bool)] = &[
        ("{{internal.db_users}}", "alice", true),
        ("{{internal.db_users}}", "reports", true),
        ("{{internal.db_users}}", "bob", false),
        ("{{external.db_users}}", "alice", true),
        ("{{ internal.db_users }}", "reports", true),
        ("{{internal.missing}}", "alice", false),
        ("{{internal.missing}}", "", false),
        ("pre-{{internal.team}}", "pre-red", true),
        ("pre-{{internal.team}}", "red", false),
        ("{{internal.team}}-suf", "red-suf", true),
        ("pre-{{internal.team}}-suf", "pre-red-suf", true),
        ("pre-{{internal.team}}-suf", "pre-blue-suf", false),
        // A trait value is never a wildcard or a regex...
        ("{{internal.star}}", "*", true),
        ("{{internal.star}}", "anyone", false),
        ("{{internal.regexy}}", "^.*$", true),
        ("{{internal.regexy}}", "anyone", false),
        ("^{{internal.dotted}}-[0-9]+$", "a.b-1", true),
        ("^{{internal.dotted}}-[0-9]+$", "axb-1", false),
        ("app-*-{{internal.globby}}", "app-1-re*", true),
        ("app-*-{{internal.globby}}", "app-1-red", false),
        // ...but the role author's own wildcards and regexes keep working around it.
        ("app-*-{{internal.team}}", "app-1-red", true),
        ("app-*-{{internal.team}}", "app-1-blue", false),
        ("^{{internal.team}}_(ro|rw)$", "red_rw", true),
        ("^{{internal.team}}_(ro|rw)$", "red_admin", false),
        // Empty trait values grant nothing.
        ("pre-{{internal.blank}}", "pre-", false),
    ];
    for (pattern, user, allowed) in cases {
        let r = role(
            "r",
            &format!(r#"{{ allow: {{ db_labels: {{ "*": "*" }}, db_users: [{pattern:?}] }} }}"#),
        );
        let checker = AccessChecker::new(vec![r], &t);
        assert_eq!(
            checker.check_database(&db("d", &[]), user, None).is_ok(),
            *allowed,
            "{pattern:?} vs {user:?}"
        );
    }

    // Templates work in label values and db names too.
    let r = role(
        "r",
        r#"{ allow: { db_labels: { env: "{{external.env}}" }, db_users: [x], db_names: ["{{internal.team}}_db"] } }"#,
    );
    let checker = AccessChecker::new(vec![r], &t);
    assert!(checker
        .check_database(&db("d", &[("env", "dev")]), "x", Some("red_db"))
        .is_ok());
    assert!(!checker.can_access_database(&db("d", &[("env", "prod")])));
    assert!(checker
        .check_database(&db("d", &[("env", "dev")]), "x", Some("blue_db"))
        .is_err());
}

proptest! {
    /// Whatever a trait holds, `{{internal.x}}` allows exactly the trait's values.
    #[test]
    fn a_trait_value_only_matches_itself(value in "\\PC{1,12}", user in "\\PC{1,12}") {
        let r = role(
            "r",
            r#"{ allow: { db_labels: { "*": "*" }, db_users: ["{{internal.x}}", "pre-*-{{internal.x}}", "^{{internal.x}}$"] } }"#,
        );
        let checker = AccessChecker::new(vec![r], &traits(&[("x", &[value.as_str()])]));
        let allowed = checker.check_database(&db("d", &[]), &user, None).is_ok();
        let expected = user == value
            || user.strip_prefix("pre-").is_some_and(|rest| {
                rest.ends_with(&format!("-{value}")) && rest.len() > value.len()
            });
        prop_assert_eq!(allowed, expected);
    }

    /// A glob matches exactly what a straightforward reference matcher says.
    #[test]
    fn globs_match_like_the_reference(glob in "[ab*.?]{0,6}", s in "[ab.?]{1,6}") {
        prop_assume!(!glob.is_empty());
        let r = role(
            "r",
            &format!(r#"{{ allow: {{ db_labels: {{ "*": "*" }}, db_users: [{glob:?}] }} }}"#),
        );
        let checker = AccessChecker::new(vec![r], &no_traits());
        let got = checker.check_database(&db("d", &[]), &s, None).is_ok();
        prop_assert_eq!(got, reference_glob(glob.as_bytes(), s.as_bytes()));
    }
}

fn reference_glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            reference_glob(&p[1..], s) || (!s.is_empty() && reference_glob(p, &s[1..]))
        }
        (Some(a), Some(b)) if a == b => reference_glob(&p[1..], &s[1..]),
        _ => false,
    }
}

// ---- db name absent, empty db user ----

#[test]
fn without_a_db_name_only_labels_and_users_are_checked() {
    let no_names = role("r", "{ allow: { db_labels: { env: dev }, db_users: [x] } }");
    let d = db("cache", &[("env", "dev")]);
    let c = AccessChecker::new(vec![no_names], &no_traits());
    assert_eq!(c.check_database(&d, "x", None), Ok(()));
    assert!(c.check_database(&d, "y", None).is_err());
    let err = c.check_database(&d, "x", Some("0")).unwrap_err();
    assert!(err.reason().contains("do not allow db_name \"0\""));
    let empty = c.check_database(&d, "", None).unwrap_err();
    assert_eq!(
        empty.to_string(),
        "a db_user is required to connect to database \"cache\"; pass one with --db-user"
    );
}

// ---- invalid patterns fail closed ----

#[test]
fn invalid_patterns_match_nothing_in_allow_and_everything_in_deny() {
    let everything = r#"db_labels: { "*": "*" }, db_users: ["*"], db_names: ["*"]"#;
    // (what, role spec, allowed?)
    let cases: &[(&str, String, bool)] = &[
        (
            "bad regex in allow.db_users grants nothing",
            r#"{ allow: { db_labels: { "*": "*" }, db_users: ["^(x$"] } }"#.into(),
            false,
        ),
        (
            "bad regex in allow.db_labels grants nothing",
            r#"{ allow: { db_labels: { env: "^[$" }, db_users: ["*"] } }"#.into(),
            false,
        ),
        (
            "bad template in allow grants nothing",
            r#"{ allow: { db_labels: { "*": "*" }, db_users: ["{{internal.x"] } }"#.into(),
            false,
        ),
        (
            "*: non-* key in allow grants nothing",
            r#"{ allow: { db_labels: { "*": dev }, db_users: ["*"] } }"#.into(),
            false,
        ),
        (
            "oversized regex in allow grants nothing",
            r#"{ allow: { db_labels: { "*": "*" }, db_users: ["^x{100000}$"] } }"#.into(),
            false,
        ),
        (
            "bad regex in deny.db_users denies",
            format!(r#"{{ allow: {{ {everything} }}, deny: {{ db_users: ["^(x$"] }} }}"#),
            false,
        ),
        (
            "bad regex in deny.db_labels denies",
            format!(r#"{{ allow: {{ {everything} }}, deny: {{ db_labels: {{ env: "^[$" }} }} }}"#),
            false,
        ),
        (
            "bad template in deny denies",
            format!(r#"{{ allow: {{ {everything} }}, deny: {{ db_names: ["x}}}}"] }} }}"#),
            false,
        ),
        (
            "*: non-* key in deny denies",
            format!(r#"{{ allow: {{ {everything} }}, deny: {{ db_labels: {{ "*": prod }} }} }}"#),
            false,
        ),
        (
            "control: the same allow without the broken deny",
            format!(r#"{{ allow: {{ {everything} }} }}"#),
            true,
        ),
    ];
    for (what, spec, allowed) in cases {
        let r = role("r", spec);
        assert!(
            r.validate().is_err() || *allowed,
            "{what}: validate should refuse it"
        );
        let checker = AccessChecker::new(vec![r], &no_traits());
        assert_eq!(
            checker
                .check_database(&db("d", &[("env", "dev")]), "x", Some("n"))
                .is_ok(),
            *allowed,
            "{what}"
        );
    }
}

// ---- can_access_database ----

#[test]
fn can_access_database_checks_labels_only() {
    let d = db("orders", &[("env", "dev")]);
    // (what, roles, visible?)
    let cases: Vec<(&str, Vec<Role>, bool)> = vec![
        ("no roles", vec![], false),
        (
            "labels allowed, no db users at all",
            vec![role("r", "{ allow: { db_labels: { env: dev } } }")],
            true,
        ),
        (
            "deny db_users does not hide the database",
            vec![role(
                "r",
                r#"{ allow: { db_labels: { env: dev }, db_users: [x] }, deny: { db_users: ["*"] } }"#,
            )],
            true,
        ),
        (
            "deny db_labels hides it",
            vec![
                role("r", "{ allow: { db_labels: { env: dev } } }"),
                role("d", "{ deny: { db_labels: { env: dev } } }"),
            ],
            false,
        ),
        (
            "labels not allowed",
            vec![role("r", "{ allow: { db_labels: { env: prod } } }")],
            false,
        ),
    ];
    for (what, roles, visible) in cases {
        let checker = AccessChecker::new(roles, &no_traits());
        assert_eq!(checker.can_access_database(&d), visible, "{what}");
    }
}

// ---- listings ----

#[test]
fn allowed_db_users_and_names_for_listings() {
    let t = traits(&[("db_users", &["alice", "admin"]), ("db_names", &["shop"])]);
    let roles = vec![
        role(
            "a",
            r#"{ allow: { db_labels: { env: dev }, db_users: ["{{internal.db_users}}", readonly, "*"], db_names: ["{{internal.db_names}}", "app_*"] } }"#,
        ),
        role(
            "b",
            r#"{ allow: { db_labels: { env: dev }, db_users: [readonly, "{{internal.nothing}}"], db_names: [shop] } }"#,
        ),
        role(
            "c",
            "{ allow: { db_labels: { env: prod }, db_users: [prod_only], db_names: [ledger] } }",
        ),
        role(
            "d",
            r#"{ allow: { db_labels: { env: dev }, db_users: ["^(broken$"] }, deny: { db_users: [admin], db_names: ["app_*"] } }"#,
        ),
    ];
    let checker = AccessChecker::new(roles.clone(), &t);
    let dev = db("orders", &[("env", "dev")]);
    assert_eq!(checker.allowed_db_users(&dev), ["*", "alice", "readonly"]);
    assert_eq!(checker.allowed_db_names(&dev), ["shop"]);
    let prod = db("ledger", &[("env", "prod")]);
    assert_eq!(checker.allowed_db_users(&prod), ["prod_only"]);
    assert_eq!(checker.allowed_db_names(&prod), ["ledger"]);
    assert!(checker.allowed_db_users(&db("x", &[])).is_empty());

    // A database hidden by deny labels lists nothing.
    let mut with_deny = roles;
    with_deny.push(role("no-dev", "{ deny: { db_labels: { env: dev } } }"));
    let checker = AccessChecker::new(with_deny, &t);
    assert!(checker.allowed_db_users(&dev).is_empty());
    assert!(checker.allowed_db_names(&dev).is_empty());

    // deny "*" empties the list.
    let checker = AccessChecker::new(
        vec![role(
            "r",
            r#"{ allow: { db_labels: { env: dev }, db_users: [a, "*"] }, deny: { db_users: ["*"] } }"#,
        )],
        &t,
    );
    assert!(checker.allowed_db_users(&dev).is_empty());
}

// ---- admin rules ----

#[test]
fn admin_rules() {
    // (what, roles, resource, verb, allowed?)
    let cases: Vec<(&str, Vec<Role>, &str, &str, bool)> = vec![
        ("no roles", vec![], "user", "list", false),
        (
            "exact resource and verb",
            vec![role("r", "{ allow: { rules: [ { resources: [user], verbs: [list] } ] } }")],
            "user",
            "list",
            true,
        ),
        (
            "other verb",
            vec![role("r", "{ allow: { rules: [ { resources: [user], verbs: [list] } ] } }")],
            "user",
            "delete",
            false,
        ),
        (
            "other resource",
            vec![role("r", "{ allow: { rules: [ { resources: [user], verbs: [list] } ] } }")],
            "role",
            "list",
            false,
        ),
        (
            "resource *",
            vec![role("r", r#"{ allow: { rules: [ { resources: ["*"], verbs: [read] } ] } }"#)],
            "token",
            "read",
            true,
        ),
        (
            "verb *",
            vec![role("r", r#"{ allow: { rules: [ { resources: [lock], verbs: ["*"] } ] } }"#)],
            "lock",
            "delete",
            true,
        ),
        (
            "resource and verb from different rules do not combine",
            vec![role(
                "r",
                "{ allow: { rules: [ { resources: [user], verbs: [list] }, { resources: [role], verbs: [delete] } ] } }",
            )],
            "user",
            "delete",
            false,
        ),
        (
            "deny in another role wins",
            vec![
                role("r", r#"{ allow: { rules: [ { resources: ["*"], verbs: ["*"] } ] } }"#),
                role("d", "{ deny: { rules: [ { resources: [role], verbs: [delete] } ] } }"),
            ],
            "role",
            "delete",
            false,
        ),
        (
            "deny of a different verb leaves the allow",
            vec![
                role("r", r#"{ allow: { rules: [ { resources: ["*"], verbs: ["*"] } ] } }"#),
                role("d", "{ deny: { rules: [ { resources: [role], verbs: [delete] } ] } }"),
            ],
            "role",
            "read",
            true,
        ),
        (
            "deny * wins over everything",
            vec![role(
                "r",
                r#"{ allow: { rules: [ { resources: ["*"], verbs: ["*"] } ] }, deny: { rules: [ { resources: ["*"], verbs: ["*"] } ] } }"#,
            )],
            "cluster",
            "read",
            false,
        ),
    ];
    for (what, roles, resource, verb, allowed) in cases {
        let checker = AccessChecker::new(roles, &no_traits());
        assert_eq!(
            checker.check_rule(resource, verb).is_ok(),
            allowed,
            "{what}"
        );
    }
}

// ---- presets ----

#[test]
fn preset_roles_behave_as_documented() {
    let t = traits(&[("db_users", &["app"]), ("db_names", &["shop"])]);
    let access = AccessChecker::new(vec![preset_access()], &t);
    for d in [db("bare", &[]), db("prod", &[("env", "production")])] {
        assert!(access.can_access_database(&d));
        assert_eq!(access.check_database(&d, "app", Some("shop")), Ok(()));
        assert_eq!(access.check_database(&d, "app", None), Ok(()));
        assert!(access.check_database(&d, "postgres", Some("shop")).is_err());
        assert!(access.check_database(&d, "app", Some("other")).is_err());
        assert_eq!(access.allowed_db_users(&d), ["app"]);
        assert_eq!(access.allowed_db_names(&d), ["shop"]);
    }
    // Without traits the access role reaches no account.
    let bare = AccessChecker::new(vec![preset_access()], &no_traits());
    assert!(bare.check_database(&db("d", &[]), "app", None).is_err());
    for (resource, verb) in [("user", "list"), ("event", "read")] {
        assert!(access.check_rule(resource, verb).is_err());
    }

    let editor = AccessChecker::new(vec![preset_editor()], &t);
    assert!(!editor.can_access_database(&db("d", &[])));
    for resource in [
        "user", "role", "token", "lock", "database", "cluster", "cert",
    ] {
        for verb in ["list", "read", "create", "update", "delete"] {
            assert_eq!(
                editor.check_rule(resource, verb),
                Ok(()),
                "{resource} {verb}"
            );
        }
    }
    for resource in ["event", "session"] {
        assert!(editor.check_rule(resource, "read").is_err(), "{resource}");
    }

    let auditor = AccessChecker::new(vec![preset_auditor()], &t);
    assert!(!auditor.can_access_database(&db("d", &[])));
    for (resource, verb, allowed) in [
        ("event", "list", true),
        ("event", "read", true),
        ("session", "list", true),
        ("session", "read", true),
        ("event", "delete", false),
        ("session", "update", false),
        ("user", "read", false),
    ] {
        assert_eq!(
            auditor.check_rule(resource, verb).is_ok(),
            allowed,
            "{resource} {verb}"
        );
    }
}

// ---- options and session TTL ----

#[test]
fn options_merge_most_restrictive() {
    let opts = |spec: &str| role("r", &format!("{{ options: {spec} }}"));
    let h = |n: u64| Some(Std::from_secs(n * 3600));
    let m = |n: u64| Some(Std::from_secs(n * 60));
    // (what, roles, expected)
    let cases: Vec<(&str, Vec<Role>, EffectiveOptions)> = vec![
        ("no roles", vec![], EffectiveOptions::default()),
        ("nothing set", vec![opts("{}")], EffectiveOptions::default()),
        (
            "smallest durations win; unset does not count",
            vec![
                opts("{ max_session_ttl: 8h, client_idle_timeout: 30m }"),
                opts("{ max_session_ttl: 2h }"),
                opts("{ client_idle_timeout: 1h }"),
                opts("{}"),
            ],
            EffectiveOptions {
                max_session_ttl: h(2),
                client_idle_timeout: m(30),
                ..Default::default()
            },
        ),
        (
            "booleans if any role sets them",
            vec![
                opts("{ disconnect_expired_cert: false, require_mfa: true }"),
                opts("{ disconnect_expired_cert: true, require_mfa: false }"),
            ],
            EffectiveOptions {
                disconnect_expired_cert: true,
                require_mfa: true,
                ..Default::default()
            },
        ),
        (
            "false everywhere stays false",
            vec![opts(
                "{ disconnect_expired_cert: false, require_mfa: false }",
            )],
            EffectiveOptions::default(),
        ),
    ];
    for (what, roles, want) in cases {
        assert_eq!(
            AccessChecker::new(roles, &no_traits()).options(),
            want,
            "{what}"
        );
    }
}

#[test]
fn session_ttl_is_capped() {
    let with_max = |d: Option<Duration>| {
        let mut r = Role::new("r");
        r.spec.options.max_session_ttl = d;
        AccessChecker::new(vec![r], &no_traits())
    };
    let h = |n: u64| Std::from_secs(n * 3600);
    // (max_session_ttl, requested, expected)
    let cases: &[(Option<u64>, Option<u64>, u64)] = &[
        (None, None, 12),
        (None, Some(1), 1),
        (None, Some(48), 12),
        (Some(8), None, 8),
        (Some(8), Some(4), 4),
        (Some(8), Some(10), 8),
        (Some(30), None, 12),
        (Some(30), Some(20), 20),
        (Some(30), Some(40), 30),
    ];
    for (max, requested, want) in cases {
        let checker = with_max(max.map(Duration::from_hours));
        assert_eq!(
            checker.session_ttl(requested.map(h)),
            h(*want),
            "max {max:?} requested {requested:?}"
        );
    }
    assert_eq!(DEFAULT_SESSION_TTL, h(12));
}

// ---- what users and auditors are told ----

#[test]
fn denial_messages_say_what_to_do_and_keep_role_names_out() {
    let roles = vec![
        role("dev-access", DEV_X),
        role("no-prod", "{ deny: { db_labels: { env: prod } } }"),
        role(
            "ops",
            "{ allow: { rules: [ { resources: [user], verbs: [list] } ] } }",
        ),
    ];
    let c = AccessChecker::new(roles, &no_traits());
    let dev = db("orders", &[("env", "dev")]);
    // (result, Display, reason)
    let cases = [
        (
            c.check_database(&dev, "y", Some("a")),
            "ask an administrator for a role that allows db_user \"y\" on database \"orders\"",
            "roles matching database \"orders\" by labels (\"dev-access\") do not allow db_user \"y\"",
        ),
        (
            c.check_database(&dev, "x", Some("b")),
            "ask an administrator for a role that allows db_user \"x\" with db_name \"b\" on database \"orders\"",
            "roles allowing db_user \"x\" on database \"orders\" (\"dev-access\") do not allow db_name \"b\"",
        ),
        (
            c.check_database(&db("ledger", &[("env", "qa")]), "x", None),
            "no role allows database \"ledger\"; ask an administrator for a role whose db_labels match it",
            "no role's allow.db_labels match database \"ledger\" (roles: \"dev-access\", \"no-prod\", \"ops\")",
        ),
        (
            c.check_database(&db("ledger", &[("env", "prod")]), "x", Some("a")),
            "access to database \"ledger\" as db_user \"x\" with db_name \"a\" is denied by your roles; ask an administrator if you need it",
            "role \"no-prod\" denies database \"ledger\" as db_user \"x\" with db_name \"a\": deny.db_labels match the database",
        ),
        (
            c.check_rule("role", "delete"),
            "you may not delete role; ask an administrator for a role with a rule allowing verb \"delete\" on resource \"role\"",
            "no role allows verb \"delete\" on resource \"role\" (roles: \"dev-access\", \"no-prod\", \"ops\")",
        ),
    ];
    for (result, display, reason) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), display);
        assert_eq!(err.reason(), reason);
        for name in ["dev-access", "no-prod", "ops"] {
            assert!(!err.to_string().contains(name), "{err} leaks {name}");
        }
    }

    let c = AccessChecker::new(
        vec![role(
            "locked",
            "{ deny: { rules: [ { resources: [user], verbs: [\"*\"] } ] } }",
        )],
        &no_traits(),
    );
    let err = c.check_rule("user", "create").unwrap_err();
    assert_eq!(
        err.to_string(),
        "create on user is denied by your roles; ask an administrator if you need it"
    );
    assert_eq!(
        err.reason(),
        "role \"locked\" denies verb \"create\" on resource \"user\""
    );
    // User-supplied values are quoted, so control characters cannot forge log lines.
    let c = AccessChecker::new(vec![role("r", DEV_X)], &no_traits());
    let err = c
        .check_database(&db("orders", &[("env", "dev")]), "a\nb", None)
        .unwrap_err();
    assert!(err.to_string().contains("\"a\\nb\"") && !err.to_string().contains('\n'));
}
