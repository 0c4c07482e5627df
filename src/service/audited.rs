//! "Record the denial, then answer", once for every audited route (docs/design.md §2 stage 8, §11): a route
//! layer that appends an audit entry for each denial its handler answers with, before the answer leaves.
//! A denial that cannot be audited becomes `internal_error`: nothing is answered unrecorded.
//!
//! What strangers and floods cost is bounded (docs/design.md §16): a refusal before authentication is counted
//! in /metrics, not written (unless a route sets `strangers`); an authenticated principal's denials are
//! limited per minute ([`super::throttle`]). Every answer is counted by route, outcome and code.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{quick, AppState, Denial};
use crate::audit::AuditEntry;

/// Who the request turned out to be from; the [`super::auth::Caller`] extractor fills it in.
#[derive(Clone, Debug, Default)]
pub struct AuditContext(Arc<Mutex<Seen>>);

#[derive(Clone, Debug, Default)]
struct Seen {
    principal: Option<String>,
    /// Refused unevaluated: the principal is over its denial rate.
    throttled: bool,
}

impl AuditContext {
    pub fn set_principal(&self, name: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.principal = Some(name.to_owned());
        }
    }

    pub fn set_throttled(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.throttled = true;
        }
    }

    fn seen(&self) -> Seen {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The audit event of a route's denials, and whether denials before authentication are recorded too.
#[derive(Clone)]
pub struct Audited {
    pub state: AppState,
    /// e.g. `token.deny`.
    pub event: &'static str,
    /// Record denials of requests that never authenticated (a missing or wrong credential). Off on every
    /// route: an unauthenticated request must cost no durable write (it is counted in /metrics instead).
    pub strangers: bool,
}

/// The route layer (`axum::middleware::from_fn_with_state`).
pub async fn layer(State(a): State<Audited>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let ctx = AuditContext::default();
    req.extensions_mut().insert(ctx.clone());
    let mut response = next.run(req).await;
    let metrics = &a.state.metrics;
    let Some(denial) = response.extensions_mut().remove::<Denial>() else {
        let outcome = if response.status().is_success() { "allow" } else { "other" };
        metrics.decision(&route, outcome, "");
        return response;
    };
    let seen = ctx.seen();
    if seen.throttled {
        metrics.throttled(&route);
        return response;
    }
    metrics.decision(&route, "deny", &denial.code);
    let Some(principal) = seen.principal else {
        metrics.unauthenticated(&route);
        if !a.strangers {
            return response;
        }
        return match record(&a.state, a.event, None, &denial).await {
            Ok(()) => response,
            Err(unrecorded) => unrecorded.into_response(),
        };
    };
    let limit_reached = a.state.throttle.denied(&principal, a.state.clock.now_unix());
    if let Err(unrecorded) = record(&a.state, a.event, Some(&principal), &denial).await {
        return unrecorded.into_response();
    }
    if limit_reached {
        throttling_starts(&a.state, &principal).await;
    }
    response
}

/// One entry marks the start of a principal's throttled episode (its refusals are then counted, not recorded).
async fn throttling_starts(state: &AppState, principal: &str) {
    let detail = format!(
        "{} denials within a minute (limits.audited_denials_per_minute): further requests to audited routes are \
         refused unevaluated (429) and counted in /metrics, not recorded, until the rate falls",
        state.throttle.per_minute()
    );
    tracing::warn!(principal, "throttled: {detail}");
    let mut entry = AuditEntry::new(state.clock.now_unix(), "principal.throttled", detail);
    entry.principal = Some(principal.to_owned());
    if let Err(e) = quick(state, move |s| s.append_audit(&entry)).await {
        tracing::error!("could not audit the start of throttling for {principal}: {e}");
    }
}

/// The same for in-process callers (tests, benchmarks): `result`, with its denial recorded under `event`.
pub async fn audited<T>(
    state: &AppState,
    event: &str,
    principal: Option<&str>,
    result: Result<T, Denial>,
) -> Result<T, Denial> {
    match result {
        Ok(v) => Ok(v),
        Err(denial) => match record(state, event, principal, &denial).await {
            Ok(()) => Err(denial),
            Err(unrecorded) => Err(unrecorded),
        },
    }
}

/// Appends the denial's entry durably; if even that fails, the answer is `internal_error`.
async fn record(state: &AppState, event: &str, principal: Option<&str>, denial: &Denial) -> Result<(), Denial> {
    let mut entry = AuditEntry::new(state.clock.now_unix(), event, denial.detail.clone())
        .code(&denial.code)
        .diagnostics(denial.diagnostics.clone());
    entry.principal = principal.map(str::to_owned);
    entry.host_id = denial.host_id.clone();
    match quick(state, move |s| s.append_audit(&entry)).await {
        Ok(_) => {
            tracing::info!(code = %denial.code, principal = ?principal, event, "denied: {}", denial.detail);
            Ok(())
        }
        Err(e) => {
            tracing::error!("could not audit a denial: {e}");
            Err(Denial::internal("the denial could not be audited"))
        }
    }
}
