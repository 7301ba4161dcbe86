//! Roles: created, replaced and deleted by administrators, each change audited.

use portcullis_audit::EventKind;
use portcullis_core::role::Role;

use crate::error::{AuthError, Result};
use crate::server::AuthServer;
use crate::store::{keys, UserRecord};

fn role_key(name: &str) -> String {
    format!("{}{name}", keys::ROLES)
}

impl AuthServer {
    /// Stores `role` under `name`: creates it, or with `force` replaces it. Recorded as
    /// `role.created`, or `role.updated` when `force` replaced an existing role; `by` names who
    /// asked.
    pub async fn put_role(&self, name: &str, role: Role, force: bool, by: &str) -> Result<Role> {
        let existed = force && matches!(self.store.role(name).await, Ok(Some(_)));
        let kind = if existed {
            EventKind::RoleUpdated
        } else {
            EventKind::RoleCreated
        };
        let event = self.event(kind).with("user", by).with("name", name);
        let result = self.put_role_checked(name, role, force).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn put_role_checked(&self, name: &str, role: Role, force: bool) -> Result<Role> {
        role.validate()
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        if role.name() != name {
            return Err(AuthError::BadRequest(format!(
                "the path names role {name:?} but metadata.name is {:?}",
                role.name()
            )));
        }
        let key = role_key(name);
        if force {
            self.store.put(&key, &role, None).await?;
        } else {
            self.store
                .create(&key, &role, None)
                .await
                .map_err(|e| match e {
                    AuthError::AlreadyExists(_) => AuthError::AlreadyExists(format!(
                        "role {name:?} already exists; use --force to replace it"
                    )),
                    other => other,
                })?;
        }
        tracing::info!(role = %name, replaced = force, "role written");
        Ok(role)
    }

    /// Deletes a role no user holds; recorded as `role.deleted` naming `by`.
    pub async fn delete_role(&self, name: &str, by: &str) -> Result<()> {
        let event = self
            .event(EventKind::RoleDeleted)
            .with("user", by)
            .with("name", name);
        let result = self.delete_role_checked(name).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn delete_role_checked(&self, name: &str) -> Result<()> {
        let holders: Vec<String> = self
            .store
            .list::<UserRecord>(keys::USERS)
            .await?
            .into_iter()
            .filter(|(_, u)| u.roles.iter().any(|r| r == name))
            .map(|(_, u)| u.name)
            .collect();
        if !holders.is_empty() {
            let shown: Vec<&str> = holders.iter().take(5).map(String::as_str).collect();
            return Err(AuthError::Conflict(format!(
                "role {name:?} is held by {} user(s) ({}{}); take it from them first with `pcctl users update`",
                holders.len(),
                shown.join(", "),
                if holders.len() > 5 { ", …" } else { "" }
            )));
        }
        if !self.store.delete(&role_key(name)).await? {
            return Err(AuthError::NotFound(format!("role {name:?} not found")));
        }
        tracing::info!(role = %name, "role deleted");
        Ok(())
    }
}
