//! Every object identifier Portcullis defines, in one place.
//!
//! Our arc is `2.25.2513196844537968166238536721698936919`: the `2.25` arc (ITU-T X.667) lets
//! anyone mint an OID from a UUID without registration. The UUID
//! `01e4062b-cdf3-40b5-b166-7c5963985857` was generated once for the project; never change it,
//! or every certificate already issued stops decoding.
//!
//! | OID (under the arc) | field | value |
//! |---|---|---|
//! | `.1.1` | user roles | UTF8String, one attribute per role |
//! | `.1.2` | user traits | UTF8String, JSON object of string lists |
//! | `.1.3` | MFA verified | UTF8String `true` / `false` |
//! | `.1.4` | login IP | UTF8String, textual IP address |
//! | `.1.5` | route: database service name | UTF8String |
//! | `.1.6` | route: protocol | UTF8String (`postgres`, `mysql`, `redis`, `mongodb`) |
//! | `.1.7` | route: database user | UTF8String |
//! | `.1.8` | route: database name | UTF8String |
//! | `.2.1` | host system roles | UTF8String, one attribute per role |
//! | `.2.2` | host node name | UTF8String |
//!
//! All of them are attributes in the certificate's subject name, next to CN (the user name or
//! host id) and O (the cluster name), the way Teleport carries its identity fields.

use std::sync::LazyLock;

use crate::der;

/// The integer form of the project UUID `01e4062b-cdf3-40b5-b166-7c5963985857`.
pub const PROJECT_UUID_ARC: u128 = 2_513_196_844_537_968_166_238_536_721_698_936_919;

/// A field we store in a certificate subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `.1.1`
    Roles,
    /// `.1.2`
    Traits,
    /// `.1.3`
    MfaVerified,
    /// `.1.4`
    LoginIp,
    /// `.1.5`
    RouteService,
    /// `.1.6`
    RouteProtocol,
    /// `.1.7`
    RouteDbUser,
    /// `.1.8`
    RouteDbName,
    /// `.2.1`
    SystemRoles,
    /// `.2.2`
    NodeName,
}

impl Field {
    /// Every field, for decoding lookups.
    pub const ALL: [Field; 10] = [
        Self::Roles,
        Self::Traits,
        Self::MfaVerified,
        Self::LoginIp,
        Self::RouteService,
        Self::RouteProtocol,
        Self::RouteDbUser,
        Self::RouteDbName,
        Self::SystemRoles,
        Self::NodeName,
    ];

    /// The two arcs below the project arc.
    pub fn sub_arcs(self) -> [u128; 2] {
        match self {
            Self::Roles => [1, 1],
            Self::Traits => [1, 2],
            Self::MfaVerified => [1, 3],
            Self::LoginIp => [1, 4],
            Self::RouteService => [1, 5],
            Self::RouteProtocol => [1, 6],
            Self::RouteDbUser => [1, 7],
            Self::RouteDbName => [1, 8],
            Self::SystemRoles => [2, 1],
            Self::NodeName => [2, 2],
        }
    }

    /// The full dotted OID, for documentation and error messages.
    pub fn dotted(self) -> String {
        let [a, b] = self.sub_arcs();
        format!("2.25.{PROJECT_UUID_ARC}.{a}.{b}")
    }

    /// The OID's DER content octets (what x509-parser exposes as `Oid::as_bytes`).
    pub fn content(self) -> &'static [u8] {
        let idx = Self::ALL.iter().position(|f| *f == self).unwrap_or(0);
        FIELD_CONTENTS
            .get(idx)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Finds the field whose OID content octets are `bytes`.
    pub fn from_content(bytes: &[u8]) -> Option<Field> {
        Self::ALL.into_iter().find(|f| f.content() == bytes)
    }
}

static FIELD_CONTENTS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    Field::ALL
        .iter()
        .map(|f| {
            let [a, b] = f.sub_arcs();
            der::oid_content(&[2, 25, PROJECT_UUID_ARC, a, b]).unwrap_or_default()
        })
        .collect()
});

/// Standard OIDs, as content octets.
pub mod std_oid {
    /// commonName 2.5.4.3
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// organizationName 2.5.4.10
    pub const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    /// id-ecPublicKey 1.2.840.10045.2.1
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 1.2.840.10045.3.1.7
    pub const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// ecdsa-with-SHA256 1.2.840.10045.4.3.2
    pub const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// basicConstraints 2.5.29.19
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// keyUsage 2.5.29.15
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// extKeyUsage 2.5.29.37
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// subjectAltName 2.5.29.17
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// subjectKeyIdentifier 2.5.29.14
    pub const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
    /// authorityKeyIdentifier 2.5.29.35
    pub const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
    /// id-kp-serverAuth 1.3.6.1.5.5.7.3.1
    pub const KP_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// id-kp-clientAuth 1.3.6.1.5.5.7.3.2
    pub const KP_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arc_is_the_project_uuid() {
        let hex = "01e4062bcdf340b5b1667c5963985857";
        assert_eq!(u128::from_str_radix(hex, 16).unwrap(), PROJECT_UUID_ARC);
    }

    #[test]
    fn fields_are_distinct_and_round_trip() {
        for f in Field::ALL {
            assert!(!f.content().is_empty());
            assert_eq!(Field::from_content(f.content()), Some(f));
        }
        assert_eq!(
            Field::Roles.dotted(),
            "2.25.2513196844537968166238536721698936919.1.1"
        );
    }
}
