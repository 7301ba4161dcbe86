//! The auth service: the cluster's certificate authorities, users, roles and join tokens, and
//! the `/v1/` API that `pcctl`, `pc`, proxies and agents talk to over mutual TLS.
//!
//! Layers, top to bottom: [`tls`] (listener) → [`api`] (HTTP, authorisation, OpenAPI) →
//! [`server::AuthServer`] (the operations: [`users`], [`login`], [`tokens`], [`certs`]) →
//! [`store`] (typed records) → `portcullis-backend`.
#![forbid(unsafe_code)]

pub mod agent_state;
pub mod api;
pub mod audit;
pub mod certs;
pub mod config;
pub mod databases;
pub mod error;
pub mod locks;
pub mod login;
pub mod ratelimit;
pub mod roles;
pub mod secret;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod totp;
pub mod users;

pub use error::{AuthError, Result};
pub use server::AuthServer;
