//! One function per endpoint: authorise, call the service, shape the answer.

use std::time::Duration;

use axum::http::StatusCode;
use axum::Json;
use portcullis_api::{
    AcceptInviteRequest, AcceptInviteResponse, AgentState, AgentStateQuery, CaInfo, ClusterStatus,
    CreateLockRequest, CreateTokenRequest, CreateTokenResponse, CreateUserRequest,
    CreateUserResponse, DatabaseHeartbeat, DatabaseView, DbLoginRequest, DbLoginResponse,
    ErrorBody, EventBatch, HostRenewRequest, InviteDescription, InviteRequest, InviteView,
    JoinRequest, JoinResponse, LockView, LoginRequest, LoginResponse, PingResponse, PutRoleQuery,
    RoleResource, SignDbCertRequest, SignDbCertResponse, SignDbClientCertRequest, TokenView,
    UpdateUserRequest, UserView,
};
use portcullis_core::identity::SystemRole;
use portcullis_core::role::Role;

use super::caller::{Caller, ClientAddr};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::error::AuthError;
use crate::store::keys;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Cluster name, version and host CA pin; no authentication.
#[utoipa::path(get, path = "/v1/ping", tag = "cluster",
    responses((status = 200, body = PingResponse)))]
pub async fn ping(axum::extract::State(s): axum::extract::State<AppState>) -> Json<PingResponse> {
    Json(s.ping())
}

/// The public CA certificates; no authentication.
#[utoipa::path(get, path = "/v1/cas", tag = "cluster",
    responses((status = 200, body = Vec<CaInfo>)))]
pub async fn cas(axum::extract::State(s): axum::extract::State<AppState>) -> Json<Vec<CaInfo>> {
    Json(s.ca_infos())
}

/// Cluster status for `pcctl status`.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterStatus), (status = "4XX", body = ErrorBody)))]
pub async fn cluster_status(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
) -> ApiResult<ClusterStatus> {
    caller.require(&s, "cluster", "read").await?;
    Ok(Json(s.status().await?))
}

/// Every user.
#[utoipa::path(get, path = "/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserView>), (status = "4XX", body = ErrorBody)))]
pub async fn list_users(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
) -> ApiResult<Vec<UserView>> {
    caller.require(&s, "user", "list").await?;
    Ok(Json(s.list_users().await?))
}

/// Create a user, with an invite or a password.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 200, body = CreateUserResponse), (status = "4XX", body = ErrorBody)))]
pub async fn create_user(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<CreateUserResponse> {
    caller.require(&s, "user", "create").await?;
    tracing::info!(by = %caller.name(), user = %req.name, "create user");
    Ok(Json(s.create_user(req, &caller.name()).await?))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{name}", tag = "users",
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = UserView), (status = "4XX", body = ErrorBody)))]
pub async fn get_user(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<UserView> {
    caller.require(&s, "user", "read").await?;
    Ok(Json(s.get_user(&name).await?))
}

/// Change a user's roles or traits.
#[utoipa::path(put, path = "/v1/users/{name}", tag = "users", request_body = UpdateUserRequest,
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = UserView), (status = "4XX", body = ErrorBody)))]
pub async fn update_user(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<UserView> {
    caller.require(&s, "user", "update").await?;
    tracing::info!(by = %caller.name(), user = %name, "update user");
    Ok(Json(s.update_user(&name, req, &caller.name()).await?))
}

/// Delete a user.
#[utoipa::path(delete, path = "/v1/users/{name}", tag = "users",
    params(("name" = String, Path, description = "user name")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_user(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&s, "user", "delete").await?;
    tracing::info!(by = %caller.name(), user = %name, "delete user");
    s.delete_user(&name, &caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clear a user's password and TOTP, unlock them, and return a new invite.
#[utoipa::path(post, path = "/v1/users/{name}/reset", tag = "users",
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = InviteView), (status = "4XX", body = ErrorBody)))]
pub async fn reset_user(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<InviteView> {
    caller.require(&s, "user", "update").await?;
    tracing::info!(by = %caller.name(), user = %name, "reset user");
    Ok(Json(s.reset_user(&name, &caller.name()).await?))
}

/// What accepting an invite needs (and the TOTP secret to enrol); the token authenticates.
#[utoipa::path(post, path = "/v1/invites/describe", tag = "invites", request_body = InviteRequest,
    responses((status = 200, body = InviteDescription), (status = "4XX", body = ErrorBody)))]
