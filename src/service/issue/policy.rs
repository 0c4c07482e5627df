//! Stage 2, policy evaluation (docs/design.md §2, §10): the one policy that selects this host and grants
//! this scope to this initiator; ttl and delegation limits; the policy version not revoked.

use std::sync::Arc;

use runtrust_attestation::DenialCode;
use serde_json::{json, Value};

use super::super::revocation::{self, RevocationError};
use super::super::{denial_from, quick, AppState, DenialReason, Fault};
use super::delegation::{self, Delegated, DelegationError};
use super::identity::RuntimeIdentity;
use super::request::ExecutionRequest;
use crate::model::HostId;
use crate::policy::LoadedPolicy;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("no policy selects host {0}")]
    NoneSelects(HostId),
    #[error("scope {scope:?} is not granted to {initiator:?} by the policies of this host")]
    ScopeNotGranted { scope: String, initiator: String, policies: Vec<String> },
    /// Two policies could judge the same request differently: refuse rather than pick one.
    #[error("ambiguous: policies {0:?} all apply")]
    Ambiguous(Vec<String>),
    #[error("ttl {ttl_secs} s exceeds policy {policy}'s max_ttl of {max_ttl_secs} s")]
    Ttl { ttl_secs: u64, max_ttl_secs: u64, policy: String },
    #[error(transparent)]
    Revoked(#[from] RevocationError),
    #[error(transparent)]
    Delegation(#[from] DelegationError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for PolicyError {
    fn code(&self) -> DenialCode {
        match self {
            PolicyError::NoneSelects(_) | PolicyError::Ambiguous(_) | PolicyError::Ttl { .. } => {
                DenialCode::PolicyMismatch
            }
            PolicyError::ScopeNotGranted { .. } => DenialCode::ScopeDenied,
            PolicyError::Revoked(e) => e.code(),
            PolicyError::Delegation(e) => e.code(),
            PolicyError::Fault(_) => DenialCode::InternalError,
        }
    }

    fn diagnostics(&self) -> Value {
        match self {
            PolicyError::ScopeNotGranted { scope, initiator, policies } => {
                json!({ "scope": scope, "initiator": initiator, "policies": policies })
            }
            PolicyError::Ambiguous(ids) => json!({ "policies": ids }),
            PolicyError::Ttl { ttl_secs, max_ttl_secs, policy } => {
                json!({ "ttl_secs": ttl_secs, "max_ttl_secs": max_ttl_secs, "policy": policy })
            }
            PolicyError::Revoked(e) => e.diagnostics(),
            PolicyError::Delegation(e) => e.diagnostics(),
            _ => Value::Null,
        }
    }
}

denial_from!(PolicyError);

pub struct Decision {
    pub policy: Arc<LoadedPolicy>,
    pub ttl_secs: u64,
    /// For a child token: its verified parent, and the host it is for when that is another.
    pub delegation: Option<Delegated>,
}

pub async fn evaluate(
    state: &AppState,
    req: &ExecutionRequest,
    identity: &RuntimeIdentity,
) -> Result<Decision, PolicyError> {
    let host = &identity.host;
    let policies = state.policies();
    let selecting: Vec<&Arc<LoadedPolicy>> =
        policies.iter().filter(|p| p.policy.selects(&host.host_id, &host.tags)).collect();
    if selecting.is_empty() {
        return Err(PolicyError::NoneSelects(host.host_id.clone()));
    }
    let ids = |ps: &[&Arc<LoadedPolicy>]| ps.iter().map(|p| p.policy.id.clone()).collect::<Vec<_>>();
    let granting: Vec<&Arc<LoadedPolicy>> =
        selecting.iter().copied().filter(|p| p.policy.grants(&req.initiator.name, &req.scope)).collect();
    let policy = match granting.as_slice() {
        [] => {
            return Err(PolicyError::ScopeNotGranted {
                scope: req.scope.clone(),
                initiator: req.initiator.name.clone(),
                policies: ids(&selecting),
            })
        }
        [one] => Arc::clone(one),
        many => return Err(PolicyError::Ambiguous(ids(many))),
    };
    let rules = &policy.policy.token;
    let ttl_secs = req.ttl_secs.unwrap_or(rules.default_ttl_secs);
    if ttl_secs > rules.max_ttl_secs {
        return Err(PolicyError::Ttl { ttl_secs, max_ttl_secs: rules.max_ttl_secs, policy: policy.policy.id.clone() });
    }
    let hash = policy.hash_hex();
    if let Some(r) = quick(state, move |s| revocation::policy_revoked(s, &hash)).await? {
        let (id, hash) = (policy.policy.id.clone(), policy.hash_hex());
        return Err(RevocationError::Policy { id, hash, revocation: Box::new(r) }.into());
    }
    let delegation = delegation::check(state, req, &policy, host, ttl_secs).await?;
    let ttl_secs = delegation.as_ref().map_or(ttl_secs, |d| d.ttl_secs);
    Ok(Decision { policy, ttl_secs, delegation })
}
