//! End-to-end checks of the harness itself and of the daemon/pcctl basics: the daemon
//! starts from a config file, publishes its admin identity and address, `pcctl` finds them
//! in the data dir, and errors are one line on stderr with a non-zero exit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Cluster;

#[test]
fn daemon_publishes_identity_and_address_and_pcctl_reports_status() {
    let cluster = Cluster::start();

    let admin = cluster.data_dir().join("admin");
    let mode = std::fs::metadata(admin.join("identity.pem"))
        .expect("identity.pem")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "admin identity must be private");
    assert!(cluster.auth_addr().ip().is_loopback());
    assert_ne!(cluster.auth_addr().port(), 0, "auth_addr is the bound port");

    let status = cluster.pcctl_ok(&["status"]);
    assert!(
        status.contains(common::CLUSTER_NAME),
        "status names the cluster:\n{status}"
    );
}

#[test]
fn overrides_reach_the_daemon() {
    let cluster = Cluster::start_with("cluster_name: e2e-override\nlog: { level: debug }");
    let status = cluster.pcctl_ok(&["status"]);
    assert!(
        status.contains("e2e-override"),
        "status names the overridden cluster:\n{status}"
    );
}

#[test]
fn pcctl_errors_are_one_line_on_stderr() {
    let cluster = Cluster::start();
    // An unknown --format is a usage error pcctl must reject.
    let out = cluster.pcctl(&[
        "auth",
        "sign",
        "--format=no-such-format",
        "--out",
        &cluster.dir().join("x").display().to_string(),
    ]);
    assert!(!out.status.success(), "bad --format accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.trim().is_empty(), "no error message on stderr");

    // A data dir without an identity: pcctl must say so in one line, not panic.
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(common::bin("pcctl"));
    cmd.arg("-d").arg(empty.path()).arg("status");
    let out = common::run(&mut cmd);
    assert!(!out.status.success(), "status without identity succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "pcctl panicked:\n{stderr}");
}
