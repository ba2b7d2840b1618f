//! Checks of what a valid file points to: the certificate and key (readable, matching, in date,
//! covering the names served) and the upstream (reachable). Used by `vigie check` and at start.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Config, Problem};
use crate::tls::{self, TlsError};

/// Which checks to run.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Try a TCP connection to the upstream.
    pub upstream: bool,
}

/// Warn this long before a certificate expires.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Runs the checks and returns every problem found (empty when all is well).
pub fn check_environment(config: &Config, opts: CheckOptions) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_certificate(config, &mut problems);
    if opts.upstream
        && let Some(p) = check_upstream(config)
    {
        problems.push(p);
    }
    problems
}

fn check_certificate(config: &Config, problems: &mut Vec<Problem>) {
    let t = &config.tls;
    let loaded = match tls::load(&t.cert_file, &t.key_file) {
        Ok(l) => l,
        Err(e) => {
            problems.push(cert_problem(&e, t));
            return;
        }
    };
    let info = &loaded.info;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if info.not_after <= now {
        problems.push(Problem::error(
            "tls.cert_file",
            format!(
                "the certificate {} expired {} ago",
                t.cert_file.display(),
                human_age(now - info.not_after)
            ),
            "renew it (or run `vigie dev-cert` for a local one); browsers refuse expired certificates",
        ));
    } else if info.not_before > now {
        problems.push(Problem::error(
            "tls.cert_file",
            format!("the certificate {} is not valid yet", t.cert_file.display()),
            "check the machine's clock, or the certificate's start date",
        ));
    } else if info.seconds_left(now) < EXPIRY_WARNING.as_secs() as i64 {
        problems.push(Problem::warning(
            "tls.cert_file",
            format!(
                "the certificate {} expires in {}",
                t.cert_file.display(),
                human_age(info.seconds_left(now))
            ),
            "renew it soon; the gateway picks up the new file without a restart",
        ));
    }
    let names = std::iter::once(("server_name".to_string(), &config.server_name)).chain(
        config
            .server_aliases
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("server_aliases[{i}]"), a)),
    );
    for (path, name) in names {
        if !info.covers(name) {
            problems.push(Problem::error(
                &path,
                format!(
                    "the certificate {} does not cover `{name}` (it covers: {})",
                    t.cert_file.display(),
                    covered(info)
                ),
                "use a certificate issued for this name, or correct the name",
            ));
        }
    }
}

fn covered(info: &tls::CertInfo) -> String {
    let mut all: Vec<String> = info.dns_names.clone();
    all.extend(info.ip_addrs.iter().map(|ip| ip.to_string()));
    if all.is_empty() {
        "no names".into()
    } else {
        all.join(", ")
    }
}

/// Maps a loading error to the YAML key an administrator has to look at.
pub(crate) fn cert_problem(e: &TlsError, t: &crate::config::TlsSettings) -> Problem {
    let (path, hint) = match e {
        TlsError::Read { path, .. } if *path == t.key_file => (
            "tls.key_file",
            "check the path and that the gateway's user may read the file",
        ),
        TlsError::Read { .. } => (
            "tls.cert_file",
            "check the path and that the gateway's user may read the file",
        ),
        TlsError::BadCertificate { .. } => (
            "tls.cert_file",
            "cert_file must hold PEM certificates: the server's first, then intermediates",
        ),
        TlsError::BadKey { .. } | TlsError::UnsupportedKey { .. } => (
            "tls.key_file",
            "key_file must hold one PEM private key (ECDSA P-256/P-384, RSA ≥ 2048 or Ed25519)",
        ),
        TlsError::KeyMismatch { .. } => (
            "tls.key_file",
            "the key and the certificate come from different pairs; use the key the certificate was issued for",
        ),
        _ => ("tls", ""),
    };
    Problem::error(path, e.to_string(), hint)
}

fn check_upstream(config: &Config) -> Option<Problem> {
    let u = &config.upstream;
    let host = u.authority.host();
    let port = u.authority.port_u16().unwrap_or(80);
    let addrs: Vec<_> = match (host.trim_matches(|c| c == '[' || c == ']'), port).to_socket_addrs()
    {
        Ok(a) => a.collect(),
        Err(e) => {
            return Some(Problem::error(
                "upstream.url",
                format!("cannot resolve `{host}`: {e}"),
                "check the host name of the viewer (in Docker: the service name)",
            ));
        }
    };
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, u.connect_timeout) {
            Ok(_) => return None,
            Err(e) => last = Some(e),
        }
    }
    Some(Problem::error(
        "upstream.url",
        format!(
            "cannot connect to the upstream {}: {}",
            u.authority,
            last.map(|e| e.to_string())
                .unwrap_or_else(|| "no address".into())
        ),
        "start the viewer first, or correct upstream.url",
    ))
}

fn human_age(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}
