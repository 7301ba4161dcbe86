//! Certificates from the db CA, for database servers and for connecting to them.

use std::time::Duration;

use portcullis_api::SignDbCertResponse;
use portcullis_ca::PublicKey;
use time::OffsetDateTime;

use crate::error::{AuthError, Result};
use crate::server::AuthServer;

/// Longest database certificate lifetime: the CA's own is ten years; we stop well short.
pub const MAX_DB_CERT_TTL: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Longest database client certificate lifetime.
pub const MAX_DB_CLIENT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn check_ttl(ttl: Duration, max: Duration) -> Result<()> {
    if ttl < Duration::from_secs(60) || ttl > max {
        return Err(AuthError::BadRequest(format!(
            "the TTL must be between 1m and {}h",
            max.as_secs() / 3600
        )));
    }
    Ok(())
}

fn check_host(h: &str) -> Result<()> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'*' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadRequest(format!(
            "{h:?} is not a DNS name or IP address"
        )))
    }
}

impl AuthServer {
    /// A database server certificate for `hosts`, as `pcctl auth sign --format=db` writes; `by`
    /// names who asked, for the `cert.create` event.
    pub fn sign_db_server_cert(
        &self,
        hosts: &[String],
        public_key_pem: &str,
        ttl: Duration,
        by: &str,
    ) -> Result<SignDbCertResponse> {
        if hosts.is_empty() || hosts.len() > 100 {
            return Err(AuthError::BadRequest(
                "name 1 to 100 hosts the database is reached by (--host=db.internal,10.0.0.5)"
                    .into(),
            ));
        }
        for h in hosts {
            check_host(h)?;
        }
        check_ttl(ttl, MAX_DB_CERT_TTL)?;
        let key = PublicKey::from_pem(public_key_pem)?;
        let cert = self
            .db_ca
            .issue_db_server(hosts, &key, ttl, OffsetDateTime::now_utc())?;
        tracing::info!(hosts = ?hosts, ttl_secs = ttl.as_secs(), "database server certificate issued");
        self.emit_cert(
            by,
            "db_server",
            serde_json::json!({
                "hosts": hosts,
                "expires": crate::audit::rfc3339(OffsetDateTime::now_utc() + ttl),
            }),
        );
        Ok(SignDbCertResponse {
            cert_pem: portcullis_ca::cert::to_pem(&cert),
            ca_pem: self.db_ca.cert_pem(),
        })
    }

    /// A client certificate with subject `CN=<db_user>`: what database agents present, and
    /// what an administrator uses to check a database's certificate set-up by hand.
    pub fn sign_db_client_cert(
        &self,
        db_user: &str,
        public_key_pem: &str,
        ttl: Duration,
        by: &str,
    ) -> Result<SignDbCertResponse> {
        if db_user.is_empty() || db_user.len() > 256 || db_user.chars().any(char::is_control) {
            return Err(AuthError::BadRequest(
                "the database user must be 1 to 256 printable characters".into(),
            ));
        }
        check_ttl(ttl, MAX_DB_CLIENT_TTL)?;
        let key = PublicKey::from_pem(public_key_pem)?;
        let cert = self
            .db_ca
            .issue_db_client(db_user, &key, ttl, OffsetDateTime::now_utc())?;
        tracing::info!(db_user = %db_user, ttl_secs = ttl.as_secs(), "database client certificate issued");
        self.emit_cert(
            by,
            "db_client",
            serde_json::json!({
                "db_user": db_user,
                "expires": crate::audit::rfc3339(OffsetDateTime::now_utc() + ttl),
            }),
        );
        Ok(SignDbCertResponse {
            cert_pem: portcullis_ca::cert::to_pem(&cert),
            ca_pem: self.db_ca.cert_pem(),
        })
    }
}
