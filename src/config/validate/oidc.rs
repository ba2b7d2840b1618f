//! `auth.oidc`: the OpenID Connect providers, with the Pro Santé Connect preset's defaults, the
//! claim rules, and the gateway's own URLs the provider must know (derived from `server_name`).

use std::sync::Arc;
use std::time::Duration;

use super::Validator;
use crate::config::file::{FileClaimRule, FileOidc, FileRoleRule};
use secrecy::ExposeSecret;

use crate::config::{ClaimRule, ClientAuth, ClientKey, OidcPreset, OidcProvider, RoleRule};

/// Pro Santé Connect's issuers (ANS), by environment.
pub(crate) const PSC_PRODUCTION: &str = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet";
pub(crate) const PSC_SANDBOX: &str =
    "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet";
/// PSC publishes its discovery document here; the standard path names another authorization
/// endpoint.
const PSC_DISCOVERY: &str = "/.well-known/wallet-openid-configuration";
const STANDARD_DISCOVERY: &str = "/.well-known/openid-configuration";
/// The most clock difference an administrator may allow on tokens' times.
const MAX_SKEW: Duration = Duration::from_secs(60);

/// Whether `url` may be used to reach a provider: `https://`, or `http://` to this machine.
pub(crate) fn acceptable_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if super::alerts::loopback(host) => Ok(()),
        Some("http") => Err(format!(
            "`{url}` is plain HTTP: tokens and secrets would cross the network in clear"
        )),
        _ => Err(format!("`{url}` is not an https:// URL")),
    }
}

/// The certificates of a PEM file of authorities (`ca_file`); an error names the file and what
/// is wrong with it.
pub(crate) fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The signing algorithm a PEM private key is for, when it signs: ES256 for an EC P-256 key
/// in PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes), RS256 for an RSA key in
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub(crate) fn client_key_algorithm(pem: &str) -> Option<jsonwebtoken::Algorithm> {
    let (alg, key) = client_key(pem)?;
    let probe = jsonwebtoken::Header::new(alg);
    jsonwebtoken::encode(&probe, &serde_json::json!({"probe": 1}), &key)
        .ok()
        .map(|_| alg)
}

/// The key of [`client_key_algorithm`], ready to sign (not tried: the configuration was).
pub(crate) fn client_key(
    pem: &str,
) -> Option<(jsonwebtoken::Algorithm, jsonwebtoken::EncodingKey)> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject;
    match PrivateKeyDer::from_pem_slice(pem.as_bytes()).ok()? {
        PrivateKeyDer::Pkcs8(der) => Some((
            Algorithm::ES256,
            EncodingKey::from_ec_der(der.secret_pkcs8_der()),
        )),
        PrivateKeyDer::Pkcs1(der) => Some((
            Algorithm::RS256,
            EncodingKey::from_rsa_der(der.secret_pkcs1_der()),
        )),
        _ => None,
    }
}

impl Validator {
    /// The providers. `origin` is `https://server_name[:port]`, when both are valid.
    pub(super) fn oidc(&mut self, list: Vec<FileOidc>, origin: Option<&str>) -> Vec<OidcProvider> {
        let mut out: Vec<OidcProvider> = Vec::new();
        for (i, p) in list.into_iter().enumerate() {
            let at = format!("auth.oidc[{i}]");
            if let Some(p) = self.provider(p, &at, origin) {
                if out.iter().any(|o| o.name == p.name) {
                    self.error(
                        &format!("{at}.name"),
                        format!("the provider name `{}` is used twice", p.name),
                        "give each provider its own name",
                    );
                    continue;
                }
                out.push(p);
            }
        }
        out
    }

