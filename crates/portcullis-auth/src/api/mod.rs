//! The `/v1/` HTTP API. Routes are registered through `utoipa-axum`, so the OpenAPI document
//! served at `/v1/openapi.json` is built from the very same registrations as the router.

mod audit;
pub mod caller;
pub mod error;
mod handlers;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
pub use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::AuthServer;

/// Shared state of every handler.
pub type AppState = Arc<AuthServer>;

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis auth API",
        description = "Cluster administration and login. Served over mutual TLS: endpoints other \
                       than ping, cas, openapi.json, login, join and invites need a client \
                       certificate from the cluster's user or host CA. Errors are \
                       `{ \"error\": { \"code\", \"message\" } }`."
    ),
    tags(
        (name = "cluster"), (name = "users"), (name = "invites"), (name = "login"),
        (name = "roles"), (name = "tokens"), (name = "certs"), (name = "databases"),
        (name = "locks"), (name = "agents"), (name = "audit")
    )
)]
struct ApiDoc;

/// Logs each request's method, path, status and latency. Bodies (which may hold passwords and
/// tokens) and query strings are never logged.
async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let peer = req.extensions().get::<caller::Peer>().map(|p| p.addr);
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, %path, status, micros, peer = ?peer, "request");
    } else {
        tracing::debug!(%method, %path, status, micros, peer = ?peer, "request");
    }
    resp
}

/// The router and the OpenAPI document describing it.
pub fn router_and_spec(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::ping))
        .routes(routes!(handlers::cas))
        .routes(routes!(handlers::cluster_status))
        .routes(routes!(handlers::list_users, handlers::create_user))
        .routes(routes!(
            handlers::get_user,
            handlers::update_user,
            handlers::delete_user
        ))
        .routes(routes!(handlers::reset_user))
        .routes(routes!(handlers::describe_invite))
        .routes(routes!(handlers::accept_invite))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::list_roles))
        .routes(routes!(
            handlers::get_role,
            handlers::put_role,
            handlers::delete_role
        ))
        .routes(routes!(handlers::list_tokens, handlers::create_token))
        .routes(routes!(handlers::delete_token))
        .routes(routes!(handlers::join))
        .routes(routes!(handlers::sign_db_cert))
        .routes(routes!(handlers::sign_db_client_cert))
        .routes(routes!(handlers::database_heartbeat))
        .routes(routes!(handlers::list_databases))
        .routes(routes!(handlers::db_login))
        .routes(routes!(handlers::list_locks, handlers::create_lock))
        .routes(routes!(handlers::delete_lock))
        .routes(routes!(handlers::agent_state))
        .routes(routes!(handlers::host_renew))
        .routes(routes!(handlers::post_events, audit::search_events))
        .routes(routes!(audit::export_events))
        .split_for_parts();
    let spec_json = Arc::new(spec.clone());
    let router = router
        .route(
            "/v1/openapi.json",
            get(move || {
                let spec = Arc::clone(&spec_json);
                async move { axum::Json((*spec).clone()) }
            }),
        )
        .fallback(|| async { error::ApiError::no_route() })
        .method_not_allowed_fallback(|| async { error::ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state);
    (router, spec)
}
