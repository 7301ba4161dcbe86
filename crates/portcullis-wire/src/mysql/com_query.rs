//! COM_QUERY: run SQL text (one or several statements).

use bytes::{BufMut, Bytes, BytesMut};

use super::capability::{has, CLIENT_QUERY_ATTRIBUTES};
use super::command::{reader, COM_QUERY};
use super::params::{read_block, write_block, ExecuteParam};
use super::payload::put_lenenc_int;
use super::MysqlString;
use crate::WireError;

/// COM_QUERY: SQL text, audited as the session's query, and checked for `USE` statements (see
/// [`super::use_statements`]).
///
/// With `CLIENT_QUERY_ATTRIBUTES` (MySQL 8.0.23+) the text is preceded by named query
/// attributes in the binary parameter format; they are decoded too, since they reach the
/// server (and components such as audit plugins) as values.
#[derive(Debug, Clone, PartialEq)]
pub struct ComQuery {
    /// Query attributes (empty without `CLIENT_QUERY_ATTRIBUTES`).
    pub attributes: Vec<ExecuteParam>,
    /// The SQL text, in the connection's character set.
    pub query: MysqlString,
}

impl ComQuery {
    const NAME: &'static str = "COM_QUERY";

    /// A query without attributes.
    pub fn new(query: impl Into<MysqlString>) -> Self {
        Self {
            attributes: Vec::new(),
            query: query.into(),
        }
    }

    /// Decodes a payload (command byte included) with the negotiated `capabilities`.
    pub fn decode(payload: Bytes, capabilities: u64) -> Result<Self, WireError> {
        let mut r = reader(Self::NAME, payload, COM_QUERY)?;
        let mut attributes = Vec::new();
        if has(capabilities, CLIENT_QUERY_ATTRIBUTES) {
            let count = r.lenenc_int("parameter count")?;
            let sets = r.lenenc_int("parameter set count")?;
            if sets != 1 {
                return Err(WireError::InvalidValue {
                    message: Self::NAME,
                    field: "parameter set count",
                    value: i64::try_from(sets).unwrap_or(i64::MAX),
                });
            }
            if count > 0 {
                attributes = read_block(&mut r, count, true, None, &[])?.1;
            }
        }
        Ok(Self {
            attributes,
            query: r.rest().into(),
        })
    }

    /// Appends the payload (command byte included) as a client with `capabilities` sends it.
    pub fn encode(&self, dst: &mut BytesMut, capabilities: u64) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_u8(COM_QUERY);
        if has(capabilities, CLIENT_QUERY_ATTRIBUTES) {
            put_lenenc_int(dst, self.attributes.len() as u64);
            put_lenenc_int(dst, 1);
            if !self.attributes.is_empty() {
                if let Err(e) = write_block(dst, &self.attributes, true, true, Self::NAME) {
                    dst.truncate(start);
                    return Err(e);
                }
            }
        } else if !self.attributes.is_empty() {
            dst.truncate(start);
            return Err(WireError::InvalidField {
                message: Self::NAME,
                field: "query attributes",
                reason: "need CLIENT_QUERY_ATTRIBUTES",
            });
        }
        dst.put_slice(self.query.as_bytes());
        Ok(())
    }
}
