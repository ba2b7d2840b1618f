//! OpenID Connect providers: whether each answers with the configured issuer and usable keys,
//! and whether it checks the assurance level of the sign-ins it vouches for.

use super::{Level, Report, say};
use crate::auth::oidc::provider::Provider;
use crate::config::{Config, OidcPreset};

/// Reaches each provider's discovery document and keys, as the gateway would.
pub(super) async fn reachable(config: &Config, r: &mut Report) {
    let providers = &config.auth.oidc;
    if providers.is_empty() {
        return;
    }
    for (i, p) in providers.iter().enumerate() {
        let key = Some(format!("auth.oidc[{i}]({})", p.name));
        let name = &p.name;
        let issuer = &p.issuer;
        let probed = match Provider::new(p.clone()) {
            Ok(provider) => provider.probe().await,
            Err(e) => Err(e),
        };
        match probed {
            Ok(()) => r.add_at(
                Level::Ok,
                "oidc",
                key,
                say!(
                    "Le fournisseur {name} répond (émetteur {issuer}, clés de signature lues).",
                    "Provider {name} answers (issuer {issuer}, signing keys read).",
                ),
                ("", ""),
            ),
            Err(e) => r.add_at(
                Level::High,
                "oidc",
                key,
                say!(
                    "Le fournisseur {name} ne peut pas être utilisé : {e}. Ses utilisateurs ne peuvent pas se connecter.",
                    "Provider {name} cannot be used: {e}. Its users cannot sign in.",
                ),
                (
                    "Vérifiez issuer (ou discovery_url) et que cette machine atteint le fournisseur (DNS, pare-feu, proxy sortant).",
                    "Check issuer (or discovery_url) and that this machine reaches the provider (DNS, firewall, outbound proxy).",
                ),
            ),
        }
    }
}

/// A provider that does not check the assurance level (`acr`) lets in whatever sign-in it
/// accepts, a password alone included.
pub(super) fn assurance(config: &Config, r: &mut Report) {
    for (i, p) in config.auth.oidc.iter().enumerate() {
        let key = Some(format!("auth.oidc[{i}]({}).acr_values", p.name));
        let name = &p.name;
        if p.acr_values.is_empty() {
            let level = if p.preset == OidcPreset::ProSanteConnect {
                Level::High
            } else {
                Level::Warning
            };
            r.add_at(
                level,
                "oidc_assurance",
                key,
                say!(
                    "Le fournisseur {name} n'a pas de niveau de garantie exigé (acr_values) : Vigie accepte toute connexion qu'il accepte, y compris par mot de passe seul.",
                    "Provider {name} has no required assurance level (acr_values): Vigie accepts any sign-in it accepts, a password alone included.",
                ),
                (
                    "Indiquez dans acr_values le niveau que le fournisseur donne aux connexions à deux facteurs (Pro Santé Connect : eidas1), ou imposez deux facteurs chez le fournisseur.",
                    "List in acr_values the level the provider gives two-factor sign-ins (Pro Santé Connect: eidas1), or enforce two factors at the provider.",
                ),
            );
        } else {
            let acr = p.acr_values.join(", ");
            r.add_at(
                Level::Ok,
                "oidc_assurance",
                key,
                say!(
                    "Le fournisseur {name} doit attester le niveau {acr} ; Vigie le vérifie.",
                    "Provider {name} must assert level {acr}; Vigie verifies it.",
                ),
                ("", ""),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "server_name: viewer.example.org\nlisten:\n  https: \"0.0.0.0:8443\"\ntls:\n  cert_file: a.crt\n  key_file: a.key\nupstream:\n  url: \"http://127.0.0.1:8042\"\nstate_dir: /tmp/vigie-test\nauth:\n  oidc:\n{extra}"
        );
        match Config::from_yaml(&yaml) {
            Ok((c, _)) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_provider_without_assurance_level_is_reported() {
        let generic = "    - name: clinic\n      issuer: https://sso.example.org/realms/clinic\n      client_id: vigie\n      client_secret: s\n      roles: [{claim: groups, values: [radiology], roles: [doctor]}]\n";
        let psc = "    - name: psc\n      provider: pro-sante-connect\n      client_id: vigie\n      client_secret: s\n      roles:\n        - claim: SubjectRefPro.exercices[].codeProfession\n          values: [\"10\"]\n          roles: [doctor]\n";
        let levels = |yaml: &str| {
            let mut r = Report::new(Lang::En);
            assurance(&config(yaml), &mut r);
            r.findings
                .iter()
                .map(|f| (f.level, f.key.clone().unwrap_or_default()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            levels(generic),
            [(
                Level::Warning,
                "auth.oidc[0](clinic).acr_values".to_string()
            )]
        );
        assert_eq!(levels(psc)[0].0, Level::Ok);
        let weakened = psc.replace("client_id", "acr_values: []\n      client_id");
        assert_eq!(levels(&weakened)[0].0, Level::High);
        assert_eq!(
            levels(&format!("{generic}      acr_values: [urn:mfa]\n"))[0].0,
            Level::Ok
        );
    }
}
