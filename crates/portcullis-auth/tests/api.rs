//! The auth API end to end: a real server in-process, real mutual TLS for every request.
//! See `common/mod.rs` for the harness (and its private-key scan of every 2xx body).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hyper::{Method, StatusCode};
use portcullis_api::{
    CreateTokenResponse, CreateUserResponse, InviteDescription, InviteView, JoinResponse,
    SignDbCertResponse, TokenView, UserView,
};
use portcullis_auth::config::SecondFactor;
use portcullis_ca::KeyPair;
use portcullis_client::api::ClientError;
use portcullis_core::identity::SystemRole;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;

const NO_ROUTE: &str = "no such API endpoint";
const BAD_CREDENTIALS: &str =
    "invalid user name or password; check both (passwords are case-sensitive)";

fn method_of(s: &str) -> Option<Method> {
    Some(match s {
        "get" => Method::GET,
        "post" => Method::POST,
        "put" => Method::PUT,
        "delete" => Method::DELETE,
        "patch" => Method::PATCH,
        _ => return None,
    })
}

fn cert_der(pem: &str) -> Vec<u8> {
    portcullis_ca::cert::certs_from_pem(pem)
        .unwrap()
        .into_iter()
        .next()
        .unwrap()
}

fn join_req(token: &str, role: &str, node: &str) -> Value {
    let key = KeyPair::generate().unwrap();
    json!({ "token": token, "role": role, "node_name": node,
            "public_key": key.public_key().to_pem() })
}

fn assert_about(t: OffsetDateTime, expected: OffsetDateTime, what: &str) {
    let diff = (t - expected).whole_seconds().abs();
    assert!(diff <= 90, "{what}: {t} is not about {expected}");
}

// ---- 1. OpenAPI document vs router ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_exactly_the_routed_operations() {
    let h = Harness::start().await;
    let spec: Value = h.anonymous().get("/v1/openapi.json").await.unwrap();
    assert!(
        spec["components"]["schemas"]["ErrorBody"].is_object(),
        "ErrorBody schema"
    );
    let paths = spec["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{name}", "dummy-name")
            .replace("{id}", "dummy-id");
        assert!(!concrete.contains('{'), "unsubstituted parameter in {path}");
        for (method, op) in item.as_object().unwrap() {
            let Some(m) = method_of(method) else { continue };
            operations += 1;
            let (headers, body): (&[(&str, &str)], Vec<u8>) =
                if m == Method::POST || m == Method::PUT {
                    (&[("content-type", "application/json")], b"{}".to_vec())
                } else {
                    (&[], Vec::new())
                };
            let resp = h
                .admin
                .raw(m.clone(), &concrete, headers, body)
                .await
                .unwrap();
            assert_ne!(
                resp.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {path} is documented but not routed"
            );
            if !resp.status.is_success() {
                let e = resp.api_err();
                assert!(
                    !e.message.contains(NO_ROUTE),
                    "{m} {path} is documented but falls through to the fallback: {e:?}"
                );
            }
            let public = matches!(path.as_str(), "/v1/ping" | "/v1/cas");
            let schema = &op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"];
            if !public {
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{m} {path} documents no 4XX ErrorBody"
                );
            }
        }
    }
    assert!(operations >= 20, "only {operations} operations documented");

    for path in [
        "/",
        "/v1",
        "/v1/",
        "/v1/nope",
        "/v2/ping",
        "/v1/ping/",
        "/v1/users/a/b",
        "/v1/tokens/abcdef/x",
        "/v1/openapi.yaml",
    ] {
        let resp = h
            .admin
            .raw(Method::GET, path, &[], Vec::new())
            .await
            .unwrap();
        resp.api_err().assert(404, "not_found", &[NO_ROUTE]);
        // Anonymous callers get the same answer: no hint of what exists behind auth.
        let resp = h
            .anonymous()
            .raw(Method::GET, path, &[], Vec::new())
            .await
            .unwrap();
        resp.api_err().assert(404, "not_found", &[NO_ROUTE]);
    }
    for (m, path) in [
        (Method::DELETE, "/v1/ping"),
        (Method::GET, "/v1/login"),
        (Method::PUT, "/v1/tokens"),
        (Method::PATCH, "/v1/users/x"),
        (Method::POST, "/v1/roles/x"),
    ] {
        let resp = h.admin.raw(m, path, &[], Vec::new()).await.unwrap();
        resp.api_err()
            .assert(405, "method_not_allowed", &["does not take that method"]);
    }
    h.stop().await;
}

