//! From a provider's verified claims to a Vigie identity: the user name, the allow-list, the
//! roles, and the assurance level (`acr`). Pure functions over the claims as JSON (the ID token's
//! and the userinfo answer's, merged), so each rule is tested on its own.

use serde_json::Value;

use crate::config::OidcProvider;

/// Who the claims say the user is, for Vigie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub(crate) username: String,
    pub(crate) roles: Vec<String>,
}

/// Why claims do not make a Vigie user (the log's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unmapped {
    /// No usable user name (missing, not a string, or characters a user name cannot hold).
    UsernameMissing,
    /// Not in the provider's allow-list.
    NotAllowed,
    /// No role rule matched.
    NoRole,
    /// Listed in `disabled_users`.
    Disabled,
}

impl Unmapped {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Unmapped::UsernameMissing => "username_missing",
            Unmapped::NotAllowed => "not_allowed",
            Unmapped::NoRole => "no_role",
            Unmapped::Disabled => "disabled",
        }
    }
}

/// The user name the claims give, if any (to name the account in a refusal's record).
pub(crate) fn map_username(p: &OidcProvider, claims: &Value) -> Option<String> {
    p.username_claims
        .iter()
        .find_map(|c| match values_at(claims, c).as_slice() {
            [one] if crate::config::valid_username(one) => Some(one.clone()),
            _ => None,
        })
}

/// Applies the provider's rules to `claims`.
pub(crate) fn map(p: &OidcProvider, claims: &Value) -> Result<Mapped, Unmapped> {
    let username = map_username(p, claims).ok_or(Unmapped::UsernameMissing)?;
    if p.disabled_users.contains(&username) {
        return Err(Unmapped::Disabled);
    }
    let holds = |claim: &str, wanted: &[String]| {
        values_at(claims, claim)
            .iter()
            .any(|v| wanted.iter().any(|w| w == v))
    };
    if !p.allow.is_empty() && !p.allow.iter().any(|r| holds(&r.claim, &r.values)) {
        return Err(Unmapped::NotAllowed);
    }
    let mut roles: Vec<String> = p
        .roles
        .iter()
        .filter(|r| holds(&r.claim, &r.values))
        .flat_map(|r| r.roles.iter().cloned())
        .collect();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return Err(Unmapped::NoRole);
    }
    Ok(Mapped { username, roles })
}

