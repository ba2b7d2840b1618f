//! An OpenID sign-in driven the way a browser does it, without a browser: the gateway's
//! `/_vigie/oidc/{name}/start`, the provider's redirects followed by hand (with its cookies),
//! then the gateway's callback with the binding cookie. Every step is returned, so that a test
//! can change one (`state`, a replayed `code`, the `nonce` of the authorization URL...).
//! Sign-out the same way: the gateway's form, the provider's end-session page, the way back.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use url::Url;

use super::client::{client, hidden_field};
use super::fixtures::Certs;

/// The binding cookie of an OpenID sign-in in progress.
pub const BINDING_COOKIE: &str = "__Host-vigie-oidc";

/// One answer, kept whole (the body is read).
#[derive(Clone, Debug)]
pub struct Answer {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    async fn read(url: &str, res: reqwest::Response) -> Answer {
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let content_type = header("content-type").unwrap_or_default();
        let set_cookies = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let status = res.status().as_u16();
        Answer {
            url: url.to_owned(),
            status,
            location,
            set_cookies,
            content_type,
            body: res.text().await.unwrap_or_default(),
        }
    }

    /// The value this answer sets for cookie `name` (`Some("")` when it clears it).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie_line(name)
            .map(|l| l.split(';').next().unwrap_or("")[name.len() + 1..].to_owned())
    }

    /// The whole `Set-Cookie` line for `name`, attributes included.
    pub fn set_cookie_line(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .find(|l| l.split_once('=').is_some_and(|(k, _)| k == name))
            .map(String::as_str)
    }

    /// The session's `Cookie` header value (`__Host-vigie=...`) when this answer opens one.
    pub fn session(&self) -> Option<String> {
        self.cookie("__Host-vigie")
            .filter(|v| !v.is_empty())
            .map(|v| format!("__Host-vigie={v}"))
    }

    /// Whether this answer clears cookie `name` (empty value or an expiry in the past).
    pub fn clears(&self, name: &str) -> bool {
        self.set_cookie_line(name).is_some_and(|l| {
            let lower = l.to_ascii_lowercase();
            self.cookie(name).is_some_and(|v| v.is_empty())
                || lower.contains("max-age=0")
                || lower.contains("expires=thu, 01 jan 1970")
        })
    }
}

/// The gateway's answer to `/start`: the authorization URL and the binding cookie.
#[derive(Clone, Debug)]
pub struct Started {
    pub answer: Answer,
    pub authorize: Url,
    pub binding: String,
}

/// A whole sign-in: start, the provider's hops, the callback URL, the gateway's last answer.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub started: Started,
    pub hops: Vec<Answer>,
    pub callback: Url,
    pub done: Answer,
}

impl SignIn {
    /// The session cookie; panics with the gateway's answer when the sign-in failed.
    pub fn session(&self) -> String {
        self.done.session().unwrap_or_else(|| {
            panic!(
                "sign-in failed: {} {:?}\n{}",
                self.done.status, self.done.location, self.done.body
            )
        })
    }
}

/// The way out: the gateway's answer to the sign-out form, the provider's pages, the way back.
#[derive(Clone, Debug)]
pub struct SignOut {
    pub answer: Answer,
    pub end_session: Url,
    pub hops: Vec<Answer>,
    pub back: Url,
    pub done: Answer,
}

/// A browser's view of one gateway and the providers: a client that reaches `viewer.test` and
/// loopback providers, never follows redirects by itself, and keeps the providers' cookies.
pub struct OidcBrowser {
    http: reqwest::Client,
    /// `https://viewer.test:PORT`
    pub origin: String,
    /// The providers' cookies, by name (one provider per test origin; paths ignored).
    idp_cookies: BTreeMap<String, String>,
    /// `Accept-Language` sent to the gateway, as a browser sends it with every request.
    accept_language: Option<String>,
}

