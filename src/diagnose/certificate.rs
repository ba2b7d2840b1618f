//! The certificate: readable and matching its key, in date, covering every served name, and
//! trusted by the public authorities or not. One set of thresholds for `vigie check`, `vigie
//! serve` and the exposure report: expired, not yet valid, or not covering a served name is
//! critical (the gateway does not start); under 7 days left is high; under 14 days a warning.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{Lang, Level, Report, say};
use crate::config::{Config, Problem, TlsSettings};
use crate::host::unix_now_i64;
use crate::tls::{self, CertInfo, TlsError};

/// Under this many seconds left, the finding is high (renew now).
const EXPIRY_HIGH: i64 = 7 * 86_400;
/// Under this many seconds left, a warning (plan the renewal).
const EXPIRY_WARNING: i64 = 14 * 86_400;

/// Where a certificate stands in its validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Expired,
    NotYetValid,
    /// Under [`EXPIRY_HIGH`] left.
    Soon,
    /// Under [`EXPIRY_WARNING`] left.
    Near,
    Valid,
}

impl Expiry {
    fn of(not_before: i64, not_after: i64, now: i64) -> Expiry {
        let left = not_after - now;
        if left <= 0 {
            Expiry::Expired
        } else if not_before > now {
            Expiry::NotYetValid
        } else if left < EXPIRY_HIGH {
            Expiry::Soon
        } else if left < EXPIRY_WARNING {
            Expiry::Near
        } else {
            Expiry::Valid
        }
    }
}