/// The scalar values at a dotted `path` (`SubjectRefPro.exercices[].codeProfession`): `[]`
/// after a segment, or an array at the end, stands for each of its elements. Strings as they
/// are, numbers and booleans as their JSON text.
pub(crate) fn values_at(claims: &Value, path: &str) -> Vec<String> {
    let mut current = vec![claims];
    for segment in path.split('.') {
        let (key, each) = match segment.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (segment, false),
        };
        let mut next = Vec::new();
        for v in current {
            match v.get(key) {
                Some(Value::Array(items)) if each => next.extend(items.iter()),
                Some(found) if !each => next.push(found),
                _ => {}
            }
        }
        current = next;
    }
    let mut out = Vec::new();
    for v in current {
        match v {
            Value::Array(items) => out.extend(items.iter().filter_map(scalar)),
            other => out.extend(scalar(other)),
        }
    }
    out
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether the `acr` a provider returned satisfies `required` (empty: no requirement). An
/// exact match does; so does a higher eIDAS level than the lowest one required (`eidas2` or
/// `eidas3` when `eidas1` is asked for). A missing `acr` never does.
pub(crate) fn acr_satisfies(returned: Option<&str>, required: &[String]) -> bool {
    if required.is_empty() {
        return true;
    }
    let Some(acr) = returned else { return false };
    if required.iter().any(|r| r == acr) {
        return true;
    }
    let level = |s: &str| s.strip_prefix("eidas").and_then(|n| n.parse::<u8>().ok());
    match (level(acr), required.iter().filter_map(|r| level(r)).min()) {
        (Some(got), Some(min)) => got >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClaimRule, ClientAuth, OidcPreset, RoleRule};
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    fn psc() -> OidcProvider {
        OidcProvider {
            name: "psc".into(),
            preset: OidcPreset::ProSanteConnect,
            label: "Pro Santé Connect".into(),
            issuer: "https://idp.test".into(),
            discovery_url: "https://idp.test/.well-known/wallet-openid-configuration".into(),
            client_id: "c".into(),
            client_secret: Some(Arc::new("s".into())),
            client_auth: ClientAuth::Basic,
            client_key: None,
            scopes: vec!["openid".into(), "scope_all".into()],
            acr_values: vec!["eidas1".into()],
            userinfo: true,
            username_claims: vec!["SubjectNameID".into(), "preferred_username".into()],
            roles: vec![RoleRule {
                claim: "SubjectRefPro.exercices[].codeProfession".into(),
                values: vec!["10".into()],
                roles: vec!["doctor".into()],
            }],
            allow: vec![],
            disabled_users: vec![],
            clock_skew: Duration::from_secs(5),
            redirect_uri: String::new(),
            post_logout_uri: String::new(),
            ca_file: None,
        }
    }

    fn doctor() -> Value {
        json!({
            "sub": "f:abc:810000000001",
            "SubjectNameID": "810000000001",
            "preferred_username": "810000000001",
            "SubjectRefPro": {"exercices": [
                {"codeProfession": "21"},
                {"codeProfession": "10", "activities": [{"numeroFinessSite": "990000019"}]}
            ]},
            "groups": ["radiology", "staff"],
            "level": 3,
        })
    }

    #[test]
    fn paths_reach_into_arrays() {
        let c = doctor();
        assert_eq!(
            values_at(&c, "SubjectRefPro.exercices[].codeProfession"),
            ["21", "10"]
        );
        assert_eq!(
            values_at(
                &c,
                "SubjectRefPro.exercices[].activities[].numeroFinessSite"
            ),
            ["990000019"]
        );
        assert_eq!(values_at(&c, "groups"), ["radiology", "staff"]);
        assert_eq!(values_at(&c, "level"), ["3"]);
        assert!(values_at(&c, "SubjectRefPro.exercices.codeProfession").is_empty());
        assert!(values_at(&c, "missing.deeper[]").is_empty());
        assert!(values_at(&json!("text"), "a").is_empty());
    }

    #[test]
    fn profession_codes_give_roles() {
        let m = map(&psc(), &doctor()).unwrap();
        assert_eq!(m.username, "810000000001");
        assert_eq!(m.roles, ["doctor"]);
        let mut nurse = doctor();
        nurse["SubjectRefPro"]["exercices"] = json!([{"codeProfession": "60"}]);
        assert_eq!(map(&psc(), &nurse), Err(Unmapped::NoRole));
    }

    #[test]
    fn allow_list_and_disabled_users() {
        let mut p = psc();
        p.allow = vec![ClaimRule {
            claim: "SubjectNameID".into(),
            values: vec!["810000000002".into()],
        }];
        assert_eq!(map(&p, &doctor()), Err(Unmapped::NotAllowed));
        p.allow[0].values.push("810000000001".into());
        assert!(map(&p, &doctor()).is_ok());
        p.disabled_users = vec!["810000000001".into()];
        assert_eq!(map(&p, &doctor()), Err(Unmapped::Disabled));
    }

    #[test]
    fn user_name_must_be_one_valid_string() {
        let p = psc();
        let mut c = doctor();
        c["SubjectNameID"] = json!("8 1000");
        c["preferred_username"] = json!(["a", "b"]);
        assert_eq!(map(&p, &c), Err(Unmapped::UsernameMissing));
        // The next claim in the list is used when the first is absent.
        let mut c = doctor();
        c.as_object_mut().unwrap().remove("SubjectNameID");
        assert_eq!(map(&p, &c).unwrap().username, "810000000001");
    }

    #[test]
    fn assurance_levels() {
        let eidas1 = ["eidas1".to_string()];
        assert!(acr_satisfies(Some("eidas1"), &eidas1));
        assert!(acr_satisfies(Some("eidas3"), &eidas1));
        assert!(!acr_satisfies(Some("eidas0"), &eidas1));
        assert!(!acr_satisfies(None, &eidas1));
        assert!(!acr_satisfies(Some("urn:other"), &eidas1));
        assert!(!acr_satisfies(Some("eidas1x"), &eidas1));
        assert!(acr_satisfies(None, &[]));
        let custom = ["urn:mfa".to_string()];
        assert!(acr_satisfies(Some("urn:mfa"), &custom));
        assert!(!acr_satisfies(Some("eidas3"), &custom));
    }
}