// ---- 2. Authentication and authorisation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_authorisation() {
    let h = Harness::start_with(second_factor(SecondFactor::Off)).await;
    let anon = h.anonymous();
    let key = KeyPair::generate().unwrap();
    let db_cert =
        json!({ "hosts": ["db"], "public_key": key.public_key().to_pem(), "ttl_seconds": 3600 });
    let admin_calls: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/v1/cluster", None),
        (Method::GET, "/v1/users", None),
        (
            Method::POST,
            "/v1/users",
            Some(json!({"name": "x", "roles": ["access"]})),
        ),
        (Method::GET, "/v1/users/x", None),
        (
            Method::PUT,
            "/v1/users/x",
            Some(json!({"roles": ["editor"]})),
        ),
        (Method::DELETE, "/v1/users/x", None),
        (Method::POST, "/v1/users/x/reset", Some(json!({}))),
        (Method::GET, "/v1/roles", None),
        (Method::GET, "/v1/roles/editor", None),
        (Method::PUT, "/v1/roles/x", Some(role_json("x", json!({})))),
        // Even an invalid role gets 401, not a validation answer.
        (
            Method::PUT,
            "/v1/roles/x?force=true",
            Some(json!({"bogus": 1})),
        ),
        (Method::DELETE, "/v1/roles/access", None),
        (Method::GET, "/v1/tokens", None),
        (Method::POST, "/v1/tokens", Some(json!({"roles": ["db"]}))),
        (Method::DELETE, "/v1/tokens/abcdef", None),
        (Method::POST, "/v1/certs/db", Some(db_cert.clone())),
        (
            Method::POST,
            "/v1/certs/db-client",
            Some(
                json!({"db_user": "u", "public_key": key.public_key().to_pem(), "ttl_seconds": 3600}),
            ),
        ),
    ];
    for (m, path, body) in &admin_calls {
        let r: Result<Value, ApiErr> = anon.call(m.clone(), path, body.as_ref()).await;
        expect_err(r, 401, "unauthenticated", &["client certificate"]);
    }
    // The project's client reports the same thing as a typed error.
    let api =
        portcullis_client::api::ApiClient::anonymous(&h.addr_str, &[h.host_ca_der()]).unwrap();
    match api.get::<Value>("/v1/users").await {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!((status, code.as_str()), (401, "unauthenticated"));
            assert!(message.contains("client certificate"), "{message}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    let users: Vec<UserView> = h.admin_api_client().get("/v1/users").await.unwrap();
    assert!(users.is_empty());

    for (name, role) in [("acc", "access"), ("ed", "editor"), ("aud", "auditor")] {
        h.create_user(name, &[role]).await;
    }
    let acc = h.login_client("acc", None).await;
    let ed = h.login_client("ed", None).await;
    let aud = h.login_client("aud", None).await;

    // access: no admin rules at all.
    expect_err(
        acc.get::<Value>("/v1/users").await,
        403,
        "forbidden",
        &["you may not list user"],
    );
    expect_err(
        acc.post::<_, Value>("/v1/tokens", &json!({"roles": ["db"]}))
            .await,
        403,
        "forbidden",
        &["create token"],
    );
    expect_err(
        acc.put::<_, Value>("/v1/roles/mine?force=true", &role_json("mine", json!({})))
            .await,
        403,
        "forbidden",
        &["role"],
    );
    // auditor: events and sessions only.
    expect_err(
        aud.get::<Value>("/v1/users").await,
        403,
        "forbidden",
        &["list user"],
    );
    expect_err(
        aud.get::<Value>("/v1/roles").await,
        403,
        "forbidden",
        &["list role"],
    );

    // editor: everything the admin API offers.
    let _: Value = ed.get("/v1/cluster").await.unwrap();
    let _: Vec<UserView> = ed.get("/v1/users").await.unwrap();
    let created: CreateUserResponse = ed
        .post("/v1/users", &json!({"name": "x", "roles": ["access"]}))
        .await
        .unwrap();
    assert!(created.invite.is_some());
    let _: UserView = ed.get("/v1/users/x").await.unwrap();
    let _: UserView = ed
        .put("/v1/users/x", &json!({"roles": ["auditor"]}))
        .await
        .unwrap();
    let _: InviteView = ed.post("/v1/users/x/reset", &json!({})).await.unwrap();
    ed.delete("/v1/users/x").await.unwrap();
    let _: Vec<Value> = ed.get("/v1/roles").await.unwrap();
    let _: Value = ed.get("/v1/roles/editor").await.unwrap();
    let _: Value = ed
        .put("/v1/roles/x", &role_json("x", json!({})))
        .await
        .unwrap();
    let _: Value = ed
        .put("/v1/roles/x?force=true", &role_json("x", json!({})))
        .await
        .unwrap();
    ed.delete("/v1/roles/x").await.unwrap();
    let tok: CreateTokenResponse = ed
        .post("/v1/tokens", &json!({"roles": ["db"]}))
        .await
        .unwrap();
    let _: Vec<TokenView> = ed.get("/v1/tokens").await.unwrap();
    ed.delete(&format!("/v1/tokens/{}", tok.view.id))
        .await
        .unwrap();
    let _: SignDbCertResponse = ed.post("/v1/certs/db", &db_cert).await.unwrap();

    // A certificate from another cluster's CA: the TLS handshake refuses it.
    let other = Harness::start().await;
    let mut foreign = admin_identity(&other.auth);
    foreign.ca_ders = vec![h.host_ca_der()]; // trust our server, present theirs
    let client = TestClient::with_identity(&h.addr_str, &foreign);
    let err = client
        .raw(Method::GET, "/v1/ping", &[], Vec::new())
        .await
        .expect_err("a foreign certificate must be refused");
    assert!(!err.is_empty());
    let api = portcullis_client::api::ApiClient::with_identity(&h.addr_str, &foreign).unwrap();
    match api.get::<Value>("/v1/ping").await {
        Err(ClientError::Connect { .. } | ClientError::Protocol(_)) => {}
        other => panic!("expected a connection failure, got {other:?}"),
    }
    other.stop().await;

    // A deleted user's certificate is still valid X.509, but the user is gone.
    let before: Vec<UserView> = ed.get("/v1/users").await.unwrap();
    assert!(before.iter().any(|u| u.name == "ed"));
    h.admin.delete("/v1/users/ed").await.unwrap();
    expect_err(
        ed.get::<Value>("/v1/users").await,
        401,
        "unauthenticated",
        &["no longer exists"],
    );
    // Public endpoints still work with it.
    let _: Value = ed.get("/v1/ping").await.unwrap();
    // A new user of the same name does not bring the old certificate's roles back.
    let _: CreateUserResponse = h
        .admin
        .post("/v1/users", &json!({"name": "ed", "roles": ["access"]}))
        .await
        .unwrap();
    expect_err(
        ed.get::<Value>("/v1/users").await,
        403,
        "forbidden",
        &["list user"],
    );

    // Taking a role away takes effect at once, not when the certificate expires.
    h.create_user("demo", &["editor"]).await;
    let demo = h.login_client("demo", None).await;
    let _: Vec<UserView> = demo.get("/v1/users").await.unwrap();
    let _: UserView = h
        .admin
        .put("/v1/users/demo", &json!({"roles": ["access"]}))
        .await
        .unwrap();
    expect_err(
        demo.get::<Value>("/v1/users").await,
        403,
        "forbidden",
        &["list user"],
    );
    // Roles added after login are not in the certificate: they need a new login.
    let _: UserView = h
        .admin
        .put("/v1/users/demo", &json!({"roles": ["access", "editor"]}))
        .await
        .unwrap();
    let _: Vec<UserView> = demo.get("/v1/users").await.unwrap();

    // An expired user certificate, and a db CA certificate: TLS refuses both.
    let key = KeyPair::generate().unwrap();
    let past = OffsetDateTime::now_utc() - Duration::from_secs(7200);
    let expired = h
        .auth
        .user_ca()
        .issue_user(
            &portcullis_core::identity::Identity {
                username: "acc".into(),
                cluster_name: CLUSTER.into(),
                roles: vec!["access".into()],
                traits: Default::default(),
                expires: past + Duration::from_secs(3600),
                mfa_verified: false,
                login_ip: None,
                route: None,
            },
            &key.public_key(),
            past,
        )
        .unwrap();
    let db_client: SignDbCertResponse = h
        .admin
        .post(
            "/v1/certs/db-client",
            &json!({"db_user": "acc", "public_key": key.public_key().to_pem(), "ttl_seconds": 3600}),
        )
        .await
        .unwrap();
    for (what, cert) in [
        ("expired user certificate", expired),
        ("db CA certificate", cert_der(&db_client.cert_pem)),
    ] {
        let identity = portcullis_ca::identity_file::IdentityFile {
            key_pkcs8: portcullis_ca::identity_file::Zeroizing::new(key.pkcs8_der().to_vec()),
            cert_der: cert,
            ca_ders: vec![h.host_ca_der()],
        };
        let r = TestClient::with_identity(&h.addr_str, &identity)
            .raw(Method::GET, "/v1/ping", &[], Vec::new())
            .await;
        assert!(r.is_err(), "{what} must be refused at TLS: {r:?}");
    }
    h.stop().await;
}

// ---- 3. Users, invites and login with the second factor on ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_and_login_with_second_factor() {
    let h = Harness::start().await;
    let anon = h.anonymous();
    let created: CreateUserResponse = h
        .admin
        .post(
            "/v1/users",
            &json!({"name": "bob", "roles": ["access"],
                    "traits": {"db_users": ["bob", "readonly"]}}),
        )
        .await
        .unwrap();
    assert_eq!(created.user.status, "invited");
    assert!(created.totp.is_none());
    let invite = created.invite.expect("an invite without a password");
    assert_about(
        invite.expires,
        OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600),
        "invite expiry",
    );
    let token = json!({"token": invite.token});

    let d1: InviteDescription = anon.post("/v1/invites/describe", &token).await.unwrap();
    let d2: InviteDescription = anon.post("/v1/invites/describe", &token).await.unwrap();
    assert_eq!(d1.user, "bob");
    assert!(d1.totp_required);
    let secret = d1.totp.expect("a TOTP secret to enrol").secret;
    assert_eq!(
        d2.totp.unwrap().secret,
        secret,
        "describing twice shows the same secret"
    );
    expect_err(
        anon.post::<_, Value>("/v1/invites/describe", &json!({"token": "nope"}))
            .await,
        404,
        "not_found",
        &["unknown or has expired", "pcctl users reset"],
    );

    let accept =
        |otp: Option<String>| json!({"token": invite.token, "password": PASSWORD, "otp": otp});
    expect_err(
        anon.post::<_, Value>("/v1/invites/accept", &accept(None))
            .await,
        400,
        "bad_request",
        &["second factor"],
    );
    expect_err(
        anon.post::<_, Value>("/v1/invites/accept", &accept(Some(wrong_code(&secret))))
            .await,
        400,
        "bad_request",
        &["TOTP code is wrong"],
    );
    expect_err(
        anon.post::<_, Value>(
            "/v1/invites/accept",
            &json!({"token": invite.token, "password": "short", "otp": totp_code(&secret, 0)}),
        )
        .await,
        400,
        "bad_request",
        &["too short", "12"],
    );
    let ok: Value = anon
        .post("/v1/invites/accept", &accept(Some(totp_code(&secret, 0))))
        .await
        .unwrap();
    assert_eq!(ok["user"], "bob");
    expect_err(
        anon.post::<_, Value>("/v1/invites/accept", &accept(Some(totp_code(&secret, 1))))
            .await,
        404,
        "not_found",
        &["invite"],
    );
    let bob: UserView = h.admin.get("/v1/users/bob").await.unwrap();
    assert_eq!(bob.status, "active");
    assert!(bob.totp_enrolled);

    // Without a code: told about the second factor — and an unknown user hears the same.
    let e1 = expect_err(
        h.login("bob", PASSWORD, None, None).await,
        401,
        "unauthenticated",
        &["second factor"],
    );
    let e2 = expect_err(
        h.login("nobody", PASSWORD, None, None).await,
        401,
        "unauthenticated",
        &["second factor"],
    );
    assert_eq!(e1.message, e2.message, "no user enumeration without a code");
    // Wrong password and unknown user: identical generic answer.
    let wrong = expect_err(
        h.login(
            "bob",
            "not the password at all",
            Some(totp_code(&secret, 1)),
            None,
        )
        .await,
        401,
        "unauthenticated",
        &[],
    );
    let unknown = expect_err(
        h.login("nobody", PASSWORD, Some(totp_code(&secret, 1)), None)
            .await,
        401,
        "unauthenticated",
        &[],
    );
    assert_eq!(wrong.message, BAD_CREDENTIALS);
    assert_eq!(unknown.message, wrong.message);

    // The code used to accept the invite is spent; the next step's code logs in.
    let code = totp_code(&secret, 1);
    let (resp, _key) = h
        .login("bob", PASSWORD, Some(code.clone()), None)
        .await
        .unwrap();
    let der = cert_der(&resp.cert_pem);
    h.auth
        .user_ca()
        .verify(&der, OffsetDateTime::now_utc())
        .unwrap();
    let id = portcullis_ca::decode_user_identity(&der).unwrap();
    assert_eq!(id.username, "bob");
    assert_eq!(id.cluster_name, CLUSTER);
    assert_eq!(id.roles, vec!["access".to_owned()]);
    assert_eq!(
        id.traits.get("db_users").unwrap(),
        &vec!["bob".to_owned(), "readonly".to_owned()]
    );
    assert!(id.mfa_verified);
    assert_eq!(id.login_ip, Some(std::net::IpAddr::from([127, 0, 0, 1])));
    let twelve_h = OffsetDateTime::now_utc() + Duration::from_secs(12 * 3600);
    assert_about(id.expires, twelve_h, "certificate expiry");
    assert_about(resp.expires, twelve_h, "reported expiry");
    assert_eq!(resp.user, "bob");
    assert_eq!(resp.cas.len(), 3);

    // Replaying the same code fails.
    expect_err(
        h.login("bob", PASSWORD, Some(code), None).await,
        401,
        "unauthenticated",
        &["already used"],
    );
    h.stop().await;
}