/// Judges the chain the running gateway serves (`served`), or else the files: loads them (key
/// included), checks the dates and the names. Returns the chain and what it says, for
/// [`trust`], when it could be read.
pub(super) fn check(
    config: &Config,
    served: Option<&[CertificateDer<'static>]>,
    r: &mut Report,
) -> Option<(Vec<CertificateDer<'static>>, CertInfo)> {
    let t = &config.tls;
    if served.is_none() && t.source.is_managed() {
        // The gateway obtains this one itself: a missing, damaged or outdated certificate is
        // replaced at start, so nothing here stops it.
        let first = r.findings.len();
        let found = if t.cert_file.exists() || t.key_file.exists() {
            check_files(config, r)
        } else {
            let file = t.cert_file.display();
            r.add_at(
                Level::Info,
                "certificate",
                Some("tls".into()),
                say!(
                    "Pas encore de certificat : la passerelle en obtient un au démarrage ({file}).",
                    "No certificate yet: the gateway obtains one at start ({file}).",
                ),
                ("", ""),
            );
            None
        };
        let fix = r.lang.pick_text(
            "La passerelle obtient et renouvelle ce certificat elle-même : lancez vigie check pour l'état du renouvellement et sa dernière erreur.",
            "The gateway obtains and renews this certificate itself: run vigie check for the renewal's state and its last error.",
        );
        for f in &mut r.findings[first..] {
            if f.level == Level::Critical {
                f.level = Level::High;
            }
            if !f.fix.is_empty() {
                f.fix = fix.to_string();
            }
        }
        return found;
    }
    match served {
        Some(chain) => {
            let info = tls::describe(chain)?;
            judge(config, chain.to_vec(), info, r)
        }
        None => check_files(config, r),
    }
}

/// [`check`] of the certificate files.
fn check_files(
    config: &Config,
    r: &mut Report,
) -> Option<(Vec<CertificateDer<'static>>, CertInfo)> {
    let t = &config.tls;
    let file = t.cert_file.display();
    let (chain, info) = {
        match tls::load(&t.cert_file, &t.key_file) {
            Ok(loaded) => (loaded.key.cert.clone(), loaded.info),
            Err(e) => {
                let p = load_problem(&e, t);
                r.add_at(
                    Level::Critical,
                    "certificate",
                    Some(p.path),
                    say!(
                        "Le certificat ou sa clé ne peut pas être chargé ({file}) : {e}.",
                        "{e}"
                    ),
                    (
                        "Vérifiez tls.cert_file et tls.key_file (chemin, droits de lecture, format PEM, la clé du certificat).",
                        &p.hint,
                    ),
                );
                return None;
            }
        }
    };
    judge(config, chain, info, r)
}

/// The dates and names of a certificate that could be read.
fn judge(
    config: &Config,
    chain: Vec<CertificateDer<'static>>,
    info: CertInfo,
    r: &mut Report,
) -> Option<(Vec<CertificateDer<'static>>, CertInfo)> {
    let file = config.tls.cert_file.display();
    let now = unix_now_i64();
    let left = info.seconds_left(now);
    let days = left.div_euclid(86_400);
    let until = date(info.not_after);
    let name = &config.server_name;
    let key = Some("tls.cert_file".to_string());
    let expiry = Expiry::of(info.not_before, info.not_after, now);
    if expiry == Expiry::Expired {
        let ago = human_age(now - info.not_after, r.lang);
        r.add_at(
            Level::Critical,
            "certificate",
            key,
            say!(
                "Le certificat {file} de {name} a expiré le {until} (il y a {ago}) : les navigateurs refusent la connexion.",
                "The certificate {file} for {name} expired {ago} ago ({until}): browsers refuse the connection.",
            ),
            (
                "Renouvelez-le et remplacez les fichiers (ou `vigie dev-cert` pour un essai local) ; Vigie les recharge sans redémarrage.",
                "Renew it and replace the files (or `vigie dev-cert` for a local trial); Vigie reloads them without a restart.",
            ),
        );
    } else if expiry == Expiry::NotYetValid {
        let from = date(info.not_before);
        r.add_at(
            Level::Critical,
            "certificate",
            key,
            say!(
                "Le certificat {file} n'est pas encore valable (à partir du {from}).",
                "The certificate {file} is not valid yet (from {from}).",
            ),
            (
                "Vérifiez l'horloge de la machine, ou la date de début du certificat.",
                "Check the machine's clock, or the certificate's start date.",
            ),
        );
    } else if expiry == Expiry::Soon {
        r.add_at(
            Level::High,
            "certificate",
            key,
            say!(
                "Le certificat de {name} expire dans {days} jour(s) ({until}).",
                "The certificate for {name} expires in {days} day(s) ({until}).",
            ),
            (
                "Renouvelez-le maintenant ; Vigie recharge les nouveaux fichiers sans redémarrage.",
                "Renew it now; Vigie reloads the new files without a restart.",
            ),
        );
    } else if expiry == Expiry::Near {
        r.add_at(
            Level::Warning,
            "certificate",
            key,
            say!(
                "Le certificat de {name} expire dans {days} jours ({until}).",
                "The certificate for {name} expires in {days} days ({until}).",
            ),
            (
                "Prévoyez son renouvellement (ou vérifiez que le renouvellement automatique fonctionne) ; Vigie recharge les nouveaux fichiers sans redémarrage.",
                "Plan its renewal (or check that automatic renewal works); Vigie reloads the new files without a restart.",
            ),
        );
    } else {
        r.add(
            Level::Ok,
            "certificate",
            say!(
                "Le certificat de {name} est valable jusqu'au {until} ({days} jours).",
                "The certificate for {name} is valid until {until} ({days} days).",
            ),
            ("", ""),
        );
    }
    let names = std::iter::once(("server_name".to_string(), name)).chain(
        config
            .server_aliases
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("server_aliases[{i}]"), a)),
    );
    for (path, served_name) in names {
        if !info.covers(served_name) {
            let covered = covered(&info);
            r.add_at(
                Level::Critical,
                "certificate",
                Some(path),
                say!(
                    "Le certificat {file} ne couvre pas le nom `{served_name}` (il couvre : {covered}) : les navigateurs affichent une alerte.",
                    "The certificate {file} does not cover `{served_name}` (it covers: {covered}): browsers show a warning.",
                ),
                (
                    "Utilisez un certificat émis pour ce nom, ou corrigez le nom.",
                    "Use a certificate issued for this name, or correct the name.",
                ),
            );
        }
    }
    Some((chain, info))
}

