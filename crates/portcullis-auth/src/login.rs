//! Password (+ TOTP) login, with rate limits and lockout, ending in a user certificate.
//!
//! Messages say why a login failed without telling whether a user exists: an unknown user and
//! a wrong password get the same answer after the same amount of work.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use portcullis_api::{LoginRequest, LoginResponse};
use portcullis_ca::PublicKey;
use portcullis_core::identity::Identity;
use portcullis_core::rbac::AccessChecker;
use time::OffsetDateTime;

use crate::config::SecondFactor;
use crate::error::{AuthError, Result};
use crate::server::AuthServer;
use crate::totp;
use crate::users::{unix, verify_blocking, verify_dummy_blocking};

const BAD_CREDENTIALS: &str =
    "invalid user name or password; check both (passwords are case-sensitive)";

const SECOND_FACTOR_NEEDED: &str = "this cluster requires a second factor: give the code from \
     your authenticator app (--otp=CODE)";

impl AuthServer {
    /// Checks a login and, if it succeeds, certifies `req.public_key` for the user. Every
    /// refusal is a `user.login` failure event.
    pub async fn login(&self, req: LoginRequest, client_ip: IpAddr) -> Result<LoginResponse> {
        let user = req
            .user
            .chars()
            .take(portcullis_core::names::MAX_NAME_LEN)
            .collect::<String>();
        let result = self.login_checked(req, client_ip).await;
        if let Err(e) = &result {
            if !matches!(e, AuthError::Internal(_)) {
                self.emit(
                    portcullis_audit::Event::new(
                        portcullis_audit::EventKind::UserLoginFailure,
                        &self.cluster_name,
                    )
                    .with("user", user)
                    .with("method", "local")
                    .with("success", false)
                    .with("error", e.to_string())
                    .with("addr.remote", client_ip.to_string()),
                );
            }
        }
        result
    }

