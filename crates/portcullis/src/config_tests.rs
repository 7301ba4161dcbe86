use std::collections::BTreeSet;

use super::*;
use crate::sample::SAMPLE_CONFIG;

fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(k.clone());
                key_paths(child, &p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn sample_parses_to_the_defaults() {
    let mut parsed = Config::from_yaml(SAMPLE_CONFIG, "sample").unwrap();
    let mut defaults = Config::default();
    // data_dir's default depends on who runs the test.
    parsed.data_dir = PathBuf::new();
    defaults.data_dir = PathBuf::new();
    assert_eq!(parsed, defaults);
}

#[test]
fn sample_mentions_every_key() {
    let mut config = Config::default();
    config.db_service.databases.push(DatabaseConfig {
        name: "orders".into(),
        protocol: DbProtocol::Postgres,
        uri: "10.0.0.5:5432".into(),
        description: String::new(),
        tls: DatabaseTlsConfig::default(),
        static_labels: [("env".to_owned(), "staging".to_owned())].into(),
        dynamic_labels: vec![DynamicLabel {
            name: "load".into(),
            command: vec!["uptime".into()],
            period: Duration::from_mins(1),
        }],
        passwords: [("app".to_owned(), "file:/etc/app.pass".to_owned())].into(),
        mysql: crate::config::DatabaseMysqlConfig {
            allow_load_data_local: true,
        },
        audit_queries: false,
    });
    let mut keys = BTreeSet::new();
    key_paths(&serde_json::to_value(&config).unwrap(), "", &mut keys);
    keys.remove("env"); // a label name in the example, not a key
    keys.remove("app"); // a db user in the example, not a key
    for key in keys {
        assert!(
            SAMPLE_CONFIG.contains(&format!("{key}:")),
            "the sample config does not mention {key:?}"
        );
    }
}

#[test]
fn empty_file_is_the_default() {
    let c = Config::from_yaml("", "x").unwrap();
    assert_eq!(c.version, "v1");
    assert!(c.auth_service.enabled);
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let cases = [
        (
            "auth_service:\n  listen_adr: 1.2.3.4:1\n",
            "auth_service",
            "listen_adr",
        ),
        (
            "auth_service:\n  listen_addr: nonsense\n",
            "auth_service.listen_addr",
            "socket address",
        ),
        ("log:\n  level: loud\n", "log.level", "unknown variant"),
        (
            "auth_service:\n  authentication:\n    second_factor: maybe\n",
            "auth_service.authentication.second_factor",
            "unknown variant",
        ),
        (
            "auth_service:\n  authentication:\n    lockout_duration: forever\n",
            "auth_service.authentication.lockout_duration",
            "30s",
        ),
        ("colour: blue\n", "test.yaml: colour", "unknown field"),
        ("- a\n- b\n", "(top level)", "expected"),
        (
            "db_service:\n  databases:\n    - name: x\n      protocol: oracle\n      uri: h:1\n",
            "db_service.databases[0].protocol",
            "unknown variant",
        ),
    ];
    for (yaml, path, words) in cases {
        let e = Config::from_yaml(yaml, "test.yaml").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("test.yaml: "), "{text}");
        assert!(text.contains(path), "{yaml:?}: {text}");
        assert!(text.contains(words), "{yaml:?}: {text}");
        assert!(text.contains("portcullis configure"), "{text}");
    }
}

#[test]
fn validation_collects_every_problem() {
    let yaml = "version: v2\ncluster_name: 'bad name'\ndata_dir: relative\nauth_service:\n  authentication:\n    max_login_attempts: 0\ndb_service:\n  databases:\n    - { name: a, protocol: postgres, uri: nohost }\n    - { name: a, protocol: redis, uri: h:6379 }\n";
    let c = Config::from_yaml(yaml, "t.yaml").unwrap();
    let e = c.validate("t.yaml").unwrap_err();
    let paths: Vec<&str> = e.problems.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "version",
        "cluster_name",
        "data_dir",
        "auth_service.authentication.max_login_attempts",
        "db_service.databases[0].uri",
        "db_service.databases[1].name",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    Config::default().validate("default").unwrap();
}
