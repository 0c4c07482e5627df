//! Stage 2, delegation limits (docs/design.md §11): a child token's parent verifies, was issued here (these
//! exact bytes: its record keeps their SHA-256) and is not revoked; the child's scope is within the parent's, it expires no later, and it sits within the
//! policy's depth. Possession of the parent is the fresh quote stage 4 verifies: it must be by the parent's
//! cnf AK. A child for another enrolled host only where the policy allows it; it is then bound to that host's
//! AK and to the PCR state its policy last accepted, which its gateway re-proves before anything runs.

use runtrust_attestation::DenialCode;
use serde_json::{json, Value};

use super::super::revocation::{self, RevocationError};
use super::super::{quick, AppState, DenialReason, Fault};
use super::request::ExecutionRequest;
use crate::model::HostRecord;
use crate::policy::LoadedPolicy;
use crate::scope;
use crate::token::{verify, Claims, Expectations, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    #[error("--for-host delegates a parent token: give --parent")]
    ForHostWithoutParent,
    #[error("parent token: {0}")]
    Parent(TokenError),
    #[error("parent token {0} was not issued by this service")]
    NotIssuedHere(String),
    #[error("parent token {0} is not the token issued under that id (altered or re-signed)")]
    NotAsIssued(String),
    #[error("parent token {0} was issued before tokens were bound to their bytes: request a new one")]
    Unbound(String),
    #[error(transparent)]
    Revoked(#[from] RevocationError),
    #[error("parent token {cti} is single use and was used at {at}")]
    ParentSpent { cti: String, at: u64 },
    #[error("possession of parent {0} is shown by a quote of its cnf AK; this host's AK is another (request the child on the parent's host)")]
    NotPossessed(String),
    #[error("scope {scope:?} is not within the parent's scope {parent_scope:?}")]
    ScopeWider { scope: String, parent_scope: String, parent: String },
    #[error("a child of {parent} would be at delegation depth {depth}; policy {policy} allows {max}")]
    TooDeep { parent: String, depth: u32, max: u32, policy: String },
    #[error("a child must expire no later than its parent: ttl {ttl} s > {left} s left")]
    OutlivesParent { ttl: u64, left: u64 },
    #[error("policy {0} does not allow delegation to another host")]
    CrossHostNotAllowed(String),
    #[error("host {0} is not enrolled")]
    TargetUnknown(String),
    #[error("host {0} has no accepted PCR state yet: it must obtain a token of its own once")]
    TargetUnattested(String),
    #[error("host {0}'s last accepted PCR state was judged by a policy version no longer applied")]
    TargetStale(String),
    #[error("an enrolled AK does not parse")]
    StoredAk,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for DelegationError {
    fn code(&self) -> DenialCode {
        match self {
            DelegationError::Parent(e) => e.code(),
            // As at exec: a token this service did not issue, byte for byte (docs/design.md §7).
            DelegationError::NotAsIssued(_) | DelegationError::Unbound(_) => DenialCode::SignatureInvalid,
            DelegationError::Revoked(e) => e.code(),
            DelegationError::ScopeWider { .. } => DenialCode::ScopeDenied,
            DelegationError::TargetUnknown(_) => DenialCode::HostUnknown,
            DelegationError::StoredAk | DelegationError::Fault(_) => DenialCode::InternalError,
            _ => DenialCode::DelegationDenied,
        }
    }

    fn diagnostics(&self) -> Value {
        match self {
            DelegationError::ScopeWider { scope, parent_scope, parent } => {
                json!({ "scope": scope, "parent_scope": parent_scope, "parent": parent })
            }
            DelegationError::TooDeep { depth, max, policy, .. } => {
                json!({ "depth": depth, "max_delegation_depth": max, "policy": policy })
            }
            _ => Value::Null,
        }
    }
}

/// A verified parent, and the host a child is bound to when it is not the requester's.
pub struct Delegated {
    /// The verified parent's claims.
    pub parent: Claims,
    /// The subject host (the requester's own host unless delegating across hosts).
    pub subject: Option<HostRecord>,
    /// The child's ttl: at most what the parent has left.
    pub ttl_secs: u64,
}

pub async fn check(
    state: &AppState,
    req: &ExecutionRequest,
    policy: &LoadedPolicy,
    host: &HostRecord,
    ttl_secs: u64,
) -> Result<Option<Delegated>, DelegationError> {
    let Some(bytes) = &req.parent else {
        return match &req.for_host {
            Some(_) => Err(DelegationError::ForHostWithoutParent),
            None => Ok(None),
        };
    };
    let now = state.clock.now_unix();
    let keys = state.verifying_keys()?;
    let expect = Expectations {
        now: state.clock.now_i64(),
        issuer: &state.config.service_id,
        audience: None,
        scope: None,
        leeway_secs: 0,
    };
    let claims = verify(bytes, &keys, &expect).map_err(DelegationError::Parent)?;
    let cti = hex::encode(&claims.cti);
    let c2 = cti.clone();
    let (record, revoked) = quick(state, move |s| {
        let Some(record) = s.token(&c2)? else { return Ok((None, None)) };
        let revoked = revocation::why_revoked(s, &record)?;
        Ok((Some(record), revoked))
    })
    .await?;
    let record = record.ok_or_else(|| DelegationError::NotIssuedHere(cti.clone()))?;
    // The parent on record, byte for byte: a re-signed one (wider scope, later exp) delegates nothing.
    if !record.is_token(bytes) {
        return Err(match record.token_sha256 {
            Some(_) => DelegationError::NotAsIssued(cti),
            None => DelegationError::Unbound(cti),
        });
    }
    if let Some(r) = revoked {
        return Err(RevocationError::Parent { cti, revoked: Box::new(r) }.into());
    }
    // A spent single-use token authorizes nothing more, not even children.
    if let Some(at) = record.consumed_at {
        return Err(DelegationError::ParentSpent { cti, at });
    }
    // Possession: the quote stage 4 verifies is by the requester's enrolled AK; it must be the parent's.
    let ak = runtrust_attestation::Public::from_tpm2b(&host.ak_public).map_err(|_| DelegationError::StoredAk)?;
    if !claims.cnf.matches(&ak) {
        return Err(DelegationError::NotPossessed(cti));
    }
    if !scope::within(&req.scope, &claims.scope) {
        return Err(DelegationError::ScopeWider {
            scope: req.scope.clone(),
            parent_scope: claims.scope.clone(),
            parent: cti,
        });
    }
    let rules = &policy.policy.token;
    let depth = claims.delegation_depth + 1;
    if depth > rules.max_delegation_depth {
        let (max, policy) = (rules.max_delegation_depth, policy.policy.id.clone());
        return Err(DelegationError::TooDeep { parent: cti, depth, max, policy });
    }
    let left = u64::try_from(claims.exp).unwrap_or(0).saturating_sub(now);
    let ttl_secs = match req.ttl_secs {
        Some(ttl) if ttl > left => return Err(DelegationError::OutlivesParent { ttl, left }),
        Some(t) => t,
        None => ttl_secs.min(left),
    };
    let subject = match &req.for_host {
        None => None,
        Some(other) if *other == *host.host_id => None,
        Some(other) => Some(cross_host(state, policy, other).await?),
    };
    Ok(Some(Delegated { parent: claims, subject, ttl_secs }))
}

/// A child for another enrolled host: the policy must allow it, and that host must have a PCR state its
/// current policy accepted.
async fn cross_host(state: &AppState, policy: &LoadedPolicy, other: &str) -> Result<HostRecord, DelegationError> {
    if !policy.policy.token.cross_host_delegation {
        return Err(DelegationError::CrossHostNotAllowed(policy.policy.id.clone()));
    }
    let id = other.to_owned();
    let (target, revoked) = quick(state, move |s| {
        let Some(host) = s.host(&id)? else { return Ok((None, None)) };
        // The host, or the policy version that accepted its PCR state, revoked: no delegation to it.
        let mut revoked = revocation::host_revoked(s, &id)?.map(|r| ("host", r));
        if let (None, Some(a)) = (&revoked, &host.last_attested) {
            revoked = revocation::policy_revoked(s, &a.policy_hash)?.map(|r| ("policy", r));
        }
        Ok((Some(host), revoked))
    })
    .await?;
    let target = target.ok_or_else(|| DelegationError::TargetUnknown(other.to_owned()))?;
    if let Some((what, r)) = revoked {
        let host = other.to_owned();
        return Err(RevocationError::DelegationTarget { host, what, revocation: Box::new(r) }.into());
    }
    let attested = target.last_attested.as_ref().ok_or_else(|| DelegationError::TargetUnattested(other.to_owned()))?;
    let current = state
        .policies()
        .iter()
        .any(|p| p.hash_hex() == attested.policy_hash && p.policy.selects(&target.host_id, &target.tags));
    if !current {
        return Err(DelegationError::TargetStale(other.to_owned()));
    }
    Ok(target)
}
