//! Passwords: argon2id hashing and verification (on a blocking thread: one verification costs
//! tens of milliseconds by design), the minimum parameters a stored hash must have, and the
//! strength rules for new passwords (CNIL deliberation 2022-100).

use std::collections::HashSet;
use std::sync::LazyLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's and RFC 9106's low-memory recommendation: m=19 MiB, t=2, p=1.
pub const MIN_M_KIB: u32 = 19_456;
pub const MIN_T: u32 = 2;
pub const MIN_P: u32 = 1;

fn hasher() -> Argon2<'static> {
    // These parameters are valid constants: `new` cannot fail on them.
    let params = Params::new(MIN_M_KIB, MIN_T, MIN_P, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (argon2id, m=19456 t=2 p=1, random salt).
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness available: {e}"))?;
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks that a stored hash is an argon2id PHC string at least as strong as the minimum.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash uses {}, not argon2id",
            parsed.algorithm.as_str()
        ));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters ({e})"))?;
    if params.m_cost() < MIN_M_KIB || params.t_cost() < MIN_T || params.p_cost() < MIN_P {
        return Err(format!(
            "argon2id parameters m={} t={} p={} are below m={MIN_M_KIB} t={MIN_T} p={MIN_P}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    Ok(())
}

/// Verifies a password against a PHC string. Slow on purpose: call it on a blocking thread.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified for unknown user names so that a failed sign-in
/// takes the same time whether or not the account exists.
pub static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut pw = [0u8; 24];
    let _ = getrandom::fill(&mut pw);
    let pw: String = pw.iter().map(|b| format!("{b:02x}")).collect();
    hash(&pw).unwrap_or_else(|_| {
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .into()
    })
});

static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

/// Why a new password is refused, in the administrator's words; `Ok` when it is acceptable.
///
/// CNIL 2022-100, for a password used with a second factor still applies the "password alone"
/// bar here, since the second factor may be switched off: at least 12 characters with upper
/// case, lower case, digits and special characters; or at least 14 characters with upper case,
/// lower case and digits; and never a common password, even with digits or symbols added.
pub fn strength(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    let upper = password.chars().any(char::is_uppercase);
    let lower = password.chars().any(char::is_lowercase);
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let special = password.chars().any(|c| !c.is_alphanumeric());
    let strong_enough =
        (len >= 12 && upper && lower && digit && special) || (len >= 14 && upper && lower && digit);
    if !strong_enough {
        return Err(
            "too weak: use at least 12 characters mixing upper case, lower case, digits and \
             symbols (or at least 14 with upper case, lower case and digits)"
                .into(),
        );
    }
    let lowered = password.to_lowercase();
    let core = lowered.trim_matches(|c: char| !c.is_alphabetic());
    if COMMON.contains(lowered.as_str()) || COMMON.contains(core) {
        return Err("too common: this password appears in lists of leaked passwords".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_parameters() {
        let h = hash("Correct-Horse-42").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        check_phc(&h).unwrap();
        assert!(verify("Correct-Horse-42", &h));
        assert!(!verify("correct-horse-42", &h));
        assert!(!verify("x", "not a hash"));
        let weak = "$argon2id$v=19$m=4096,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(check_phc(weak).unwrap_err().contains("below"));
        assert!(check_phc("$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$AAAA").is_err());
        assert!(check_phc("plaintext").is_err());
    }

    #[test]
    fn strength_rules() {
        for weak in [
            "short1!A",
            "alllowercase-but-long-123",
            "NoDigitsHere!!",
            "Password1234!",
            "!!Azerty123456",
            "Motdepasse2024!",
        ] {
            assert!(strength(weak).is_err(), "{weak} accepted");
        }
        for ok in ["Radio-Thorax-2026", "Genou&Cheville7", "NoSymbolsButLong42"] {
            assert!(strength(ok).is_ok(), "{ok} refused: {:?}", strength(ok));
        }
    }
}
