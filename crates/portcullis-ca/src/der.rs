//! A minimal DER writer: exactly the encodings our certificates need.
//!
//! We write certificates ourselves because our identity OIDs live under `2.25.<UUID>`, whose
//! second arc is a 128-bit integer that common certificate builders cannot express (they take
//! `u64` or `u32` arcs). Writing DER directly is also the fastest way to issue certificates.

/// Universal tag numbers used in certificates.
pub mod tag {
    /// BOOLEAN
    pub const BOOLEAN: u8 = 0x01;
    /// INTEGER
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING
    pub const OCTET_STRING: u8 = 0x04;
    /// OBJECT IDENTIFIER
    pub const OID: u8 = 0x06;
    /// UTF8String
    pub const UTF8_STRING: u8 = 0x0c;
    /// UTCTime
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed)
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed)
    pub const SET: u8 = 0x31;
}

/// Appends one TLV with `tag` and `content` to `out`.
pub fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

/// Returns one TLV as a fresh vector.
pub fn tlv_vec(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    tlv(&mut out, tag, content);
    out
}

/// A SEQUENCE of already-encoded parts.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(tag::SEQUENCE, parts)
}

/// A constructed value (SEQUENCE, SET, context tag) of already-encoded parts.
pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    push_len(&mut out, len);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in the short form by the check above.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = bytes.get(skip..).unwrap_or_default();
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// An unsigned big-endian integer (e.g. a serial number) as a DER INTEGER.
pub fn unsigned_integer(be_bytes: &[u8]) -> Vec<u8> {
    let skip = be_bytes
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(be_bytes.len().saturating_sub(1));
    let trimmed = be_bytes.get(skip..).unwrap_or_default();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    if trimmed.is_empty() {
        // zero: a single 0 byte already pushed
    }
    tlv_vec(tag::INTEGER, &content)
}

/// A small non-negative INTEGER.
pub fn small_integer(v: u64) -> Vec<u8> {
    unsigned_integer(&v.to_be_bytes())
}

/// The content octets of an OBJECT IDENTIFIER with arbitrarily large (u128) arcs.
///
/// Returns `None` for an OID with fewer than two arcs or a first arc above 2.
pub fn oid_content(arcs: &[u128]) -> Option<Vec<u8>> {
    let (first, rest) = arcs.split_first()?;
    let (second, rest) = rest.split_first()?;
    if *first > 2 || (*first < 2 && *second >= 40) {
        return None;
    }
    let mut out = Vec::new();
    push_base128(&mut out, first.checked_mul(40)?.checked_add(*second)?);
    for arc in rest {
        push_base128(&mut out, *arc);
    }
    Some(out)
}

fn push_base128(out: &mut Vec<u8>, mut v: u128) {
    let mut tmp = [0u8; 19];
    let mut n = 0;
    loop {
        if let Some(slot) = tmp.get_mut(n) {
            *slot = (v & 0x7f) as u8;
        }
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let b = tmp.get(i).copied().unwrap_or(0);
        out.push(if i == 0 { b } else { b | 0x80 });
    }
}

/// An OBJECT IDENTIFIER TLV from its content octets.
pub fn oid(content: &[u8]) -> Vec<u8> {
    tlv_vec(tag::OID, content)
}

/// A UTF8String.
pub fn utf8(s: &str) -> Vec<u8> {
    tlv_vec(tag::UTF8_STRING, s.as_bytes())
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv_vec(tag::BIT_STRING, &content)
}

/// An OCTET STRING.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv_vec(tag::OCTET_STRING, bytes)
}

/// BOOLEAN TRUE.
pub fn true_value() -> Vec<u8> {
    tlv_vec(tag::BOOLEAN, &[0xff])
}

/// An X.509 Time: UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5).
pub fn x509_time(t: time::OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    let rest = format!(
        "{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if (1950..2050).contains(&year) {
        tlv_vec(
            tag::UTC_TIME,
            format!("{:02}{rest}", year.rem_euclid(100)).as_bytes(),
        )
    } else {
        tlv_vec(tag::GENERALIZED_TIME, format!("{year:04}{rest}").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(tlv_vec(4, &[0; 3])[..2], [4, 3]);
        assert_eq!(tlv_vec(4, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(tlv_vec(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
    }

    #[test]
    fn integers() {
        assert_eq!(small_integer(0), [2, 1, 0]);
        assert_eq!(small_integer(2), [2, 1, 2]);
        assert_eq!(small_integer(128), [2, 2, 0, 128]);
        assert_eq!(unsigned_integer(&[0, 0, 1, 0]), [2, 2, 1, 0]);
    }

    #[test]
    fn oids() {
        // 1.2.840.10045.2.1 (id-ecPublicKey)
        assert_eq!(
            oid_content(&[1, 2, 840, 10045, 2, 1]).unwrap(),
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]
        );
        // 2.25.x with a 128-bit arc: first byte is 2*40+25 = 105.
        let c = oid_content(&[2, 25, u128::MAX]).unwrap();
        assert_eq!(c[0], 105);
        assert_eq!(c.len(), 1 + 19);
        assert!(oid_content(&[3, 1]).is_none());
        assert!(oid_content(&[1]).is_none());
    }
}
