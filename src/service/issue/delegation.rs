//! Stage 2, delegation limits (DESIGN §11): a child token's parent verifies, was issued here and is not
//! revoked; the child's scope is within the parent's, it expires no later, and it sits within the policy's
//! depth. Possession of the parent is the fresh quote stage 4 verifies: it must be by the parent's cnf AK.
//! A child for another enrolled host only where the policy allows it; it is then bound to that host's AK
//! and to the PCR state its policy last accepted, which its gateway re-proves before anything runs.

use runtrust_attestation::DenialCode;
use serde_json::json;

use super::super::revocation::why_revoked;
use super::super::{blocking, AppState, Denial};
use super::request::ExecutionRequest;
use crate::api::now_unix;
use crate::policy::LoadedPolicy;
use crate::scope;
use crate::store::{revoked_key, HostRecord, RevocationKind};
use crate::token::{verify, Claims, Expectations};

/// The host a child token is bound to, when it is not the requester's.
pub struct Delegated {
    /// The verified parent's claims.
    pub parent: Claims,
    /// The subject host (the requester's own host unless delegating across hosts).
    pub subject: Option<HostRecord>,
    /// The child's ttl: at most what the parent has left.
    pub ttl_secs: u64,
}

fn denied(detail: impl Into<String>) -> Denial {
    Denial::new(DenialCode::DelegationDenied, detail)
}

pub async fn check(
    state: &AppState,
    req: &ExecutionRequest,
    policy: &LoadedPolicy,
    host: &HostRecord,
    ttl_secs: u64,
) -> Result<Option<Delegated>, Denial> {
    let Some(bytes) = &req.parent else {
        return match &req.for_host {
            Some(_) => Err(denied("--for-host delegates a parent token: give --parent")),
            None => Ok(None),
        };
    };
    let now = now_unix();
    let keys = state.verifying_keys()?;
    let expect = Expectations {
        now: i64::try_from(now).map_err(Denial::internal)?,
        audience: None,
        scope: None,
        leeway_secs: 0,
    };
    let claims = verify(bytes, &keys, &expect).map_err(|e| Denial::new(e.code(), format!("parent token: {e}")))?;
    let cti = hex::encode(&claims.cti);
    let c2 = cti.clone();
    let (record, revoked) = blocking(state, move |s| {
        let Some(record) = s.token(&c2)? else { return Ok((None, None)) };
        let revoked = why_revoked(s, &record)?;
        Ok((Some(record), revoked))
    })
    .await?;
    let record = record.ok_or_else(|| denied(format!("parent token {cti} was not issued by this service")))?;
    if let Some(r) = revoked {
        return Err(Denial::new(DenialCode::Revoked, format!("parent token {cti}: {}", r.detail())));
    }
    // A spent single-use token authorizes nothing more, not even children.
    if let Some(at) = record.consumed_at {
        return Err(denied(format!("parent token {cti} is single use and was used at {at}")));
    }
    // Possession: the quote stage 4 verifies is by the requester's enrolled AK; it must be the parent's.
    let ak = runtrust_attestation::Public::from_tpm2b(&host.ak_public).map_err(Denial::internal)?;
    if !claims.cnf.matches(&ak) {
        return Err(denied(format!(
            "possession of parent {cti} is shown by a quote of its cnf AK; this host's AK is another (request the child on the parent's host)"
        )));
    }
    if !scope::within(&req.scope, &claims.scope) {
        return Err(Denial::new(
            DenialCode::ScopeDenied,
            format!("scope {:?} is not within the parent's scope {:?}", req.scope, claims.scope),
        )
        .with_diagnostics(json!({ "scope": req.scope, "parent_scope": claims.scope, "parent": cti })));
    }
    let rules = &policy.policy.token;
    let depth = claims.delegation_depth + 1;
    if depth > rules.max_delegation_depth {
        return Err(denied(format!(
            "a child of {cti} would be at delegation depth {depth}; policy {} allows {}",
            policy.policy.id, rules.max_delegation_depth
        ))
        .with_diagnostics(
            json!({ "depth": depth, "max_delegation_depth": rules.max_delegation_depth, "policy": policy.policy.id }),
        ));
    }
    let left = u64::try_from(claims.exp).unwrap_or(0).saturating_sub(now);
    let ttl_secs = match req.ttl_secs {
        Some(t) if t > left => {
            return Err(denied(format!("a child must expire no later than its parent: ttl {t} s > {left} s left")))
        }
        Some(t) => t,
        None => ttl_secs.min(left),
    };
    let subject = match &req.for_host {
        None => None,
        Some(other) if *other == host.host_id => None,
        Some(other) => Some(cross_host(state, policy, other).await?),
    };
    Ok(Some(Delegated { parent: claims, subject, ttl_secs }))
}

/// A child for another enrolled host: the policy must allow it, and that host must have a PCR state its
/// current policy accepted.
async fn cross_host(state: &AppState, policy: &LoadedPolicy, other: &str) -> Result<HostRecord, Denial> {
    if !policy.policy.token.cross_host_delegation {
        return Err(denied(format!("policy {} does not allow delegation to another host", policy.policy.id)));
    }
    let id = other.to_owned();
    let (target, revoked) = blocking(state, move |s| {
        let Some(host) = s.host(&id)? else { return Ok((None, None)) };
        // The host, or the policy version that accepted its PCR state, revoked: no delegation to it.
        let mut revoked = s.revoked(&revoked_key(RevocationKind::Host, &id))?.map(|r| ("host", r));
        if let (None, Some(a)) = (&revoked, &host.last_attested) {
            revoked = s.revoked(&revoked_key(RevocationKind::Policy, &a.policy_hash))?.map(|r| ("policy", r));
        }
        Ok((Some(host), revoked))
    })
    .await?;
    let target = target.ok_or_else(|| Denial::new(DenialCode::HostUnknown, format!("host {other} is not enrolled")))?;
    if let Some((what, r)) = revoked {
        return Err(Denial::new(
            DenialCode::Revoked,
            format!("host {other}: its {what} was revoked ({}): {}", r.target, r.reason),
        ));
    }
    let attested = target.last_attested.as_ref().ok_or_else(|| {
        denied(format!("host {other} has no accepted PCR state yet: it must obtain a token of its own once"))
    })?;
    let current = state
        .policies()
        .iter()
        .any(|p| p.hash_hex() == attested.policy_hash && p.policy.selects(&target.host_id, &target.tags));
    if !current {
        return Err(denied(format!(
            "host {other}'s last accepted PCR state was judged by a policy version no longer applied"
        )));
    }
    Ok(target)
}
