//! The auth API contract: every request and response body of `/v1/`, shared by the server
//! (which derives its OpenAPI document from these types) and by `pcctl`/`pc` (which send and
//! read them). One definition means the two sides cannot drift apart.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The API version prefix.
pub const PREFIX: &str = "/v1";

/// The body of every error response: `{ "error": { "code", "message" } }`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `unauthenticated`, `forbidden`,
    /// `not_found`, `already_exists`, `conflict`, `rate_limited`, `locked`, `payload_too_large`,
    /// `internal`.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// `GET /v1/ping`: what anyone may learn about the cluster before authenticating.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PingResponse {
    /// The cluster's name.
    pub cluster_name: String,
    /// Server version.
    pub version: String,
    /// `on`, `optional` or `off`.
    pub second_factor: String,
    /// Pin of the host CA (SHA-256 of its public key) for trust on first use.
    pub host_ca_pin: String,
    /// Server time, to spot clock skew.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub server_time: OffsetDateTime,
    /// The proxy's MySQL port (MySQL clients connect there, not to the main port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql_port: Option<u16>,
}

/// One certificate authority, public parts only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaInfo {
    /// `user`, `host` or `db`.
    pub kind: String,
    /// SHA-256 of the CA's SubjectPublicKeyInfo (`sha256:…`), what clients pin.
    pub pin: String,
    /// SHA-256 of the CA certificate.
    pub cert_fingerprint: String,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// When the CA certificate expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub not_after: OffsetDateTime,
}

/// `GET /v1/cluster`: what `pcctl status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// The cluster's name.
    pub cluster_name: String,
    /// Server version.
    pub version: String,
    /// The user, host and db CAs.
    pub cas: Vec<CaInfo>,
    /// OpenSSH fingerprint of the Ed25519 key that will sign SSH user certificates.
    pub ssh_user_ca_fingerprint: String,
    /// Number of users.
    pub users: usize,
    /// Number of roles.
    pub roles: usize,
    /// Number of live join tokens.
    pub tokens: usize,
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Login name.
    pub name: String,
    /// Roles to grant; each must exist.
    pub roles: Vec<String>,
    /// Traits (`db_users`, `db_names`, …) for role templates.
    #[serde(default)]
    pub traits: BTreeMap<String, Vec<String>>,
    /// Set the password directly (automation) instead of sending an invite.
    #[serde(default)]
    pub password: Option<String>,
}

/// `PUT /v1/users/{name}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// Replace the roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Replace or add traits; a trait set to an empty list is removed.
    #[serde(default)]
    pub traits: Option<BTreeMap<String, Vec<String>>>,
}

/// A user as administrators see it: never the password hash or TOTP secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Traits.
    pub traits: BTreeMap<String, Vec<String>>,
    /// `active`, `invited` (no password yet) or `locked`.
    pub status: String,
    /// Whether a TOTP device is enrolled.
    pub totp_enrolled: bool,
    /// Until when failed logins lock the user out, if they do now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub locked_until: Option<OffsetDateTime>,
    /// When the user was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

/// A one-time invite: exchanged for a password (and a TOTP device) by the user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InviteView {
    /// The secret token; shown once.
    pub token: String,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
}

/// A TOTP device being enrolled: shown to the user once, to put into an authenticator app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TotpEnrollment {
    /// Base32 secret.
    pub secret: String,
    /// `otpauth://` URI (QR code content).
    pub uri: String,
}

/// `POST /v1/users` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateUserResponse {
    /// The new user.
    pub user: UserView,
    /// The invite, unless a password was set directly.
    pub invite: Option<InviteView>,
    /// With a directly set password and second factor `on`: the enrolled TOTP device.
    pub totp: Option<TotpEnrollment>,
}

/// `POST /v1/invites/describe`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The invite token.
    pub token: String,
}

/// What accepting an invite will need.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InviteDescription {
    /// The user the invite is for.
    pub user: String,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
    /// The TOTP device to enrol, when the cluster uses a second factor.
    pub totp: Option<TotpEnrollment>,
    /// Whether a TOTP code is required to accept.
    pub totp_required: bool,
}

/// `POST /v1/invites/accept`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteRequest {
    /// The invite token.
    pub token: String,
    /// The new password (at least 12 characters).
    pub password: String,
    /// A current code from the enrolled TOTP device.
    #[serde(default)]
    pub otp: Option<String>,
}

