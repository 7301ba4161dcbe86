//! Parameter values of the binary protocol (COM_STMT_EXECUTE, query attributes), decoded to
//! something the audit log can show.

use std::fmt;

use bytes::{BufMut, BytesMut};

use super::column_type::ColumnType;
use super::payload::{put_lenenc_bytes, PayloadReader};
use super::MysqlString;
use crate::WireError;

/// The type a client declares for one parameter: a [`ColumnType`] and a flags byte whose only
/// defined bit is [`ParamType::UNSIGNED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamType {
    /// The declared type.
    pub column_type: ColumnType,
    /// The flags byte; `0x80` marks an unsigned integer.
    pub flags: u8,
}

impl ParamType {
    /// The flag bit for unsigned integers.
    pub const UNSIGNED: u8 = 0x80;

    /// A parameter type; `unsigned` only matters for integer types.
    pub const fn new(column_type: ColumnType, unsigned: bool) -> Self {
        Self {
            column_type,
            flags: if unsigned { Self::UNSIGNED } else { 0 },
        }
    }

    /// Whether the unsigned flag is set.
    pub const fn is_unsigned(&self) -> bool {
        self.flags & Self::UNSIGNED != 0
    }

    /// Reads the 2-byte type of one parameter. A flags byte other than `0x00` or `0x80` is
    /// refused: MySQL then reads the pair as an unknown 15-bit type while MariaDB reads the low
    /// byte alone, so the two would decode the values differently.
    pub(crate) fn read(r: &mut PayloadReader) -> Result<Self, WireError> {
        let column_type = ColumnType(r.u8("parameter type")?);
        let flags = r.u8("parameter flags")?;
        if flags & !Self::UNSIGNED != 0 {
            return Err(WireError::InvalidValue {
                message: r.message(),
                field: "parameter flags",
                value: i64::from(flags),
            });
        }
        Ok(Self { column_type, flags })
    }

    pub(crate) fn write(&self, dst: &mut BytesMut) {
        dst.put_u8(self.column_type.0);
        dst.put_u8(self.flags);
    }
}

/// A binary DATE, DATETIME or TIMESTAMP value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BinaryDateTime {
    /// Year (0–9999).
    pub year: u16,
    /// Month (0–12; 0 in zero dates).
    pub month: u8,
    /// Day (0–31).
    pub day: u8,
    /// Hour (0–23).
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Microseconds (0–999 999).
    pub microsecond: u32,
}

impl BinaryDateTime {
    fn has_time(&self) -> bool {
        self.hour != 0 || self.minute != 0 || self.second != 0 || self.microsecond != 0
    }
}

/// A binary TIME value: a signed duration of days, hours, minutes, seconds and microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BinaryTime {
    /// Whether the duration is negative.
    pub negative: bool,
    /// Whole days.
    pub days: u32,
    /// Hours (0–23).
    pub hour: u8,
    /// Minutes.
    pub minute: u8,
    /// Seconds.
    pub second: u8,
    /// Microseconds (0–999 999).
    pub microsecond: u32,
}

/// One parameter value as the server will read it.
///
/// `Display` renders it the way MySQL prints the value (`-5`, `3.5`, `2024-02-29
/// 13:45:10.123456`, `-26:03:04`, the text of a string lossily converted to UTF-8), which is
/// what the audit log records.
#[derive(Debug, Clone, PartialEq)]
pub enum BinaryValue {
    /// SQL NULL (its bit is set in the NULL bitmap, or its type is NULL).
    Null,
    /// Sent earlier with COM_STMT_SEND_LONG_DATA: the execute packet carries no bytes for it.
    LongData,
    /// A signed integer (TINY, SHORT, LONG, LONGLONG).
    Int(i64),
    /// An unsigned integer (the same types with the unsigned flag).
    UInt(u64),
    /// A FLOAT.
    Float(f32),
    /// A DOUBLE.
    Double(f64),
    /// A length-encoded value: DECIMAL and NEWDECIMAL as text, strings, blobs, ENUM, SET, JSON.
    Bytes(MysqlString),
    /// A DATE.
    Date(BinaryDateTime),
    /// A DATETIME or TIMESTAMP.
    DateTime(BinaryDateTime),
    /// A TIME.
    Time(BinaryTime),
}

