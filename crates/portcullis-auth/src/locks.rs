//! Locks: an administrator's way to cut a user off now — new sessions are refused and live
//! ones end (agents watch the lock list).

use std::time::Duration;

use portcullis_api::{CreateLockRequest, LockView};
use portcullis_audit::EventKind;
use portcullis_core::names::validate_name;
use time::OffsetDateTime;

use crate::error::{AuthError, Result};
use crate::server::AuthServer;
use crate::store::keys;

impl AuthServer {
    /// Creates a lock on a user; `by` names who asked, for the `lock.created` event.
    pub async fn create_lock(&self, req: CreateLockRequest, by: &str) -> Result<LockView> {
        let mut event = self
            .event(EventKind::LockCreated)
            .with("user", by)
            .with("target", serde_json::json!({ "user": req.user }));
        if !req.message.is_empty() {
            event.set("message", &req.message);
        }
        let result = self.create_lock_checked(req, by).await;
        if let Ok(lock) = &result {
            event.set("name", &lock.id);
            if let Some(t) = lock.expires {
                event.set("expires", crate::audit::rfc3339(t));
            }
        }
        self.emit_outcome(event, &result);
        result
    }

    async fn create_lock_checked(&self, req: CreateLockRequest, by: &str) -> Result<LockView> {
        validate_name("user", &req.user).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        if req.message.len() > 1024 || req.message.chars().any(char::is_control) {
            return Err(AuthError::BadRequest(
                "the lock message must be at most 1024 printable characters".into(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let expires = match req.ttl_seconds {
            Some(s) if s < 1 => {
                return Err(AuthError::BadRequest(
                    "the lock TTL must be at least 1s".into(),
                ))
            }
            Some(s) => Some(now + Duration::from_secs(s)),
            None => None,
        };
        let lock = LockView {
            id: uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .chars()
                .take(12)
                .collect(),
            user: req.user,
            message: req.message,
            expires,
            created: now,
            created_by: by.to_owned(),
        };
        self.store
            .create(&format!("{}{}", keys::LOCKS, lock.id), &lock, expires)
            .await?;
        tracing::warn!(user = %lock.user, id = %lock.id, by = %by, "lock created");
        Ok(lock)
    }

    /// Active locks.
    pub async fn list_locks(&self) -> Result<Vec<LockView>> {
        Ok(self
            .store
            .list::<LockView>(keys::LOCKS)
            .await?
            .into_iter()
            .map(|(_, l)| l)
            .collect())
    }

    /// Removes a lock; `by` names who asked, for the `lock.deleted` event.
    pub async fn delete_lock(&self, id: &str, by: &str) -> Result<()> {
        let event = self
            .event(EventKind::LockDeleted)
            .with("user", by)
            .with("name", id);
        let result = self.delete_lock_checked(id).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn delete_lock_checked(&self, id: &str) -> Result<()> {
        if !self.store.delete(&format!("{}{id}", keys::LOCKS)).await? {
            return Err(AuthError::NotFound(format!(
                "no lock {id:?}; `pcctl locks ls` lists them"
            )));
        }
        tracing::warn!(id = %id, "lock removed");
        Ok(())
    }
}