/// `POST /v1/invites/accept` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AcceptInviteResponse {
    /// The user who can now log in.
    pub user: String,
}

/// `POST /v1/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub user: String,
    /// Password.
    pub password: String,
    /// TOTP code.
    #[serde(default)]
    pub otp: Option<String>,
    /// The ECDSA P-256 public key to certify, PEM `PUBLIC KEY`.
    pub public_key: String,
    /// Requested certificate lifetime in seconds; capped by the roles' `max_session_ttl`.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/login` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The user certificate, PEM.
    pub cert_pem: String,
    /// The user, host and db CA certificates.
    pub cas: Vec<CaInfo>,
    /// Login name.
    pub user: String,
    /// Roles in the certificate.
    pub roles: Vec<String>,
    /// When the certificate expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
}

/// A role, as YAML/JSON resource (see the roles reference).
pub type RoleResource = serde_json::Value;

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// System roles the token lets a service join as: `db`, `proxy`.
    pub roles: Vec<String>,
    /// Lifetime in seconds (default 30 minutes).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Whether the token is consumed by its first use.
    #[serde(default)]
    pub single_use: bool,
}

/// A join token as listed: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Short id (a prefix of the token's hash), for `pcctl tokens rm`.
    pub id: String,
    /// System roles it grants.
    pub roles: Vec<String>,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
    /// Consumed by its first use.
    pub single_use: bool,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
}

/// `POST /v1/tokens` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenResponse {
    /// The secret token; shown once.
    pub token: String,
    /// The listing view.
    pub view: TokenView,
    /// Host CA pin for the joining service's `--ca-pin`.
    pub ca_pin: String,
    /// The proxy address services should dial, when auth knows it.
    pub proxy_addr: Option<String>,
}

/// `POST /v1/join`: a service trades a join token for a host certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The join token.
    pub token: String,
    /// The system role asked for (`db`, `proxy`).
    pub role: String,
    /// Human-friendly node name.
    pub node_name: String,
    /// The ECDSA P-256 public key to certify, PEM.
    pub public_key: String,
}

/// `POST /v1/join` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinResponse {
    /// The id assigned to the host.
    pub host_id: String,
    /// Host certificate, PEM.
    pub cert_pem: String,
    /// The CAs.
    pub cas: Vec<CaInfo>,
}

/// `POST /v1/certs/db`: a database server certificate (`pcctl auth sign --format=db`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignDbCertRequest {
    /// DNS names or IP addresses the database is reached by.
    pub hosts: Vec<String>,
    /// The database server's public key, PEM (the private key never leaves the caller).
    pub public_key: String,
    /// Lifetime in seconds.
    pub ttl_seconds: u64,
}

/// `POST /v1/certs/db` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignDbCertResponse {
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// The db CA certificate, PEM: what the server must trust for client certificates.
    pub ca_pem: String,
}

/// `POST /v1/certs/db-client`: a client certificate `CN=<db_user>` from the db CA.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignDbClientCertRequest {
    /// The database account the certificate logs in as.
    pub db_user: String,
    /// The public key to certify, PEM.
    pub public_key: String,
    /// Lifetime in seconds (at most 7 days).
    pub ttl_seconds: u64,
}

/// `PUT /v1/roles/{name}` query: whether to replace an existing role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PutRoleQuery {
    /// Replace the role if it exists (`pcctl create --force`).
    #[serde(default)]
    pub force: bool,
}

/// A database as registered by an agent's heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseInfo {
    /// Unique name users pick it by.
    pub name: String,
    /// `postgres`, `mysql`, `redis`, `mongodb`.
    pub protocol: String,
    /// Where the agent reaches it.
    pub uri: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Static and dynamic labels, merged.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The server's version as it greets clients (MySQL: the proxy's greeting repeats it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `PUT /v1/databases/heartbeat`: an agent announces what it serves; entries expire unless
/// renewed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseHeartbeat {
    /// The databases this agent serves now.
    pub databases: Vec<DatabaseInfo>,
    /// How long the registration lasts without another heartbeat, in seconds.
    pub ttl_seconds: u64,
}

/// `GET /v1/databases` entry: a database the caller may reach.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseView {
    /// The database.
    #[serde(flatten)]
    pub database: DatabaseInfo,
    /// Database users the caller's roles allow (`*` means any).
    pub allowed_db_users: Vec<String>,
    /// Database names the caller's roles allow.
    pub allowed_db_names: Vec<String>,
    /// Host ids of the agents serving it.
    pub agents: Vec<String>,
}

