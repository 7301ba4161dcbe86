//! Who is calling, from the client certificate of the mutual-TLS connection, and what they may
//! do.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use portcullis_core::identity::{HostIdentity, Identity, SystemRole};
use portcullis_core::rbac::AccessChecker;
use time::OffsetDateTime;

use super::error::ApiError;
use super::AppState;
use crate::error::AuthError;
use crate::store::UserRecord;

/// Facts about the connection a request came on, set by the TLS listener.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// The verified client certificate (DER), if one was presented.
    pub cert: Option<Arc<Vec<u8>>>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No client certificate: only public endpoints.
    Anonymous,
    /// A service (or the admin identity), by host certificate.
    Host(HostIdentity),
    /// A person, by user certificate.
    User(Identity),
}

impl Caller {
    /// Refuses unless the caller may `verb` on `resource`; a refusal of an authenticated caller
    /// is recorded as `access.denied` with the reason.
    pub async fn require(
        &self,
        state: &AppState,
        resource: &str,
        verb: &str,
    ) -> Result<(), AuthError> {
        let result = self.check(state, resource, verb).await;
        if let Err(e @ AuthError::Forbidden(_)) = &result {
            state.emit(
                state
                    .event(portcullis_audit::EventKind::AccessDenied)
                    .with("user", self.name())
                    .with("success", false)
                    .with("error", e.to_string())
                    .with("resource", resource)
                    .with("verb", verb),
            );
        }
        result
    }

    async fn check(&self, state: &AppState, resource: &str, verb: &str) -> Result<(), AuthError> {
        match self {
            Caller::Anonymous => Err(AuthError::Unauthenticated(
                "this endpoint needs a client certificate: use pcctl on the auth host, or \
                 `pcctl --identity=FILE` elsewhere"
                    .into(),
            )),
            Caller::Host(h) if h.has_role(SystemRole::Admin) => Ok(()),
            Caller::Host(h) => {
                let allowed = resource == "cert" && verb == "create" && h.has_role(SystemRole::Db);
                if allowed {
                    Ok(())
                } else {
                    Err(AuthError::Forbidden(format!(
                        "service {} ({}) may not {verb} {resource}",
                        h.node_name,
                        h.system_roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    )))
                }
            }
            Caller::User(id) => {
                let (_, checker) = user_checker(state, id).await?;
                checker
                    .check_rule(resource, verb)
                    .map_err(|d| AuthError::Forbidden(d.to_string()))
            }
        }
    }

    /// Refuses unless the caller is a service holding one of `roles` (or the admin identity).
    pub fn require_host(&self, roles: &[SystemRole]) -> Result<&HostIdentity, AuthError> {
        match self {
            Caller::Host(h)
                if h.has_role(SystemRole::Admin) || roles.iter().any(|r| h.has_role(*r)) =>
            {
                Ok(h)
            }
            Caller::Host(h) => Err(AuthError::Forbidden(format!(
                "service {} may not call this endpoint",
                h.node_name
            ))),
            _ => Err(AuthError::Forbidden(
                "this endpoint is for Portcullis services (host certificates) only".into(),
            )),
        }
    }

    /// The user behind the request, with their effective access; refuses services and
    /// anonymous callers.
    pub async fn require_user(
        &self,
        state: &AppState,
    ) -> Result<(Identity, UserRecord, AccessChecker), AuthError> {
        match self {
            Caller::User(id) => {
                let (user, checker) = user_checker(state, id).await?;
                Ok((id.clone(), user, checker))
            }
            _ => Err(AuthError::Unauthenticated(
                "log in first: this endpoint needs a user certificate from `pc login`".into(),
            )),
        }
    }
    /// Who, for logs.
    pub fn name(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Host(h) => format!("{}@{}", h.node_name, h.host_id),
            Caller::User(u) => u.username.clone(),
        }
    }
}

/// A user's current record and what they may do: a certificate never grants more than the user
/// holds now, so taking a role away (or deleting the user and making a new one with the same
/// name) takes effect at once, not when older certificates expire.
pub async fn user_checker(
    state: &AppState,
    id: &Identity,
) -> Result<(UserRecord, AccessChecker), AuthError> {
    let Some((user, _)) = state.store.user(&id.username).await? else {
        return Err(AuthError::Unauthenticated(
            "this user no longer exists; log in again".into(),
        ));
    };
    let held: Vec<String> = id
        .roles
        .iter()
        .filter(|r| user.roles.contains(r))
        .cloned()
        .collect();
    let roles = state.store.roles_named(&held).await?;
    let checker = AccessChecker::new(roles, &user.traits);
    Ok((user, checker))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(cert) = parts.extensions.get::<Peer>().and_then(|p| p.cert.clone()) else {
            return Ok(Caller::Anonymous);
        };
        let now = OffsetDateTime::now_utc();
        // TLS already checked the chain against the user and host CAs; find out which.
        if state.host_ca.verify(&cert, now).is_ok() {
            let id = portcullis_ca::decode_host_identity(&cert).map_err(AuthError::from)?;
            if id.cluster_name != state.cluster_name {
                return Err(
                    AuthError::Unauthenticated("certificate from another cluster".into()).into(),
                );
            }
            return Ok(Caller::Host(id));
        }
        state.user_ca.verify(&cert, now).map_err(AuthError::from)?;
        let id = portcullis_ca::decode_user_identity(&cert).map_err(AuthError::from)?;
        if id.cluster_name != state.cluster_name {
            return Err(
                AuthError::Unauthenticated("certificate from another cluster".into()).into(),
            );
        }
        Ok(Caller::User(id))
    }
}

/// The caller's address.
pub struct ClientAddr(pub SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Peer>()
            .map(|p| ClientAddr(p.addr))
            .ok_or_else(|| AuthError::Internal("request without connection info".into()).into())
    }
}
