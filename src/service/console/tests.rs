//! The console's sign-in and session rules in-process (docs/design.md §17): every page without a session
//! redirects to the sign-in page, a link works once and only before it expires, the cookie carries its three
//! flags, a session ends with its principal's credential, and every answer has the strict CSP. A real sled
//! store, the injected clock and the real router; the pages' looks are the browser tests' (swtpm-tests).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use tower_service::Service as _;

use super::session::{LINK_TTL_SECS, SESSION_TTL_SECS};
use crate::model::{ManualClock, Role};
use crate::service::router;
use crate::service::test_support::{self, principal};
use crate::store::{SledStore, Store};

const T0: u64 = 1_800_000_000;

struct App {
    router: Router,
    store: Arc<SledStore>,
    clock: Arc<ManualClock>,
    admin: String,
    auditor: String,
    attester: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The session cookie's value from Set-Cookie.
    fn session(&self) -> String {
        let c = self.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        c.split(';').next().unwrap().to_owned()
    }
}

impl App {
    fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
        let admin = principal(store.as_ref(), "admin", Role::Admin, T0);
        let auditor = principal(store.as_ref(), "auditor", Role::Auditor, T0);
        let attester = principal(store.as_ref(), "web-01", Role::Attester, T0);
        let clock = Arc::new(ManualClock::at(T0));
        let state = test_support::state(dir.path(), store.clone(), clock.clone(), "");
        App { router: router(state), store, clock, admin, auditor, attester, _dir: dir }
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self.router.clone().call(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Answer { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// `runtrust console` as `credential`: the link's code.
    async fn link(&self, credential: &str) -> Answer {
        let bearer = format!("Bearer {credential}");
        self.send(
            "POST",
            "/v1/console/links",
            &[("authorization", &bearer), ("content-type", "application/json")],
            "{}",
        )
        .await
    }

    async fn code(&self, credential: &str) -> String {
        let a = self.link(credential).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        v["path"].as_str().unwrap().split_once("code=").unwrap().1.to_owned()
    }

    async fn sign_in(&self, code: &str) -> Answer {
        self.send(
            "POST",
            "/console/signin",
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("code={code}"),
        )
        .await
    }

    async fn page(&self, path: &str, cookie: &str) -> Answer {
        self.send("GET", path, &[("cookie", cookie)], "").await
    }
}

const PAGES: &[&str] = &[
    "/console/",
    "/console/audit",
    "/console/audit?code=pcr_mismatch",
    "/console/hosts/sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
    "/console/tokens/00112233445566778899aabbccddeeff",
];

#[tokio::test]
async fn without_a_session_every_page_redirects_to_the_sign_in_page() {
    let app = App::new();
    for page in PAGES {
        for cookie in ["", "runtrust_console=", "runtrust_console=e30.AAAA", "other=1; runtrust_console=x.y"] {
            let a = app.page(page, cookie).await;
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{page} with {cookie:?}: {}", a.body);
            assert_eq!(a.location(), "/console/signin");
            assert!(!a.body.contains("Overview"), "no page content leaks");
        }
    }
    let a = app.send("GET", "/console/signin", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("runtrust console"), "says how to get a link: {}", a.body);
    // Only admins and auditors get links; strangers get 401.
    assert_eq!(app.link(&app.attester).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.send("POST", "/v1/console/links", &[], "{}").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_link_signs_in_once_with_a_strict_cookie() {
    let app = App::new();
    let code = app.code(&app.admin).await;
    // Opening the link only shows a button: a GET (a link preview) spends nothing.
    let a = app.send("GET", &format!("/console/signin?code={code}"), &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains(&code) && a.body.contains("method=\"post\""), "{}", a.body);
    let before = app.store.audit_len().unwrap();
    let a = app.sign_in(&code).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/console/");
    let set = a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console", &format!("Max-Age={SESSION_TTL_SECS}")] {
        assert!(set.split("; ").any(|f| f == flag), "{flag} missing in {set}");
    }
    assert_eq!(app.store.audit_len().unwrap(), before + 1, "the sign-in is audited");
    let last = app.store.audit(before, 1).unwrap().remove(0).1;
    assert_eq!((last.event.as_str(), last.principal.as_deref()), ("console.signin", Some("admin")));
    let cookie = a.session();
    for page in &PAGES[..3] {
        let p = app.page(page, &cookie).await;
        assert_eq!(p.status, StatusCode::OK, "{page}: {}", p.body);
        assert!(p.body.contains("signed in as admin"), "{page}");
    }
    // Unknown host and token pages are 404 pages, not redirects.
    assert_eq!(app.page(PAGES[3], &cookie).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.page(PAGES[4], &cookie).await.status, StatusCode::NOT_FOUND);
    // The link is spent: a second use is refused, and writes nothing.
    let after = app.store.audit_len().unwrap();
    let again = app.sign_in(&code).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.body.contains("used already") && again.headers.get(header::SET_COOKIE).is_none(), "{}", again.body);
    assert_eq!(app.store.audit_len().unwrap(), after, "a stranger's guess or a reuse costs no durable write");
    // The session lapses.
    app.clock.advance(SESSION_TTL_SECS);
    assert_eq!(app.page("/console/", &cookie).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_expired_link_is_refused_and_audited() {
    let app = App::new();
    let code = app.code(&app.auditor).await;
    app.clock.advance(LINK_TTL_SECS + 1);
    let before = app.store.audit_len().unwrap();
    let a = app.sign_in(&code).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("expired") && a.headers.get(header::SET_COOKIE).is_none(), "{}", a.body);
    let e = app.store.audit(before, 1).unwrap().remove(0).1;
    assert_eq!((e.event.as_str(), e.code.as_deref()), ("console.deny", Some("authorization_missing")));
    assert_eq!(app.sign_in(&code).await.status, StatusCode::UNAUTHORIZED, "and spent");
}

#[tokio::test]
async fn a_session_ends_with_its_principals_credential_and_cannot_be_forged() {
    let app = App::new();
    let code = app.code(&app.auditor).await;
    let cookie = app.sign_in(&code).await.session();
    assert_eq!(app.page("/console/", &cookie).await.status, StatusCode::OK);
    // A changed claim breaks the signature.
    let value = cookie.strip_prefix("runtrust_console=").unwrap();
    let (payload, sig) = value.split_once('.').unwrap();
    let claims = String::from_utf8(crate::model::b64::decode(payload).unwrap()).unwrap();
    let forged = crate::model::b64::encode(claims.replace("\"name\":\"auditor\"", "\"name\":\"admin\"").as_bytes());
    let a = app.page("/console/", &format!("runtrust_console={forged}.{sig}")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    // Rotating the principal's credential ends its sessions.
    let admin = format!("Bearer {}", app.admin);
    let r = app.send("POST", "/v1/principals/auditor/rotate", &[("authorization", &admin)], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.page("/console/", &cookie).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_console_answer_has_the_strict_csp_and_no_script() {
    let app = App::new();
    let cookie = app.sign_in(&app.code(&app.admin).await).await.session();
    for (path, cookie) in [("/console/signin", ""), ("/console/", cookie.as_str()), ("/console/audit", cookie.as_str())]
    {
        let a = app.page(path, cookie).await;
        let csp = a.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe"), "{csp}");
        assert_eq!(a.headers.get(header::REFERRER_POLICY).unwrap(), "no-referrer");
        assert!(!a.body.contains("<script") && !a.body.contains(" style="), "{path}");
    }
    let css = app.send("GET", "/console/console.css", &[], "").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers.get(header::CONTENT_TYPE).unwrap().to_str().unwrap().starts_with("text/css"));
}

#[tokio::test]
async fn a_link_made_before_a_rotation_is_refused() {
    let app = App::new();
    let code = app.code(&app.auditor).await;
    let admin = format!("Bearer {}", app.admin);
    let r = app.send("POST", "/v1/principals/auditor/rotate", &[("authorization", &admin)], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = app.store.audit_len().unwrap();
    let a = app.sign_in(&code).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("rotated") && a.headers.get(header::SET_COOKIE).is_none(), "{}", a.body);
    let e = app.store.audit(before, 1).unwrap().remove(0).1;
    assert_eq!((e.event.as_str(), e.code.as_deref()), ("console.deny", Some("authorization_missing")));
}

#[tokio::test]
async fn forms_posted_from_another_site_are_refused_and_spend_nothing() {
    let app = App::new();
    let code = app.code(&app.admin).await;
    let form = ("content-type", "application/x-www-form-urlencoded");
    let body = format!("code={code}");
    for cross in [
        vec![form, ("sec-fetch-site", "cross-site")],
        vec![form, ("sec-fetch-site", "same-site")],
        vec![form, ("origin", "https://evil.example"), ("host", "runtrust.example:8443")],
    ] {
        let a = app.send("POST", "/console/signin", &cross, &body).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{cross:?}: {}", a.body);
        assert!(a.headers.get(header::SET_COOKIE).is_none());
        let out = app.send("POST", "/console/signout", &cross, "").await;
        assert_eq!(out.status, StatusCode::FORBIDDEN, "{cross:?}");
    }
    // The link was not spent: from the console's own page it still signs in.
    let same = [form, ("sec-fetch-site", "same-origin"), ("origin", "https://runtrust.example:8443")];
    let a = app.send("POST", "/console/signin", &same, &body).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let a = app.send("POST", "/console/signout", &same, "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert!(a.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn an_unknown_console_page_is_a_404_with_the_console_headers() {
    let app = App::new();
    let a = app.send("GET", "/console/nope/../etc", &[], "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    assert_eq!(a.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
}
