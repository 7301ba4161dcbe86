//! The parameter block shared by COM_STMT_EXECUTE and COM_QUERY's query attributes: NULL
//! bitmap, new-params-bound flag, types (and names), values.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::binary_value::{BinaryValue, ParamType};
use super::payload::{put_lenenc_bytes, PayloadReader};
use super::MysqlString;
use crate::WireError;

/// One parameter (or query attribute) of a COM_STMT_EXECUTE or COM_QUERY.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteParam {
    /// Its declared type: sent with the packet, or remembered from an earlier execute.
    pub param_type: ParamType,
    /// Its name: a query attribute's name (MySQL 8 with `CLIENT_QUERY_ATTRIBUTES`), empty for
    /// positional parameters and whenever types were not sent.
    pub name: MysqlString,
    /// Its value.
    pub value: BinaryValue,
}

impl ExecuteParam {
    /// A positional parameter.
    pub fn new(param_type: ParamType, value: BinaryValue) -> Self {
        Self {
            param_type,
            name: MysqlString::default(),
            value,
        }
    }

    /// A named parameter (a query attribute).
    pub fn named(param_type: ParamType, name: impl Into<MysqlString>, value: BinaryValue) -> Self {
        Self {
            param_type,
            name: name.into(),
            value,
        }
    }
}

impl fmt::Display for ExecuteParam {
    /// `value`, or `name=value` for a named one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.name.is_empty() {
            write!(f, "{}=", self.name)?;
        }
        fmt::Display::fmt(&self.value, f)
    }
}

/// Reads the block for `count` parameters. `previous` are the types to use when the packet
/// does not send them; `long_data` the indexes of parameters sent with COM_STMT_SEND_LONG_DATA
/// since the last execute (they have no bytes here, whatever the bitmap says).
pub(crate) fn read_block(
    r: &mut PayloadReader,
    count: u64,
    with_names: bool,
    previous: Option<&[ParamType]>,
    long_data: &[u16],
) -> Result<(bool, Vec<ExecuteParam>), WireError> {
    // The bitmap must be there before anything is sized from `count`.
    let bitmap_len = count.div_ceil(8);
    let bitmap_len = usize::try_from(bitmap_len).map_err(|_| r.truncated("NULL bitmap"))?;
    let bitmap = r.bytes(bitmap_len, "NULL bitmap")?;
    let bound = r.u8("new-params-bound flag")? != 0;
    let types: Vec<(ParamType, MysqlString)> = if bound {
        let mut types = Vec::with_capacity(r.capacity_for(count, 2));
        for _ in 0..count {
            let ty = ParamType::read(r)?;
            let name = if with_names {
                r.lenenc_bytes("parameter name")?.into()
            } else {
                MysqlString::default()
            };
            types.push((ty, name));
        }
        types
    } else {
        match previous {
            Some(p) if p.len() as u64 == count => {
                p.iter().map(|t| (*t, MysqlString::default())).collect()
            }
            _ => {
                return Err(WireError::InvalidField {
                    message: r.message(),
                    field: "parameter types",
                    reason: "not sent, and no earlier execute of this statement sent them",
                })
            }
        }
    };
    let mut params = Vec::with_capacity(types.len());
    for (i, (param_type, name)) in types.into_iter().enumerate() {
        let is_null = bitmap
            .get(i / 8)
            .is_some_and(|byte| byte & (1 << (i % 8)) != 0);
        let is_long = u16::try_from(i).is_ok_and(|i| long_data.contains(&i));
        let value = if is_long {
            BinaryValue::LongData
        } else if is_null {
            BinaryValue::Null
        } else {
            BinaryValue::read(r, param_type)?
        };
        params.push(ExecuteParam {
            param_type,
            name,
            value,
        });
    }
    Ok((bound, params))
}

/// Appends the block for `params` (not the count before it).
pub(crate) fn write_block(
    dst: &mut BytesMut,
    params: &[ExecuteParam],
    bound: bool,
    with_names: bool,
    message: &'static str,
) -> Result<(), WireError> {
    if !(bound && with_names) && params.iter().any(|p| !p.name.is_empty()) {
        return Err(WireError::InvalidField {
            message,
            field: "parameter name",
            reason: "names are only sent with types, and only with CLIENT_QUERY_ATTRIBUTES",
        });
    }
    let mut bitmap = vec![0u8; params.len().div_ceil(8)];
    for (i, p) in params.iter().enumerate() {
        if p.value == BinaryValue::Null {
            if let Some(byte) = bitmap.get_mut(i / 8) {
                *byte |= 1 << (i % 8);
            }
        }
    }
    dst.put_slice(&bitmap);
    dst.put_u8(u8::from(bound));
    if bound {
        for p in params {
            p.param_type.write(dst);
            if with_names {
                put_lenenc_bytes(dst, p.name.as_bytes());
            }
        }
    }
    for p in params {
        p.value.write(dst, p.param_type, message)?;
    }
    Ok(())
}
