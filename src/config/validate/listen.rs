//! `server_name`, `server_aliases` and `listen:`: host names, listener addresses, and the loop
//! of a gateway forwarding to itself.

use super::Validator;
use crate::config::file::FileListen;
use crate::config::{Listen, Upstream};

impl Validator {
    pub(super) fn host_name(&mut self, name: &str, path: &str) -> Option<String> {
        let n = name.trim().to_ascii_lowercase();
        if n.contains("://") || n.contains('/') {
            self.error(
                path,
                format!("`{name}` looks like a URL"),
                "write only the host name, e.g. viewer.example.org (no https://, no path)",
            );
            return None;
        }
        if n.parse::<std::net::IpAddr>().is_ok() {
            return Some(n);
        }
        if n.contains(':') {
            self.error(
                path,
                format!("`{name}` contains a port"),
                "write only the host name; ports belong in listen.https",
            );
            return None;
        }
        let valid = !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            self.error(
                path,
                format!("`{name}` is not a valid host name"),
                "use letters, digits, dots and dashes, e.g. viewer.example.org",
            );
            return None;
        }
        Some(n)
    }

    pub(super) fn listen(&mut self, l: Option<FileListen>) -> Option<Listen> {
        let l = self.required(
            l,
            "listen",
            "add `listen:` with at least `https: \"0.0.0.0:8443\"`",
        )?;
        let https = self
            .required(
                l.https,
                "listen.https",
                "the address browsers connect to, e.g. \"0.0.0.0:8443\"",
            )
            .and_then(|a| self.addr(&a, "listen.https"));
        let http = l.http.and_then(|a| self.addr(&a, "listen.http"));
        let admin = l.admin.and_then(|a| self.addr(&a, "listen.admin"));
        if let Some(a) = admin
            && !a.ip().is_loopback()
        {
            self.warning(
                "listen.admin",
                format!("the admin listener {a} is not on loopback"),
                "metrics and health need no exposure to the internet; prefer \"127.0.0.1:9901\"",
            );
        }
        let named = [
            ("listen.https", https),
            ("listen.http", http),
            ("listen.admin", admin),
        ];
        for (i, (pa, a)) in named.iter().enumerate() {
            for (pb, b) in &named[i + 1..] {
                if let (Some(a), Some(b)) = (a, b)
                    && a.port() != 0
                    && a.port() == b.port()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
                {
                    self.error(
                        pb,
                        format!("{b} collides with {pa} ({a})"),
                        "give each listener its own port",
                    );
                }
            }
        }
        if l.public_https_port == Some(0) {
            self.error(
                "listen.public_https_port",
                "must be a port between 1 and 65535",
                "the port browsers use, usually 443",
            );
        }
        let https = https?;
        Some(Listen {
            https,
            http,
            admin,
            public_https_port: l.public_https_port.unwrap_or(match https.port() {
                0 => 443,
                p => p,
            }),
        })
    }

    pub(super) fn loop_check(&mut self, l: &Listen, u: &Upstream) {
        let port = u.authority.port_u16().unwrap_or(80);
        let host = u
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback_host = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback() || ip.is_unspecified())
                .unwrap_or(false);
        for (path, addr) in [("listen.https", Some(l.https)), ("listen.http", l.http)] {
            if let Some(a) = addr
                && a.port() == port
                && loopback_host
            {
                self.error(
                    "upstream.url",
                    format!("the upstream is the gateway's own {path} address"),
                    "point upstream.url at the viewer (e.g. Orthanc on port 8042), not at Vigie",
                );
            }
        }
    }
}
