//! `vigie health`: asks the running gateway's admin listener whether it is ready.

use std::time::Duration;

use http::StatusCode;

use super::probe::{local, send_get};
use crate::config::Config;

/// Asks the running gateway's admin listener whether it is ready (`/readyz`): `Ok` with its
/// answer when it is, `Err` with the reason otherwise.
pub(crate) async fn health(config: &Config, timeout: Duration) -> Result<String, String> {
    let Some(admin) = config.listen.admin else {
        return Err(
            "listen.admin is not set: add `admin: 127.0.0.1:9901` under listen: so that the health check can ask the gateway"
                .into(),
        );
    };
    let addr = local(admin);
    let ip = addr.ip().to_string();
    let host = addr.to_string();
    let attempt = async {
        let res = send_get((ip.as_str(), addr.port()), &host, "/readyz", None)
            .await
            .map_err(|e| format!("admin listener: {e}"))?;
        let status = res.status();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(format!("not ready ({}): {body}", status.as_u16()))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer from the admin listener {addr} within {timeout:?}"))?
}
