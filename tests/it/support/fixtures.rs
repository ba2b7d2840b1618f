//! Test fixtures: development certificates, the test account and its TOTP, the byte pattern
//! the upstream serves, the `vigie` binary.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// A development CA and server certificate in a temporary folder.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let made = vigie::tls::devcert::generate(dir.path(), "viewer.test").unwrap();
        Certs {
            ca: made.ca_cert,
            cert: made.cert,
            key: made.key,
            dir,
        }
    }

    /// Writes a new server certificate and key over the old ones (same CA), as a renewal does.
    pub fn renew(&self) {
        vigie::tls::devcert::generate(self.dir.path(), "viewer.test").unwrap();
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.ca).unwrap()
    }
}

/// The byte at offset `i` of every `/bytes/N` answer.
pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// `len` bytes of the pattern starting at offset `pos`, without copying (len <= 256 KiB).
pub fn pattern_chunk(pos: u64, len: usize) -> Bytes {
    static PATTERN: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
        (0..(256 * 1024 + 251) as u64)
            .map(pattern)
            .collect::<Vec<u8>>()
            .into()
    });
    let start = (pos % 251) as usize;
    PATTERN.slice(start..start + len)
}

/// How many 256 KiB slices of `data`, found at offset `pos` of a stream, differ from the pattern.
pub fn pattern_mismatches(pos: u64, data: &[u8]) -> u64 {
    let mut wrong = 0;
    let mut off = 0;
    while off < data.len() {
        let len = (data.len() - off).min(256 * 1024);
        if data[off..off + len] != pattern_chunk(pos + off as u64, len)[..] {
            wrong += 1;
        }
        off += len;
    }
    wrong
}

/// The account every default test configuration has (roles doctor and admin).
pub const TEST_USER: &str = "dr.test";
pub const TEST_PASSWORD: &str = "Radio-Thorax-2026";
/// RFC 6238's test key ("12345678901234567890"), base32.
pub const TEST_TOTP: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// An argon2id hash of `TEST_PASSWORD`, computed once per test binary.
pub fn test_hash() -> &'static str {
    static HASH: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| vigie::credentials::password::hash(TEST_PASSWORD).unwrap());
    &HASH
}

/// The `vigie` binary built for these tests.
pub fn vigie_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vigie"))
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The TOTP code of a base32 secret at this moment.
pub fn totp_now(secret_b32: &str) -> String {
    let secret = vigie::credentials::totp::decode_secret(secret_b32).unwrap();
    vigie::credentials::totp::code_at(&secret, unix_now()).unwrap()
}

/// The audit trail's records of `type` in the trail directory `dir`, oldest first, as JSON.
pub fn trail_records(dir: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter_map(|l| l.get("event").cloned())
        .filter(|e| e["type"] == kind)
        .collect()
}

/// The permission bits of a file or folder (`0o600`).
#[cfg(unix)]
pub fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}
