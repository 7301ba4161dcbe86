//! Connection attributes (`CLIENT_CONNECT_ATTRS`): key/value pairs a client sends at login
//! (`_client_name`, `_pid`, `program_name`…), shared by HandshakeResponse41 and
//! COM_CHANGE_USER.

use bytes::BytesMut;

use super::payload::{lenenc_int_len, put_lenenc_bytes, put_lenenc_int, PayloadReader};
use super::MysqlString;
use crate::WireError;

/// Reads the attributes block: a length-encoded total length, then that many bytes of
/// length-encoded key and value strings.
pub(crate) fn read(r: &mut PayloadReader) -> Result<Vec<(MysqlString, MysqlString)>, WireError> {
    let block = r.lenenc_bytes("connection attributes")?;
    let mut a = PayloadReader::new(r.message(), block);
    let mut attrs = Vec::new();
    while !a.is_empty() {
        let key = a.lenenc_bytes("connection attribute name")?.into();
        let value = a.lenenc_bytes("connection attribute value")?.into();
        attrs.push((key, value));
    }
    Ok(attrs)
}

/// Appends the attributes block.
pub(crate) fn write(dst: &mut BytesMut, attrs: &[(MysqlString, MysqlString)]) {
    let total: usize = attrs
        .iter()
        .map(|(k, v)| {
            lenenc_int_len(k.len() as u64) + k.len() + lenenc_int_len(v.len() as u64) + v.len()
        })
        .sum();
    put_lenenc_int(dst, total as u64);
    for (k, v) in attrs {
        put_lenenc_bytes(dst, k.as_bytes());
        put_lenenc_bytes(dst, v.as_bytes());
    }
}

/// The value of attribute `name`, if sent.
pub(crate) fn get<'a>(
    attrs: &'a [(MysqlString, MysqlString)],
    name: &str,
) -> Option<&'a MysqlString> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}