    fn provider(&mut self, p: FileOidc, at: &str, origin: Option<&str>) -> Option<OidcProvider> {
        let name = self.required(p.name, &format!("{at}.name"), "e.g. psc or clinic")?;
        let at = format!("{at}({name})");
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.error(
                &format!("{at}.name"),
                format!("`{name}` cannot be a provider name"),
                "use 1 to 32 lower-case letters, digits and -: it appears in the URLs",
            );
        }
        let preset = match p.provider.as_deref() {
            None | Some("generic") => OidcPreset::Generic,
            Some("pro-sante-connect") => OidcPreset::ProSanteConnect,
            Some(other) => {
                self.error(
                    &format!("{at}.provider"),
                    format!("`{other}` is not a known provider"),
                    "use pro-sante-connect, or generic (the default) for any OpenID Connect provider",
                );
                OidcPreset::Generic
            }
        };
        let psc = preset == OidcPreset::ProSanteConnect;
        let default_issuer = match (psc, p.environment.as_deref()) {
            (false, None) => None,
            (false, Some(_)) => {
                self.error(
                    &format!("{at}.environment"),
                    "only the pro-sante-connect provider has environments",
                    "remove this line, or set provider: pro-sante-connect",
                );
                None
            }
            (true, None | Some("production")) => Some(PSC_PRODUCTION),
            (true, Some("sandbox")) => Some(PSC_SANDBOX),
            (true, Some(other)) => {
                self.error(
                    &format!("{at}.environment"),
                    format!("`{other}` is not a Pro Santé Connect environment"),
                    "use production (the default) or sandbox",
                );
                None
            }
        };
        let issuer = match p.issuer.or(default_issuer.map(str::to_owned)) {
            Some(i) => i.trim_end_matches('/').to_owned(),
            None if psc => return None,
            None => {
                self.required::<String>(
                    None,
                    &format!("{at}.issuer"),
                    "the provider's issuer URL, e.g. https://sso.example.org/realms/clinic",
                );
                return None;
            }
        };
        let discovery_url = p.discovery_url.unwrap_or_else(|| {
            format!(
                "{issuer}{}",
                if psc {
                    PSC_DISCOVERY
                } else {
                    STANDARD_DISCOVERY
                }
            )
        });
        for (key, url) in [("issuer", &issuer), ("discovery_url", &discovery_url)] {
            if let Err(why) = acceptable_url(url) {
                self.error(
                    &format!("{at}.{key}"),
                    why,
                    "providers are reached over https:// (http:// only on this machine, for tests)",
                );
            }
        }
        let client_id = self.required(
            p.client_id,
            &format!("{at}.client_id"),
            "the client id the provider gave when you registered this gateway",
        );
        let client_auth = match p.client_auth.as_deref() {
            None | Some("client_secret_basic") => ClientAuth::Basic,
            Some("client_secret_post") => ClientAuth::Post,
            Some("private_key_jwt") => ClientAuth::PrivateKeyJwt,
            Some(other) => {
                self.error(
                    &format!("{at}.client_auth"),
                    format!("`{other}` is not a supported client authentication"),
                    "use client_secret_basic (the default), client_secret_post or private_key_jwt",
                );
                ClientAuth::Basic
            }
        };
        let keys = (p.client_secret, p.client_secret_file, p.client_secret_env);
        let client_secret = match (self.secret(&at, "client_secret", keys), client_auth) {
            (Ok(Some(_)), ClientAuth::PrivateKeyJwt) => {
                self.error(
                    &format!("{at}.client_secret"),
                    "a client secret is set, but client_auth is private_key_jwt",
                    "remove the client secret: the private key replaces it",
                );
                None
            }
            (Ok(Some((s, _))), _) => Some(Arc::new(s)),
            (Ok(None), ClientAuth::PrivateKeyJwt) => None,
            (Ok(None), _) => {
                self.error(
                    &format!("{at}.client_secret"),
                    "the client secret is missing",
                    "set client_secret_file (e.g. a Docker secret), client_secret_env, or client_secret",
                );
                None
            }
            (Err(()), _) => None,
        };
        let keys = (p.private_key, p.private_key_file, p.private_key_env);
        let client_key = match (self.secret(&at, "private_key", keys), client_auth) {
            (Ok(Some((pem, key))), ClientAuth::PrivateKeyJwt) => {
                match client_key_algorithm(pem.expose_secret()) {
                    Some(algorithm) => Some(ClientKey {
                        pem: Arc::new(pem),
                        algorithm,
                        kid: p.private_key_id,
                    }),
                    None => {
                        self.error(
                            &key,
                            "this is not a PEM private key Vigie can sign with",
                            "an EC P-256 key in PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`) or an RSA key in PKCS#1 PEM (`openssl genrsa -traditional 3072`)",
                        );
                        None
                    }
                }
            }
            (Ok(None), ClientAuth::PrivateKeyJwt) => {
                self.error(
                    &format!("{at}.private_key"),
                    "client_auth is private_key_jwt, but there is no private key",
                    "set private_key_file (the PEM key whose public half the provider knows)",
                );
                None
            }
            (Ok(Some(_)), _) => {
                self.error(
                    &format!("{at}.private_key"),
                    "a private key is set, but client_auth is not private_key_jwt",
                    "set client_auth: private_key_jwt, or remove the key",
                );
                None
            }
            (Ok(None), _) | (Err(()), _) => None,
        };
        let credentials_ok = match client_auth {
            ClientAuth::PrivateKeyJwt => client_key.is_some(),
            _ => client_secret.is_some(),
        };
        let scopes = p.scopes.unwrap_or_else(|| {
            let s: &[&str] = if psc {
                &["openid", "scope_all"]
            } else {
                &["openid", "profile", "email"]
            };
            s.iter().map(|s| s.to_string()).collect()
        });
        if !scopes.iter().any(|s| s == "openid") {
            self.error(
                &format!("{at}.scopes"),
                "the scopes do not include openid",
                "add openid: without it the provider sends no ID token",
            );
        }
        let acr_values = p
            .acr_values
            .unwrap_or_else(|| if psc { vec!["eidas1".into()] } else { vec![] });
        if psc && acr_values.is_empty() {
            self.warning(
                &format!("{at}.acr_values"),
                "Pro Santé Connect's assurance level is not checked",
                "remove this line: the default, eidas1, refuses sign-ins below the required level",
            );
        }
        let username_claims = match p.username_claim {
            Some(c) => vec![c],
            None if psc => vec!["SubjectNameID".into(), "preferred_username".into()],
            None => vec!["preferred_username".into()],
        };
        let roles: Vec<RoleRule> = p
            .roles
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| self.role_rule(r, &format!("{at}.roles[{i}]")))
            .collect();
        if roles.is_empty() {
            self.error(
                &format!("{at}.roles"),
                "no rule gives a role: nobody could sign in through this provider",
                if psc {
                    "e.g. roles: [{claim: \"SubjectRefPro.exercices[].codeProfession\", values: [\"10\"], roles: [doctor]}]"
                } else {
                    "e.g. roles: [{claim: groups, values: [radiology], roles: [doctor]}]"
                },
            );
        }
        let allow = p
            .allow
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                self.claim_rule(r, &format!("{at}.allow[{i}]"), &username_claims[0])
            })
            .collect();
        let clock_skew = match p.clock_skew.as_deref() {
            Some("0s" | "0") => Duration::ZERO,
            other => self.duration(other, &format!("{at}.clock_skew"), Duration::from_secs(5)),
        };
        if clock_skew > MAX_SKEW {
            self.error(
                &format!("{at}.clock_skew"),
                "more than 60 s of tolerance lets old tokens in",
                "keep the gateway's clock synchronised (NTP) and use a few seconds",
            );
        }
        let callback = origin.map(|o| format!("{o}/_vigie/oidc/{name}/callback"));
        let redirect_uri = match (p.redirect_uri, &callback) {
            (Some(r), Some(c)) if &r != c => {
                self.error(
                    &format!("{at}.redirect_uri"),
                    format!("`{r}` is not where this gateway receives the provider's answer"),
                    format!("remove this line (the default is {c}), or change server_name"),
                );
                r
            }
            (Some(r), _) => r,
            (None, c) => c.clone().unwrap_or_default(),
        };
        let ca_file = p.ca_file.map(std::path::PathBuf::from);
        if let Some(path) = &ca_file
            && let Err(why) = read_ca_file(path)
        {
            self.error(
                &format!("{at}.ca_file"),
                why,
                "the PEM file of the authority that signed the provider's certificate",
            );
        }
        if !credentials_ok {
            return None;
        }
        Some(OidcProvider {
            post_logout_uri: origin
                .map(|o| format!("{o}/_vigie/oidc/{name}/signed-out"))
                .unwrap_or_default(),
            label: p.label.unwrap_or_else(|| {
                if psc {
                    "Pro Santé Connect".into()
                } else {
                    name.clone()
                }
            }),
            name,
            preset,
            issuer,
            discovery_url,
            client_id: client_id?,
            client_secret,
            client_auth,
            client_key,
            scopes,
            acr_values,
            userinfo: p.userinfo.unwrap_or(psc),
            username_claims,
            roles,
            allow,
            disabled_users: p.disabled_users.unwrap_or_default(),
            ca_file,
            clock_skew,
            redirect_uri,
        })
    }

    fn role_rule(&mut self, r: FileRoleRule, at: &str) -> Option<RoleRule> {
        let claim = self.required(r.claim, &format!("{at}.claim"), "e.g. groups")?;
        let values = self.required(r.values, &format!("{at}.values"), "e.g. [radiology]")?;
        let roles = self.required(r.roles, &format!("{at}.roles"), "e.g. [doctor]")?;
        if values.is_empty() || roles.is_empty() {
            self.error(
                at,
                "a rule needs values and roles",
                "e.g. {claim: groups, values: [radiology], roles: [doctor]}",
            );
        }
        for role in &roles {
            if !crate::config::valid_role(role) {
                self.error(
                    &format!("{at}.roles"),
                    format!("`{role}` is not a role name"),
                    "use letters, digits, _ and -, e.g. doctor, admin",
                );
            }
        }
        Some(RoleRule {
            claim,
            values,
            roles,
        })
    }

    fn claim_rule(&mut self, r: FileClaimRule, at: &str, default_claim: &str) -> Option<ClaimRule> {
        let values = self.required(r.values, &format!("{at}.values"), "e.g. [\"810000000001\"]")?;
        Some(ClaimRule {
            claim: r.claim.unwrap_or_else(|| default_claim.to_owned()),
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Severity};

    const BASE: &str = "server_name: viewer.example.org\nlisten:\n  https: \"0.0.0.0:8443\"\ntls:\n  cert_file: a.crt\n  key_file: a.key\nupstream:\n  url: \"http://127.0.0.1:8042\"\nstate_dir: /tmp/vigie-test\nauth:\n  oidc:\n";
    const PSC: &str = "    - name: psc\n      provider: pro-sante-connect\n      client_id: vigie\n      client_secret: s3cret\n      roles:\n        - claim: SubjectRefPro.exercices[].codeProfession\n          values: [\"10\"]\n          roles: [doctor]\n";

    fn load(providers: &str) -> Result<Config, Vec<String>> {
        match Config::from_yaml(&format!("{BASE}{providers}")) {
            Ok((c, _)) => Ok(c),
            Err(e) => Err(e
                .problems()
                .into_iter()
                .filter(|p| p.severity == Severity::Error)
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect()),
        }
    }

    #[test]
    fn the_psc_preset_fills_in_what_psc_needs() {
        let c = load(PSC).unwrap();
        let p = &c.auth.oidc[0];
        assert_eq!(p.preset, OidcPreset::ProSanteConnect);
        assert_eq!(p.issuer, PSC_PRODUCTION);
        assert_eq!(
            p.discovery_url,
            format!("{PSC_PRODUCTION}/.well-known/wallet-openid-configuration")
        );
        assert_eq!(p.scopes, ["openid", "scope_all"]);
        assert_eq!(p.acr_values, ["eidas1"]);
        assert!(p.userinfo);
        assert_eq!(p.username_claims, ["SubjectNameID", "preferred_username"]);
        assert_eq!(p.label, "Pro Santé Connect");
        assert_eq!(p.clock_skew, Duration::from_secs(5));
        assert_eq!(
            p.redirect_uri,
            "https://viewer.example.org:8443/_vigie/oidc/psc/callback"
        );
        assert_eq!(
            p.post_logout_uri,
            "https://viewer.example.org:8443/_vigie/oidc/psc/signed-out"
        );
        let sandbox = load(&PSC.replace(
            "provider: pro-sante-connect\n",
            "provider: pro-sante-connect\n      environment: sandbox\n",
        ))
        .unwrap();
        assert_eq!(sandbox.auth.oidc[0].issuer, PSC_SANDBOX);
    }

    #[test]
    fn a_generic_provider_needs_its_issuer() {
        let generic = "    - name: clinic\n      client_id: vigie\n      client_secret_env: PATH\n      roles: [{claim: groups, values: [radiology], roles: [doctor]}]\n";
        let e = load(generic).unwrap_err();
        assert!(e[0].starts_with("auth.oidc[0](clinic).issuer"), "{e:?}");
        let c = load(&format!(
            "{generic}      issuer: https://sso.example.org/realms/clinic/\n"
        ))
        .unwrap();
        let p = &c.auth.oidc[0];
        assert_eq!(p.issuer, "https://sso.example.org/realms/clinic");
        assert_eq!(
            p.discovery_url,
            "https://sso.example.org/realms/clinic/.well-known/openid-configuration"
        );
        assert!(p.acr_values.is_empty() && !p.userinfo);
        assert_eq!(p.username_claims, ["preferred_username"]);
    }

    #[test]
    fn mistakes_name_their_key() {
        for (edit, key) in [
            (("name: psc", "name: PSC!"), "auth.oidc[0](PSC!).name"),
            (
                ("      client_secret: s3cret\n", ""),
                "auth.oidc[0](psc).client_secret",
            ),
            (
                (
                    "client_secret: s3cret\n",
                    "client_secret: a\n      client_secret_env: B\n",
                ),
                "auth.oidc[0](psc).client_secret",
            ),
            (
                (
                    "provider: pro-sante-connect\n",
                    "provider: pro-sante-connect\n      environment: test\n",
                ),
                "auth.oidc[0](psc).environment",
            ),
            (
                (
                    "provider: pro-sante-connect\n",
                    "provider: pro-sante-connect\n      issuer: http://idp.example.org/realm\n",
                ),
                "auth.oidc[0](psc).issuer",
            ),
            (
                (
                    "provider: pro-sante-connect\n",
                    "provider: pro-sante-connect\n      redirect_uri: https://other.example.org/cb\n",
                ),
                "auth.oidc[0](psc).redirect_uri",
            ),
            (
                (
                    "provider: pro-sante-connect\n",
                    "provider: pro-sante-connect\n      clock_skew: 5m\n",
                ),
                "auth.oidc[0](psc).clock_skew",
            ),
            (
                (
                    "provider: pro-sante-connect\n",
                    "provider: pro-sante-connect\n      scopes: [scope_all]\n",
                ),
                "auth.oidc[0](psc).scopes",
            ),
            (
                ("roles: [doctor]", "roles: [\"doc tor\"]"),
                "auth.oidc[0](psc).roles[0].roles",
            ),
            (
                (
                    "      roles:\n        - claim: SubjectRefPro.exercices[].codeProfession\n          values: [\"10\"]\n          roles: [doctor]\n",
                    "",
                ),
                "auth.oidc[0](psc).roles",
            ),
        ] {
            let e = load(&PSC.replace(edit.0, edit.1)).unwrap_err();
            assert!(
                e.iter().any(|p| p.starts_with(&format!("{key}:"))),
                "{key}: {e:?}"
            );
            assert!(
                !e.iter().any(|p| p.contains("s3cret")),
                "secret echoed: {e:?}"
            );
        }
        let twice = load(&format!("{PSC}{PSC}")).unwrap_err();
        assert!(twice[0].contains("used twice"), "{twice:?}");
    }

    #[test]
    fn private_key_jwt_replaces_the_secret() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("client.key");
        std::fs::write(&file, key.serialize_pem()).unwrap();
        let with = |auth: &str| {
            PSC.replace(
                "      client_secret: s3cret\n",
                &format!("      client_auth: private_key_jwt\n{auth}"),
            )
        };
        let good = format!(
            "      private_key_file: {}\n      private_key_id: k1\n",
            file.display()
        );
        let c = load(&with(&good)).unwrap();
        let p = &c.auth.oidc[0];
        assert_eq!(p.client_auth, ClientAuth::PrivateKeyJwt);
        assert!(p.client_secret.is_none());
        let k = p.client_key.as_ref().unwrap();
        assert_eq!(
            (k.algorithm, k.kid.as_deref()),
            (jsonwebtoken::Algorithm::ES256, Some("k1"))
        );
        for (auth, key) in [
            ("", "auth.oidc[0](psc).private_key"),
            (
                "      private_key: not a key\n",
                "auth.oidc[0](psc).private_key",
            ),
            (
                &format!("{good}      client_secret: s3cret\n"),
                "auth.oidc[0](psc).client_secret",
            ),
        ] {
            let e = load(&with(auth)).unwrap_err();
            assert!(
                e.iter().any(|p| p.starts_with(&format!("{key}:"))),
                "{key}: {e:?}"
            );
        }
        let stray = PSC.replace(
            "      client_secret: s3cret\n",
            &format!("      client_secret: s3cret\n{good}"),
        );
        let e = load(&stray).unwrap_err();
        assert!(e[0].starts_with("auth.oidc[0](psc).private_key:"), "{e:?}");
    }

    #[test]
    fn providers_are_reached_over_tls_except_here() {
        assert!(
            acceptable_url("https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet").is_ok()
        );
        assert!(acceptable_url("http://127.0.0.1:9080/auth/realms/x").is_ok());
        assert!(acceptable_url("http://localhost:9080/").is_ok());
        assert!(acceptable_url("http://sso.example.org/").is_err());
        assert!(acceptable_url("ftp://sso.example.org/").is_err());
        assert!(acceptable_url("sso.example.org").is_err());
    }
}
