//! A certificate the gateway obtains itself: whether its source can work (the practice CA
//! exists; the ACME account), and what `status.json` says of the last attempts: the next
//! renewal, and the last error while attempts keep failing.

use super::{Level, Report, say};
use crate::config::{CertSource, Config};
use crate::tls::ca::CaFiles;
use crate::tls::renew::Status;

pub(super) fn check(config: &Config, r: &mut Report) {
    let t = &config.tls;
    let Some(dir) = t.cert_file.parent() else {
        return;
    };
    match &t.source {
        CertSource::Files => return,
        CertSource::LocalCa => {
            let ca = config.state_dir.join("ca");
            if !CaFiles::in_dir(&ca).exist() {
                let dir = ca.display();
                r.add_at(
                    Level::Critical,
                    "renewal",
                    Some("tls.local_ca".into()),
                    say!(
                        "tls.local_ca est activé mais l'autorité du cabinet n'existe pas ({dir}).",
                        "tls.local_ca is set but there is no practice CA ({dir}).",
                    ),
                    (
                        "Créez-la avec `vigie ca init --config FICHIER`, puis installez ca.crt sur les postes.",
                        "Create it with `vigie ca init --config FILE`, then install ca.crt on the workstations.",
                    ),
                );
                return;
            }
        }
        CertSource::Acme(a) => {
            let account = crate::tls::acme::account_file(a);
            let directory = &a.directory;
            let file = account.display();
            if account.is_file() {
                r.add(
                    Level::Ok,
                    "renewal",
                    say!(
                        "Compte ACME enregistré auprès de {directory} ({file}).",
                        "ACME account registered with {directory} ({file}).",
                    ),
                    ("", ""),
                );
            } else {
                r.add(
                    Level::Info,
                    "renewal",
                    say!(
                        "Pas encore de compte ACME : il est créé au démarrage auprès de {directory}.",
                        "No ACME account yet: it is created at start with {directory}.",
                    ),
                    ("", ""),
                );
            }
        }
    }
    let status = match Status::read(dir) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            r.add(
                Level::Warning,
                "renewal",
                say!(
                    "L'état du renouvellement ne peut pas être lu : {e}.",
                    "The renewal status cannot be read: {e}.",
                ),
                (
                    "La passerelle le réécrit à la prochaine tentative ; vous pouvez le supprimer.",
                    "The gateway writes it again at its next attempt; you may delete it.",
                ),
            );
            return;
        }
    };
    if let Some(next) = status.next_renewal {
        let when = stamp(next);
        r.add(
            Level::Ok,
            "renewal",
            say!(
                "Prochain renouvellement (ou nouvel essai) : {when}.",
                "Next renewal (or retry): {when}.",
            ),
            ("", ""),
        );
    }
    if status.failures > 0 {
        let n = status.failures;
        let err = status.last_error.as_deref().unwrap_or("?");
        let level = if n >= 3 { Level::High } else { Level::Warning };
        r.add_at(
            level,
            "renewal",
            Some("tls".into()),
            say!(
                "Tentatives de renouvellement échouées à la suite : {n} ; la dernière : {err}.",
                "Renewal attempts failed in a row: {n}; the last one: {err}.",
            ),
            match t.source {
                CertSource::Acme(_) if status.last_unreachable => (
                    "Vigie n'atteint pas l'autorité ACME : vérifiez l'accès sortant à internet et le DNS de la machine (et tls.acme.ca_file pour une autorité privée) ; Vigie réessaie seul.",
                    "Vigie cannot reach the ACME CA: check the machine's outgoing internet access and DNS (and tls.acme.ca_file for a private CA); Vigie keeps retrying.",
                ),
                CertSource::Acme(_) => (
                    "Vérifiez que le nom pointe vers la box et que la box redirige le port 443 (tls-alpn-01) ou 80 (http-01) vers Vigie ; Vigie réessaie seul.",
                    "Check that the name points to the internet box and that the box forwards port 443 (tls-alpn-01) or 80 (http-01) to Vigie; Vigie keeps retrying.",
                ),
                _ => (
                    "Vérifiez l'autorité du cabinet (state_dir/ca) et les droits du dossier ; Vigie réessaie seul.",
                    "Check the practice CA (state_dir/ca) and the folder's permissions; Vigie keeps retrying.",
                ),
            },
        );
    }
}

fn stamp(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|d| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute()
            )
        })
        .unwrap_or_else(|_| unix.to_string())
}
