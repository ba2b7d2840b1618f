//! The access policy: which of the viewer's dangerous routes (running code, deleting or sending
//! images, controlling the server) a role other than admin may reach.

use std::collections::BTreeSet;

use http::Method;

use super::{Lang, Level, Report, say};
use crate::config::Config;

/// Orthanc's routes that run code, write outside the database, send or fetch images across the
/// network, rewrite or delete images, or control the server: `(method, route, French, English)`.
/// `{id}` stands for one path segment.
const DANGEROUS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/tools/execute-script",
        "exécuter du code Lua sur le serveur",
        "run Lua code on the server",
    ),
    (
        "POST",
        "/instances/{id}/export",
        "écrire le fichier DICOM n'importe où sur le serveur d'Orthanc (CVE-2023-33466)",
        "write the DICOM file anywhere on the Orthanc host (CVE-2023-33466)",
    ),
    (
        "POST",
        "/tools/reset",
        "redémarrer Orthanc",
        "restart Orthanc",
    ),
    (
        "POST",
        "/tools/shutdown",
        "arrêter Orthanc",
        "shut Orthanc down",
    ),
    (
        "POST",
        "/modalities/{id}/store",
        "envoyer des images vers un appareil DICOM",
        "send images to a DICOM device",
    ),
    (
        "POST",
        "/modalities/{id}/move",
        "faire envoyer des images par un appareil DICOM (C-MOVE)",
        "have a DICOM device send images (C-MOVE)",
    ),
    (
        "PUT",
        "/modalities/{id}",
        "déclarer un appareil DICOM",
        "declare a DICOM device",
    ),
    (
        "POST",
        "/peers/{id}/store",
        "envoyer des images vers un autre serveur Orthanc",
        "send images to another Orthanc server",
    ),
    (
        "PUT",
        "/peers/{id}",
        "déclarer un autre serveur Orthanc",
        "declare another Orthanc server",
    ),
    (
        "POST",
        "/dicom-web/servers/{id}/stow",
        "envoyer des images vers un autre serveur DICOMweb",
        "send images to another DICOMweb server",
    ),
    (
        "POST",
        "/dicom-web/servers/{id}/retrieve",
        "rapatrier des images d'un autre serveur DICOMweb",
        "fetch images from another DICOMweb server",
    ),
    (
        "PUT",
        "/dicom-web/servers/{id}",
        "déclarer un serveur DICOMweb",
        "declare a DICOMweb server",
    ),
    (
        "POST",
        "/queries/{id}/retrieve",
        "rapatrier le résultat d'une requête DICOM (C-MOVE)",
        "retrieve the answers of a DICOM query (C-MOVE)",
    ),
    (
        "POST",
        "/studies/{id}/modify",
        "modifier des examens (peut supprimer les originaux)",
        "modify studies (can delete the originals)",
    ),
    (
        "POST",
        "/studies/{id}/anonymize",
        "anonymiser des examens",
        "anonymize studies",
    ),
    (
        "POST",
        "/tools/bulk-delete",
        "supprimer en masse",
        "delete in bulk",
    ),
    (
        "DELETE",
        "/studies/{id}",
        "supprimer des examens",
        "delete studies",
    ),
    (
        "DELETE",
        "/patients/{id}",
        "supprimer des patients",
        "delete patients",
    ),
    ("GET", "/jobs", "voir les tâches", "see the jobs"),
    (
        "POST",
        "/jobs/{id}/resubmit",
        "relancer des tâches",
        "resubmit jobs",
    ),
];

pub(super) fn check(config: &Config, r: &mut Report) {
    let access = config.access.as_deref();
    if access.is_none() {
        r.add(
            Level::High,
            "policy",
            say!(
                "Aucune règle d'accès (section access absente) : tout utilisateur connecté peut administrer Orthanc (supprimer, exécuter des scripts, envoyer des images ailleurs).",
                "No access rules (no access: section): every signed-in user can administer Orthanc (delete, run scripts, send images elsewhere).",
            ),
            (
                "Copiez la section access de config/orthanc.example.yaml dans votre configuration.",
                "Copy the access: section of config/orthanc.example.yaml into your configuration.",
            ),
        );
        return;
    }
    let mut roles: BTreeSet<String> = config
        .auth
        .users
        .iter()
        .flat_map(|u| u.roles.iter().cloned())
        .collect();
    roles.insert("doctor".into());
    let others: Vec<String> = roles.into_iter().filter(|r| r != "admin").collect();
    let mut open_to_all = Vec::new();
    let mut open = Vec::new();
    for (method, path, fr, en) in DANGEROUS {
        let Ok(m) = method.parse::<Method>() else {
            continue;
        };
        let probe = path.replace("{id}", "x");
        let who: Vec<&String> = others
            .iter()
            .filter(|role| crate::policy::allows(access, &m, &probe, std::slice::from_ref(*role)))
            .collect();
        let label = |lang: Lang| {
            let what = if lang == Lang::Fr { fr } else { en };
            format!("{method} {path} ({what})")
        };
        if *path == "/tools/execute-script"
            && crate::policy::allows(access, &m, path, &["admin".to_string()])
        {
            open_to_all.push((label(Lang::Fr), label(Lang::En)));
        } else if !who.is_empty() {
            let who = who
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            open.push((
                format!("{} — {who}", label(Lang::Fr)),
                format!("{} — {who}", label(Lang::En)),
            ));
        }
    }
    for (fr, en) in open_to_all {
        r.add(
            Level::Critical,
            "policy",
            (
                format!("La politique d'accès laisse ouverte une route qui exécute du code sur le serveur : {fr}."),
                format!("The access policy leaves open a route that runs code on the server: {en}."),
            ),
            (
                "Ajoutez en tête de access la règle « - path: /tools/execute-script, roles: [] » (refusée à tous), et mettez \"ExecuteLuaEnabled\": false dans Orthanc.",
                "Add at the top of access the rule `- path: /tools/execute-script, roles: []` (refused to all), and set \"ExecuteLuaEnabled\": false in Orthanc.",
            ),
        );
    }
    if !open.is_empty() {
        let fr = open
            .iter()
            .map(|o| o.0.as_str())
            .collect::<Vec<_>>()
            .join(" ; ");
        let en = open
            .iter()
            .map(|o| o.1.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        r.add(
            Level::High,
            "policy",
            (
                format!("Des routes d'administration d'Orthanc sont ouvertes à des rôles non-admin : {fr}."),
                format!("Orthanc administration routes are open to non-admin roles: {en}."),
            ),
            (
                "Partez de la liste blanche de config/orthanc.example.yaml : les médecins n'y ont que la lecture, et la dernière règle (« - path: /, roles: [admin] ») réserve toute autre route aux administrateurs.",
                "Start from the allow-list of config/orthanc.example.yaml: doctors get reading only, and its last rule (`- path: /, roles: [admin]`) keeps every other route for admins.",
            ),
        );
    } else if r.findings.iter().all(|f| f.check != "policy") {
        r.add(
            Level::Ok,
            "policy",
            say!(
                "Les routes d'administration d'Orthanc (scripts, export de fichiers, suppression, modification, envoi et rapatriement d'images, tâches) sont réservées aux administrateurs.",
                "Orthanc's administration routes (scripts, file export, deletion, modification, sending and fetching images, jobs) are limited to administrators.",
            ),
            ("", ""),
        );
    }
}
