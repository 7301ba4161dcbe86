//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// Seconds per code.
pub const STEP: u64 = 30;
/// Codes accepted on either side of the current one, for clock drift.
pub const SKEW_STEPS: u64 = 1;

/// A new 160-bit secret, base32 without padding (what authenticator apps expect).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// The `otpauth://` URI for enrolling `secret` for `user` in an authenticator app.
pub fn uri(issuer: &str, user: &str, secret: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits=6&period={STEP}",
        enc(issuer),
        enc(user),
        enc(issuer)
    )
}

/// The code for time step `step`.
pub fn code_at(secret_b32: &str, step: u64) -> Option<u32> {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_b32.trim_end_matches('=').as_bytes())
        .ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.get(19)? & 0x0f);
    let word: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    let bin = u32::from_be_bytes(word) & 0x7fff_ffff;
    Some(bin % 1_000_000)
}

/// The step of a Unix time.
pub fn step_of(unix_seconds: u64) -> u64 {
    unix_seconds / STEP
}

/// Checks `code` at `unix_seconds`; returns the matching step, which must be greater than
/// `last_used_step` so a code works only once.
pub fn verify(secret_b32: &str, code: &str, unix_seconds: u64, last_used_step: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let now = step_of(unix_seconds);
    let mut found = None;
    // Check every candidate (no early exit) so timing does not tell which step matched.
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let matches = code_at(secret_b32, step)
            .is_some_and(|c| crate::secret::secrets_equal(&c.to_be_bytes(), &wanted.to_be_bytes()));
        if matches && step > last_used_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The current code, formatted; for tests and scripts.
pub fn current_code(secret_b32: &str, unix_seconds: u64) -> Option<String> {
    code_at(secret_b32, step_of(unix_seconds)).map(|c| format!("{c:06}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 key "12345678901234567890", 8 digits truncated to 6.
    #[test]
    fn rfc6238_vectors() {
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, expected8) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                code_at(&secret, step_of(t)),
                Some(expected8 % 1_000_000),
                "t={t}"
            );
        }
    }

    #[test]
    fn verify_window_and_replay() {
        let s = new_secret();
        let t = 1_700_000_000;
        let code = current_code(&s, t).unwrap();
        let step = verify(&s, &code, t, 0).unwrap();
        assert_eq!(step, step_of(t));
        assert!(verify(&s, &code, t, step).is_none(), "replay refused");
        assert!(
            verify(&s, &code, t + STEP, 0).is_some(),
            "one step of drift"
        );
        assert!(verify(&s, &code, t + 3 * STEP, 0).is_none());
        assert!(verify(&s, "12345", t, 0).is_none());
        assert!(verify(&s, "abcdef", t, 0).is_none());
        assert!(
            uri("my cluster", "alice", &s).starts_with("otpauth://totp/my%20cluster:alice?secret=")
        );
    }
}