/// Whether browsers trust the chain without a local authority installed (exposure report only:
/// a practice's own authority is a legitimate choice that `vigie check` does not warn about).
pub(super) fn trust(
    config: &Config,
    chain: &[CertificateDer<'static>],
    info: &CertInfo,
    r: &mut Report,
) {
    let name = &config.server_name;
    match public_trust(chain, info, name) {
        Trust::Public => r.add(
            Level::Ok,
            "certificate",
            say!(
                "La chaîne de certificats est complète et reconnue par les autorités publiques (navigateurs sans alerte).",
                "The certificate chain is complete and trusted by the public authorities (no browser warning).",
            ),
            ("", ""),
        ),
        Trust::SelfSigned => r.add(
            Level::Warning,
            "certificate",
            say!(
                "Le certificat est auto-signé : chaque navigateur affichera une alerte que les utilisateurs apprendront à ignorer.",
                "The certificate is self-signed: every browser shows a warning that users learn to click through.",
            ),
            (
                "Utilisez un certificat d'une autorité publique (Let's Encrypt) pour un nom public, ou une autorité locale installée sur chaque poste.",
                "Use a certificate from a public authority (Let's Encrypt) for a public name, or a local authority installed on every workstation.",
            ),
        ),
        Trust::Unknown(why) => r.add(
            Level::Warning,
            "certificate",
            say!(
                "La chaîne n'est pas reconnue par les autorités publiques ({why}) : seuls les postes où votre autorité locale est installée feront confiance.",
                "The chain is not trusted by the public authorities ({why}): only workstations with your local authority installed will trust it.",
            ),
            (
                "Installez votre autorité locale sur chaque poste, ou utilisez un certificat public ; si c'en est un, ajoutez les intermédiaires à tls.cert_file.",
                "Install your local authority on every workstation, or use a public certificate; if it is one, add the intermediates to tls.cert_file.",
            ),
        ),
    }
}

/// Maps a loading error to the YAML key an administrator has to look at, in English (the
/// language of configuration errors).
pub(crate) fn load_problem(e: &TlsError, t: &TlsSettings) -> Problem {
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

fn covered(info: &CertInfo) -> String {
    let mut all: Vec<String> = info.dns_names.clone();
    all.extend(info.ip_addrs.iter().map(|ip| ip.to_string()));
    if all.is_empty() {
        "no names".into()
    } else {
        all.join(", ")
    }
}

fn human_age(secs: i64, lang: Lang) -> String {
    let secs = secs.unsigned_abs();
    let (n, fr, en) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "jours", "days"),
        s if s >= 2 * 3600 => (s / 3600, "heures", "hours"),
        s if s >= 120 => (s / 60, "minutes", "minutes"),
        s => (s, "secondes", "seconds"),
    };
    format!("{n} {}", lang.pick_text(fr, en))
}

enum Trust {
    Public,
    SelfSigned,
    Unknown(String),
}

fn public_trust(chain: &[CertificateDer<'static>], info: &CertInfo, name: &str) -> Trust {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Trust::Unknown("empty chain".into());
    };
    if info.subject == info.issuer {
        return Trust::SelfSigned;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Trust::Unknown("no system authorities found (ca-certificates)".into());
    }
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        tls::provider(),
    )
    .build() else {
        return Trust::Unknown("no verifier".into());
    };
    let Ok(server_name) = ServerName::try_from(name.to_string()) else {
        return Trust::Unknown(format!("`{name}` is not a valid name"));
    };
    match verifier.verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now()) {
        Ok(_) => Trust::Public,
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            Trust::Unknown("unknown issuer".into())
        }
        Err(e) => Trust::Unknown(e.to_string()),
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_of_expiry_thresholds() {
        let day = 86_400;
        let now = 1_000 * day;
        let at = |left: i64| Expiry::of(now - 30 * day, now + left, now);
        assert_eq!(at(-1), Expiry::Expired);
        assert_eq!(at(0), Expiry::Expired);
        assert_eq!(at(6 * day), Expiry::Soon);
        assert_eq!(at(7 * day - 1), Expiry::Soon);
        assert_eq!(at(7 * day), Expiry::Near);
        assert_eq!(at(14 * day - 1), Expiry::Near);
        assert_eq!(at(14 * day), Expiry::Valid);
        assert_eq!(
            Expiry::of(now + 1, now + 90 * day, now),
            Expiry::NotYetValid
        );
    }

    #[test]
    fn ages_read_in_the_report_language() {
        assert_eq!(human_age(3 * 86_400, Lang::En), "3 days");
        assert_eq!(human_age(3 * 86_400, Lang::Fr), "3 jours");
        assert_eq!(human_age(-5 * 3600, Lang::En), "5 hours");
        assert_eq!(human_age(30, Lang::Fr), "30 secondes");
    }
}