/// `POST /v1/certs/db-login`: a user certificate routed to one database.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DbLoginRequest {
    /// The database's name.
    pub service: String,
    /// The database account to use.
    pub db_user: String,
    /// The database to open, for protocols that have one.
    #[serde(default)]
    pub db_name: Option<String>,
    /// The user's public key, PEM (the same key as the login certificate's is fine).
    pub public_key: String,
}

/// `POST /v1/certs/db-login` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DbLoginResponse {
    /// The routed certificate, PEM.
    pub cert_pem: String,
    /// The database's protocol.
    pub protocol: String,
    /// When it expires (never later than the login certificate).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires: OffsetDateTime,
}

/// A lock: refuses new sessions and ends live ones for its target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LockView {
    /// Id for `pcctl locks rm`.
    pub id: String,
    /// The locked user.
    pub user: String,
    /// Shown to the user whose session ends.
    #[serde(default)]
    pub message: String,
    /// When it lifts by itself, if ever.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<OffsetDateTime>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created: OffsetDateTime,
    /// Who made it.
    pub created_by: String,
}

/// `POST /v1/locks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLockRequest {
    /// The user to lock.
    pub user: String,
    /// Why (shown to the user).
    #[serde(default)]
    pub message: String,
    /// Lifetime in seconds; none = until removed.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `GET /v1/agent/state`: what a database agent needs to decide on sessions by itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentState {
    /// Backend revision this state is current at; pass it as `after` to wait for changes.
    pub revision: u64,
    /// Every role (as resources).
    #[schema(value_type = Vec<Object>)]
    pub roles: Vec<serde_json::Value>,
    /// Every active lock.
    pub locks: Vec<LockView>,
    /// The user and db CA certificates, PEM (to verify forwarded user certificates).
    pub user_ca_pem: String,
}

/// `GET /v1/agent/state` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentStateQuery {
    /// Wait (up to ~25 s) until the state is newer than this revision.
    #[serde(default)]
    pub after: Option<u64>,
}

/// `POST /v1/certs/host-renew`: a service renews its host certificate with a new key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostRenewRequest {
    /// The new public key, PEM.
    pub public_key: String,
}

/// Largest body `POST /v1/events` takes: above the largest event an agent can make (query
/// text and parameters each at most 512 KiB before JSON escaping, which can grow a control
/// byte sixfold: about 6.1 MiB), so no event is ever refused for its size and left to block
/// its agent's spool. Agents send at most 768 KiB per request, or one larger event alone.
pub const MAX_EVENTS_BODY: usize = 8 * 1024 * 1024;

/// `POST /v1/events`: a batch of audit events, each a JSON object with a unique `uid`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The events, each a JSON object (kept as raw text: auth stores them as sent).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Box<serde_json::value::RawValue>>,
}

/// `GET /v1/events` query: every filter given must match.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// From this time: RFC 3339, a date, or a duration ago (`1h`).
    #[serde(default)]
    pub from: Option<String>,
    /// Before this time (same forms).
    #[serde(default)]
    pub to: Option<String>,
    /// The `user` field.
    #[serde(default)]
    pub user: Option<String>,
    /// The `event` field; a trailing `*` matches a prefix (`db.session.*`).
    #[serde(default)]
    pub event: Option<String>,
    /// The `db_service` field.
    #[serde(default)]
    pub db: Option<String>,
    /// The `sid` (session id) field.
    #[serde(default)]
    pub sid: Option<String>,
    /// Text the event contains (ASCII case-insensitive).
    #[serde(default)]
    pub contains: Option<String>,
    /// Page size (default 100, at most 10000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// `newest` (default) or `oldest` first.
    #[serde(default)]
    pub order: Option<String>,
}

/// `GET /v1/events` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    /// The events, each a JSON object as stored.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Box<serde_json::value::RawValue>>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/events/export` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// From this time (RFC 3339, a date, or a duration ago); default: everything.
    #[serde(default)]
    pub since: Option<String>,
    /// Keep the stream open and send new events as they are stored. The stream ends if the
    /// reader falls too far behind: reconnect with `since` = the last event's time.
    #[serde(default)]
    pub follow: bool,
}