impl BinaryValue {
    /// Reads one non-NULL value of type `ty`.
    ///
    /// Types whose binary form MySQL and MariaDB read differently (INT24, YEAR, BIT, GEOMETRY,
    /// NEWDATE: MariaDB 10.11 reads no bytes for them where MySQL's documentation gives a width)
    /// and unknown types are refused: an auditor must not show values other than the ones the
    /// server executes.
    pub fn read(r: &mut PayloadReader, ty: ParamType) -> Result<Self, WireError> {
        let unsigned = ty.is_unsigned();
        Ok(match ty.column_type {
            ColumnType::NULL => Self::Null,
            ColumnType::TINY => {
                let v = r.u8("TINY value")?;
                if unsigned {
                    Self::UInt(u64::from(v))
                } else {
                    Self::Int(i64::from(v as i8))
                }
            }
            ColumnType::SHORT => {
                let v = r.u16("SHORT value")?;
                if unsigned {
                    Self::UInt(u64::from(v))
                } else {
                    Self::Int(i64::from(v as i16))
                }
            }
            ColumnType::LONG => {
                let v = r.u32("LONG value")?;
                if unsigned {
                    Self::UInt(u64::from(v))
                } else {
                    Self::Int(i64::from(v as i32))
                }
            }
            ColumnType::LONGLONG => {
                let v = r.u64("LONGLONG value")?;
                if unsigned {
                    Self::UInt(v)
                } else {
                    Self::Int(v as i64)
                }
            }
            ColumnType::FLOAT => Self::Float(f32::from_bits(r.u32("FLOAT value")?)),
            ColumnType::DOUBLE => Self::Double(f64::from_bits(r.u64("DOUBLE value")?)),
            ColumnType::DATE => Self::Date(read_datetime(r)?),
            ColumnType::DATETIME | ColumnType::TIMESTAMP => Self::DateTime(read_datetime(r)?),
            ColumnType::TIME => Self::Time(read_time(r)?),
            t if is_lenenc(t) => Self::Bytes(r.lenenc_bytes("parameter value")?.into()),
            t => {
                return Err(WireError::InvalidValue {
                    message: r.message(),
                    field: "parameter type",
                    value: i64::from(t.0),
                })
            }
        })
    }

    /// Appends the value as type `ty`; [`BinaryValue::Null`] and [`BinaryValue::LongData`]
    /// write nothing (they live in the NULL bitmap and in earlier packets).
    pub fn write(
        &self,
        dst: &mut BytesMut,
        ty: ParamType,
        message: &'static str,
    ) -> Result<(), WireError> {
        let mismatch = || WireError::InvalidField {
            message,
            field: "parameter value",
            reason: "value does not fit the declared parameter type",
        };
        let unsigned = ty.is_unsigned();
        match (self, ty.column_type) {
            (Self::Null | Self::LongData, _) => {}
            (&Self::Int(v), ColumnType::TINY) if !unsigned => {
                dst.put_i8(i8::try_from(v).map_err(|_| mismatch())?)
            }
            (&Self::UInt(v), ColumnType::TINY) if unsigned => {
                dst.put_u8(u8::try_from(v).map_err(|_| mismatch())?)
            }
            (&Self::Int(v), ColumnType::SHORT) if !unsigned => {
                dst.put_i16_le(i16::try_from(v).map_err(|_| mismatch())?)
            }
            (&Self::UInt(v), ColumnType::SHORT) if unsigned => {
                dst.put_u16_le(u16::try_from(v).map_err(|_| mismatch())?)
            }
            (&Self::Int(v), ColumnType::LONG) if !unsigned => {
                dst.put_i32_le(i32::try_from(v).map_err(|_| mismatch())?)
            }
            (&Self::UInt(v), ColumnType::LONG) if unsigned => {
                dst.put_u32_le(u32::try_from(v).map_err(|_| mismatch())?)
            }
            (&Self::Int(v), ColumnType::LONGLONG) if !unsigned => dst.put_i64_le(v),
            (&Self::UInt(v), ColumnType::LONGLONG) if unsigned => dst.put_u64_le(v),
            (&Self::Float(v), ColumnType::FLOAT) => dst.put_u32_le(v.to_bits()),
            (&Self::Double(v), ColumnType::DOUBLE) => dst.put_u64_le(v.to_bits()),
            (Self::Date(d), ColumnType::DATE)
            | (Self::DateTime(d), ColumnType::DATETIME | ColumnType::TIMESTAMP) => {
                write_datetime(dst, d)
            }
            (Self::Time(t), ColumnType::TIME) => write_time(dst, t),
            (Self::Bytes(b), t) if is_lenenc(t) => put_lenenc_bytes(dst, b.as_bytes()),
            _ => return Err(mismatch()),
        }
        Ok(())
    }
}

