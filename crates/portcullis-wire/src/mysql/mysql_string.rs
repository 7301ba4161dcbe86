//! MySQL's string fields: the protocol-neutral [`crate::WireString`].

/// A MySQL string field (in the connection's character set).
pub type MysqlString = crate::WireString;