// ---- 4. Lockout and rate limits ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_after_failed_logins_and_reset() {
    let h = Harness::start_with(|a| {
        a.second_factor = SecondFactor::Off;
        a.max_login_attempts = 3;
    })
    .await;
    h.create_user("dave", &["access"]).await;
    for _ in 0..3 {
        let e = expect_err(
            h.login("dave", "wrong password here", None, None).await,
            401,
            "unauthenticated",
            &[],
        );
        assert_eq!(e.message, BAD_CREDENTIALS);
    }
    let e = expect_err(
        h.login("dave", PASSWORD, None, None).await,
        403,
        "locked",
        &["locked after 3 failed logins", "pcctl users reset dave"],
    );
    assert!(e.message.contains("until"), "{e:?}");
    let dave: UserView = h.admin.get("/v1/users/dave").await.unwrap();
    assert_eq!(dave.status, "locked");
    assert!(dave.locked_until.is_some());

    let invite: InviteView = h
        .admin
        .post("/v1/users/dave/reset", &json!({}))
        .await
        .unwrap();
    let dave: UserView = h.admin.get("/v1/users/dave").await.unwrap();
    assert_eq!(dave.status, "invited");
    assert!(dave.locked_until.is_none());
    assert!(!dave.totp_enrolled);
    // The old password is gone with the reset.
    expect_err(
        h.login("dave", PASSWORD, None, None).await,
        401,
        "unauthenticated",
        &["not set a password", "invite"],
    );
    let _: Value = h
        .anonymous()
        .post(
            "/v1/invites/accept",
            &json!({"token": invite.token, "password": PASSWORD}),
        )
        .await
        .unwrap();
    let (resp, _) = h.login("dave", PASSWORD, None, None).await.unwrap();
    assert_eq!(resp.user, "dave");
    let dave: UserView = h.admin.get("/v1/users/dave").await.unwrap();
    assert_eq!(dave.status, "active");
    expect_err(
        h.admin
            .post::<_, Value>("/v1/users/ghost/reset", &json!({}))
            .await,
        404,
        "not_found",
        &["ghost", "pcctl users ls"],
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_rate_limits_per_user_and_per_address() {
    let h = Harness::start_with(|a| {
        a.rate_limit_per_ip = 6;
        a.rate_limit_per_user = 3;
    })
    .await;
    let anon = h.anonymous();
    // A bad public key is refused after the limits are taken, before any password work.
    let attempt = |user: &str| json!({"user": user, "password": PASSWORD, "otp": "123456", "public_key": "garbage"});
    let login = |user: &'static str| {
        let anon = anon.clone();
        let body = serde_json::to_vec(&attempt(user)).unwrap();
        async move {
            anon.raw(
                Method::POST,
                "/v1/login",
                &[("content-type", "application/json")],
                body,
            )
            .await
            .unwrap()
        }
    };
    for _ in 0..3 {
        login("x").await.api_err().assert(400, "bad_request", &[]);
    }
    // Fourth for the same user name: the per-user limit.
    let e = login("x").await.api_err();
    e.assert(429, "rate_limited", &["try again in"]);
    let secs: u64 = e
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    // Other names still pass, until the address has used its 6.
    login("y").await.api_err().assert(400, "bad_request", &[]);
    login("z").await.api_err().assert(400, "bad_request", &[]);
    let e = login("w").await.api_err();
    e.assert(429, "rate_limited", &["try again in"]);
    assert!(e.retry_after.is_some(), "Retry-After header: {e:?}");
    // Invites share the per-address budget.
    let r: Result<Value, ApiErr> = anon
        .post("/v1/invites/describe", &json!({"token": "whatever"}))
        .await;
    expect_err(r, 429, "rate_limited", &["try again in"]);
    // And the project's client surfaces the code.
    let api =
        portcullis_client::api::ApiClient::anonymous(&h.addr_str, &[h.host_ca_der()]).unwrap();
    match api.post::<_, Value>("/v1/login", &attempt("v")).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (429, "rate_limited"))
        }
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // Authenticated admin calls are not login attempts.
    let _: Vec<UserView> = h.admin.get("/v1/users").await.unwrap();
    h.stop().await;
}

