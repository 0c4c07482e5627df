//! The issuance path (docs/design.md §2, stages 1–5, 8 and 9): each stage either passes evidence on or
//! fails with its own error, which maps to a denial code. Identity runs before policy, so a stranger's or a
//! revoked host's request costs no policy work. Denials are recorded by the audit layer before they are
//! answered; no error path issues a token.

mod audit;
mod authorization;
mod delegation;
mod environment;
#[cfg(test)]
mod hardening_tests;
mod identity;
mod measured_boot;
mod policy;
mod request;
#[cfg(test)]
mod tests;

use axum::extract::State;
use axum::Json;

use super::auth::Caller;
use super::{audited, AppState, Body, Denial};
use crate::api::{TokenRequest, TokenResponse};

pub use authorization::AuthorizationError;
pub use delegation::DelegationError;
pub use environment::EnvironmentError;
pub use identity::IdentityError;
pub use measured_boot::MeasuredBootError;
pub use policy::PolicyError;
pub(crate) use request::valid_audience;
pub use request::RequestError;

/// The audit event of a refused token request.
pub const DENY_EVENT: &str = "token.deny";

/// `POST /v1/tokens` (denials audited by the route's layer as `token.deny`).
pub async fn token(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<TokenRequest>,
) -> Result<Json<TokenResponse>, Denial> {
    issue(&state, &caller, req).await.map(Json)
}

/// The whole issuance path in-process, as `POST /v1/tokens` runs it for an authenticated `caller`
/// (benchmarks and tests); denials are audited.
pub async fn issue_token(state: &AppState, caller: &Caller, req: TokenRequest) -> Result<TokenResponse, Denial> {
    audited::audited(state, DENY_EVENT, Some(caller.name()), issue(state, caller, req).await).await
}

/// The lifecycle, in order; a denial names the host once it is known.
async fn issue(state: &AppState, caller: &Caller, req: TokenRequest) -> Result<TokenResponse, Denial> {
    super::refresh_policies(state).await?; // policies applied through any replica (docs/design.md §15)
    let request = request::execution_request(state, caller, req).await?; // 1. execution request
    let host = Some(request.host_id.to_string());
    let about = |d: Denial| d.about_host(host.as_deref());
    let identity = identity::verify(state, &request).await.map_err(|e| about(e.into()))?; // 3. identity
    let decision = policy::evaluate(state, &request, &identity).await.map_err(|e| about(e.into()))?; // 2. policy
    let evidence = environment::validate(state, &request, &identity, &decision) // 4. environment
        .await
        .map_err(|e| about(e.into()))?;
    let token = authorization::issue(state, &request, &identity, &decision, &evidence) // 5. authorization
        .map_err(|e| about(e.into()))?;
    audit::issued(state, &request, &identity, &evidence, token).await.map_err(|e| about(e.into()))
    // 8–9. audit, lineage
}
