//! The plain-HTTP listener must only send browsers to HTTPS: never a page, never the viewer.

use super::probe::{get_at, local};
use super::{Level, Options, Report, say};
use crate::config::Config;

/// The plain-HTTP listener must only send browsers to HTTPS: never a page, never the viewer.
pub(super) async fn check(config: &Config, opts: &Options, r: &mut Report) {
    let Some(listen) = config.listen.http else {
        return;
    };
    let addr = local(listen);
    let ip = addr.ip().to_string();
    let answer = get_at(
        (ip.as_str(), addr.port()),
        &config.server_name,
        "/app/explorer.html",
        None,
        opts.timeout,
    )
    .await;
    match answer {
        Ok((status, Some(location)))
            if status.is_redirection() && location.starts_with("https://") =>
        {
            r.add(
                Level::Ok,
                "plain_http",
                say!(
                    "Le port HTTP non chiffré ({listen}) ne fait que rediriger vers HTTPS.",
                    "The unencrypted HTTP port ({listen}) only redirects to HTTPS.",
                ),
                ("", ""),
            );
        }
        Ok((status, _)) => {
            let code = status.as_u16();
            r.add(
                Level::Critical,
                "plain_http",
                say!(
                    "Le port HTTP non chiffré ({listen}) répond {code} au lieu de rediriger vers HTTPS : des pages peuvent circuler en clair.",
                    "The unencrypted HTTP port ({listen}) answers {code} instead of redirecting to HTTPS: pages may travel unencrypted.",
                ),
                (
                    "Vérifiez que c'est bien Vigie qui écoute sur listen.http (et pas le visualiseur ou un autre serveur).",
                    "Check that Vigie itself listens on listen.http (not the viewer or another server).",
                ),
            );
        }
        Err(e) => r.add(
            Level::Info,
            "plain_http",
            say!(
                "Le port HTTP ({listen}) ne répond pas ({e}).",
                "The HTTP port ({listen}) does not answer ({e}).",
            ),
            ("", ""),
        ),
    }
}