/// Types sent as length-encoded strings, read the same way by MySQL and MariaDB.
fn is_lenenc(t: ColumnType) -> bool {
    matches!(
        t,
        ColumnType::DECIMAL
            | ColumnType::NEWDECIMAL
            | ColumnType::VARCHAR
            | ColumnType::JSON
            | ColumnType::ENUM
            | ColumnType::SET
            | ColumnType::TINY_BLOB
            | ColumnType::MEDIUM_BLOB
            | ColumnType::LONG_BLOB
            | ColumnType::BLOB
            | ColumnType::VAR_STRING
            | ColumnType::STRING
    )
}

fn read_datetime(r: &mut PayloadReader) -> Result<BinaryDateTime, WireError> {
    let len = r.u8("date length")?;
    let mut d = BinaryDateTime::default();
    if !matches!(len, 0 | 4 | 7 | 11) {
        return Err(WireError::InvalidValue {
            message: r.message(),
            field: "date length",
            value: i64::from(len),
        });
    }
    if len >= 4 {
        d.year = r.u16("year")?;
        d.month = r.u8("month")?;
        d.day = r.u8("day")?;
    }
    if len >= 7 {
        d.hour = r.u8("hour")?;
        d.minute = r.u8("minute")?;
        d.second = r.u8("second")?;
    }
    if len == 11 {
        d.microsecond = r.u32("microsecond")?;
    }
    Ok(d)
}

fn write_datetime(dst: &mut BytesMut, d: &BinaryDateTime) {
    let len: u8 = if d.microsecond != 0 {
        11
    } else if d.hour != 0 || d.minute != 0 || d.second != 0 {
        7
    } else if d.year != 0 || d.month != 0 || d.day != 0 {
        4
    } else {
        0
    };
    dst.put_u8(len);
    if len >= 4 {
        dst.put_u16_le(d.year);
        dst.put_u8(d.month);
        dst.put_u8(d.day);
    }
    if len >= 7 {
        dst.put_u8(d.hour);
        dst.put_u8(d.minute);
        dst.put_u8(d.second);
    }
    if len == 11 {
        dst.put_u32_le(d.microsecond);
    }
}

fn read_time(r: &mut PayloadReader) -> Result<BinaryTime, WireError> {
    let len = r.u8("time length")?;
    let mut t = BinaryTime::default();
    if !matches!(len, 0 | 8 | 12) {
        return Err(WireError::InvalidValue {
            message: r.message(),
            field: "time length",
            value: i64::from(len),
        });
    }
    if len >= 8 {
        t.negative = r.u8("time sign")? != 0;
        t.days = r.u32("days")?;
        t.hour = r.u8("hour")?;
        t.minute = r.u8("minute")?;
        t.second = r.u8("second")?;
    }
    if len == 12 {
        t.microsecond = r.u32("microsecond")?;
    }
    Ok(t)
}

fn write_time(dst: &mut BytesMut, t: &BinaryTime) {
    let zero = t.days == 0 && t.hour == 0 && t.minute == 0 && t.second == 0;
    let len: u8 = if t.microsecond != 0 {
        12
    } else if !zero || t.negative {
        8
    } else {
        0
    };
    dst.put_u8(len);
    if len >= 8 {
        dst.put_u8(u8::from(t.negative));
        dst.put_u32_le(t.days);
        dst.put_u8(t.hour);
        dst.put_u8(t.minute);
        dst.put_u8(t.second);
    }
    if len == 12 {
        dst.put_u32_le(t.microsecond);
    }
}

fn fmt_micros(f: &mut fmt::Formatter<'_>, micros: u32) -> fmt::Result {
    if micros != 0 {
        write!(f, ".{micros:06}")?;
    }
    Ok(())
}

impl fmt::Display for BinaryDateTime {
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        fmt_micros(f, self.microsecond)
    }
}

impl fmt::Display for BinaryTime {
    /// `[-]HHH:MM:SS[.ffffff]`, days folded into hours as MySQL prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hours = u64::from(self.days) * 24 + u64::from(self.hour);
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{hours:02}:{:02}:{:02}", self.minute, self.second)?;
        fmt_micros(f, self.microsecond)
    }
}

impl fmt::Display for BinaryValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::LongData => f.write_str("<long data>"),
            Self::Int(v) => write!(f, "{v}"),
            Self::UInt(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::Bytes(s) => f.write_str(&s.to_string_lossy()),
            Self::Date(d) if !d.has_time() => {
                write!(f, "{:04}-{:02}-{:02}", d.year, d.month, d.day)
            }
            Self::Date(d) | Self::DateTime(d) => fmt::Display::fmt(d, f),
            Self::Time(t) => fmt::Display::fmt(t, f),
        }
    }
}
