//! "Record the denial, then answer", once for every audited route (docs/design.md §2 stage 8, §11): a route
//! layer that appends an audit entry for each denial its handler answers with, before the answer leaves.
//! A denial that cannot be audited becomes `internal_error`: nothing is answered unrecorded.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{blocking, AppState, Denial};
use crate::audit::AuditEntry;

/// Who the request turned out to be from; the [`super::auth::Caller`] extractor fills it in.
#[derive(Clone, Debug, Default)]
pub struct AuditContext(Arc<Mutex<Option<String>>>);

impl AuditContext {
    pub fn set_principal(&self, name: &str) {
        if let Ok(mut p) = self.0.lock() {
            *p = Some(name.to_owned());
        }
    }

    fn principal(&self) -> Option<String> {
        self.0.lock().ok().and_then(|p| p.clone())
    }
}

/// The audit event of a route's denials, and whether denials before authentication are recorded too.
#[derive(Clone)]
pub struct Audited {
    pub state: AppState,
    /// e.g. `token.deny`.
    pub event: &'static str,
    /// Record denials of requests that never authenticated (a missing or wrong credential).
    pub strangers: bool,
}

/// The route layer (`axum::middleware::from_fn_with_state`).
pub async fn layer(State(a): State<Audited>, mut req: Request, next: Next) -> Response {
    let ctx = AuditContext::default();
    req.extensions_mut().insert(ctx.clone());
    let mut response = next.run(req).await;
    let Some(denial) = response.extensions_mut().remove::<Denial>() else { return response };
    let principal = ctx.principal();
    if principal.is_none() && !a.strangers {
        return response;
    }
    match record(&a.state, a.event, principal.as_deref(), &denial).await {
        Ok(()) => response,
        Err(unrecorded) => unrecorded.into_response(),
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
    match blocking(state, move |s| s.append_audit(&entry)).await {
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
