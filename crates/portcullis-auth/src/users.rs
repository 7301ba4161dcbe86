//! Local users: creation, invites, updates, resets.

use std::collections::BTreeMap;

use portcullis_api::{
    CreateUserRequest, CreateUserResponse, InviteDescription, InviteView, TotpEnrollment,
    UpdateUserRequest, UserView,
};
use portcullis_audit::EventKind;
use portcullis_core::names::validate_name;
use time::OffsetDateTime;

use crate::config::SecondFactor;
use crate::error::{AuthError, Result};
use crate::secret;
use crate::server::AuthServer;
use crate::store::{keys, InviteRecord, UserRecord};
use crate::totp;

/// Most values one trait may hold.
pub const MAX_TRAIT_VALUES: usize = 64;
/// Longest trait value.
pub const MAX_TRAIT_VALUE_LEN: usize = 256;
/// Most traits one user may have.
pub const MAX_TRAITS: usize = 32;
/// Most roles one user may have.
pub const MAX_USER_ROLES: usize = 64;

fn user_key(name: &str) -> String {
    format!("{}{name}", keys::USERS)
}

fn invite_key(token: &str) -> String {
    format!("{}{}", keys::INVITES, secret::token_hash(token))
}

/// How a user is shown to administrators.
pub fn view(u: &UserRecord, now: OffsetDateTime) -> UserView {
    let locked = u.locked_until.filter(|t| *t > now);
    let status = if locked.is_some() {
        "locked"
    } else if u.password_hash.is_none() {
        "invited"
    } else {
        "active"
    };
    UserView {
        name: u.name.clone(),
        roles: u.roles.clone(),
        traits: u.traits.clone(),
        status: status.into(),
        totp_enrolled: u.totp_secret.is_some(),
        locked_until: locked,
        created: u.created,
    }
}

fn validate_traits(traits: &BTreeMap<String, Vec<String>>) -> Result<()> {
    if traits.len() > MAX_TRAITS {
        return Err(AuthError::BadRequest(format!(
            "a user may have at most {MAX_TRAITS} traits"
        )));
    }
    for (k, values) in traits {
        validate_name("trait", k).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        if values.len() > MAX_TRAIT_VALUES {
            return Err(AuthError::BadRequest(format!(
                "trait {k:?} has {} values; at most {MAX_TRAIT_VALUES} are allowed",
                values.len()
            )));
        }
        for v in values {
            if v.is_empty() || v.len() > MAX_TRAIT_VALUE_LEN || v.chars().any(char::is_control) {
                return Err(AuthError::BadRequest(format!(
                    "trait {k:?} value {v:?} must be 1 to {MAX_TRAIT_VALUE_LEN} printable characters"
                )));
            }
        }
    }
    Ok(())
}