// ---- 5. Second factor off and optional ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_off() {
    let h = Harness::start_with(second_factor(SecondFactor::Off)).await;
    let ping: Value = h.anonymous().get("/v1/ping").await.unwrap();
    assert_eq!(ping["second_factor"], "off");
    assert!(h.create_user("olive", &["access"]).await.is_none());
    let (resp, _) = h.login("olive", PASSWORD, None, None).await.unwrap();
    let id = portcullis_ca::decode_user_identity(&cert_der(&resp.cert_pem)).unwrap();
    assert!(!id.mfa_verified);
    // Invites offer no TOTP device.
    let created: CreateUserResponse = h
        .admin
        .post("/v1/users", &json!({"name": "pat", "roles": ["access"]}))
        .await
        .unwrap();
    let d: InviteDescription = h
        .anonymous()
        .post(
            "/v1/invites/describe",
            &json!({"token": created.invite.as_ref().unwrap().token}),
        )
        .await
        .unwrap();
    assert!(d.totp.is_none());
    assert!(!d.totp_required);
    // Four people accept the same invite at once: one sets the password.
    let token = created.invite.as_ref().unwrap().token.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let anon = h.anonymous();
        let body = json!({"token": token, "password": format!("{PASSWORD} {i}")});
        tasks.spawn(async move { (i, anon.post::<_, Value>("/v1/invites/accept", &body).await) });
    }
    let mut winner = None;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (i, Ok(_)) => {
                assert!(winner.is_none(), "two accepts of one invite succeeded");
                winner = Some(i);
            }
            (_, Err(e)) => e.assert(404, "not_found", &["invite"]),
        }
    }
    let i = winner.expect("one accept succeeds");
    let _ = h
        .login("pat", &format!("{PASSWORD} {i}"), None, None)
        .await
        .unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_ends_by_itself() {
    let h = Harness::start_with(|a| {
        a.second_factor = SecondFactor::Off;
        a.max_login_attempts = 1;
        a.lockout_duration = portcullis_core::duration::Duration(Duration::from_secs(2));
    })
    .await;
    h.create_user("lou", &["access"]).await;
    expect_err(
        h.login("lou", "wrong password here", None, None).await,
        401,
        "unauthenticated",
        &[],
    );
    expect_err(
        h.login("lou", PASSWORD, None, None).await,
        403,
        "locked",
        &["pcctl users reset lou"],
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (resp, _) = h.login("lou", PASSWORD, None, None).await.unwrap();
    assert_eq!(resp.user, "lou");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_optional() {
    let h = Harness::start_with(second_factor(SecondFactor::Optional)).await;
    let anon = h.anonymous();
    // One user enrols a device through the invite...
    let created: CreateUserResponse = h
        .admin
        .post("/v1/users", &json!({"name": "quinn", "roles": ["access"]}))
        .await
        .unwrap();
    let token = created.invite.unwrap().token;
    let d: InviteDescription = anon
        .post("/v1/invites/describe", &json!({"token": token}))
        .await
        .unwrap();
    assert!(!d.totp_required);
    let secret = d.totp.expect("a device is offered").secret;
    let _: Value = anon
        .post(
            "/v1/invites/accept",
            &json!({"token": token, "password": PASSWORD, "otp": totp_code(&secret, 0)}),
        )
        .await
        .unwrap();
    // ...and must use it.
    expect_err(
        h.login("quinn", PASSWORD, None, None).await,
        401,
        "unauthenticated",
        &["second factor"],
    );
    let (resp, _) = h
        .login("quinn", PASSWORD, Some(totp_code(&secret, 1)), None)
        .await
        .unwrap();
    assert!(
        portcullis_ca::decode_user_identity(&cert_der(&resp.cert_pem))
            .unwrap()
            .mfa_verified
    );
    // Another user, password set directly: no device, password only.
    assert!(h.create_user("rita", &["access"]).await.is_none());
    let (resp, _) = h.login("rita", PASSWORD, None, None).await.unwrap();
    assert!(
        !portcullis_ca::decode_user_identity(&cert_der(&resp.cert_pem))
            .unwrap()
            .mfa_verified
    );
    // A role requiring MFA refuses her until she enrols.
    let _: Value = h
        .admin
        .put(
            "/v1/roles/mfa-only",
            &role_json("mfa-only", json!({"options": {"require_mfa": true}})),
        )
        .await
        .unwrap();
    let _: UserView = h
        .admin
        .put("/v1/users/rita", &json!({"roles": ["access", "mfa-only"]}))
        .await
        .unwrap();
    expect_err(
        h.login("rita", PASSWORD, None, None).await,
        403,
        "forbidden",
        &["requires a second factor"],
    );
    h.stop().await;
}

// ---- 6. Password set directly with the second factor on; TTL capped by roles ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_password_enrols_totp_and_roles_cap_ttl() {
    let h = Harness::start().await;
    let role: Value = h
        .admin
        .put(
            "/v1/roles/short",
            &role_json("short", json!({"options": {"max_session_ttl": "1h"}})),
        )
        .await
        .unwrap();
    assert_eq!(role["spec"]["options"]["max_session_ttl"], "1h");
    let created: CreateUserResponse = h
        .admin
        .post(
            "/v1/users",
            &json!({"name": "sam", "roles": ["access", "short"], "password": PASSWORD}),
        )
        .await
        .unwrap();
    assert!(created.invite.is_none());
    assert_eq!(created.user.status, "active");
    assert!(created.user.totp_enrolled);
    let totp = created.totp.expect("the enrolled device is returned once");
    assert!(totp
        .uri
        .starts_with("otpauth://totp/test-cluster:sam?secret="));
    assert!(totp.uri.contains(&totp.secret));
    // Asking for a day gets the role's hour.
    let (resp, _) = h
        .login(
            "sam",
            PASSWORD,
            Some(totp_code(&totp.secret, 0)),
            Some(24 * 3600),
        )
        .await
        .unwrap();
    let hour = OffsetDateTime::now_utc() + Duration::from_secs(3600);
    assert_about(resp.expires, hour, "capped expiry");
    let id = portcullis_ca::decode_user_identity(&cert_der(&resp.cert_pem)).unwrap();
    assert_about(id.expires, hour, "capped certificate expiry");
    assert!(id.mfa_verified);
    // One code, four concurrent logins: exactly one gets a certificate.
    let code = totp_code(&totp.secret, 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let anon = h.anonymous();
        let key = KeyPair::generate().unwrap();
        let body = json!({"user": "sam", "password": PASSWORD, "otp": code,
                          "public_key": key.public_key().to_pem()});
        tasks.spawn(async move { anon.post::<_, Value>("/v1/login", &body).await });
    }
    let mut wins = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => e.assert(401, "unauthenticated", &["already used"]),
        }
    }
    assert_eq!(wins, 1, "a TOTP code logs in once");
    h.stop().await;
}

