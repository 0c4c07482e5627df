//! The read-only web console at `/console/` (docs/design.md §17): sign-in by one-time link, a signed session
//! cookie, and server-rendered pages under a strict Content-Security-Policy (no script at all).

mod html;
mod pages;
pub mod session;
pub mod timeline;

#[cfg(test)]
mod tests;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use runtrust_attestation::DenialCode;
use serde::Deserialize;

use self::html::{esc, page};
use self::session::{SessionError, LINK_TTL_SECS, ROLES};
use super::auth::Caller;
use super::{blocking, AppState, Denial, Fault};
use crate::api::{routes as r, ConsoleLinkView};
use crate::audit::AuditEntry;
use crate::model::ConsoleLink;

/// The stylesheet, compiled in (no build step, nothing fetched).
const CSS: &str = include_str!("console.css");

/// docs/design.md §17: nothing but our own stylesheet loads; no script, frame, plugin or foreign form target.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (the link route, `POST /v1/console/links`, is in the API's audited set).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(r::CONSOLE_ROOT, get(|| async { Redirect::to(r::CONSOLE) }))
        .route(r::CONSOLE, get(pages::overview))
        .route(r::CONSOLE_SIGNIN, get(signin_page).post(signin))
        .route(r::CONSOLE_SIGNOUT, post(signout))
        .route(r::CONSOLE_HOST, get(pages::host))
        .route(r::CONSOLE_TOKEN, get(pages::token))
        .route(r::CONSOLE_AUDIT, get(pages::audit))
        .route(r::CONSOLE_CSS, get(css))
        .route("/console/{*rest}", get(|| async { ConsoleError::not_found("no such console page") }))
        .layer(from_fn(headers))
}

/// Security headers on every console answer; no answer is cached (RFC 9111 §5.2.2.5) or names its referrer
/// (the sign-in page's address carries its code).
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

/// A console refusal, as an HTML page with its status and code. Without a session a page redirects to the
/// sign-in page instead.
#[derive(Debug)]
pub enum ConsoleError {
    NotSignedIn(SessionError),
    Refused { status: StatusCode, code: String, detail: String },
}

impl ConsoleError {
    fn bad_request(detail: impl Into<String>) -> Self {
        ConsoleError::Refused { status: StatusCode::BAD_REQUEST, code: "bad_request".into(), detail: detail.into() }
    }

    fn not_found(detail: impl Into<String>) -> Self {
        ConsoleError::Refused { status: StatusCode::NOT_FOUND, code: "not_found".into(), detail: detail.into() }
    }

    fn link_refused(detail: impl Into<String>) -> Self {
        ConsoleError::Refused {
            status: StatusCode::UNAUTHORIZED,
            code: DenialCode::AuthorizationMissing.as_str().into(),
            detail: detail.into(),
        }
    }
}

impl From<Denial> for ConsoleError {
    fn from(d: Denial) -> Self {
        ConsoleError::Refused { status: d.status, code: d.code, detail: d.detail }
    }
}

impl From<Fault> for ConsoleError {
    fn from(f: Fault) -> Self {
        Denial::from(f).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::NotSignedIn(why) => {
                tracing::debug!(target: "runtrust::console", "not signed in: {why}");
                Redirect::to(r::CONSOLE_SIGNIN).into_response()
            }
            ConsoleError::Refused { status, code, detail } => {
                let body = format!(
                    "<p class=\"refusal\"><span class=\"code\">{}</span> {}</p><p><a href=\"/console/\">Overview</a></p>",
                    esc(&code),
                    esc(&detail)
                );
                (status, Html(page(status.canonical_reason().unwrap_or("Refused"), None, &body))).into_response()
            }
        }
    }
}

/// A signed-in console user: a valid session whose principal still holds an admin or auditor credential.
#[derive(Clone, Debug)]
pub struct Session {
    pub principal_id: String,
    pub name: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(session::from_cookie_header)
            .ok_or(ConsoleError::NotSignedIn(SessionError::Missing))?;
        let claims = session::verify(state, value, state.clock.now_unix()).map_err(ConsoleError::NotSignedIn)?;
        let id = claims.sub.clone();
        let p = blocking(state, move |s| s.principal(&id)).await?;
        session::principal_still_holds(&claims, p.as_ref()).map_err(ConsoleError::NotSignedIn)?;
        Ok(Session { principal_id: claims.sub, name: claims.name })
    }
}

/// `POST /v1/console/links` (admin, auditor): a one-time sign-in link for the caller, valid
/// [`LINK_TTL_SECS`]. Stored (its code's SHA-256) with an audit entry before the answer leaves.
pub async fn create_link(State(state): State<AppState>, caller: Caller) -> Result<Json<ConsoleLinkView>, Denial> {
    caller.require(ROLES)?;
    let now = state.clock.now_unix();
    let code = session::new_code(&state)?;
    let link = ConsoleLink {
        id: session::link_id(&code),
        principal_id: caller.0.id.clone(),
        cred: session::credential_binding(&caller.0),
        created_at: now,
        expires_at: now + LINK_TTL_SECS,
    };
    let entry = AuditEntry::new(now, "console.link", format!("a console sign-in link, valid {LINK_TTL_SECS} s"))
        .by(caller.name());
    let stored = link.clone();
    blocking(&state, move |s| s.put_console_link(&stored, &entry)).await?;
    Ok(Json(ConsoleLinkView {
        path: format!("{}?code={code}", r::CONSOLE_SIGNIN),
        principal: caller.name().to_owned(),
        expires_at: link.expires_at,
    }))
}