    async fn login_checked(&self, req: LoginRequest, client_ip: IpAddr) -> Result<LoginResponse> {
        let started = Instant::now();
        self.ip_limiter
            .check(&client_ip, started)
            .map_err(|l| AuthError::RateLimited {
                retry_after: l.retry_after,
            })?;
        if req.user.is_empty() || req.user.len() > portcullis_core::names::MAX_NAME_LEN {
            return Err(AuthError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        self.user_limiter
            .check(&req.user, started)
            .map_err(|l| AuthError::RateLimited {
                retry_after: l.retry_after,
            })?;
        let public_key = PublicKey::from_pem(&req.public_key)?;
        let now = OffsetDateTime::now_utc();
        let auth = &self.config.authentication;
        let otp = req.otp.as_deref().map(str::trim).filter(|c| !c.is_empty());

        let Some((user, _)) = self.store.user(&req.user).await? else {
            if auth.second_factor == SecondFactor::On && otp.is_none() {
                // Known users get this answer before any password check: so must unknown
                // ones, or it tells which user names exist.
                tracing::info!(user = %req.user, ip = %client_ip, reason = "unknown user", "login failed");
                return Err(AuthError::Unauthenticated(SECOND_FACTOR_NEEDED.into()));
            }
            // Same work as for a real user, then the same answer.
            verify_dummy_blocking(req.password.clone()).await;
            tracing::info!(user = %req.user, ip = %client_ip, reason = "unknown user", "login failed");
            return Err(AuthError::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        if let Some(until) = user.locked_until.filter(|t| *t > now) {
            tracing::info!(user = %req.user, ip = %client_ip, reason = "locked", "login failed");
            return Err(AuthError::Locked(format!(
                "this user is locked after {} failed logins until {}; try again later or ask an \
                 administrator to run `pcctl users reset {}`",
                auth.max_login_attempts,
                until
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                user.name
            )));
        }
        let Some(phc) = user.password_hash.clone() else {
            return Err(AuthError::Unauthenticated(format!(
                "this user has not set a password yet: accept the invite with `pc invite accept \
                 TOKEN`, or, if it expired, ask an administrator for a new one (`pcctl users reset {}`)",
                user.name
            )));
        };
        let totp_needed = match auth.second_factor {
            SecondFactor::On => true,
            SecondFactor::Optional => user.totp_secret.is_some(),
            SecondFactor::Off => false,
        };
        if totp_needed && otp.is_none() {
            // Answer before checking the password, so this reply is no password oracle.
            return Err(AuthError::Unauthenticated(SECOND_FACTOR_NEEDED.into()));
        }
        if !verify_blocking(req.password.clone(), phc).await {
            self.record_failed_login(&user.name, now).await?;
            tracing::info!(user = %req.user, ip = %client_ip, reason = "bad password", "login failed");
            return Err(AuthError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        let mut totp_step = None;
        if totp_needed {
            let Some(secret) = user.totp_secret.as_deref() else {
                return Err(AuthError::Unauthenticated(format!(
                    "no TOTP device is enrolled for this user; ask an administrator to run \
                     `pcctl users reset {}` and enrol one",
                    user.name
                )));
            };
            match totp::verify(
                secret,
                otp.unwrap_or_default(),
                unix(now),
                user.totp_last_step,
            ) {
                Some(step) => totp_step = Some(step),
                None => {
                    self.record_failed_login(&user.name, now).await?;
                    tracing::info!(user = %req.user, ip = %client_ip, reason = "bad second factor", "login failed");
                    return Err(AuthError::Unauthenticated(
                        "the second factor code is wrong or was already used; check the \
                         device's clock and use a fresh code"
                            .into(),
                    ));
                }
            }
        }
        // Success: reset the failure count and burn the TOTP step (atomically, so a code
        // replayed concurrently cannot log in twice).
        let user = self
            .modify_user(&user.name, |u| {
                if let Some(step) = totp_step {
                    if step <= u.totp_last_step {
                        return Err(AuthError::Unauthenticated(
                            "the second factor code was already used; wait for a fresh code".into(),
                        ));
                    }
                    u.totp_last_step = step;
                }
                u.failed_logins = 0;
                u.locked_until = None;
                Ok(())
            })
            .await?;

        let roles = self.store.roles_named(&user.roles).await?;
        let checker = AccessChecker::new(roles, &user.traits);
        if checker.options().require_mfa && totp_step.is_none() {
            return Err(AuthError::Forbidden(
                "a role of this user requires a second factor, but none is enrolled; ask an \
                 administrator to reset the user so a TOTP device can be enrolled"
                    .into(),
            ));
        }
        let requested = req
            .ttl_seconds
            .map(Duration::from_secs)
            .unwrap_or(auth.default_session_ttl.as_std());
        let ttl = checker
            .session_ttl(Some(requested))
            .max(Duration::from_secs(60));
        let identity = Identity {
            username: user.name.clone(),
            cluster_name: self.cluster_name.clone(),
            roles: user.roles.clone(),
            traits: user.traits.clone(),
            expires: now + ttl,
            mfa_verified: totp_step.is_some(),
            login_ip: Some(client_ip),
            route: None,
        };
        let cert = self.user_ca.issue_user(&identity, &public_key, now)?;
        tracing::info!(user = %user.name, ip = %client_ip, mfa = totp_step.is_some(), ttl_secs = ttl.as_secs(), "login succeeded");
        self.emit(
            portcullis_audit::Event::new(
                portcullis_audit::EventKind::UserLogin,
                &self.cluster_name,
            )
            .with("user", user.name.clone())
            .with("method", "local")
            .with("success", true)
            .with("mfa_verified", totp_step.is_some())
            .with("addr.remote", client_ip.to_string()),
        );
        self.emit_cert(
            &user.name,
            "user",
            crate::audit::user_identity_fields(&identity),
        );
        Ok(LoginResponse {
            cert_pem: portcullis_ca::cert::to_pem(&cert),
            cas: self.ca_infos(),
            user: user.name,
            roles: identity.roles,
            expires: identity.expires,
        })
    }

    async fn record_failed_login(&self, name: &str, now: OffsetDateTime) -> Result<()> {
        let max = self.config.authentication.max_login_attempts;
        let lockout = self.config.authentication.lockout_duration.as_std();
        let u = self
            .modify_user(name, |u| {
                u.failed_logins = u.failed_logins.saturating_add(1);
                if u.failed_logins >= max {
                    u.locked_until = Some(now + lockout);
                    u.failed_logins = 0;
                }
                Ok(())
            })
            .await?;
        if u.locked_until.is_some_and(|t| t > now) {
            tracing::warn!(user = %name, "user locked after repeated failed logins");
        }
        Ok(())
    }
}
