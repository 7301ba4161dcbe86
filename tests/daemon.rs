//! The daemon and pcctl as an operator meets them: restarts keep the cluster, mistakes in the
//! config stop the start with a precise message, secrets stay out of the log, and every pcctl
//! command round-trips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::fs;
use std::process::Command;

use common::{assert_failure, assert_success, bin, run, Cluster};

fn pins(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| l.contains(" pin ") || l.trim_start().starts_with("ssh "))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn restart_reuses_cas_and_state() {
    let mut cluster = Cluster::start();
    let before = cluster.pcctl_ok(&["status"]);
    cluster.pcctl_ok(&["users", "add", "alice", "--roles=access", "--db-users=app"]);
    cluster.restart();
    let after = cluster.pcctl_ok(&["status"]);
    assert_eq!(pins(&before).len(), 4, "{before}");
    assert_eq!(pins(&before), pins(&after), "CAs must survive a restart");
    let users = cluster.pcctl_ok(&["users", "ls"]);
    assert!(
        users.contains("alice") && users.contains("db_users=app"),
        "{users}"
    );
    // The admin identity is rewritten at each start and still works.
    cluster.pcctl_ok(&["tokens", "ls"]);
}

#[test]
fn secrets_never_reach_the_log() {
    let cluster = Cluster::start_with(
        "log: { level: trace }\nauth_service: { authentication: { second_factor: \"on\" } }",
    );
    let password = "correct-horse-battery-staple-42";
    let mut add = Command::new(bin("pcctl"));
    add.arg("-d").arg(cluster.data_dir()).args([
        "users",
        "add",
        "bob",
        "--roles=editor",
        "--password-stdin",
        "--format=json",
    ]);
    let out = {
        use std::io::Write;
        let mut child = add
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let created: serde_json::Value =
        serde_json::from_str(&assert_success("users add bob", &out)).unwrap();
    let totp_secret = created["totp"]["secret"].as_str().unwrap().to_owned();

    let invite_out =
        cluster.pcctl_ok(&["users", "add", "carol", "--roles=access", "--format=json"]);
    let invite: serde_json::Value = serde_json::from_str(&invite_out).unwrap();
    let invite_token = invite["invite"]["token"].as_str().unwrap().to_owned();

    let token_out = cluster.pcctl_ok(&["tokens", "add", "--type=db", "--format=json"]);
    let token: serde_json::Value = serde_json::from_str(&token_out).unwrap();
    let join_token = token["token"].as_str().unwrap().to_owned();

    let prefix = cluster.dir().join("srv");
    cluster.pcctl_ok(&[
        "auth",
        "sign",
        "--format=db",
        "--host=localhost",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    let key_pem = fs::read_to_string(prefix.with_extension("key")).unwrap();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();

    let logs = cluster.logs();
    assert!(
        logs.contains("user created"),
        "the log should show activity:\n{logs}"
    );
    for (what, secret) in [
        ("password", password),
        ("TOTP secret", totp_secret.as_str()),
        ("invite token", invite_token.as_str()),
        ("join token", join_token.as_str()),
        ("private key", key_body.as_str()),
    ] {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret),
            "the {what} appears in the daemon log"
        );
    }
    assert!(
        !logs.contains("PRIVATE KEY"),
        "a private key appears in the daemon log"
    );
    // Nor in the backend's view of tokens: listings show ids only.
    let listed = cluster.pcctl_ok(&["tokens", "ls", "--format=json"]);
    assert!(!listed.contains(&join_token));
}

fn start_expecting_failure(dir: &std::path::Path, yaml: &str, extra: &[&str]) -> String {
    let config = dir.join("bad.yaml");
    fs::write(&config, yaml).unwrap();
    let mut cmd = Command::new(bin("portcullis"));
    cmd.arg("start").arg("-c").arg(&config).args(extra);
    let out = run(&mut cmd);
    let text = assert_failure(&format!("start with {yaml:?}"), &out);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.trim_start().starts_with("error:"), "{text}");
    stderr
}