pub async fn describe_invite(
    axum::extract::State(s): axum::extract::State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<InviteRequest>,
) -> ApiResult<InviteDescription> {
    check_ip(&s, addr)?;
    Ok(Json(s.describe_invite(&req.token).await?))
}

/// Set the password (and enrol TOTP) with an invite.
#[utoipa::path(post, path = "/v1/invites/accept", tag = "invites", request_body = AcceptInviteRequest,
    responses((status = 200, body = AcceptInviteResponse), (status = "4XX", body = ErrorBody)))]
pub async fn accept_invite(
    axum::extract::State(s): axum::extract::State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<AcceptInviteRequest>,
) -> ApiResult<AcceptInviteResponse> {
    check_ip(&s, addr)?;
    let user = s
        .accept_invite(&req.token, &req.password, req.otp.as_deref())
        .await?;
    Ok(Json(AcceptInviteResponse { user }))
}

/// Password (+ TOTP) login; returns a user certificate for the given public key.
#[utoipa::path(post, path = "/v1/login", tag = "login", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = "4XX", body = ErrorBody)))]
pub async fn login(
    axum::extract::State(s): axum::extract::State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<LoginResponse> {
    Ok(Json(s.login(req, addr.ip()).await?))
}

/// Every role.
#[utoipa::path(get, path = "/v1/roles", tag = "roles",
    responses((status = 200, body = Vec<Object>), (status = "4XX", body = ErrorBody)))]
pub async fn list_roles(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
) -> ApiResult<Vec<RoleResource>> {
    caller.require(&s, "role", "list").await?;
    let roles = s.store.list::<RoleResource>(keys::ROLES).await?;
    Ok(Json(roles.into_iter().map(|(_, r)| r).collect()))
}

/// One role.
#[utoipa::path(get, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "role name")),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorBody)))]
pub async fn get_role(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<RoleResource> {
    caller.require(&s, "role", "read").await?;
    let (role, _) = s
        .store
        .get::<RoleResource>(&format!("{}{name}", keys::ROLES))
        .await?
        .ok_or_else(|| {
            AuthError::NotFound(format!(
                "role {name:?} not found; `pcctl get roles` lists roles"
            ))
        })?;
    Ok(Json(role))
}

/// Create a role, or replace it with `?force=true`.
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "roles", request_body = Object,
    params(("name" = String, Path, description = "role name"),
           ("force" = Option<bool>, Query, description = "replace an existing role")),
    responses((status = 200, body = Object), (status = "4XX", body = ErrorBody)))]
pub async fn put_role(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PutRoleQuery>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<RoleResource> {
    // Authorise before looking at the body: callers who may not write roles learn nothing.
    caller.require(&s, "role", "create").await?;
    if q.force {
        caller.require(&s, "role", "update").await?;
    }
    let role: Role =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("role: {e}")))?;
    let role = s.put_role(&name, role, q.force, &caller.name()).await?;
    let value = serde_json::to_value(&role)
        .map_err(|e| AuthError::Internal(format!("encoding role: {e}")))?;
    Ok(Json(value))
}

/// Delete a role no user holds.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "roles",
    params(("name" = String, Path, description = "role name")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_role(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&s, "role", "delete").await?;
    s.delete_role(&name, &caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Live join tokens (never their secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = "4XX", body = ErrorBody)))]
pub async fn list_tokens(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
) -> ApiResult<Vec<TokenView>> {
    caller.require(&s, "token", "list").await?;
    Ok(Json(s.list_tokens().await?))
}

