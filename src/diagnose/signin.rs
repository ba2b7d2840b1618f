//! Sign-in: a second factor required, and accounts that would sign in with a password alone.

use super::{Level, Report, say};
use crate::config::Config;

pub(super) fn second_factor(config: &Config, r: &mut Report) {
    let a = &config.auth;
    if !a.second_factor {
        r.add(
            Level::High,
            "second_factor",
            say!(
                "Le second facteur est désactivé (auth.second_factor: off) : un mot de passe seul ouvre l'accès aux images, ce que l'ANS n'accepte plus pour l'accès à distance aux données de santé depuis le 1er janvier 2026.",
                "The second factor is off (auth.second_factor: off): a password alone opens the images, which the ANS no longer accepts for remote access to health data since 1 January 2026.",
            ),
            (
                "Retirez auth.second_factor (ou mettez totp) et enregistrez un code TOTP pour chaque compte (vigie user add).",
                "Remove auth.second_factor (or set it to totp) and enrol a TOTP code for each account (vigie user add).",
            ),
        );
    } else {
        r.add(
            Level::Ok,
            "second_factor",
            say!(
                "Le second facteur (code TOTP) est exigé à chaque connexion.",
                "The second factor (TOTP code) is required at every sign-in.",
            ),
            ("", ""),
        );
    }
    let active = a.users.iter().filter(|u| !u.disabled).count();
    if active == 0 && a.oidc.is_empty() {
        r.add(
            Level::Warning,
            "accounts",
            say!(
                "Aucun compte actif : personne ne peut se connecter.",
                "No active account: nobody can sign in.",
            ),
            (
                "Ajoutez un compte avec `vigie user add NOM --roles doctor --config …`.",
                "Add an account with `vigie user add NAME --roles doctor --config …`.",
            ),
        );
    }
}
