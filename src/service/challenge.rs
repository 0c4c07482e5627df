//! `POST /v1/challenge` (docs/design.md §6): a fresh nonce for the caller's host, and the PCRs to quote.
//! A refused challenge is a refused execution request: audited as `challenge.deny` (routes.rs). Each
//! principal holds at most `limits.max_challenges_per_principal` unexpired challenges.

use axum::extract::State;
use axum::Json;
use runtrust_attestation::DenialCode;

use super::auth::Caller;
use super::selection::{event_log_wanted, selection_for};
use super::{quick, AppState, Denial};
use crate::api::ChallengeResponse;
use crate::audit::AuditEntry;
use crate::model::{Challenge, Nonce, Role};
use crate::store::{Admission, Cap};

pub async fn challenge(State(state): State<AppState>, caller: Caller) -> Result<Json<ChallengeResponse>, Denial> {
    caller.require(&[Role::Attester])?;
    let principal_id = caller.0.id.clone();
    let host = quick(&state, move |s| match s.principal_host(&principal_id)? {
        Some(h) => s.host(&h),
        None => Ok(None),
    })
    .await?
    .ok_or_else(|| {
        Denial::new(DenialCode::HostUnknown, "this credential has not enrolled a host: run runtrust enroll")
    })?;
    super::refresh_policies(&state).await?;
    let policies = state.policies();
    let now = state.clock.now_unix();
    let c = Challenge {
        nonce: Nonce(state.random()?),
        host_id: host.host_id.clone(),
        principal_id: caller.0.id.clone(),
        selection: selection_for(&host, &policies),
        expires_at: now + state.config.limits.challenge_ttl_secs,
        host_clock: Some(host.last_clock),
    };
    let answer = ChallengeResponse {
        nonce: c.nonce.to_string(),
        expires_at: c.expires_at,
        pcr_selection: c.selection.to_string(),
        host_id: c.host_id.to_string(),
        event_log: event_log_wanted(&host, &policies),
    };
    let entry = AuditEntry::new(now, "challenge.issue", format!("nonce for PCRs {}", c.selection))
        .by(caller.name())
        .host(&c.host_id)
        .diagnostics(serde_json::json!({ "nonce": c.nonce, "expires_at": c.expires_at }));
    // docs/design.md §16: a principal holds only so many unexpired challenges at once.
    let cap = Cap { max: state.config.limits.max_challenges_per_principal, now };
    if let Admission::Full { outstanding } = quick(&state, move |s| s.put_challenge(&c, &entry, cap)).await? {
        return Err(Denial::limit_exceeded(format!(
            "{outstanding} challenges of this principal are outstanding (limits.max_challenges_per_principal = {}): \
             use them or let them expire",
            cap.max
        )));
    }
    Ok(Json(answer))
}
