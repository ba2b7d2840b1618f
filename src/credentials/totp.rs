//! Second factor: TOTP (RFC 6238, SHA-1, 6 digits, 30 s), as every authenticator app speaks it.
//! A code is accepted for the current step and one step either side (clock drift), and only
//! once: the caller records the step that matched and refuses any step not after it.

use totp_rs::{Algorithm, Builder, Secret, Totp};

const STEP: u64 = 30;
const DIGITS: u8 = 6;

/// Decodes a base32 secret (spaces and case ignored); at least 128 bits.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let secret = Secret::try_from_base32(&cleaned)
        .map_err(|_| "the TOTP secret is not valid base32".to_string())?;
    let bytes = secret.as_ref().to_vec();
    if bytes.len() < 16 {
        return Err(format!(
            "the TOTP secret is {} bits; at least 128 are required",
            bytes.len() * 8
        ));
    }
    Ok(bytes)
}

/// A new random 160-bit secret (RFC 4226's recommendation), base32 without padding.
pub fn new_secret() -> Result<String, String> {
    let mut b = [0u8; 20];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(Secret::from(b).to_base32())
}

fn totp(secret: &[u8], account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(STEP)
        .with_secret(secret.to_vec())
        .with_issuer(Some("Vigie"))
        .with_account_name(account)
        .build()
        .ok()
}

/// The `otpauth://` URI an authenticator app imports (as a QR code).
pub fn otpauth_uri(secret: &[u8], account: &str) -> Option<String> {
    totp(secret, account).and_then(|t| t.to_url().ok())
}

/// The time step a code matches (current ±1), or `None`. `now` is Unix seconds.
pub fn matching_step(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "x")?.check(code, now)
}

/// The code for `now` (tests and the `user add` check).
pub fn code_at(secret: &[u8], now: u64) -> Option<String> {
    totp(secret, "x").map(|t| t.generate(now).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_and_drift() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890", T=59 -> 94287082 (8 digits);
        // 6 digits: 287082.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59).unwrap(), "287082");
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + 90), None);
        assert_eq!(matching_step(secret, "28708", 59), None);
        assert_eq!(matching_step(secret, "2870a2", 59), None);
    }

    #[test]
    fn secrets() {
        let s = new_secret().unwrap();
        assert_eq!(decode_secret(&s).unwrap().len(), 20);
        assert_eq!(
            decode_secret(&s.to_lowercase()).unwrap(),
            decode_secret(&s).unwrap()
        );
        assert!(
            decode_secret("JBSWY3DPEHPK3PXP")
                .unwrap_err()
                .contains("80 bits")
        );
        assert!(decode_secret("not base32!").is_err());
        let uri = otpauth_uri(&decode_secret(&s).unwrap(), "dr.martin").unwrap();
        assert!(uri.starts_with("otpauth://totp/Vigie:dr.martin?"), "{uri}");
    }
}
