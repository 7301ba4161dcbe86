//! How fast auth can issue user certificates (target: at least 5,000 per second on one core).
#![allow(missing_docs, clippy::expect_used)]

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portcullis_ca::{CaKind, CertAuthority, KeyPair, PublicKey};
use portcullis_core::identity::Identity;
use time::OffsetDateTime;

fn bench(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let ca = CertAuthority::generate(CaKind::User, "bench", now).expect("CA");
    let user_key = KeyPair::generate().expect("key");
    let pem = user_key.public_key().to_pem();
    let identity = Identity {
        username: "alice".into(),
        cluster_name: "bench".into(),
        roles: vec!["access".into(), "developer".into()],
        traits: BTreeMap::from([("db_users".into(), vec!["app".into()])]),
        expires: now + time::Duration::hours(12),
        mfa_verified: true,
        login_ip: Some("127.0.0.1".parse().expect("ip")),
        route: None,
    };
    let mut group = c.benchmark_group("user_certificate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue", |b| {
        b.iter(|| {
            ca.issue_user(&identity, &user_key.public_key(), now)
                .expect("issue")
        })
    });
    group.bench_function("parse_key_and_issue", |b| {
        b.iter(|| {
            let key = PublicKey::from_pem(&pem).expect("key");
            ca.issue_user(&identity, &key, now).expect("issue")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
