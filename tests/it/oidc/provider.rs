//! The test provider's own premises, checked without the gateway (the harness plays the
//! client): both profiles issue what the other tests rely on, and a tamper changes exactly what
//! it is told, under a signature that verifies against the published JWKS (or, for
//! `key: foreign`, does not). Without this, a refusal elsewhere could have the wrong cause.

use serde_json::json;
use url::Url;

use super::*;

/// A client of the test provider standing in for the gateway: the authorization request with
/// PKCE, the code exchange, userinfo.
struct Client<'a> {
    idp: &'a Idp,
    discovery: Value,
    http: reqwest::Client,
    /// The browser, keeping the provider's session between flows.
    b: OidcBrowser,
    _certs: Certs,
}

struct Tokens {
    id_token: String,
    access_token: String,
    nonce: String,
}

impl<'a> Client<'a> {
    async fn new(idp: &'a Idp) -> Client<'a> {
        let http = reqwest::Client::new();
        let discovery = http
            .get(&idp.discovery_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The browser helper stops at the redirect URI's origin (viewer.test:PORT).
        let port = Url::parse(&idp.opts.redirect_uris[0])
            .unwrap()
            .port()
            .unwrap();
        let certs = Certs::new();
        Client {
            idp,
            discovery,
            http,
            b: OidcBrowser::new(&certs, addr(port)),
            _certs: certs,
        }
    }

    fn endpoint(&self, name: &str) -> String {
        self.discovery[name].as_str().unwrap().to_owned()
    }

    /// One sign-in with `scope` (and `acr_values=eidas1` for PSC), up to the tokens.
    async fn tokens(&mut self, scope: &str) -> Tokens {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(rand_bytes());
        let challenge = b64.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        let nonce = b64.encode(rand_bytes());
        let redirect = &self.idp.opts.redirect_uris[0];
        let mut url = Url::parse(&self.endpoint("authorization_endpoint")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.idp.opts.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", scope)
            .append_pair("state", "premises")
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if self.idp.opts.profile == Profile::Psc {
            url.query_pairs_mut().append_pair("acr_values", "eidas1");
        }
        let (_, callback) = self.b.authorize(&url).await.unwrap();
        assert_eq!(query_param(&callback, "state").unwrap(), "premises");
        assert_eq!(query_param(&callback, "iss").unwrap(), self.idp.issuer);
        let code = query_param(&callback, "code").unwrap();
        let res = self
            .http
            .post(self.endpoint("token_endpoint"))
            .basic_auth(&self.idp.opts.client_id, Some(&self.idp.opts.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        Tokens {
            id_token: body["id_token"].as_str().unwrap().to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            nonce,
        }
    }

    /// The userinfo answer: its content type and body.
    async fn userinfo(&self, access_token: &str) -> (String, String) {
        let res = self
            .http
            .get(self.endpoint("userinfo_endpoint"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        (ct, res.text().await.unwrap())
    }

    /// The JWT's claims if its signature verifies against the published JWKS, else the error.
    async fn verify(&self, jwt: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let jwks: jsonwebtoken::jwk::JwkSet = self
            .http
            .get(self.endpoint("jwks_uri"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        let jwk = jwks
            .find(header.kid.as_deref().unwrap())
            .expect("kid not published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(jwt, &key, &v).map(|t| t.claims)
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

#[tokio::test]
async fn the_psc_profile_issues_what_the_tests_rely_on() {
    let idp = Idp::start(IdpOptions::psc(free_port(), "psc")).await;
    let mut c = Client::new(&idp).await;
    assert_eq!(c.discovery["issuer"], idp.issuer.as_str());
    // Only the wallet document advertises PSC's separate authorization URL.
    assert_eq!(c.endpoint("authorization_endpoint"), idp.url("/auth"));
    let t = c.tokens("openid scope_all").await;
    let id = c.verify(&t.id_token).await.unwrap();
    assert_eq!(id["iss"], idp.issuer.as_str());
    assert_eq!(id["aud"], idp.opts.client_id.as_str());
    assert_eq!(id["nonce"], t.nonce.as_str());
    assert_eq!(id["acr"], "eidas1");
    let (ct, body) = c.userinfo(&t.access_token).await;
    assert!(ct.starts_with("application/jwt"), "{ct}");
    let info = c.verify(&body).await.unwrap();
    assert_eq!(info["sub"], id["sub"]);
    assert_eq!(info["SubjectNameID"], "810000000001");
    assert_eq!(
        info["SubjectRefPro"]["exercices"][0]["codeProfession"],
        "10"
    );
}

#[tokio::test]
async fn the_generic_profile_issues_groups_and_no_acr() {
    let idp = Idp::start(IdpOptions::generic(free_port(), "clinic")).await;
    let wallet = reqwest::get(format!(
        "{}/.well-known/wallet-openid-configuration",
        idp.issuer
    ))
    .await
    .unwrap();
    assert_eq!(wallet.status(), 404);
    let mut c = Client::new(&idp).await;
    let t = c.tokens("openid profile email").await;
    let id = c.verify(&t.id_token).await.unwrap();
    assert_eq!(id["preferred_username"], "dr.house");
    assert_eq!(id["groups"], json!(["radiology"]));
    assert_eq!(id["email"], "dr.house@clinic.test");
    assert!(id.get("acr").is_none(), "{id}");
    let (ct, body) = c.userinfo(&t.access_token).await;
    assert!(ct.starts_with("application/json"), "{ct}");
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["sub"], id["sub"]);
}

#[tokio::test]
async fn a_tamper_changes_one_token_exactly_as_told() {
    let idp = Idp::start(IdpOptions::psc(free_port(), "psc")).await;
    let mut c = Client::new(&idp).await;
    let plain = c.tokens("openid scope_all").await;
    let plain = c.verify(&plain.id_token).await.unwrap();

    // One claim set, one removed, one shifted: re-signed with the current, published key.
    idp.tamper(json!({
        "iss": "http://127.0.0.1:1/other",
        "remove": ["acr"],
        "shift": { "exp": -600 },
    }))
    .await;
    let t = c.tokens("openid scope_all").await;
    let claims = c.verify(&t.id_token).await.unwrap();
    assert_eq!(claims["iss"], "http://127.0.0.1:1/other");
    assert!(claims.get("acr").is_none());
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    let plain_lifetime = plain["exp"].as_i64().unwrap() - plain["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, plain_lifetime - 600);
    assert_eq!(claims["nonce"], t.nonce.as_str());
    assert_eq!(claims["aud"], idp.opts.client_id.as_str());

    // Used once: the next token is untouched.
    let t = c.tokens("openid scope_all").await;
    assert_eq!(
        c.verify(&t.id_token).await.unwrap()["iss"],
        idp.issuer.as_str()
    );

    // A foreign key under the published kid: the signature alone is wrong.
    idp.tamper(json!({ "key": "foreign" })).await;
    let t = c.tokens("openid scope_all").await;
    let err = c.verify(&t.id_token).await.unwrap_err();
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
    assert_eq!(jwt_claims(&t.id_token)["iss"], idp.issuer.as_str());

    // Userinfo too, and a bad request is refused without queueing anything.
    idp.tamper(json!({ "target": "userinfo", "SubjectNameID": "810000000003" }))
        .await;
    let t = c.tokens("openid scope_all").await;
    let (_, body) = c.userinfo(&t.access_token).await;
    assert_eq!(
        c.verify(&body).await.unwrap()["SubjectNameID"],
        "810000000003"
    );
    let res = reqwest::Client::new()
        .post(idp.url("/admin/tamper"))
        .json(&json!({ "target": "access_token", "iss": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(idp.status().await["pending_tampers"], json!([]));

    // Rotation: the new kid signs, and both kids are published until retired.
    let old = jsonwebtoken::decode_header(&t.id_token)
        .unwrap()
        .kid
        .unwrap();
    let new = idp.rotate_keys().await;
    let t = c.tokens("openid scope_all").await;
    assert_eq!(
        jsonwebtoken::decode_header(&t.id_token)
            .unwrap()
            .kid
            .unwrap(),
        new
    );
    assert_eq!(idp.published_kids().await, [new.clone(), old]);
    idp.retire_keys().await;
    assert_eq!(idp.published_kids().await, [new]);
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_provider_session() {
    let idp = Idp::start(IdpOptions::psc(free_port(), "psc")).await;
    let mut c = Client::new(&idp).await;
    let t = c.tokens("openid scope_all").await;
    let back_to = &idp.opts.post_logout_redirect_uris[0];
    let mut url = Url::parse(&c.endpoint("end_session_endpoint")).unwrap();
    url.query_pairs_mut()
        .append_pair("id_token_hint", &t.id_token)
        .append_pair("post_logout_redirect_uri", back_to)
        .append_pair("client_id", &idp.opts.client_id)
        .append_pair("state", "bye");
    let (hops, back) = c.b.end_session(&url).await;
    assert!(back.as_str().starts_with(back_to.as_str()), "{back}");
    assert_eq!(query_param(&back, "state").unwrap(), "bye");
    assert!(hops.iter().any(|h| h.status == 200), "{hops:#?}");
    assert!(idp.log().contains("end_session.success"), "{}", idp.log());
    // The provider's session is gone: a silent authorization now needs a login.
    let mut silent = Url::parse(&c.endpoint("authorization_endpoint")).unwrap();
    silent
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &idp.opts.client_id)
        .append_pair("redirect_uri", &idp.opts.redirect_uris[0])
        .append_pair("scope", "openid")
        .append_pair("prompt", "none")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256");
    let (_, callback) = c.b.authorize(&silent).await.unwrap();
    assert_eq!(query_param(&callback, "error").unwrap(), "login_required");
}