// ---- 7. Roles ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_create_replace_validate_delete() {
    let h = Harness::start().await;
    let roles: Vec<Value> = h.admin.get("/v1/roles").await.unwrap();
    let names: Vec<&str> = roles
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    for preset in ["access", "editor", "auditor"] {
        assert!(names.contains(&preset), "preset {preset} in {names:?}");
        let r: Value = h.admin.get(&format!("/v1/roles/{preset}")).await.unwrap();
        assert_eq!(r["metadata"]["name"], preset);
    }
    expect_err(
        h.admin.get::<Value>("/v1/roles/nope").await,
        404,
        "not_found",
        &["nope", "pcctl get roles"],
    );

    let dev = role_json(
        "dev",
        json!({"allow": {"db_labels": {"env": "dev"}, "db_users": ["{{internal.db_users}}"]}}),
    );
    let stored: Value = h.admin.put("/v1/roles/dev", &dev).await.unwrap();
    assert_eq!(stored["metadata"]["name"], "dev");
    expect_err(
        h.admin.put::<_, Value>("/v1/roles/dev", &dev).await,
        409,
        "already_exists",
        &["dev", "--force"],
    );
    let mut changed = dev.clone();
    changed["metadata"]["description"] = json!("replaced");
    let _: Value = h
        .admin
        .put("/v1/roles/dev?force=true", &changed)
        .await
        .unwrap();
    let got: Value = h.admin.get("/v1/roles/dev").await.unwrap();
    assert_eq!(got["metadata"]["description"], "replaced");
    expect_err(
        h.admin
            .put::<_, Value>("/v1/roles/dev?force=maybe", &changed)
            .await,
        400,
        "bad_request",
        &["query"],
    );

    let invalid = [
        (
            "bad",
            role_json("bad", json!({"allow": {"db_users": ["^(unclosed$"]}})),
            "spec.allow.db_users[0]",
        ),
        (
            "bad",
            role_json("bad", json!({"allow": {"db_userz": ["x"]}})),
            "db_userz",
        ),
        ("bad", role_json("other", json!({})), "metadata.name"),
        (
            "bad",
            role_json(
                "bad",
                json!({"allow": {"rules": [{"resources": ["users"], "verbs": ["list"]}]}}),
            ),
            "spec.allow.rules[0].resources[0]",
        ),
        (
            "bad",
            role_json("bad", json!({"options": {"max_session_ttl": "0s"}})),
            "spec.options.max_session_ttl",
        ),
        (
            "bad",
            json!({"kind": "rolle", "version": "v1", "metadata": {"name": "bad"}}),
            "kind",
        ),
        ("bad!", role_json("bad!", json!({})), "metadata.name"),
    ];
    for (path_name, body, field) in invalid {
        expect_err(
            h.admin
                .put::<_, Value>(&format!("/v1/roles/{path_name}"), &body)
                .await,
            400,
            "bad_request",
            &[field],
        );
    }
    expect_err(
        h.admin.get::<Value>("/v1/roles/bad").await,
        404,
        "not_found",
        &[],
    );

    // A role someone holds cannot be deleted.
    let _: CreateUserResponse = h
        .admin
        .post("/v1/users", &json!({"name": "erin", "roles": ["dev"]}))
        .await
        .unwrap();
    expect_err(
        h.admin.delete("/v1/roles/dev").await,
        409,
        "conflict",
        &["erin", "pcctl users update"],
    );
    // Users cannot be given roles that do not exist.
    expect_err(
        h.admin
            .post::<_, Value>("/v1/users", &json!({"name": "fay", "roles": ["ghost"]}))
            .await,
        400,
        "bad_request",
        &["ghost", "does not exist"],
    );
    let _: UserView = h
        .admin
        .put("/v1/users/erin", &json!({"roles": ["access"]}))
        .await
        .unwrap();
    h.admin.delete("/v1/roles/dev").await.unwrap();
    expect_err(
        h.admin.get::<Value>("/v1/roles/dev").await,
        404,
        "not_found",
        &[],
    );
    expect_err(
        h.admin.delete("/v1/roles/dev").await,
        404,
        "not_found",
        &["dev"],
    );
    h.stop().await;
}

