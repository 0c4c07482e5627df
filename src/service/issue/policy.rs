//! Stage 2, policy evaluation: the one policy that selects this host and grants this scope to this
//! initiator; ttl and delegation limits.

use std::sync::Arc;

use runtrust_attestation::DenialCode;
use serde_json::json;

use super::super::{blocking, AppState, Denial};
use super::delegation::{self, Delegated};
use super::request::ExecutionRequest;
use crate::policy::LoadedPolicy;
use crate::store::{revoked_key, HostRecord, RevocationKind};

pub struct Decision {
    pub host: HostRecord,
    pub policy: Arc<LoadedPolicy>,
    pub ttl_secs: u64,
    /// For a child token: its verified parent, and the host it is for when that is another.
    pub delegation: Option<Delegated>,
}

pub async fn evaluate(state: &AppState, req: &ExecutionRequest) -> Result<Decision, Denial> {
    let id = req.host_id.clone();
    let host = blocking(state, move |s| s.host(&id))
        .await?
        .ok_or_else(|| Denial::new(DenialCode::HostUnknown, format!("host {} is not enrolled", req.host_id)))?;
    let policies = state.policies();
    let selecting: Vec<&Arc<LoadedPolicy>> =
        policies.iter().filter(|p| p.policy.selects(&host.host_id, &host.tags)).collect();
    if selecting.is_empty() {
        return Err(Denial::new(DenialCode::PolicyMismatch, format!("no policy selects host {}", host.host_id)));
    }
    let granting: Vec<&Arc<LoadedPolicy>> =
        selecting.iter().copied().filter(|p| p.policy.grants(&req.initiator.name, &req.scope)).collect();
    let policy = match granting.as_slice() {
        [] => {
            let ids: Vec<&str> = selecting.iter().map(|p| p.policy.id.as_str()).collect();
            return Err(Denial::new(
                DenialCode::ScopeDenied,
                format!(
                    "scope {:?} is not granted to {:?} by the policies of this host",
                    req.scope, req.initiator.name
                ),
            )
            .with_diagnostics(json!({ "scope": req.scope, "initiator": req.initiator.name, "policies": ids })));
        }
        [one] => Arc::clone(one),
        many => {
            // Two policies could judge the same request differently: refuse rather than pick one.
            let ids: Vec<&str> = many.iter().map(|p| p.policy.id.as_str()).collect();
            return Err(Denial::new(DenialCode::PolicyMismatch, format!("ambiguous: policies {ids:?} all apply"))
                .with_diagnostics(json!({ "policies": ids })));
        }
    };
    let rules = &policy.policy.token;
    let ttl_secs = req.ttl_secs.unwrap_or(rules.default_ttl_secs);
    if ttl_secs > rules.max_ttl_secs {
        return Err(Denial::new(
            DenialCode::PolicyMismatch,
            format!("ttl {ttl_secs} s exceeds policy {}'s max_ttl of {} s", policy.policy.id, rules.max_ttl_secs),
        )
        .with_diagnostics(
            json!({ "ttl_secs": ttl_secs, "max_ttl_secs": rules.max_ttl_secs, "policy": policy.policy.id }),
        ));
    }
    let hash = policy.hash_hex();
    if let Some(r) = blocking(state, move |s| s.revoked(&revoked_key(RevocationKind::Policy, &hash))).await? {
        return Err(Denial::new(
            DenialCode::Revoked,
            format!("policy {} version {} was revoked: {}", policy.policy.id, policy.hash_hex(), r.reason),
        ));
    }
    let delegation = delegation::check(state, req, &policy, &host, ttl_secs).await?;
    let ttl_secs = delegation.as_ref().map_or(ttl_secs, |d| d.ttl_secs);
    Ok(Decision { host, policy, ttl_secs, delegation })
}