/// Make a join token.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateTokenRequest,
    responses((status = 200, body = CreateTokenResponse), (status = "4XX", body = ErrorBody)))]
pub async fn create_token(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<CreateTokenResponse> {
    caller.require(&s, "token", "create").await?;
    let ttl = req.ttl_seconds.map(Duration::from_secs);
    Ok(Json(
        s.create_token(&req.roles, ttl, req.single_use, &caller.name())
            .await?,
    ))
}

/// Delete a join token by (a prefix of) its id.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id or a prefix of at least 6 characters")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_token(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&s, "token", "delete").await?;
    s.delete_token(&id, &caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A service trades a join token for a host certificate.
#[utoipa::path(post, path = "/v1/join", tag = "tokens", request_body = JoinRequest,
    responses((status = 200, body = JoinResponse), (status = "4XX", body = ErrorBody)))]
pub async fn join(
    axum::extract::State(s): axum::extract::State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<JoinRequest>,
) -> ApiResult<JoinResponse> {
    Ok(Json(s.join(req, addr.ip()).await?))
}

/// A database server certificate from the db CA.
#[utoipa::path(post, path = "/v1/certs/db", tag = "certs", request_body = SignDbCertRequest,
    responses((status = 200, body = SignDbCertResponse), (status = "4XX", body = ErrorBody)))]
pub async fn sign_db_cert(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SignDbCertRequest>,
) -> ApiResult<SignDbCertResponse> {
    caller.require(&s, "cert", "create").await?;
    Ok(Json(s.sign_db_server_cert(
        &req.hosts,
        &req.public_key,
        Duration::from_secs(req.ttl_seconds),
        &caller.name(),
    )?))
}

/// A database client certificate (`CN=<db_user>`) from the db CA.
#[utoipa::path(post, path = "/v1/certs/db-client", tag = "certs", request_body = SignDbClientCertRequest,
    responses((status = 200, body = SignDbCertResponse), (status = "4XX", body = ErrorBody)))]
pub async fn sign_db_client_cert(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SignDbClientCertRequest>,
) -> ApiResult<SignDbCertResponse> {
    caller.require(&s, "cert", "create").await?;
    Ok(Json(s.sign_db_client_cert(
        &req.db_user,
        &req.public_key,
        Duration::from_secs(req.ttl_seconds),
        &caller.name(),
    )?))
}

fn check_ip(s: &AppState, addr: std::net::SocketAddr) -> Result<(), ApiError> {
    s.ip_limiter
        .check(&addr.ip(), std::time::Instant::now())
        .map_err(|l| {
            AuthError::RateLimited {
                retry_after: l.retry_after,
            }
            .into()
        })
}

/// An agent announces the databases it serves (repeat before `ttl_seconds` runs out).
#[utoipa::path(put, path = "/v1/databases/heartbeat", tag = "databases", request_body = DatabaseHeartbeat,
    responses((status = 200, body = u64), (status = "4XX", body = ErrorBody)))]
pub async fn database_heartbeat(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DatabaseHeartbeat>,
) -> ApiResult<u64> {
    let host = caller.require_host(&[SystemRole::Db])?;
    let n = s.heartbeat(host, req).await?;
    Ok(Json(n as u64))
}

/// The databases the caller's roles allow.
#[utoipa::path(get, path = "/v1/databases", tag = "databases",
    responses((status = 200, body = Vec<DatabaseView>), (status = "4XX", body = ErrorBody)))]
pub async fn list_databases(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
) -> ApiResult<Vec<DatabaseView>> {
    let (_, _, checker) = caller.require_user(&s).await?;
    Ok(Json(s.databases_for(&checker).await?))
}

/// A user certificate routed to one database (`pc db login`).
#[utoipa::path(post, path = "/v1/certs/db-login", tag = "certs", request_body = DbLoginRequest,
    responses((status = 200, body = DbLoginResponse), (status = "4XX", body = ErrorBody)))]