// ---- 8. Join tokens ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_join() {
    let h = Harness::start().await;
    let anon = h.anonymous();
    let tok: CreateTokenResponse = h
        .admin
        .post("/v1/tokens", &json!({"roles": ["db"]}))
        .await
        .unwrap();
    assert_eq!(tok.ca_pin, h.auth.host_ca().pin());
    assert_eq!(tok.view.roles, vec!["db".to_owned()]);
    assert!(!tok.view.single_use);
    assert_about(
        tok.view.expires,
        OffsetDateTime::now_utc() + Duration::from_secs(30 * 60),
        "default token TTL",
    );
    let listed = h
        .admin
        .raw(Method::GET, "/v1/tokens", &[], Vec::new())
        .await
        .unwrap();
    let text = String::from_utf8(listed.body.to_vec()).unwrap();
    assert!(text.contains(&tok.view.id), "{text}");
    assert!(!text.contains(&tok.token), "the secret must not be listed");
    let hash = portcullis_auth::secret::token_hash(&tok.token);
    assert!(!text.contains(&hash), "nor its full hash");

    let joined: JoinResponse = anon
        .post("/v1/join", &join_req(&tok.token, "db", "db-agent-1"))
        .await
        .unwrap();
    let der = cert_der(&joined.cert_pem);
    h.auth
        .host_ca()
        .verify(&der, OffsetDateTime::now_utc())
        .unwrap();
    let host = portcullis_ca::decode_host_identity(&der).unwrap();
    assert_eq!(host.system_roles, vec![SystemRole::Db]);
    assert_eq!(host.node_name, "db-agent-1");
    assert_eq!(host.cluster_name, CLUSTER);
    assert_eq!(host.host_id, joined.host_id);
    // A multi-use token works again.
    let _: JoinResponse = anon
        .post("/v1/join", &join_req(&tok.token, "db", "db-agent-2"))
        .await
        .unwrap();

    expect_err(
        anon.post::<_, Value>(
            "/v1/join",
            &join_req(&portcullis_auth::secret::new_token(), "db", "n"),
        )
        .await,
        401,
        "unauthenticated",
        &["invalid, expired or used up", "pcctl tokens add"],
    );
    expect_err(
        anon.post::<_, Value>("/v1/join", &join_req(&tok.token, "proxy", "n"))
            .await,
        403,
        "forbidden",
        &["does not allow joining as proxy"],
    );
    expect_err(
        anon.post::<_, Value>("/v1/join", &join_req(&tok.token, "admin", "n"))
            .await,
        400,
        "bad_request",
        &["cannot grant"],
    );
    expect_err(
        anon.post::<_, Value>("/v1/join", &join_req(&tok.token, "db", "bad name"))
            .await,
        400,
        "bad_request",
        &["node"],
    );
    let mut bad_key = join_req(&tok.token, "db", "n");
    bad_key["public_key"] = json!("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    expect_err(
        anon.post::<_, Value>("/v1/join", &bad_key).await,
        400,
        "bad_request",
        &[],
    );

    // Single use: of 8 concurrent joins exactly one wins.
    let single: CreateTokenResponse = h
        .admin
        .post(
            "/v1/tokens",
            &json!({"roles": ["proxy"], "single_use": true}),
        )
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let anon = anon.clone();
        let body = join_req(&single.token, "proxy", &format!("proxy-{i}"));
        tasks.spawn(async move { anon.post::<_, JoinResponse>("/v1/join", &body).await });
    }
    let mut wins = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => e.assert(401, "unauthenticated", &["used up"]),
        }
    }
    assert_eq!(wins, 1, "a single-use token joins exactly once");

    // TTL bounds and bad role lists.
    for body in [
        json!({"roles": ["db"], "ttl_seconds": 10}),
        json!({"roles": ["db"], "ttl_seconds": 31 * 24 * 3600}),
    ] {
        expect_err(
            h.admin.post::<_, Value>("/v1/tokens", &body).await,
            400,
            "bad_request",
            &["between 1m and 720h"],
        );
    }
    let min: CreateTokenResponse = h
        .admin
        .post("/v1/tokens", &json!({"roles": ["db"], "ttl_seconds": 60}))
        .await
        .unwrap();
    expect_err(
        h.admin
            .post::<_, Value>("/v1/tokens", &json!({"roles": []}))
            .await,
        400,
        "bad_request",
        &["--type=db"],
    );
    expect_err(
        h.admin
            .post::<_, Value>("/v1/tokens", &json!({"roles": ["admin"]}))
            .await,
        400,
        "bad_request",
        &["cannot grant \"admin\""],
    );

    // Delete by id prefix.
    expect_err(
        h.admin.delete("/v1/tokens/abc").await,
        400,
        "bad_request",
        &["at least 6 characters"],
    );
    expect_err(
        h.admin.delete("/v1/tokens/zzzzzz").await,
        404,
        "not_found",
        &["pcctl tokens ls"],
    );
    h.admin
        .delete(&format!("/v1/tokens/{}", &min.view.id[..6]))
        .await
        .unwrap();
    let left: Vec<TokenView> = h.admin.get("/v1/tokens").await.unwrap();
    assert!(left.iter().all(|t| t.id != min.view.id));
    assert!(left.iter().any(|t| t.id == tok.view.id));
    assert!(
        left.iter().all(|t| t.id != single.view.id),
        "a used single-use token is gone"
    );
    expect_err(
        anon.post::<_, Value>("/v1/join", &join_req(&min.token, "db", "late"))
            .await,
        401,
        "unauthenticated",
        &[],
    );

    // What a joined database service may do with its certificate: sign db certs, nothing else.
    let key = KeyPair::generate().unwrap();
    let mut req = join_req(&tok.token, "db", "db-agent-3");
    req["public_key"] = json!(key.public_key().to_pem());
    let joined: JoinResponse = anon.post("/v1/join", &req).await.unwrap();
    let identity = portcullis_ca::identity_file::IdentityFile {
        key_pkcs8: portcullis_ca::identity_file::Zeroizing::new(key.pkcs8_der().to_vec()),
        cert_der: cert_der(&joined.cert_pem),
        ca_ders: vec![h.host_ca_der()],
    };
    let agent = TestClient::with_identity(&h.addr_str, &identity);
    let other = KeyPair::generate().unwrap();
    let _: SignDbCertResponse = agent
        .post(
            "/v1/certs/db-client",
            &json!({"db_user": "agent", "public_key": other.public_key().to_pem(), "ttl_seconds": 3600}),
        )
        .await
        .unwrap();
    expect_err(
        agent.get::<Value>("/v1/users").await,
        403,
        "forbidden",
        &["db-agent-3", "may not list user"],
    );
    expect_err(
        agent
            .post::<_, Value>("/v1/tokens", &json!({"roles": ["db"]}))
            .await,
        403,
        "forbidden",
        &["may not create token"],
    );
    h.stop().await;
}

