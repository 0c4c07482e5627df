//! The issuance path (DESIGN §2, stages 1–5 and 8): each stage either passes evidence on or returns a
//! [`Denial`]. Every denial is audited before it is answered; no error path issues a token.

mod audit;
mod authorization;
mod delegation;
mod environment;
mod identity;
mod measured_boot;
mod policy;
mod request;

use axum::extract::State;
use axum::Json;

use super::auth::Caller;
use super::{AppState, Body, Denial};
use crate::api::{TokenRequest, TokenResponse};

pub use audit::record_denial as audit_denial;
pub use environment::{event_log_wanted, selection_for};

/// `POST /v1/tokens`.
///
/// Authentication failures are audited too: the extractor's rejection is taken as a value.
pub async fn token(
    State(state): State<AppState>,
    caller: Result<Caller, Denial>,
    body: Result<Body<TokenRequest>, Denial>,
) -> Result<Json<TokenResponse>, Denial> {
    let caller = match caller {
        Ok(c) => c,
        Err(denial) => return Err(audit::denied(&state, None, None, denial).await),
    };
    let Body(req) = match body {
        Ok(b) => b,
        Err(denial) => return Err(audit::denied(&state, Some(&caller), None, denial).await),
    };
    issue_token(&state, &caller, req).await.map(Json)
}

/// The whole issuance path in-process, as `POST /v1/tokens` runs it for an authenticated `caller`
/// (benchmarks and tests); denials are audited.
pub async fn issue_token(state: &AppState, caller: &Caller, req: TokenRequest) -> Result<TokenResponse, Denial> {
    let mut host_id = None;
    match issue(state, caller, req, &mut host_id).await {
        Ok(issued) => Ok(issued),
        Err(denial) => Err(audit::denied(state, Some(caller), host_id, denial).await),
    }
}

/// The lifecycle, in order. `host_id` is filled in as soon as it is known, for the audit of a denial.
async fn issue(
    state: &AppState,
    caller: &Caller,
    req: TokenRequest,
    host_id: &mut Option<String>,
) -> Result<TokenResponse, Denial> {
    let request = request::execution_request(state, caller, req).await?; // 1. execution request
    *host_id = Some(request.host_id.clone());
    let decision = policy::evaluate(state, &request).await?; // 2. policy evaluation
    let identity = identity::verify(state, &request, &decision).await?; // 3. identity verification
    let evidence = environment::validate(state, &request, &decision, &identity).await?; // 4. environment
    let token = authorization::issue(state, &request, &decision, &evidence)?; // 5. authorization
    audit::issued(state, &request, &decision, &evidence, token).await // 8. audit (durable, then answer)
}
