//! `POST /v1/policies` (admin) applies a policy, replacing any with the same id; `GET` lists them.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use runtrust_attestation::DenialCode;

use super::auth::Caller;
use super::{blocking, AppState, Body, Denial, Fault};
use crate::api::{ApplyPolicy, PolicyView};
use crate::audit::AuditEntry;
use crate::model::{Role, StoredPolicy};

pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<PolicyView>>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    let all = blocking(&state, |s| s.policies()).await?;
    Ok(Json(
        all.into_iter()
            .map(|p| PolicyView {
                id: p.id,
                hash: p.hash,
                signed_by: p.signed_by,
                applied_at: p.applied_at,
                applied_by: p.applied_by,
            })
            .collect(),
    ))
}

/// A refused policy is a decision too: audited as `policy.deny` (routes.rs).
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<ApplyPolicy>,
) -> Result<Json<PolicyView>, Denial> {
    caller.require(&[Role::Admin])?;
    let loaded = crate::policy::parse("policy", &req.policy)
        .map_err(|e| Denial::new(DenialCode::PolicyMismatch, e.to_string()))?;
    let signed_by = match &req.signature {
        Some(sig) => {
            let kid = crate::token::verify_detached(sig, &req.policy, &state.authorities)
                .map_err(|e| Denial::new(DenialCode::SignatureInvalid, format!("policy signature: {e}")))?;
            Some(hex::encode(kid))
        }
        None if state.config.policy.require_signed => {
            return Err(Denial::new(
                DenialCode::PolicyMismatch,
                "this service refuses unsigned policies: sign it with runtrust policy sign",
            ))
        }
        None => None,
    };
    let stored = StoredPolicy {
        id: loaded.policy.id.clone(),
        hash: hex::encode(loaded.hash),
        bytes: req.policy.clone(),
        signed_by,
        applied_at: state.clock.now_unix(),
        applied_by: caller.0.name.clone(),
    };
    let entry =
        AuditEntry::new(stored.applied_at, "policy.apply", format!("policy {} hash {}", stored.id, stored.hash))
            .by(&caller.0.name);
    let s2 = stored.clone();
    blocking(&state, move |s| s.put_policy(&s2, &entry)).await?;
    {
        let mut cache = state.policies.write().map_err(|_| Fault::Poisoned("policy cache"))?;
        cache.retain(|p| p.policy.id != loaded.policy.id);
        cache.push(Arc::new(loaded));
    }
    tracing::info!(by = %caller.0.name, id = %stored.id, hash = %stored.hash, "policy applied");
    Ok(Json(PolicyView {
        id: stored.id,
        hash: stored.hash,
        signed_by: stored.signed_by,
        applied_at: stored.applied_at,
        applied_by: stored.applied_by,
    }))
}