#[test]
fn config_mistakes_stop_the_start_with_file_key_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_line = format!("data_dir: {}\n", data.display());
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{data_line}auth_service:\n  listen_adr: 127.0.0.1:0\n"),
            vec![
                "bad.yaml",
                "listen_adr",
                "unknown field",
                "portcullis configure",
            ],
        ),
        (
            format!("{data_line}auth_service:\n  authentication:\n    second_factor: maybe\n"),
            vec![
                "auth_service.authentication.second_factor",
                "on",
                "optional",
                "off",
            ],
        ),
        (
            format!("{data_line}auth_service:\n  authentication:\n    lockout_duration: ages\n"),
            vec!["lockout_duration", "30s"],
        ),
        (
            format!("{data_line}cluster_name: 'has space'\n"),
            vec!["cluster_name", "invalid cluster name"],
        ),
        (
            format!(
                "{data_line}auth_service: {{ enabled: false }}\nproxy_service:\n  enabled: true\n"
            ),
            vec!["proxy_service", "enable auth_service"],
        ),
        (format!("{data_line}version: v9\n"), vec!["version", "v1"]),
        ("data_dir: [unclosed\n".to_owned(), vec!["bad.yaml"]),
    ];
    for (yaml, words) in cases {
        let stderr = start_expecting_failure(dir.path(), &yaml, &[]);
        for w in words {
            assert!(stderr.contains(w), "{yaml:?}: expected {w:?} in: {stderr}");
        }
    }
    let stderr = start_expecting_failure(dir.path(), &data_line, &["--roles=auth,bogus"]);
    assert!(
        stderr.contains("bogus") && stderr.contains("auth, proxy, db"),
        "{stderr}"
    );
    assert!(!data.join("cluster.db").exists() || fs::read_dir(&data).is_ok());
}

#[test]
fn sample_config_runs_with_flag_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let sample = assert_success(
        "configure",
        &run(Command::new(bin("portcullis")).arg("configure")),
    );
    let config = dir.path().join("portcullis.yaml");
    fs::write(&config, &sample).unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(bin("portcullis"))
        .arg("start")
        .arg("-c")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--auth-listen",
            "127.0.0.1:0",
            "--cluster-name",
            "from-flags",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr_file = data.join("admin/auth_addr");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !addr_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut status = Command::new(bin("pcctl"));
    status.arg("-d").arg(&data).arg("status");
    let out = run(&mut status);
    let _ = child.kill();
    let _ = child.wait();
    let text = assert_success("pcctl status", &out);
    assert!(
        text.contains("from-flags"),
        "flags override the file:\n{text}"
    );
}

#[test]
fn pcctl_works_remotely_with_an_identity_file() {
    let cluster = Cluster::start();
    let elsewhere = tempfile::tempdir().unwrap();
    let identity = elsewhere.path().join("admin.pem");
    fs::copy(cluster.data_dir().join("admin/identity.pem"), &identity).unwrap();
    let mut cmd = Command::new(bin("pcctl"));
    cmd.arg("-d")
        .arg(elsewhere.path().join("no-data-here"))
        .arg(format!("--auth-server={}", cluster.auth_addr()))
        .arg(format!("--identity={}", identity.display()))
        .arg("status");
    let text = assert_success("remote status", &run(&mut cmd));
    assert!(text.contains(common::CLUSTER_NAME), "{text}");

    // Without an identity, pcctl says where it looked and what to do.
    let mut none = Command::new(bin("pcctl"));
    none.arg("-d")
        .arg(elsewhere.path().join("no-data-here"))
        .arg("status");
    let out = run(&mut none);
    let err = assert_failure("status without identity", &out);
    assert!(
        err.contains("no admin identity") && err.contains("--identity"),
        "{err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1,
        "one line"
    );
}

