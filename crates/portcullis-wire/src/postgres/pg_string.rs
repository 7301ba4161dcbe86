//! PostgreSQL's string fields: the protocol-neutral [`crate::WireString`].

/// A PostgreSQL string field (in the connection's `client_encoding`).
pub type PgString = crate::WireString;
