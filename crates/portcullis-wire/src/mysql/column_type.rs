//! Column (and parameter) types of the binary protocol.

use std::fmt;

/// A column or parameter type byte (`MYSQL_TYPE_*`), as sent with COM_STMT_EXECUTE parameters
/// and in column definitions.
///
/// A newtype over the byte rather than an enum, because servers add types (MySQL 9's VECTOR)
/// and an unknown byte must survive a relay; [`ColumnType::name`] gives the known names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnType(pub u8);

impl ColumnType {
    /// `MYSQL_TYPE_DECIMAL` (old decimal): text, length-encoded.
    pub const DECIMAL: Self = Self(0);
    /// `MYSQL_TYPE_TINY`: 1-byte integer.
    pub const TINY: Self = Self(1);
    /// `MYSQL_TYPE_SHORT`: 2-byte integer.
    pub const SHORT: Self = Self(2);
    /// `MYSQL_TYPE_LONG`: 4-byte integer.
    pub const LONG: Self = Self(3);
    /// `MYSQL_TYPE_FLOAT`: 4-byte IEEE float.
    pub const FLOAT: Self = Self(4);
    /// `MYSQL_TYPE_DOUBLE`: 8-byte IEEE float.
    pub const DOUBLE: Self = Self(5);
    /// `MYSQL_TYPE_NULL`: no value.
    pub const NULL: Self = Self(6);
    /// `MYSQL_TYPE_TIMESTAMP`: binary date and time.
    pub const TIMESTAMP: Self = Self(7);
    /// `MYSQL_TYPE_LONGLONG`: 8-byte integer.
    pub const LONGLONG: Self = Self(8);
    /// `MYSQL_TYPE_INT24`: sent as a 4-byte integer.
    pub const INT24: Self = Self(9);
    /// `MYSQL_TYPE_DATE`: binary date.
    pub const DATE: Self = Self(10);
    /// `MYSQL_TYPE_TIME`: binary time of day or duration.
    pub const TIME: Self = Self(11);
    /// `MYSQL_TYPE_DATETIME`: binary date and time.
    pub const DATETIME: Self = Self(12);
    /// `MYSQL_TYPE_YEAR`: 2-byte integer.
    pub const YEAR: Self = Self(13);
    /// `MYSQL_TYPE_NEWDATE`: internal; sent as text if at all.
    pub const NEWDATE: Self = Self(14);
    /// `MYSQL_TYPE_VARCHAR`: length-encoded string.
    pub const VARCHAR: Self = Self(15);
    /// `MYSQL_TYPE_BIT`: length-encoded bytes.
    pub const BIT: Self = Self(16);
    /// `MYSQL_TYPE_TIMESTAMP2`: internal.
    pub const TIMESTAMP2: Self = Self(17);
    /// `MYSQL_TYPE_DATETIME2`: internal.
    pub const DATETIME2: Self = Self(18);
    /// `MYSQL_TYPE_TIME2`: internal.
    pub const TIME2: Self = Self(19);
    /// `MYSQL_TYPE_VECTOR` (MySQL 9): length-encoded bytes.
    pub const VECTOR: Self = Self(242);
    /// `MYSQL_TYPE_JSON` (MySQL): length-encoded string.
    pub const JSON: Self = Self(245);
    /// `MYSQL_TYPE_NEWDECIMAL`: decimal as length-encoded text.
    pub const NEWDECIMAL: Self = Self(246);
    /// `MYSQL_TYPE_ENUM`: length-encoded string.
    pub const ENUM: Self = Self(247);
    /// `MYSQL_TYPE_SET`: length-encoded string.
    pub const SET: Self = Self(248);
    /// `MYSQL_TYPE_TINY_BLOB`: length-encoded bytes.
    pub const TINY_BLOB: Self = Self(249);
    /// `MYSQL_TYPE_MEDIUM_BLOB`: length-encoded bytes.
    pub const MEDIUM_BLOB: Self = Self(250);
    /// `MYSQL_TYPE_LONG_BLOB`: length-encoded bytes.
    pub const LONG_BLOB: Self = Self(251);
    /// `MYSQL_TYPE_BLOB`: length-encoded bytes.
    pub const BLOB: Self = Self(252);
    /// `MYSQL_TYPE_VAR_STRING`: length-encoded string.
    pub const VAR_STRING: Self = Self(253);
    /// `MYSQL_TYPE_STRING`: length-encoded string.
    pub const STRING: Self = Self(254);
    /// `MYSQL_TYPE_GEOMETRY`: length-encoded bytes (WKB with an SRID prefix).
    pub const GEOMETRY: Self = Self(255);

    /// The server's name for the type, without the `MYSQL_TYPE_` prefix; `None` if unknown.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "DECIMAL",
            1 => "TINY",
            2 => "SHORT",
            3 => "LONG",
            4 => "FLOAT",
            5 => "DOUBLE",
            6 => "NULL",
            7 => "TIMESTAMP",
            8 => "LONGLONG",
            9 => "INT24",
            10 => "DATE",
            11 => "TIME",
            12 => "DATETIME",
            13 => "YEAR",
            14 => "NEWDATE",
            15 => "VARCHAR",
            16 => "BIT",
            17 => "TIMESTAMP2",
            18 => "DATETIME2",
            19 => "TIME2",
            242 => "VECTOR",
            245 => "JSON",
            246 => "NEWDECIMAL",
            247 => "ENUM",
            248 => "SET",
            249 => "TINY_BLOB",
            250 => "MEDIUM_BLOB",
            251 => "LONG_BLOB",
            252 => "BLOB",
            253 => "VAR_STRING",
            254 => "STRING",
            255 => "GEOMETRY",
            _ => return None,
        })
    }
}

impl fmt::Debug for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ColumnType({})", self.0),
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
