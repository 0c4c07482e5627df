//! `POST /v1/challenge` (DESIGN §6): a fresh nonce for the caller's host, and the PCRs to quote.

use axum::extract::State;
use axum::Json;
use runtrust_attestation::DenialCode;

use super::auth::Caller;
use super::{blocking, AppState, Denial};
use crate::api::{now_unix, ChallengeResponse};
use crate::store::{AuditEntry, Challenge, Role};

/// Denials are audited like token denials: a refused challenge is a refused execution request.
pub async fn challenge(
    State(state): State<AppState>,
    caller: Result<Caller, Denial>,
) -> Result<Json<ChallengeResponse>, Denial> {
    let caller = match caller {
        Ok(c) => c,
        Err(d) => return Err(super::issue::audit_denial(&state, None, None, "challenge.deny", d).await),
    };
    match issue_challenge(&state, &caller).await {
        Ok(c) => Ok(Json(c)),
        Err(d) => Err(super::issue::audit_denial(&state, Some(&caller), None, "challenge.deny", d).await),
    }
}

async fn issue_challenge(state: &AppState, caller: &Caller) -> Result<ChallengeResponse, Denial> {
    let state = state.clone();
    caller.require(&[Role::Attester])?;
    let principal_id = caller.0.id.clone();
    let host = blocking(&state, move |s| match s.principal_host(&principal_id)? {
        Some(h) => s.host(&h),
        None => Ok(None),
    })
    .await?
    .ok_or_else(|| {
        Denial::new(DenialCode::HostUnknown, "this credential has not enrolled a host: run runtrust enroll")
    })?;
    let selection = super::issue::selection_for(&host, &state.policies());
    let nonce: [u8; 32] = state.random()?;
    let c = Challenge {
        nonce: hex::encode(nonce),
        host_id: host.host_id.clone(),
        principal_id: caller.0.id.clone(),
        selection: selection.to_string(),
        expires_at: now_unix() + state.config.limits.challenge_ttl_secs,
    };
    let answer = ChallengeResponse {
        nonce: c.nonce.clone(),
        expires_at: c.expires_at,
        pcr_selection: c.selection.clone(),
        host_id: c.host_id.clone(),
        event_log: super::issue::event_log_wanted(&host, &state.policies()),
    };
    let entry = AuditEntry::new("challenge.issue", format!("nonce for PCRs {}", c.selection))
        .by(&caller.0.name)
        .host(&c.host_id)
        .diagnostics(serde_json::json!({ "nonce": c.nonce, "expires_at": c.expires_at }));
    blocking(&state, move |s| s.put_challenge(&c, &entry)).await?;
    Ok(answer)
}
