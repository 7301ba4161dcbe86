use std::collections::BTreeMap;
use std::process::Command;

use portcullis_core::database::DbProtocol;
use portcullis_core::identity::{DbRoute, HostIdentity, Identity, SystemRole};
use proptest::prelude::*;
use time::OffsetDateTime;

use super::*;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn alice(expires: OffsetDateTime) -> Identity {
    Identity {
        username: "alice".into(),
        cluster_name: "example".into(),
        roles: vec!["access".into(), "developer".into()],
        traits: BTreeMap::from([("db_users".into(), vec!["app".into(), "ro".into()])]),
        expires,
        mfa_verified: true,
        login_ip: Some("10.1.2.3".parse().unwrap()),
        route: Some(DbRoute {
            service_name: "orders".into(),
            protocol: DbProtocol::Postgres,
            db_user: "app".into(),
            db_name: Some("shop".into()),
        }),
    }
}

#[test]
fn user_certificate_round_trip_and_verify() {
    let ca = CertAuthority::generate(CaKind::User, "example", now()).unwrap();
    let key = KeyPair::generate().unwrap();
    let id = alice(now() + time::Duration::hours(12));
    let der = ca.issue_user(&id, &key.public_key(), now()).unwrap();
    assert_eq!(decode_user_identity(&der).unwrap(), id);
    ca.verify(&der, now()).unwrap();

    let err = ca
        .verify(&der, now() + time::Duration::hours(13))
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");

    let other = CertAuthority::generate(CaKind::User, "example", now()).unwrap();
    assert!(
        other.verify(&der, now()).is_err(),
        "another CA must not verify"
    );

    let host = CertAuthority::generate(CaKind::Host, "example", now()).unwrap();
    assert!(host.issue_user(&id, &key.public_key(), now()).is_err());
}

#[test]
fn host_certificate_round_trip() {
    let ca = CertAuthority::generate(CaKind::Host, "example", now()).unwrap();
    let key = KeyPair::generate().unwrap();
    let id = HostIdentity {
        host_id: "6d3f0b9e-0000-4000-8000-000000000001".into(),
        node_name: "node-1".into(),
        cluster_name: "example".into(),
        system_roles: vec![SystemRole::Proxy, SystemRole::Db],
        expires: now() + time::Duration::hours(24),
    };
    let der = ca
        .issue_host(
            &id,
            &key.public_key(),
            vec!["localhost".into()],
            vec!["127.0.0.1".parse().unwrap()],
            now(),
        )
        .unwrap();
    assert_eq!(decode_host_identity(&der).unwrap(), id);
    assert!(decode_host_identity(
        &CertAuthority::generate(CaKind::User, "x", now())
            .unwrap()
            .issue_user(
                &alice(now() + time::Duration::hours(1)),
                &key.public_key(),
                now()
            )
            .unwrap()
    )
    .is_err());
}

#[test]
fn ca_reloads_from_parts() {
    let ca = CertAuthority::generate(CaKind::Db, "example", now()).unwrap();
    let again =
        CertAuthority::from_parts(CaKind::Db, ca.cert_der().to_vec(), ca.key_pkcs8()).unwrap();
    assert_eq!(again.pin(), ca.pin());
    assert_eq!(again.cluster_name(), "example");
    let other = KeyPair::generate().unwrap();
    assert!(
        CertAuthority::from_parts(CaKind::Db, ca.cert_der().to_vec(), other.pkcs8_der()).is_err()
    );
}

/// OpenSSL (what psql, mariadb and redis-cli use) must read what we write, including our
/// 128-bit-arc OIDs, and must verify the chain.
#[test]
fn openssl_accepts_our_certificates() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let user_ca = CertAuthority::generate(CaKind::User, "example", now()).unwrap();
    let db_ca = CertAuthority::generate(CaKind::Db, "example", now()).unwrap();
    let key = KeyPair::generate().unwrap();
    let user = user_ca
        .issue_user(
            &alice(now() + time::Duration::hours(1)),
            &key.public_key(),
            now(),
        )
        .unwrap();
    let server = db_ca
        .issue_db_server(
            &["db.internal".into(), "127.0.0.1".into()],
            &key.public_key(),
            std::time::Duration::from_secs(3600),
            now(),
        )
        .unwrap();
    for (name, ca, leaf, purpose) in [
        ("user", &user_ca, &user, "sslclient"),
        ("server", &db_ca, &server, "sslserver"),
    ] {
        let ca_path = dir.path().join(format!("{name}-ca.pem"));
        let leaf_path = dir.path().join(format!("{name}.pem"));
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        std::fs::write(&leaf_path, cert::to_pem(leaf)).unwrap();
        let out = Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile"])
            .arg(&ca_path)
            .arg(&leaf_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.path().join("server.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:db.internal") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
}

#[test]
fn garbage_never_panics() {
    for input in [
        &b""[..],
        b"\x30",
        b"\x30\x82\xff\xff",
        &[0u8; 100],
        b"-----BEGIN",
    ] {
        assert!(decode_user_identity(input).is_err());
        assert!(decode_host_identity(input).is_err());
    }
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9._@-]{0,40}"
}

fn identity_strategy() -> impl Strategy<Value = Identity> {
    (
        name_strategy(),
        proptest::collection::vec(name_strategy(), 0..5),
        proptest::collection::btree_map(
            "[a-z_]{1,10}",
            proptest::collection::vec("\\PC{0,12}", 0..4),
            0..4,
        ),
        any::<bool>(),
        proptest::option::of(any::<std::net::IpAddr>()),
        proptest::option::of((
            name_strategy(),
            proptest::sample::select(DbProtocol::ALL.to_vec()),
            "\\PC{1,20}",
            proptest::option::of("\\PC{1,20}"),
        )),
        1i64..100_000,
    )
        .prop_map(|(username, roles, traits, mfa, ip, route, secs)| Identity {
            username,
            cluster_name: "prop".into(),
            roles,
            traits,
            expires: now() + time::Duration::seconds(secs),
            mfa_verified: mfa,
            login_ip: ip,
            route: route.map(|(service_name, protocol, db_user, db_name)| DbRoute {
                service_name,
                protocol,
                db_user,
                db_name,
            }),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn identity_round_trips(id in identity_strategy()) {
        let ca = CertAuthority::generate(CaKind::User, "prop", now()).unwrap();
        let key = KeyPair::generate().unwrap();
        let der = ca.issue_user(&id, &key.public_key(), now()).unwrap();
        prop_assert_eq!(decode_user_identity(&der).unwrap(), id);
    }

    #[test]
    fn mutated_certificates_never_panic(pos in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
        let ca = CertAuthority::generate(CaKind::User, "prop", now()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut der = ca
            .issue_user(&alice(now() + time::Duration::hours(1)), &key.public_key(), now())
            .unwrap();
        let len = der.len();
        if let Some(b) = der.get_mut(pos % len) {
            *b = byte;
        }
        let _ = decode_user_identity(&der);
        let _ = ca.verify(&der, now());
        der.truncate(cut % (der.len() + 1));
        let _ = decode_user_identity(&der);
        let _ = decode_host_identity(&der);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_user_identity(&bytes);
        let _ = decode_host_identity(&bytes);
        let _ = PublicKey::from_spki_der(&bytes);
    }
}