// ---- 9. Certificates, and no private keys anywhere ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_certificates() {
    let h = Harness::start().await;
    let key = KeyPair::generate().unwrap();
    let pk = key.public_key().to_pem();
    let resp: SignDbCertResponse = h
        .admin
        .post(
            "/v1/certs/db",
            &json!({"hosts": ["db.internal", "10.0.0.5"], "public_key": pk, "ttl_seconds": 3600}),
        )
        .await
        .unwrap();
    assert_eq!(resp.ca_pem, h.auth.db_ca().cert_pem());
    let der = cert_der(&resp.cert_pem);
    h.auth
        .db_ca()
        .verify(&der, OffsetDateTime::now_utc())
        .unwrap();
    assert!(
        h.auth
            .host_ca()
            .verify(&der, OffsetDateTime::now_utc())
            .is_err(),
        "signed by the db CA only"
    );
    {
        use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().expect("SAN");
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                _ => {}
            }
        }
        assert_eq!(dns, vec!["db.internal".to_owned()]);
        assert_eq!(ips, vec![vec![10u8, 0, 0, 5]]);
        assert_eq!(
            cert.public_key().raw,
            key.public_key().spki_der(),
            "certifies the key sent"
        );
        let lifetime =
            cert.validity().not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp();
        assert!((3500..=3700).contains(&lifetime), "lifetime {lifetime}");
    }
    let client: SignDbCertResponse = h
        .admin
        .post(
            "/v1/certs/db-client",
            &json!({"db_user": "reporting", "public_key": pk, "ttl_seconds": 3600}),
        )
        .await
        .unwrap();
    let der = cert_der(&client.cert_pem);
    h.auth
        .db_ca()
        .verify(&der, OffsetDateTime::now_utc())
        .unwrap();
    {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "reporting");
    }

    let bad = |body: Value, needles: &'static [&'static str]| {
        let admin = h.admin.clone();
        async move {
            expect_err(
                admin.post::<_, Value>("/v1/certs/db", &body).await,
                400,
                "bad_request",
                needles,
            );
        }
    };
    bad(
        json!({"hosts": ["db"], "public_key": "not a pem", "ttl_seconds": 3600}),
        &[],
    )
    .await;
    bad(
        json!({"hosts": ["db"], "public_key": &*key.to_pem(), "ttl_seconds": 3600}),
        &["PUBLIC KEY"],
    )
    .await;
    bad(
        json!({"hosts": ["db"], "public_key": pk, "ttl_seconds": 10}),
        &["TTL"],
    )
    .await;
    bad(
        json!({"hosts": [], "public_key": pk, "ttl_seconds": 3600}),
        &["hosts"],
    )
    .await;
    bad(
        json!({"hosts": ["bad host"], "public_key": pk, "ttl_seconds": 3600}),
        &["not a DNS name"],
    )
    .await;
    expect_err(
        h.admin
            .post::<_, Value>(
                "/v1/certs/db-client",
                &json!({"db_user": "", "public_key": pk, "ttl_seconds": 3600}),
            )
            .await,
        400,
        "bad_request",
        &["database user"],
    );
    expect_err(
        h.admin
            .post::<_, Value>(
                "/v1/certs/db-client",
                &json!({"db_user": "u", "public_key": pk, "ttl_seconds": 8 * 24 * 3600}),
            )
            .await,
        400,
        "bad_request",
        &["168h"],
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_get_endpoint_returns_a_private_key() {
    let h = Harness::start_with(second_factor(SecondFactor::Off)).await;
    h.create_user("gina", &["editor"]).await;
    let _: CreateTokenResponse = h
        .admin
        .post("/v1/tokens", &json!({"roles": ["db"]}))
        .await
        .unwrap();
    let user = h.login_client("gina", None).await;
    let spec: Value = h.anonymous().get("/v1/openapi.json").await.unwrap();
    let before = SCANNED.load(Ordering::Relaxed);
    let mut gets = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if item.get("get").is_none() {
            continue;
        }
        let concrete = path.replace(
            "{name}",
            if path.starts_with("/v1/roles") {
                "editor"
            } else {
                "gina"
            },
        );
        let anon = h.anonymous();
        for (who, client) in [
            ("admin", &h.admin),
            ("editor user", &user),
            ("anonymous", &anon),
        ] {
            // `raw` panics on any 2xx body holding a private key.
            let resp = client
                .raw(Method::GET, &concrete, &[], Vec::new())
                .await
                .unwrap();
            // Service-only endpoints refuse people; user-only ones refuse the admin identity.
            let service_only = concrete.starts_with("/v1/agent/");
            let user_only = concrete == "/v1/databases";
            // The audit log is the auditor's: the editor preset leaves it out.
            let auditor_only = concrete.starts_with("/v1/events");
            let expect_success = match who {
                "anonymous" => false,
                "admin" => !user_only,
                _ => !service_only && !auditor_only,
            };
            if expect_success {
                assert!(
                    resp.status.is_success(),
                    "GET {concrete} as {who}: {:?}",
                    resp.status
                );
            }
            assert!(!contains(&resp.body, b"PRIVATE KEY"), "GET {concrete}");
            assert!(
                !contains(&resp.body, b"argon2"),
                "GET {concrete} leaks a password hash"
            );
        }
        gets += 1;
    }
    let _ = h
        .anonymous()
        .raw(Method::GET, "/v1/openapi.json", &[], Vec::new())
        .await
        .unwrap();
    assert!(gets >= 6, "only {gets} GET endpoints");
    assert!(SCANNED.load(Ordering::Relaxed) > before);
    h.stop().await;
}