pub async fn db_login(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DbLoginRequest>,
) -> ApiResult<DbLoginResponse> {
    let (identity, _, checker) = caller.require_user(&s).await?;
    Ok(Json(s.db_login(&identity, &checker, req).await?))
}

/// Active locks.
#[utoipa::path(get, path = "/v1/locks", tag = "locks",
    responses((status = 200, body = Vec<LockView>), (status = "4XX", body = ErrorBody)))]
pub async fn list_locks(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
) -> ApiResult<Vec<LockView>> {
    caller.require(&s, "lock", "list").await?;
    Ok(Json(s.list_locks().await?))
}

/// Lock a user: new sessions are refused and live ones end.
#[utoipa::path(post, path = "/v1/locks", tag = "locks", request_body = CreateLockRequest,
    responses((status = 200, body = LockView), (status = "4XX", body = ErrorBody)))]
pub async fn create_lock(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateLockRequest>,
) -> ApiResult<LockView> {
    caller.require(&s, "lock", "create").await?;
    Ok(Json(s.create_lock(req, &caller.name()).await?))
}

/// Remove a lock.
#[utoipa::path(delete, path = "/v1/locks/{id}", tag = "locks",
    params(("id" = String, Path, description = "lock id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
pub async fn delete_lock(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&s, "lock", "delete").await?;
    s.delete_lock(&id, &caller.name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Roles, locks and the user CA for agents; with `after`, waits for a change.
#[utoipa::path(get, path = "/v1/agent/state", tag = "agents",
    params(("after" = Option<u64>, Query, description = "wait until the state is newer than this revision")),
    responses((status = 200, body = AgentState), (status = "4XX", body = ErrorBody)))]
pub async fn agent_state(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AgentStateQuery>,
) -> ApiResult<AgentState> {
    caller.require_host(&[SystemRole::Db, SystemRole::Proxy])?;
    Ok(Json(s.agent_state(q.after).await?))
}

/// A service renews its host certificate with a new key (same identity, new expiry).
#[utoipa::path(post, path = "/v1/certs/host-renew", tag = "certs", request_body = HostRenewRequest,
    responses((status = 200, body = JoinResponse), (status = "4XX", body = ErrorBody)))]
pub async fn host_renew(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<HostRenewRequest>,
) -> ApiResult<JoinResponse> {
    let host = caller
        .require_host(&[SystemRole::Db, SystemRole::Proxy, SystemRole::Auth])?
        .clone();
    Ok(Json(s.renew_host(&host, &req.public_key)?))
}

/// A batch of audit events from a service; events already stored (same `uid`) are skipped.
/// The body is either an [`EventBatch`] (`Content-Type: application/json`) or JSON lines,
/// one event per line (`Content-Type: application/x-ndjson`), which is what agents send:
/// their spool holds lines, so neither side builds or parses a JSON array around them.
#[utoipa::path(post, path = "/v1/events", tag = "agents",
    request_body(content = EventBatch, description = "An `EventBatch` as JSON, or the events as JSON lines with `Content-Type: application/x-ndjson` (at most 10,000 events, 8 MiB)"),
    responses((status = 200, body = u64), (status = "4XX", body = ErrorBody)))]
pub async fn post_events(
    axum::extract::State(s): axum::extract::State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<u64> {
    caller.require_host(&[SystemRole::Db, SystemRole::Proxy])?;
    // Its own limit, above the API's 1 MiB: the largest event an agent makes must fit.
    let body = axum::body::to_bytes(body, portcullis_api::MAX_EVENTS_BODY)
        .await
        .map_err(|e| ApiError::events_body(&e))?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"));
    let stored = match media.as_str() {
        "application/x-ndjson" => s.record_ndjson(&body).await?,
        _ if json => {
            let req: EventBatch = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
            s.record_events(&req.events).await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "send the events as JSON with Content-Type: application/json, or as JSON lines with Content-Type: application/x-ndjson",
            ))
        }
    };
    Ok(Json(stored as u64))
}
