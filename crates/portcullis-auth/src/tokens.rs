//! Join tokens, and services joining with them.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use portcullis_api::{CreateTokenResponse, JoinRequest, JoinResponse, TokenView};
use portcullis_audit::EventKind;
use portcullis_ca::PublicKey;
use portcullis_core::identity::{HostIdentity, SystemRole};
use time::OffsetDateTime;

use crate::error::{AuthError, Result};
use crate::secret;
use crate::server::AuthServer;
use crate::store::{keys, HostRecord, TokenRecord};

/// Default token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// Longest token lifetime.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a joined service's certificate lasts before it must renew.
pub const HOST_CERT_TTL: Duration = Duration::from_secs(24 * 3600);

const BAD_TOKEN: &str =
    "the join token is invalid, expired or used up; make a new one with `pcctl tokens add --type=db`";

fn parse_joinable_role(s: &str) -> Result<SystemRole> {
    match s.to_ascii_lowercase().as_str() {
        "db" => Ok(SystemRole::Db),
        "proxy" => Ok(SystemRole::Proxy),
        other => Err(AuthError::BadRequest(format!(
            "a token cannot grant {other:?}: use db or proxy"
        ))),
    }
}

fn token_view(t: &TokenRecord) -> TokenView {
    TokenView {
        id: t.id.clone(),
        roles: t
            .roles
            .iter()
            .map(|r| r.as_str().to_ascii_lowercase())
            .collect(),
        expires: t.expires,
        single_use: t.single_use,
        created: t.created,
    }
}

impl AuthServer {
    /// Makes a join token; the secret is in the answer only (the `join_token.create` event,
    /// naming `by` as who asked, has the token's id).
    pub async fn create_token(
        &self,
        roles: &[String],
        ttl: Option<Duration>,
        single_use: bool,
        by: &str,
    ) -> Result<CreateTokenResponse> {
        let mut event = self
            .event(EventKind::JoinTokenCreate)
            .with("user", by)
            .with("join_method", "token");
        let result = self.create_token_checked(roles, ttl, single_use).await;
        match &result {
            Ok(t) => {
                event.set("name", &t.view.id);
                event.set("roles", &t.view.roles);
                event.set("expires", crate::audit::rfc3339(t.view.expires));
                event.set("single_use", t.view.single_use);
            }
            Err(_) => event.set("roles", roles),
        }
        self.emit_outcome(event, &result);
        result
    }