// ---- 10. Bad input and robustness ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let h = Harness::start().await;
    let json_ct = [("content-type", "application/json")];
    let post =
        |path: &'static str, headers: &'static [(&'static str, &'static str)], body: Vec<u8>| {
            let admin = h.admin.clone();
            async move {
                admin
                    .raw(Method::POST, path, headers, body)
                    .await
                    .unwrap()
                    .api_err()
            }
        };
    const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
    post("/v1/users", JSON, b"{\"name\":".to_vec())
        .await
        .assert(400, "bad_request", &["request body"]);
    post("/v1/users", JSON, b"not json".to_vec()).await.assert(
        400,
        "bad_request",
        &["request body"],
    );
    post("/v1/users", JSON, Vec::new())
        .await
        .assert(400, "bad_request", &["request body"]);
    post(
        "/v1/users",
        JSON,
        br#"{"name":"x","roles":["access"],"nickname":"y"}"#.to_vec(),
    )
    .await
    .assert(400, "bad_request", &["nickname"]);
    post(
        "/v1/users",
        JSON,
        br#"{"name":"x","roles":"access"}"#.to_vec(),
    )
    .await
    .assert(400, "bad_request", &["roles"]);
    post(
        "/v1/users",
        &[("content-type", "text/plain")],
        br#"{"name":"x","roles":["access"]}"#.to_vec(),
    )
    .await
    .assert(400, "bad_request", &["Content-Type: application/json"]);
    post(
        "/v1/users",
        &[],
        br#"{"name":"x","roles":["access"]}"#.to_vec(),
    )
    .await
    .assert(400, "bad_request", &["Content-Type: application/json"]);
    // Anonymous endpoints too.
    let anon = h.anonymous();
    anon.raw(Method::POST, "/v1/login", &json_ct, b"[1,2".to_vec())
        .await
        .unwrap()
        .api_err()
        .assert(400, "bad_request", &["request body"]);
    anon.raw(
        Method::POST,
        "/v1/login",
        &json_ct,
        br#"{"user":"a","password":"b","public_key":"c","extra":1}"#.to_vec(),
    )
    .await
    .unwrap()
    .api_err()
    .assert(400, "bad_request", &["extra"]);

    // Over 1 MiB.
    let mut big = br#"{"name":"x","roles":["access"],"traits":{"t":[""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    big.extend_from_slice(br#""]}}"#);
    post("/v1/users", JSON, big)
        .await
        .assert(413, "payload_too_large", &["1 MiB"]);
    let mut big_login = br#"{"user":"a","password":""#.to_vec();
    big_login.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 10));
    big_login.extend_from_slice(br#"","public_key":"x"}"#);
    anon.raw(Method::POST, "/v1/login", &json_ct, big_login)
        .await
        .unwrap()
        .api_err()
        .assert(413, "payload_too_large", &["1 MiB"]);

    // Bad path parameters and bad names.
    h.admin
        .raw(Method::GET, "/v1/users/%FF%FE", &[], Vec::new())
        .await
        .unwrap()
        .api_err()
        .assert(400, "bad_request", &["path"]);
    expect_err(
        h.admin
            .post::<_, Value>("/v1/users", &json!({"name": "-x", "roles": ["access"]}))
            .await,
        400,
        "bad_request",
        &["letter or digit"],
    );
    expect_err(
        h.admin
            .post::<_, Value>("/v1/users", &json!({"name": "y", "roles": []}))
            .await,
        400,
        "bad_request",
        &["at least one role"],
    );
    expect_err(
        h.admin
            .post::<_, Value>(
                "/v1/users",
                &json!({"name": "y", "roles": ["access"], "password": "short"}),
            )
            .await,
        400,
        "bad_request",
        &["too short"],
    );
    expect_err(
        h.admin
            .post::<_, Value>(
                "/v1/users",
                &json!({"name": "y", "roles": ["access"], "traits": {"t": ["a\nb"]}}),
            )
            .await,
        400,
        "bad_request",
        &["printable"],
    );
    let _: CreateUserResponse = h
        .admin
        .post("/v1/users", &json!({"name": "y", "roles": ["access"]}))
        .await
        .unwrap();
    expect_err(
        h.admin
            .post::<_, Value>("/v1/users", &json!({"name": "y", "roles": ["access"]}))
            .await,
        409,
        "already_exists",
        &["\"y\" already exists"],
    );
    expect_err(
        h.admin
            .put::<_, Value>("/v1/users/nobody", &json!({"roles": ["access"]}))
            .await,
        404,
        "not_found",
        &["nobody"],
    );
    expect_err(
        h.admin.delete("/v1/users/nobody").await,
        404,
        "not_found",
        &["nobody"],
    );
    // Nothing above broke the server.
    let _: Value = h.anonymous().get("/v1/ping").await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_survives_garbage_and_load() {
    let h = Harness::start().await;
    let ping = || {
        let anon = h.anonymous();
        async move {
            let p: Value = anon.get("/v1/ping").await.unwrap();
            assert_eq!(p["cluster_name"], CLUSTER);
        }
    };
    // A client that connects and says nothing holds no one else up.
    let idle = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    ping().await;
    // Plain HTTP on the TLS port.
    let mut plain = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    plain
        .write_all(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    ping().await;
    // Random bytes.
    let mut junk = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk.write_all(&noise).await.unwrap();
    let _ = junk.shutdown().await;
    ping().await;
    // A TLS-like first byte followed by nonsense.
    let mut half = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    drop(half);
    ping().await;
    // Valid TLS, then garbage instead of HTTP.
    {
        let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            r.add(rustls_pki_types::CertificateDer::from(h.host_ca_der()))
                .unwrap();
            r
        })
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        tls.write_all(b"\x00\x01\x02 NOT HTTP \r\n\r\n")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        let mut buf = Vec::new();
        use tokio::io::AsyncReadExt;
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        assert!(
            buf.is_empty() || text.starts_with("HTTP/1.1 400"),
            "garbage HTTP answered with {text:?}"
        );
    }
    ping().await;
    drop((idle, plain));

    // 200 concurrent pings, each on its own TLS connection.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let anon = h.anonymous();
        tasks.spawn(async move { anon.get::<Value>("/v1/ping").await });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        let v = r.unwrap().unwrap();
        assert_eq!(v["cluster_name"], CLUSTER);
        ok += 1;
    }
    assert_eq!(ok, 200);
    h.stop().await;
}

// ---- 11. Concurrent updates ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_user_updates_lose_nothing() {
    let h = Harness::start().await;
    let _: CreateUserResponse = h
        .admin
        .post(
            "/v1/users",
            &json!({"name": "frank", "roles": ["access"], "traits": {"base": ["keep"]}}),
        )
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let admin = h.admin.clone();
        let roles = if i % 2 == 0 {
            vec!["access", "auditor"]
        } else {
            vec!["editor"]
        };
        tasks.spawn(async move {
            let r: Result<UserView, ApiErr> = admin
                .put(
                    "/v1/users/frank",
                    &json!({"roles": roles, "traits": {format!("k{i}"): [format!("v{i}")]}}),
                )
                .await;
            (i, r)
        });
    }
    let mut applied = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (i, r) = r.unwrap();
        match r {
            Ok(view) => {
                assert_eq!(view.name, "frank");
                assert_eq!(view.traits[&format!("k{i}")], vec![format!("v{i}")]);
                applied.push(i);
            }
            // Giving up after many compare-and-swap retries is allowed; corrupting is not.
            Err(e) => e.assert(409, "conflict", &["try again"]),
        }
    }
    assert!(!applied.is_empty());
    let frank: UserView = h.admin.get("/v1/users/frank").await.unwrap();
    assert_eq!(frank.status, "invited");
    assert_eq!(frank.traits["base"], vec!["keep".to_owned()]);
    for i in &applied {
        assert_eq!(
            frank.traits.get(&format!("k{i}")),
            Some(&vec![format!("v{i}")]),
            "update {i} was lost"
        );
    }
    assert!(
        frank.roles == ["access", "auditor"] || frank.roles == ["editor"],
        "roles are one request's, whole: {:?}",
        frank.roles
    );
    let all: Vec<UserView> = h.admin.get("/v1/users").await.unwrap();
    assert_eq!(all.iter().filter(|u| u.name == "frank").count(), 1);
    h.stop().await;
}
