//! Sign-in, sessions, the gate and the access policy, with a real client against the real
//! gateway and a real upstream. One file per concern; the sign-in helpers they share are here.

use std::time::{Duration, Instant};

use crate::support::*;

mod gate;
mod policy;
mod sessions;
mod signin;

fn now() -> u64 {
    unix_now()
}

fn code_now() -> String {
    totp_now(TEST_TOTP)
}

/// One sign-in attempt through the form: returns the response (not followed).
async fn attempt(
    certs: &Certs,
    gw: std::net::SocketAddr,
    user: &str,
    password: &str,
    code: &str,
    next: &str,
) -> reqwest::Response {
    let c = client(certs, gw, true);
    let url = format!("https://viewer.test:{}/_vigie/login", gw.port());
    let page = c.get(&url).send().await.unwrap();
    let nonce = set_cookie(&page, "__Host-vigie-csrf").unwrap();
    let token = hidden_field(&page.text().await.unwrap(), "csrf").unwrap();
    c.post(&url)
        .header("cookie", format!("__Host-vigie-csrf={nonce}"))
        .form(&[
            ("username", user),
            ("password", password),
            ("totp", code),
            ("csrf", &token),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

fn session_of(res: &reqwest::Response) -> Option<String> {
    set_cookie(res, "__Host-vigie")
        .filter(|v| !v.is_empty())
        .map(|v| format!("__Host-vigie={v}"))
}