    async fn create_token_checked(
        &self,
        roles: &[String],
        ttl: Option<Duration>,
        single_use: bool,
    ) -> Result<CreateTokenResponse> {
        if roles.is_empty() {
            return Err(AuthError::BadRequest(
                "say what the token is for: --type=db or --type=proxy".into(),
            ));
        }
        let mut parsed = roles
            .iter()
            .map(|r| parse_joinable_role(r))
            .collect::<Result<Vec<_>>>()?;
        parsed.sort();
        parsed.dedup();
        let ttl = ttl.unwrap_or(DEFAULT_TOKEN_TTL);
        if ttl < Duration::from_secs(60) || ttl > MAX_TOKEN_TTL {
            return Err(AuthError::BadRequest(
                "the token TTL must be between 1m and 720h".into(),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let token = secret::new_token();
        let hash = secret::token_hash(&token);
        let record = TokenRecord {
            id: hash.chars().take(12).collect(),
            roles: parsed,
            expires: now + ttl,
            single_use,
            created: now,
        };
        self.store
            .create(
                &format!("{}{hash}", keys::TOKENS),
                &record,
                Some(record.expires),
            )
            .await?;
        tracing::info!(id = %record.id, roles = ?record.roles, "join token created");
        Ok(CreateTokenResponse {
            token: token.to_string(),
            view: token_view(&record),
            ca_pin: self.host_ca.pin(),
            proxy_addr: self.proxy_addr.clone(),
        })
    }

    /// Live tokens, without their secrets.
    pub async fn list_tokens(&self) -> Result<Vec<TokenView>> {
        Ok(self
            .store
            .list::<TokenRecord>(keys::TOKENS)
            .await?
            .iter()
            .map(|(_, t)| token_view(t))
            .collect())
    }

    /// Deletes the token whose id starts with `id` (at least 6 characters); `by` names who
    /// asked, for the `join_token.delete` event.
    pub async fn delete_token(&self, id: &str, by: &str) -> Result<()> {
        let event = self
            .event(EventKind::JoinTokenDelete)
            .with("user", by)
            .with("name", id);
        let result = self.delete_token_checked(id).await;
        self.emit_outcome(event, &result);
        result
    }

    async fn delete_token_checked(&self, id: &str) -> Result<()> {
        if id.len() < 6 {
            return Err(AuthError::BadRequest(
                "give at least 6 characters of the token id (see `pcctl tokens ls`)".into(),
            ));
        }
        let matches: Vec<String> = self
            .store
            .list::<TokenRecord>(keys::TOKENS)
            .await?
            .into_iter()
            .filter(|(_, t)| t.id.starts_with(id))
            .map(|(k, _)| k)
            .collect();
        match matches.as_slice() {
            [key] => {
                self.store.delete(key).await?;
                tracing::info!(id = %id, "join token deleted");
                Ok(())
            }
            [] => Err(AuthError::NotFound(format!(
                "no token with id {id:?}; `pcctl tokens ls` lists them"
            ))),
            _ => Err(AuthError::BadRequest(format!(
                "{id:?} matches several tokens; give more of the id"
            ))),
        }
    }

    /// A service trades a join token for a host certificate: an `instance.join` event either
    /// way and, on success, a `cert.create`. The token is named by its id only.
    pub async fn join(&self, req: JoinRequest, client_ip: IpAddr) -> Result<JoinResponse> {
        let short = |s: &str| -> String {
            s.chars()
                .take(portcullis_core::names::MAX_NAME_LEN)
                .collect()
        };
        let node_name = short(&req.node_name);
        let role = short(&req.role);
        match self.join_checked(req, client_ip).await {
            Ok((resp, host, token_id)) => {
                let actor = crate::audit::host_actor(&host);
                self.emit(
                    self.event(EventKind::InstanceJoin)
                        .with("user", &actor)
                        .with("node_name", &host.node_name)
                        .with("role", &role)
                        .with("method", "token")
                        .with("host_id", &host.host_id)
                        .with("token_id", token_id)
                        .with("success", true)
                        .with("addr.remote", client_ip.to_string()),
                );
                self.emit_cert(&actor, "host", crate::audit::host_identity_fields(&host));
                Ok(resp)
            }
            Err(e) => {
                if !matches!(e, AuthError::Internal(_)) {
                    self.emit(
                        self.event(EventKind::InstanceJoinFailure)
                            .with("node_name", node_name)
                            .with("role", role)
                            .with("method", "token")
                            .with("success", false)
                            .with("error", e.to_string())
                            .with("addr.remote", client_ip.to_string()),
                    );
                }
                Err(e)
            }
        }
    }

    async fn join_checked(
        &self,
        req: JoinRequest,
        client_ip: IpAddr,
    ) -> Result<(JoinResponse, HostIdentity, String)> {
        self.ip_limiter
            .check(&client_ip, Instant::now())
            .map_err(|l| AuthError::RateLimited {
                retry_after: l.retry_after,
            })?;
        let role = parse_joinable_role(&req.role)?;
        portcullis_core::names::validate_name("node", &req.node_name)
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let key = PublicKey::from_pem(&req.public_key)?;
        let token_key = format!("{}{}", keys::TOKENS, secret::token_hash(&req.token));
        let Some((token, revision)) = self.store.get::<TokenRecord>(&token_key).await? else {
            tracing::warn!(ip = %client_ip, "join refused: unknown token");
            return Err(AuthError::Unauthenticated(BAD_TOKEN.into()));
        };
        if !token.roles.contains(&role) {
            return Err(AuthError::Forbidden(format!(
                "this token does not allow joining as {}; make one with `pcctl tokens add --type={}`",
                req.role,
                req.role.to_ascii_lowercase()
            )));
        }
        if token.single_use {
            // Consume atomically: of two concurrent joins with the same token one wins.
            self.store
                .delete_at(&token_key, revision)
                .await
                .map_err(|_| AuthError::Unauthenticated(BAD_TOKEN.into()))?;
        }
        let now = OffsetDateTime::now_utc();
        let identity = HostIdentity {
            host_id: uuid::Uuid::new_v4().to_string(),
            node_name: req.node_name.clone(),
            cluster_name: self.cluster_name.clone(),
            system_roles: vec![role],
            expires: now + HOST_CERT_TTL,
        };
        let cert = self.host_ca.issue_host(
            &identity,
            &key,
            vec![req.node_name.clone()],
            Vec::new(),
            now,
        )?;
        self.store
            .put(
                &format!("{}{}", keys::HOSTS, identity.host_id),
                &HostRecord {
                    host_id: identity.host_id.clone(),
                    node_name: req.node_name,
                    roles: vec![role],
                    joined: now,
                },
                None,
            )
            .await?;
        tracing::info!(host_id = %identity.host_id, role = %role, ip = %client_ip, "service joined");
        Ok((
            JoinResponse {
                host_id: identity.host_id.clone(),
                cert_pem: portcullis_ca::cert::to_pem(&cert),
                cas: self.ca_infos(),
            },
            identity,
            token.id,
        ))
    }
}

impl AuthServer {
    /// A fresh host certificate for an already-joined service (same host id and roles).
    pub fn renew_host(&self, host: &HostIdentity, public_key_pem: &str) -> Result<JoinResponse> {
        let key = PublicKey::from_pem(public_key_pem)?;
        let now = OffsetDateTime::now_utc();
        let identity = HostIdentity {
            expires: now + HOST_CERT_TTL,
            ..host.clone()
        };
        let cert = self.host_ca.issue_host(
            &identity,
            &key,
            vec![identity.node_name.clone()],
            Vec::new(),
            now,
        )?;
        tracing::info!(host_id = %identity.host_id, "host certificate renewed");
        self.emit_cert(
            &crate::audit::host_actor(host),
            "host",
            crate::audit::host_identity_fields(&identity),
        );
        Ok(JoinResponse {
            host_id: identity.host_id,
            cert_pem: portcullis_ca::cert::to_pem(&cert),
            cas: self.ca_infos(),
        })
    }
}