#[test]
fn every_pcctl_command_round_trips() {
    let cluster = Cluster::start();
    // Users.
    let added = cluster.pcctl_ok(&[
        "users",
        "add",
        "alice",
        "--roles=access",
        "--db-users=app,ro",
        "--db-names=shop",
    ]);
    assert!(added.contains("pc invite accept"), "{added}");
    let ls = cluster.pcctl_ok(&["users", "ls"]);
    assert!(
        ls.contains("alice") && ls.contains("invited") && ls.contains("db_names=shop"),
        "{ls}"
    );
    cluster.pcctl_ok(&[
        "users",
        "update",
        "alice",
        "--set-roles=access,auditor",
        "--set-db-users=ro",
    ]);
    let one = cluster.pcctl_ok(&["get", "user", "alice", "--format=json"]);
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(v["roles"], serde_json::json!(["access", "auditor"]));
    assert_eq!(v["traits"]["db_users"], serde_json::json!(["ro"]));
    let reset = cluster.pcctl_ok(&["users", "reset", "alice"]);
    assert!(reset.contains("Invite for"), "{reset}");
    let dup = assert_failure(
        "duplicate user",
        &cluster.pcctl(&["users", "add", "alice", "--roles=access"]),
    );
    assert!(dup.contains("already exists"), "{dup}");

    // Roles: create, refuse duplicate, replace, export as YAML and re-import.
    let role = cluster.dir().join("dev.yaml");
    fs::write(&role, "kind: role\nversion: v1\nmetadata: { name: developer }\nspec:\n  options: { max_session_ttl: 8h }\n  allow:\n    db_labels: { env: [staging, dev] }\n    db_users: [\"{{internal.db_users}}\"]\n    db_names: [\"*\"]\n").unwrap();
    cluster.pcctl_ok(&["create", "-f", role.to_str().unwrap()]);
    let again = assert_failure(
        "role exists",
        &cluster.pcctl(&["create", "-f", role.to_str().unwrap()]),
    );
    assert!(again.contains("--force"), "{again}");
    cluster.pcctl_ok(&["create", "-f", role.to_str().unwrap(), "--force"]);
    let yaml = cluster.pcctl_ok(&["get", "roles", "--format=yaml"]);
    let exported = cluster.dir().join("all.yaml");
    fs::write(&exported, &yaml).unwrap();
    let replaced = cluster.pcctl_ok(&["create", "-f", exported.to_str().unwrap(), "--force"]);
    assert_eq!(
        replaced.lines().count(),
        4,
        "access, auditor, developer, editor:\n{replaced}"
    );
    let text = cluster.pcctl_ok(&["get", "roles"]);
    assert!(
        text.contains("developer") && text.contains("env=staging|dev"),
        "{text}"
    );
    let bad = cluster.dir().join("bad.yaml");
    fs::write(&bad, "kind: role\nversion: v1\nmetadata: { name: x }\nspec:\n  allow:\n    db_users: [\"^(unclosed$\"]\n").unwrap();
    let err = assert_failure(
        "bad role",
        &cluster.pcctl(&["create", "-f", bad.to_str().unwrap()]),
    );
    assert!(err.contains("spec.allow.db_users"), "{err}");
    cluster.pcctl_ok(&["rm", "role/developer"]);
    assert_failure(
        "removed role",
        &cluster.pcctl(&["get", "role", "developer"]),
    );

    // Tokens.
    let made = cluster.pcctl_ok(&["tokens", "add", "--type=db", "--ttl=1h", "--single-use"]);
    assert!(
        made.contains("portcullis start --roles=db --token=") && made.contains("--ca-pin=sha256:"),
        "{made}"
    );
    let listed = cluster.pcctl_ok(&["tokens", "ls", "--format=json"]);
    let list: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["single_use"], serde_json::json!(true));
    cluster.pcctl_ok(&["rm", &format!("token/{}", &id[..8])]);
    assert_eq!(
        cluster.pcctl_ok(&["tokens", "ls", "--format=json"]).trim(),
        "[]"
    );
    let err = assert_failure(
        "bad ttl",
        &cluster.pcctl(&["tokens", "add", "--type=db", "--ttl=soon"]),
    );
    assert!(err.contains("--ttl"), "{err}");

    // Users removed last.
    cluster.pcctl_ok(&["users", "rm", "alice"]);
    let err = assert_failure("gone", &cluster.pcctl(&["users", "rm", "alice"]));
    assert!(err.contains("not found"), "{err}");
}