#[derive(Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

/// `GET /console/signin[?code=…]`: with a code, a button that exchanges it (a GET never spends a link, so a
/// link preview cannot); without, how to get a link.
async fn signin_page(super::Query(q): super::Query<CodeQuery>) -> Html<String> {
    let body = match q.code.as_deref().filter(|c| !c.is_empty() && c.len() <= 128) {
        Some(code) => format!(
            "<form class=\"signin\" method=\"post\" action=\"/console/signin\">\
             <input type=\"hidden\" name=\"code\" value=\"{}\">\
             <p>This link signs you in once, for {} minutes.</p><button type=\"submit\" id=\"signin\">Sign in</button></form>",
            esc(code),
            session::SESSION_TTL_SECS / 60
        ),
        None => "<p>Sign in with a one-time link: run <code>runtrust console</code> with an admin or auditor \
                 credential and open the link it prints.</p>"
            .to_owned(),
    };
    Html(page("Sign in", None, &body))
}

#[derive(Deserialize)]
pub struct SigninForm {
    code: String,
}

/// `POST /console/signin`: spends the link (whatever happens next, it is gone) and, when it was fresh and its
/// principal still holds a console role, sets the session cookie.
async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Result<Response, ConsoleError> {
    same_origin(&headers)?;
    let now = state.clock.now_unix();
    if form.code.is_empty() || form.code.len() > 128 {
        return Err(ConsoleError::link_refused("this sign-in link is malformed"));
    }
    let id = session::link_id(&form.code);
    let taken = blocking(&state, move |s| s.take_console_link(&id)).await?;
    // Unknown and used links answer alike, and a stranger's guess writes nothing (docs/design.md §16).
    let link = taken.ok_or_else(|| {
        ConsoleError::link_refused(
            "this sign-in link is unknown or was used already: run `runtrust console` for a new one",
        )
    })?;
    let pid = link.principal_id.clone();
    let principal = blocking(&state, move |s| s.principal(&pid)).await?;
    let refusal = if now > link.expires_at {
        Some("this sign-in link expired: run `runtrust console` for a new one")
    } else if !principal.as_ref().is_some_and(|p| ROLES.contains(&p.role)) {
        Some("the principal this link was made for no longer holds an admin or auditor credential")
    } else if !principal
        .as_ref()
        .is_some_and(|p| runtrust_attestation::ct_eq(session::credential_binding(p).as_bytes(), link.cred.as_bytes()))
    {
        Some("the credential this link was made with was rotated since: run `runtrust console` again")
    } else {
        None
    };
    let by = principal.as_ref().map_or(link.principal_id.as_str(), |p| p.name.as_str()).to_owned();
    if let Some(why) = refusal {
        let entry = AuditEntry::new(now, "console.deny", why).by(&by).code(DenialCode::AuthorizationMissing.as_str());
        blocking(&state, move |s| s.append_audit(&entry)).await?;
        return Err(ConsoleError::link_refused(why));
    }
    let Some(p) = principal else { return Err(ConsoleError::link_refused("no principal")) };
    let cookie = session::issue(&state, &p, now)?;
    let entry = AuditEntry::new(now, "console.signin", "signed in to the console with a one-time link").by(&by);
    blocking(&state, move |s| s.append_audit(&entry)).await?;
    let mut res = Redirect::to(r::CONSOLE).into_response();
    let value = HeaderValue::from_str(&session::set_cookie(&cookie))
        .map_err(|_| Fault::Signing("console session: not a header value".into()))?;
    res.headers_mut().insert(header::SET_COOKIE, value);
    Ok(res)
}

/// The console's forms are posted only from its own pages (login and logout CSRF): a browser's Fetch Metadata
/// (`Sec-Fetch-Site`) must say same-origin (or none: typed in); without it, an `Origin` must name this host.
fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ok = match (text("sec-fetch-site"), text("origin")) {
        (Some(site), _) => matches!(site, "same-origin" | "none"),
        (None, Some(origin)) => {
            let host = text("host").unwrap_or("");
            origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) == Some(host)
        }
        (None, None) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ConsoleError::Refused {
            status: StatusCode::FORBIDDEN,
            code: DenialCode::AuthorizationMissing.as_str().into(),
            detail: "the console's forms are accepted only from its own pages".into(),
        })
    }
}

/// `POST /console/signout`: clears the cookie (the session itself lapses at its expiry).
async fn signout(headers: HeaderMap) -> Response {
    if let Err(refused) = same_origin(&headers) {
        return refused.into_response();
    }
    let mut res = Redirect::to(r::CONSOLE_SIGNIN).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}
