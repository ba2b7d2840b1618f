//! The audit trail: intact, recording accesses to patient data, and apart from the state.

use super::{Level, Report, say};
use crate::audit::{AuditPaths, verify};
use crate::config::Config;

pub(super) fn trail(config: &Config, r: &mut Report) {
    let paths = AuditPaths::of(config);
    let dir = paths.dir.display();
    match verify(&paths) {
        Ok(v) => {
            let (records, files, seals) = (v.records, v.files, v.seals);
            r.add_at(
                Level::Ok,
                "audit",
                Some("audit.dir".into()),
                say!(
                    "Le journal d'audit ({dir}) est intact : {records} enregistrement(s) dans {files} fichier(s), {seals} scellement(s).",
                    "The audit trail ({dir}) is intact: {records} record(s) in {files} file(s), {seals} seal(s).",
                ),
                ("", ""),
            );
        }
        Err(broken) => {
            let what = broken.to_string();
            r.add_at(
                Level::Critical,
                "audit",
                Some("audit.dir".into()),
                say!(
                    "Le journal d'audit est altéré : {what}.",
                    "The audit trail is broken: {what}.",
                ),
                (
                    "Le journal est une preuve : copiez le dossier tel quel ailleurs, cherchez qui pouvait y écrire, puis déplacez-le (un nouveau journal commence). `vigie audit verify` nomme l'enregistrement.",
                    "The trail is evidence: copy the directory aside as it is, find out who could write there, then move it away (a new trail starts). `vigie audit verify` names the record.",
                ),
            );
        }
    }
    if !config.audit.record_access {
        r.add_at(
            Level::High,
            "audit",
            Some("audit.record_access".into()),
            say!(
                "Les accès aux données des patients ne sont pas enregistrés (audit.record_access: false) : rien ne dira qui a vu quel patient, ni ce qu'une fuite a exposé (RGPD art. 32 et 33).",
                "Accesses to patient data are not recorded (audit.record_access: false): nothing will say who saw which patient, nor what a breach exposed (GDPR art. 32 and 33).",
            ),
            (
                "Retirez `record_access: false` de la section audit.",
                "Remove `record_access: false` from the audit section.",
            ),
        );
    }
    if same_volume(&paths.dir, &config.state_dir) {
        r.add_at(
            Level::Info,
            "audit",
            Some("audit.dir".into()),
            say!(
                "Le journal d'audit ({dir}) est sur le même volume que l'état de la passerelle : un disque plein ou perdu emporte les deux.",
                "The audit trail ({dir}) is on the same volume as the gateway's state: a full or lost disk takes both.",
            ),
            (
                "Placez audit.dir sur un autre volume (docker/compose.yaml : le volume vigie-audit) et sauvegardez les deux.",
                "Put audit.dir on another volume (docker/compose.yaml: the vigie-audit volume) and back both up.",
            ),
        );
    }
}

/// Whether two existing directories are on one file system.
fn same_volume(a: &std::path::Path, b: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}