impl OidcBrowser {
    pub fn new(certs: &Certs, gw: SocketAddr) -> OidcBrowser {
        OidcBrowser {
            http: client(certs, gw, false),
            origin: format!("https://viewer.test:{}", gw.port()),
            idp_cookies: BTreeMap::new(),
            accept_language: None,
        }
    }

    /// Sends this `Accept-Language` to the gateway from now on.
    pub fn accept_language(&mut self, value: &str) {
        self.accept_language = Some(value.to_owned());
    }

    /// Forgets the providers' cookies (a fresh browser profile).
    pub fn forget_provider_sessions(&mut self) {
        self.idp_cookies.clear();
    }

    /// GET on the gateway (`path` or a full URL) with an optional `Cookie` header.
    pub async fn gw_get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let url = if path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.origin)
        };
        let mut req = self.http.get(&url);
        if let Some(l) = &self.accept_language {
            req = req.header("accept-language", l);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        Answer::read(&url, req.send().await.unwrap()).await
    }

    /// `GET /_vigie/oidc/{name}/start?next=...`; panics unless it is a 303 with the binding
    /// cookie.
    pub async fn start(&self, name: &str, next: &str) -> Started {
        self.start_with(name, &[("next", next)]).await
    }

    /// `GET /_vigie/oidc/{name}/start` with these query parameters (`next`, `lang`), not
    /// checked: the answer as it came.
    pub async fn start_answer(&self, name: &str, query: &[(&str, &str)]) -> Answer {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        self.gw_get(&format!("/_vigie/oidc/{name}/start?{query}"), None)
            .await
    }

    /// Like [`OidcBrowser::start`], with these query parameters.
    pub async fn start_with(&self, name: &str, query: &[(&str, &str)]) -> Started {
        let answer = self.start_answer(name, query).await;
        assert_eq!(answer.status, 303, "start: {answer:?}");
        let binding = answer
            .cookie(BINDING_COOKIE)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("start sets no {BINDING_COOKIE}: {answer:?}"));
        let authorize = Url::parse(answer.location.as_deref().unwrap()).unwrap();
        Started {
            answer,
            authorize,
            binding,
        }
    }

    /// Follows the provider's redirects from `url` until one leads back to the gateway; returns
    /// the hops and that URL, or the hops up to the provider's last (non-redirect) answer.
    pub async fn authorize(&mut self, url: &Url) -> Result<(Vec<Answer>, Url), Vec<Answer>> {
        let mut hops = Vec::new();
        let mut at = url.clone();
        for _ in 0..10 {
            let answer = self.idp_request(reqwest::Method::GET, &at, None).await;
            let next = answer
                .location
                .as_deref()
                .filter(|_| (300..400).contains(&answer.status))
                .map(|l| at.join(l).unwrap());
            hops.push(answer);
            match next {
                Some(n) if n.as_str().starts_with(&self.origin) => return Ok((hops, n)),
                Some(n) => at = n,
                None => return Err(hops),
            }
        }
        panic!("more than 10 redirects at the provider: {hops:?}");
    }

    /// GET the gateway's callback URL with the binding cookie (when given).
    pub async fn callback(&self, url: &Url, binding: Option<&str>) -> Answer {
        let cookie = binding.map(|b| format!("{BINDING_COOKIE}={b}"));
        self.gw_get(url.as_str(), cookie.as_deref()).await
    }

    /// A whole sign-in through provider `name`, landing on `/`.
    pub async fn sign_in(&mut self, name: &str) -> SignIn {
        self.sign_in_to(name, "/").await
    }

    pub async fn sign_in_to(&mut self, name: &str, next: &str) -> SignIn {
        let started = self.start(name, next).await;
        let (hops, callback) = self
            .authorize(&started.authorize)
            .await
            .unwrap_or_else(|hops| panic!("the provider did not send us back: {hops:#?}"));
        let done = self.callback(&callback, Some(&started.binding)).await;
        SignIn {
            started,
            hops,
            callback,
            done,
        }
    }

    /// Signs out through the gateway's form and follows the provider's end-session page back
    /// to the gateway.
    pub async fn sign_out(&mut self, session: &str) -> SignOut {
        let page = self.gw_get("/_vigie/logout", Some(session)).await;
        assert_eq!(page.status, 200, "sign-out page: {page:?}");
        let csrf = hidden_field(&page.body, "csrf").expect("no csrf field");
        let url = format!("{}/_vigie/logout", self.origin);
        let res = self
            .http
            .post(&url)
            .header("cookie", session)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        let answer = Answer::read(&url, res).await;
        assert_eq!(answer.status, 303, "sign-out: {answer:?}");
        let end_session = Url::parse(answer.location.as_deref().unwrap())
            .unwrap_or_else(|_| panic!("sign-out does not lead to the provider: {answer:?}"));
        let (hops, back) = self.end_session(&end_session).await;
        let done = self.gw_get(back.as_str(), None).await;
        SignOut {
            answer,
            end_session,
            hops,
            back,
            done,
        }
    }

    /// Follows the provider's end-session endpoint (submitting its confirmation form as its
    /// script would) until it sends the browser back to the gateway; returns the hops and
    /// that URL.
    pub async fn end_session(&mut self, url: &Url) -> (Vec<Answer>, Url) {
        let mut hops = Vec::new();
        let mut at = url.clone();
        let mut method = reqwest::Method::GET;
        let mut form: Option<Vec<(String, String)>> = None;
        let back = loop {
            assert!(hops.len() < 10, "the provider's logout loops: {hops:#?}");
            let a = self.idp_request(method.clone(), &at, form.take()).await;
            if let Some(l) = a
                .location
                .clone()
                .filter(|_| (300..400).contains(&a.status))
            {
                let next = at.join(&l).unwrap();
                hops.push(a);
                if next.as_str().starts_with(&self.origin) {
                    break next;
                }
                (at, method) = (next, reqwest::Method::GET);
                continue;
            }
            // The confirmation page submits itself by script: submit it as the script would.
            let (action, fields) = logout_form(&a.body)
                .unwrap_or_else(|| panic!("no logout form at the provider: {a:?}"));
            hops.push(a);
            (at, method, form) = (
                at.join(&action).unwrap(),
                reqwest::Method::POST,
                Some(fields),
            );
        };
        (hops, back)
    }

    async fn idp_request(
        &mut self,
        method: reqwest::Method,
        url: &Url,
        form: Option<Vec<(String, String)>>,
    ) -> Answer {
        let mut req = self.http.request(method, url.as_str());
        if !self.idp_cookies.is_empty() {
            let jar: Vec<String> = self
                .idp_cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        if let Some(f) = form {
            req = req.form(&f);
        }
        let answer = Answer::read(url.as_str(), req.send().await.unwrap()).await;
        for line in &answer.set_cookies {
            let Some((name, _)) = line.split_once('=') else {
                continue;
            };
            match answer.cookie(name) {
                Some(v) if !v.is_empty() && !answer.clears(name) => {
                    self.idp_cookies.insert(name.to_owned(), v);
                }
                _ => {
                    self.idp_cookies.remove(name);
                }
            }
        }
        answer
    }
}

/// The action and fields of the provider's logout confirmation form.
fn logout_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let at = html.find("<form")?;
    let form = &html[at..at + html[at..].find("</form>")?];
    let action = form.split("action=\"").nth(1)?.split('"').next()?;
    let mut fields = Vec::new();
    for input in form.split("<input").skip(1) {
        let attr = |a: &str| {
            input
                .split(&format!("{a}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
        };
        if let (Some(name), Some(value)) = (attr("name"), attr("value")) {
            fields.push((name.to_owned(), value.replace("&amp;", "&")));
        }
    }
    Some((action.replace("&amp;", "&"), fields))
}

/// The value of query parameter `name`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with query parameter `name` set to `value` (added when absent).
pub fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.push((name.to_owned(), value.to_owned()));
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

/// The claims of a JWT (not verified: for assertions on what a provider issued).
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