impl AuthServer {
    async fn check_roles_exist(&self, roles: &[String]) -> Result<()> {
        if roles.is_empty() {
            return Err(AuthError::BadRequest(
                "give the user at least one role, e.g. --roles=access".into(),
            ));
        }
        if roles.len() > MAX_USER_ROLES {
            return Err(AuthError::BadRequest(format!(
                "a user may have at most {MAX_USER_ROLES} roles"
            )));
        }
        for r in roles {
            if self.store.role(r).await?.is_none() {
                let known: Vec<String> = self
                    .store
                    .backend()
                    .range(keys::ROLES)
                    .await?
                    .into_iter()
                    .filter_map(|i| i.key.strip_prefix(keys::ROLES).map(str::to_owned))
                    .collect();
                return Err(AuthError::BadRequest(format!(
                    "role {r:?} does not exist; create it with `pcctl create -f role.yaml` or use one of: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    async fn new_invite(&self, user: &str, now: OffsetDateTime) -> Result<InviteView> {
        let token = secret::new_token();
        let expires = now + self.config.authentication.invite_ttl.as_std();
        let record = InviteRecord {
            user: user.to_owned(),
            expires,
            totp_secret: None,
        };
        self.store
            .create(&invite_key(&token), &record, Some(expires))
            .await?;
        Ok(InviteView {
            token: token.to_string(),
            expires,
        })
    }

    async fn delete_invites_for(&self, user: &str) -> Result<()> {
        for (key, invite) in self.store.list::<InviteRecord>(keys::INVITES).await? {
            if invite.user == user {
                self.store.delete(&key).await?;
            }
        }
        Ok(())
    }

    /// Creates a user with an invite, or — for automation — with a password set directly (and,
    /// when the second factor is `on`, an enrolled TOTP device whose secret is returned once).
    /// `by` names who asked, for the `user.create` event.
    pub async fn create_user(
        &self,
        req: CreateUserRequest,
        by: &str,
    ) -> Result<CreateUserResponse> {
        let mut event = self
            .event(EventKind::UserCreate)
            .with("user", by)
            .with("name", &req.name)
            .with("roles", &req.roles);
        if !req.traits.is_empty() {
            event.set("traits", &req.traits);
        }
        event.set("password_set", req.password.is_some());
        let result = self.create_user_checked(req).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn create_user_checked(&self, req: CreateUserRequest) -> Result<CreateUserResponse> {
        let now = OffsetDateTime::now_utc();
        validate_name("user", &req.name).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        self.check_roles_exist(&req.roles).await?;
        validate_traits(&req.traits)?;
        let mut record = UserRecord {
            name: req.name.clone(),
            roles: req.roles.clone(),
            traits: req.traits.clone(),
            created: now,
            password_hash: None,
            totp_secret: None,
            totp_last_step: 0,
            failed_logins: 0,
            locked_until: None,
        };
        let mut totp_out = None;
        if let Some(password) = &req.password {
            secret::check_password_policy(password).map_err(AuthError::BadRequest)?;
            record.password_hash = Some(hash_blocking(password.clone()).await?);
            if self.config.authentication.second_factor == SecondFactor::On {
                let s = totp::new_secret();
                totp_out = Some(TotpEnrollment {
                    uri: totp::uri(&self.cluster_name, &req.name, &s),
                    secret: s.clone(),
                });
                record.totp_secret = Some(s);
            }
        }
        self.store
            .create(&user_key(&req.name), &record, None)
            .await
            .map_err(|e| match e {
                AuthError::AlreadyExists(_) => AuthError::AlreadyExists(format!(
                    "user {:?} already exists; change it with `pcctl users update` or remove it first",
                    req.name
                )),
                other => other,
            })?;
        let invite = if req.password.is_none() {
            Some(self.new_invite(&req.name, now).await?)
        } else {
            None
        };
        tracing::info!(user = %req.name, roles = ?req.roles, "user created");
        Ok(CreateUserResponse {
            user: view(&record, now),
            invite,
            totp: totp_out,
        })
    }

    /// Every user.
    pub async fn list_users(&self) -> Result<Vec<UserView>> {
        let now = OffsetDateTime::now_utc();
        Ok(self
            .store
            .list::<UserRecord>(keys::USERS)
            .await?
            .iter()
            .map(|(_, u)| view(u, now))
            .collect())
    }

    async fn user_or_not_found(&self, name: &str) -> Result<(UserRecord, u64)> {
        self.store.user(name).await?.ok_or_else(|| {
            AuthError::NotFound(format!(
                "user {name:?} not found; `pcctl users ls` lists users"
            ))
        })
    }

    /// One user.
    pub async fn get_user(&self, name: &str) -> Result<UserView> {
        let (u, _) = self.user_or_not_found(name).await?;
        Ok(view(&u, OffsetDateTime::now_utc()))
    }

    /// Changes a user's roles and/or traits; `by` names who asked, for the `user.update` event.
    pub async fn update_user(
        &self,
        name: &str,
        req: UpdateUserRequest,
        by: &str,
    ) -> Result<UserView> {
        let mut event = self
            .event(EventKind::UserUpdate)
            .with("user", by)
            .with("name", name);
        if let Some(roles) = &req.roles {
            event.set("roles", roles);
        }
        if let Some(traits) = &req.traits {
            event.set("traits", traits);
        }
        let result = self.update_user_checked(name, req).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn update_user_checked(&self, name: &str, req: UpdateUserRequest) -> Result<UserView> {
        if let Some(roles) = &req.roles {
            self.check_roles_exist(roles).await?;
        }
        if let Some(traits) = &req.traits {
            validate_traits(traits)?;
        }
        let updated = self
            .modify_user(name, |u| {
                if let Some(roles) = &req.roles {
                    u.roles = roles.clone();
                }
                if let Some(traits) = &req.traits {
                    for (k, v) in traits {
                        if v.is_empty() {
                            u.traits.remove(k);
                        } else {
                            u.traits.insert(k.clone(), v.clone());
                        }
                    }
                }
                Ok(())
            })
            .await?;
        tracing::info!(user = %name, "user updated");
        Ok(view(&updated, OffsetDateTime::now_utc()))
    }

    /// Applies `change` to a user with compare-and-swap, retrying on concurrent changes.
    pub(crate) async fn modify_user(
        &self,
        name: &str,
        mut change: impl FnMut(&mut UserRecord) -> Result<()>,
    ) -> Result<UserRecord> {
        for _ in 0..16 {
            let (mut u, rev) = self.user_or_not_found(name).await?;
            change(&mut u)?;
            match self.store.swap(&user_key(name), rev, &u, None).await {
                Ok(_) => return Ok(u),
                Err(AuthError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(AuthError::Conflict(format!(
            "user {name:?} is being changed by many requests at once; try again"
        )))
    }

    /// Removes a user and their pending invites; `by` names who asked.
    pub async fn delete_user(&self, name: &str, by: &str) -> Result<()> {
        let event = self
            .event(EventKind::UserDelete)
            .with("user", by)
            .with("name", name);
        let result = self.delete_user_checked(name).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn delete_user_checked(&self, name: &str) -> Result<()> {
        if !self.store.delete(&user_key(name)).await? {
            return Err(AuthError::NotFound(format!("user {name:?} not found")));
        }
        self.delete_invites_for(name).await?;
        tracing::info!(user = %name, "user deleted");
        Ok(())
    }

    /// Clears a user's password and TOTP device, lifts any lockout, and issues a new invite;
    /// recorded as a `user.update` with `reset: true`.
    pub async fn reset_user(&self, name: &str, by: &str) -> Result<InviteView> {
        let event = self
            .event(EventKind::UserUpdate)
            .with("user", by)
            .with("name", name)
            .with("reset", true);
        let result = self.reset_user_checked(name).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn reset_user_checked(&self, name: &str) -> Result<InviteView> {
        self.modify_user(name, |u| {
            u.password_hash = None;
            u.totp_secret = None;
            u.totp_last_step = 0;
            u.failed_logins = 0;
            u.locked_until = None;
            Ok(())
        })
        .await?;
        self.delete_invites_for(name).await?;
        tracing::info!(user = %name, "user reset");
        self.new_invite(name, OffsetDateTime::now_utc()).await
    }

    async fn invite(&self, token: &str) -> Result<(InviteRecord, u64)> {
        self.store
            .get::<InviteRecord>(&invite_key(token))
            .await?
            .ok_or_else(|| {
                AuthError::NotFound(
                    "this invite is unknown or has expired; ask an administrator for a new one \
                     (`pcctl users reset NAME`)"
                        .into(),
                )
            })
    }

    /// What accepting an invite needs; fixes the TOTP secret to enrol on first call.
    pub async fn describe_invite(&self, token: &str) -> Result<InviteDescription> {
        let second_factor = self.config.authentication.second_factor;
        for _ in 0..8 {
            let (mut invite, rev) = self.invite(token).await?;
            if second_factor != SecondFactor::Off && invite.totp_secret.is_none() {
                invite.totp_secret = Some(totp::new_secret());
                match self
                    .store
                    .swap(&invite_key(token), rev, &invite, Some(invite.expires))
                    .await
                {
                    Ok(_) => {}
                    Err(AuthError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            let totp = invite.totp_secret.as_ref().map(|s| TotpEnrollment {
                uri: totp::uri(&self.cluster_name, &invite.user, s),
                secret: s.clone(),
            });
            return Ok(InviteDescription {
                user: invite.user,
                expires: invite.expires,
                totp,
                totp_required: second_factor == SecondFactor::On,
            });
        }
        Err(AuthError::Conflict("the invite is busy; try again".into()))
    }

    /// Sets the password (and enrols TOTP) from an invite; the invite is used up.
    pub async fn accept_invite(
        &self,
        token: &str,
        password: &str,
        otp: Option<&str>,
    ) -> Result<String> {
        secret::check_password_policy(password).map_err(AuthError::BadRequest)?;
        let (invite, rev) = self.invite(token).await?;
        let now = OffsetDateTime::now_utc();
        let second_factor = self.config.authentication.second_factor;
        let mut enrolled: Option<(String, u64)> = None;
        match (second_factor, otp.filter(|c| !c.trim().is_empty())) {
            (SecondFactor::Off, _) | (SecondFactor::Optional, None) => {}
            (SecondFactor::On, None) => {
                return Err(AuthError::BadRequest(
                    "this cluster requires a second factor: add the TOTP secret to an \
                     authenticator app and give its current code"
                        .into(),
                ))
            }
            (_, Some(code)) => {
                let s = invite.totp_secret.clone().ok_or_else(|| {
                    AuthError::BadRequest(
                        "fetch the invite's TOTP secret first (POST /v1/invites/describe)".into(),
                    )
                })?;
                let step = totp::verify(&s, code, unix(now), 0).ok_or_else(|| {
                    AuthError::BadRequest(
                        "the TOTP code is wrong; check the device's clock and use a fresh code"
                            .into(),
                    )
                })?;
                enrolled = Some((s, step));
            }
        }
        let hash = hash_blocking(password.to_owned()).await?;
        // Use the invite up first, atomically: of two concurrent accepts only one gets here.
        self.store
            .delete_at(&invite_key(token), rev)
            .await
            .map_err(|_| AuthError::NotFound("this invite was just used".into()))?;
        self.modify_user(&invite.user, |u| {
            u.password_hash = Some(hash.clone());
            u.totp_secret = enrolled.as_ref().map(|(s, _)| s.clone());
            u.totp_last_step = enrolled.as_ref().map(|(_, step)| *step).unwrap_or(0);
            u.failed_logins = 0;
            u.locked_until = None;
            Ok(())
        })
        .await?;
        tracing::info!(user = %invite.user, totp = enrolled.is_some(), "invite accepted");
        self.emit(
            self.event(EventKind::UserPasswordChange)
                .with("user", &invite.user)
                .with("totp_enrolled", enrolled.is_some())
                .with("success", true),
        );
        Ok(invite.user)
    }
}

/// Unix seconds of `t` (0 before 1970).
pub(crate) fn unix(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

/// argon2 takes tens of milliseconds of CPU: keep it off the async workers.
pub(crate) async fn hash_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let p = zeroize::Zeroizing::new(password);
        secret::hash_password(&p)
    })
    .await
    .map_err(|e| AuthError::Internal(format!("password hashing task: {e}")))?
    .map_err(AuthError::Internal)
}

/// Verifies a password off the async workers.
pub(crate) async fn verify_blocking(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let p = zeroize::Zeroizing::new(password);
        secret::verify_password(&p, &phc)
    })
    .await
    .unwrap_or(false)
}

/// Spends a password check's work for an unknown user, off the async workers (the dummy hash
/// itself is made on first use, which must not block a worker either).
pub(crate) async fn verify_dummy_blocking(password: String) {
    let _ = tokio::task::spawn_blocking(move || {
        let p = zeroize::Zeroizing::new(password);
        secret::verify_password(&p, secret::dummy_hash())
    })
    .await;
}
