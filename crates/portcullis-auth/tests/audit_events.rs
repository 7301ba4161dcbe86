//! Administrative changes, logins, certificates and joins leave audit events naming who did
//! it, and no event carries a password, token or key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::*;
use portcullis_api::{CreateTokenResponse, InviteView, JoinResponse, LockView};
use portcullis_auth::config::SecondFactor;
use portcullis_ca::KeyPair;
use serde_json::{json, Value};

/// Every event written so far, in order.
fn events(dir: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "events.log")
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn raw_log(dir: &std::path::Path) -> String {
    events(dir)
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The one event with `event` and `code` matching `pred`.
#[track_caller]
fn find<'a>(all: &'a [Value], event: &str, code: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = all
        .iter()
        .filter(|e| e["event"] == event && e["code"] == code && pred(e))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {event} {code} matching, found {}: {all:#?}",
        found.len()
    );
    found[0]
}

#[tokio::test]
async fn changes_logins_and_certificates_are_audited_with_the_actor() {
    let h = Harness::start_with(second_factor(SecondFactor::Off)).await;
    let dir = tempfile::tempdir().unwrap();
    h.auth.enable_audit(dir.path()).unwrap();
    let admin_host = portcullis_ca::decode_host_identity(&h.admin_identity.cert_der).unwrap();
    let admin = format!("pcctl@{}", admin_host.host_id);
    let wrong_password = "not the password at all 123";

    // Users.
    h.create_user("bob", &["access"]).await;
    let _: Value = h
        .admin
        .put("/v1/users/bob", &json!({"traits": {"db_users": ["app"]}}))
        .await
        .unwrap();
    expect_err(
        h.login("bob", wrong_password, None, None).await,
        401,
        "unauthenticated",
        &[],
    );
    let bob = h.login_client("bob", None).await;

    // Roles.
    let dba = role_json("dba", json!({"allow": {"db_labels": {"env": "dev"}}}));
    let _: Value = h.admin.put("/v1/roles/dba", &dba).await.unwrap();
    let _: Value = h.admin.put("/v1/roles/dba?force=true", &dba).await.unwrap();
    h.admin.delete("/v1/roles/dba").await.unwrap();

    // Tokens and a join.
    let tok: CreateTokenResponse = h
        .admin
        .post("/v1/tokens", &json!({"roles": ["db"]}))
        .await
        .unwrap();
    let key = KeyPair::generate().unwrap();
    let joined: JoinResponse = h
        .anonymous()
        .post(
            "/v1/join",
            &json!({"token": tok.token, "role": "db", "node_name": "db-1",
                    "public_key": key.public_key().to_pem()}),
        )
        .await
        .unwrap();
    expect_err(
        h.anonymous()
            .post::<_, JoinResponse>(
                "/v1/join",
                &json!({"token": "bogus-token-value", "role": "db", "node_name": "db-2",
                        "public_key": key.public_key().to_pem()}),
            )
            .await,
        401,
        "unauthenticated",
        &[],
    );
    h.admin
        .delete(&format!("/v1/tokens/{}", tok.view.id))
        .await
        .unwrap();

    // Locks.
    let lock: LockView = h
        .admin
        .post(
            "/v1/locks",
            &json!({"user": "bob", "message": "offboarding"}),
        )
        .await
        .unwrap();
    h.admin
        .delete(&format!("/v1/locks/{}", lock.id))
        .await
        .unwrap();

    // A user refused by their roles; a reset; a failed and a successful delete.
    expect_err(bob.delete("/v1/users/nobody").await, 403, "forbidden", &[]);
    let invite: InviteView = h
        .admin
        .post("/v1/users/bob/reset", &json!({}))
        .await
        .unwrap();
    expect_err(
        h.admin.delete("/v1/users/ghost").await,
        404,
        "not_found",
        &[],
    );
    h.admin.delete("/v1/users/bob").await.unwrap();

    // Auth's own events are queued, not awaited by the request: wait until they are stored.
    h.auth.audit_log().unwrap().settled().await.unwrap();
    let all = events(dir.path());
    for e in &all {
        assert_eq!(e["cluster_name"], CLUSTER, "{e}");
        assert!(e["uid"].as_str().is_some_and(|u| !u.is_empty()), "{e}");
    }
    let by_admin = |e: &Value| e["user"] == admin.as_str();

    let c = find(&all, "user.create", "T1002I", by_admin);
    assert_eq!((&c["name"], &c["success"]), (&json!("bob"), &json!(true)));
    assert_eq!(c["roles"], json!(["access"]));
    assert_eq!(c["password_set"], true);
    let u = find(&all, "user.update", "T1003I", |e| {
        by_admin(e) && e["reset"].is_null()
    });
    assert_eq!(u["traits"], json!({"db_users": ["app"]}));
    assert_eq!(u["success"], true);
    let r = find(&all, "user.update", "T1003I", |e| e["reset"] == true);
    assert!(
        by_admin(r) && r["name"] == "bob" && r["success"] == true,
        "{r}"
    );
    find(&all, "user.delete", "T1004I", |e| {
        by_admin(e) && e["name"] == "bob" && e["success"] == true
    });
    let failed = find(&all, "user.delete", "T1004I", |e| e["name"] == "ghost");
    assert_eq!(failed["success"], false);
    assert!(
        failed["error"].as_str().unwrap().contains("ghost"),
        "{failed}"
    );

    let bad = find(&all, "user.login", "T1000W", |e| e["user"] == "bob");
    assert_eq!(bad["success"], false);
    assert_eq!(bad["addr.remote"], "127.0.0.1");
    let ok = find(&all, "user.login", "T1000I", |e| e["user"] == "bob");
    assert_eq!(
        (&ok["success"], &ok["mfa_verified"]),
        (&json!(true), &json!(false))
    );
    let cert = find(&all, "cert.create", "TC000I", |e| e["cert_type"] == "user");
    assert_eq!(cert["user"], "bob");
    assert_eq!(cert["identity"]["user"], "bob");
    assert_eq!(cert["identity"]["roles"], json!(["access"]));

    for (event, code) in [
        ("role.created", "T9000I"),
        ("role.updated", "T9002I"),
        ("role.deleted", "T9001I"),
    ] {
        let e = find(&all, event, code, by_admin);
        assert_eq!((&e["name"], &e["success"]), (&json!("dba"), &json!(true)));
    }

    let t = find(&all, "join_token.create", "TJT00I", by_admin);
    assert_eq!(t["name"], tok.view.id.as_str());
    assert_eq!(t["roles"], json!(["db"]));
    find(&all, "join_token.delete", "TJT01I", |e| {
        by_admin(e) && e["name"] == tok.view.id.as_str() && e["success"] == true
    });
    let j = find(&all, "instance.join", "TJ002I", |_| true);
    assert_eq!(j["host_id"], joined.host_id.as_str());
    assert_eq!(j["token_id"], tok.view.id.as_str());
    assert_eq!(j["user"], format!("db-1@{}", joined.host_id));
    let jf = find(&all, "instance.join", "TJ002E", |_| true);
    assert_eq!(
        (&jf["node_name"], &jf["success"]),
        (&json!("db-2"), &json!(false))
    );
    let hc = find(&all, "cert.create", "TC000I", |e| e["cert_type"] == "host");
    assert_eq!(hc["identity"]["host_id"], joined.host_id.as_str());

    let l = find(&all, "lock.created", "TLK00I", by_admin);
    assert_eq!(l["name"], lock.id.as_str());
    assert_eq!(l["target"], json!({"user": "bob"}));
    find(&all, "lock.deleted", "TLK01I", |e| {
        by_admin(e) && e["name"] == lock.id.as_str()
    });

    let d = find(&all, "access.denied", "TPC03W", |e| e["user"] == "bob");
    assert_eq!(
        (&d["resource"], &d["verb"]),
        (&json!("user"), &json!("delete"))
    );
    assert!(d["error"].as_str().is_some_and(|s| !s.is_empty()), "{d}");

    // No secret reaches the log.
    let log = raw_log(dir.path());
    let token_hash = portcullis_auth::secret::token_hash(&tok.token);
    for secret in [
        PASSWORD,
        wrong_password,
        tok.token.as_str(),
        token_hash.as_str(),
        "bogus-token-value",
        invite.token.as_str(),
        "PRIVATE KEY",
    ] {
        assert!(!log.contains(secret), "the audit log contains {secret:?}");
    }
    h.stop().await;
}
