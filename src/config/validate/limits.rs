//! `limits:`: sizes, timeouts and connection bounds of the client side.

use std::time::Duration;

use super::Validator;
use crate::config::Limits;
use crate::config::file::FileLimits;

impl Validator {
    pub(super) fn limits(&mut self, l: &FileLimits) -> Limits {
        let max_header_bytes = self.size(
            l.max_header_bytes.as_deref(),
            "limits.max_header_bytes",
            32 * 1024,
        );
        if !(8192..=1 << 20).contains(&max_header_bytes) {
            self.error(
                "limits.max_header_bytes",
                "must be between 8KiB and 1MiB",
                "the default 32KiB suits browsers and DICOMweb clients",
            );
        }
        let max_connections = l.max_connections.unwrap_or(4096);
        if max_connections == 0 {
            self.error("limits.max_connections", "must be at least 1", "e.g. 4096");
        }
        let per_client = l.max_connections_per_client.unwrap_or(256);
        if per_client == 0 {
            self.error(
                "limits.max_connections_per_client",
                "must be at least 1",
                "e.g. 256; raise it when many users share one public address (a hospital's NAT)",
            );
        } else if per_client > max_connections {
            self.warning(
                "limits.max_connections_per_client",
                "is above limits.max_connections: one client can still take every place",
                "keep it well below max_connections (default 256 of 4096)",
            );
        }
        let max_headers = l.max_headers.unwrap_or(100);
        if max_headers == 0 {
            self.error("limits.max_headers", "must be at least 1", "e.g. 100");
        }
        let streams = l.h2_max_concurrent_streams.unwrap_or(128);
        if streams == 0 {
            self.error(
                "limits.h2_max_concurrent_streams",
                "must be at least 1",
                "e.g. 128",
            );
        }
        Limits {
            max_connections: max_connections.max(1),
            max_connections_per_client: per_client.max(1),
            tls_handshake_timeout: self.duration(
                l.tls_handshake_timeout.as_deref(),
                "limits.tls_handshake_timeout",
                Duration::from_secs(10),
            ),
            header_read_timeout: self.duration(
                l.header_read_timeout.as_deref(),
                "limits.header_read_timeout",
                Duration::from_secs(15),
            ),
            keepalive_timeout: self.duration(
                l.keepalive_timeout.as_deref(),
                "limits.keepalive_timeout",
                Duration::from_secs(75),
            ),
            max_header_bytes: max_header_bytes.clamp(8192, 1 << 20) as usize,
            max_headers: max_headers.max(1),
            h2_max_concurrent_streams: streams.max(1),
            max_request_body: self.size(
                l.max_request_body.as_deref(),
                "limits.max_request_body",
                16 << 30,
            ),
            body_idle_timeout: self.duration(
                l.body_idle_timeout.as_deref(),
                "limits.body_idle_timeout",
                Duration::from_secs(30),
            ),
            send_timeout: self.duration(
                l.send_timeout.as_deref(),
                "limits.send_timeout",
                Duration::from_secs(60),
            ),
            drain_timeout: self.duration(
                l.drain_timeout.as_deref(),
                "limits.drain_timeout",
                Duration::from_secs(30),
            ),
            worker_threads: l.worker_threads.unwrap_or(0),
        }
    }
}
