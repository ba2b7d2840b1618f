//! One line of the trail: `{"seq":…,"time":…,"prev":…,"event":{…}}` for a record, or
//! `{"seq":…,"time":…,"prev":…,"seal":"<mac>"}` for a seal. `prev` is the SHA-256 (hex) of the
//! previous line's bytes, newline excluded; the first line of the trail names 64 zeros. A seal's
//! MAC is HMAC-SHA256 over `vigie-audit-seal-v1:<seq>:<prev>`: it authenticates the chain up to
//! the line before it, and only the holder of the key can make one.

use std::path::Path;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};

/// `prev` of the very first line.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A line as read back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Line {
    pub(super) seq: u64,
    /// RFC 3339, UTC.
    pub(super) time: String,
    pub(super) prev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) event: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) seal: Option<String>,
}

/// The last seal, kept beside the key: `verify` notices a trail that ends before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Anchor {
    pub(super) seq: u64,
    pub(super) hash: String,
}

/// Where the trail starts after old records were deleted (`audit.retention`), kept beside the
/// key: the first kept record's sequence number and the hash it names as `prev`, with a MAC, so
/// that records cut from the start of the trail by anything else are noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Start {
    pub(super) seq: u64,
    pub(super) prev: String,
    pub(super) mac: String,
}

impl Start {
    pub(super) fn new(key: &[u8], seq: u64, prev: &str) -> Start {
        Start {
            seq,
            prev: prev.to_string(),
            mac: mac(key, &format!("vigie-audit-start-v1:{seq}:{prev}")),
        }
    }

    pub(super) fn verifies(&self, key: &[u8]) -> bool {
        mac_verifies(
            key,
            &format!("vigie-audit-start-v1:{}:{}", self.seq, self.prev),
            &self.mac,
        )
    }
}

/// The sealing key's file: 32 or more random bytes, base64. `None` when there is none yet.
pub(super) fn read_key(path: &Path) -> Result<Option<SecretSlice<u8>>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match STANDARD.decode(text.trim()) {
            Ok(bytes) if bytes.len() >= 32 => Ok(Some(bytes.into())),
            _ => Err(format!(
                "the sealing key {} is not 32 bytes of base64: restore it from a backup",
                path.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read the sealing key {}: {e}",
            path.display()
        )),
    }
}

/// The hash a line is chained by.
pub(super) fn hash(line: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, line).as_ref())
}

/// The seal's MAC for sequence number `seq` following a line of hash `prev`.
pub(super) fn seal_mac(key: &[u8], seq: u64, prev: &str) -> String {
    mac(key, &format!("vigie-audit-seal-v1:{seq}:{prev}"))
}

/// Whether `mac` is the seal's MAC, compared in constant time.
pub(super) fn seal_verifies(key: &[u8], seq: u64, prev: &str, mac: &str) -> bool {
    mac_verifies(key, &format!("vigie-audit-seal-v1:{seq}:{prev}"), mac)
}

fn mac(key: &[u8], text: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hex(hmac::sign(&key, text.as_bytes()).as_ref())
}

fn mac_verifies(key: &[u8], text: &str, mac: &str) -> bool {
    let Some(tag) = unhex(mac) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, text.as_bytes(), &tag).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_macs() {
        // SHA-256 of "abc" (FIPS 180-2 example).
        assert_eq!(
            hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mac = seal_mac(b"k", 7, GENESIS);
        assert_eq!(mac.len(), 64);
        assert!(seal_verifies(b"k", 7, GENESIS, &mac));
        assert!(!seal_verifies(b"other", 7, GENESIS, &mac));
        assert!(!seal_verifies(b"k", 8, GENESIS, &mac));
        assert!(!seal_verifies(b"k", 7, GENESIS, "zz"));
    }
}
