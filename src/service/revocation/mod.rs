//! Revocation (docs/design.md §11). `POST /v1/revocations` (admin) revokes a token and its descendants, a
//! host and its tokens, or a policy version and its tokens, durably before it answers; `GET /v1/revocations`
//! is the signed, sequence-numbered feed for gateways; [`check`] answers whether something is revoked.

mod check;

pub use check::{
    chain_keys, descendants, host_revoked, policy_revoked, revoked_via, why_revoked, RevocationError, Revoked,
    MAX_LISTED,
};

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, AppState, Body, Denial, Query};
use crate::api::{RevocationFeed, RevocationView, RevokeRequest, SignedFeed};
use crate::audit::AuditEntry;
use crate::model::{Revocation, RevocationKind, Role};

/// `POST /v1/revocations` (admin); a refusal is audited as `revoke.deny` (routes.rs).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<RevokeRequest>,
) -> Result<Json<RevocationView>, Denial> {
    let revoked = revoke_now(&state, &caller, req).await?;
    // docs/design.md §12: a revocation is under the high-water mark before it is answered.
    super::high_water::advance(&state).await;
    Ok(Json(revoked.into()))
}

pub(super) async fn revoke_now(state: &AppState, caller: &Caller, req: RevokeRequest) -> Result<Revocation, Denial> {
    caller.require(&[Role::Admin])?;
    if req.kind == RevocationKind::Unrevoke {
        return Err(Denial::bad_request("a lift is POST /v1/hosts/{host_id}/unrevoke (runtrust hosts unrevoke)"));
    }
    let reason = if req.reason.trim().is_empty() { "no reason given".to_owned() } else { req.reason.clone() };
    if reason.len() > 1024 || req.target.len() > 256 {
        return Err(Denial::bad_request("reason is at most 1024 bytes, target at most 256"));
    }
    let kind = req.kind;
    let target = req.target.to_ascii_lowercase();
    let by = caller.0.name.clone();
    let now = state.clock.now_unix();
    super::refresh_policies(state).await?;
    // A policy by id (its applied version), or any version by its hash (64 hex digits, e.g. from a token).
    let policy_hash_revoked = match kind {
        RevocationKind::Policy if target.len() == 64 && target.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(target.clone())
        }
        RevocationKind::Policy => state
            .policies()
            .iter()
            .find(|p| p.policy.id == req.target)
            .map(|p| p.hash_hex())
            .ok_or_else(|| Denial::not_found(format!("no policy {:?} is applied", req.target)))
            .map(Some)?,
        _ => None,
    };
    let target = if kind == RevocationKind::Policy { req.target.clone() } else { target };
    // Execution starts exclude the store's revoke step itself (docs/design.md §15): no in-process lock.
    let revoked = blocking(state, move |s| {
        let (host, tokens) = match kind {
            RevocationKind::Token => {
                let Some(t) = s.token(&target)? else {
                    return Ok(Err(Denial::not_found(format!("no token {target} was issued here"))));
                };
                (Some(t.host_id.to_string()), descendants(s, &target)?)
            }
            RevocationKind::Host => {
                if s.host(&target)?.is_none() {
                    return Ok(Err(Denial::not_found(format!("no host {target} is enrolled"))));
                }
                (Some(target.clone()), s.tokens_by_host(&target, MAX_LISTED)?)
            }
            RevocationKind::Policy => {
                let hash = policy_hash_revoked.clone().unwrap_or_default();
                (None, s.tokens_by_policy(&hash, MAX_LISTED)?)
            }
            RevocationKind::Unrevoke => return Ok(Err(Denial::bad_request("a lift is not a revocation"))),
        };
        let r = Revocation {
            seq: 0,
            kind,
            target: target.clone(),
            policy_hash: policy_hash_revoked.clone(),
            reason: reason.clone(),
            time: now,
            by: by.clone(),
            tokens,
            audit_index: 0,
            lifts: None,
        };
        let mut entry =
            AuditEntry::new(now, &format!("revoke.{}", kind.name()), format!("{} {target}: {reason}", kind.name()))
                .by(&by)
                .diagnostics(serde_json::json!({ "tokens": r.tokens.len(), "policy_hash": r.policy_hash }));
        if kind == RevocationKind::Token {
            entry = entry.cti(&target);
        }
        if let Some(h) = &host {
            entry = entry.host(h);
        }
        s.revoke(&r, &entry).map(Ok)
    })
    .await??;
    tracing::info!(kind = kind.name(), target = %revoked.target, tokens = revoked.tokens.len(), seq = revoked.seq, "revoked");
    Ok(revoked)
}

#[derive(Deserialize)]
pub struct Since {
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/revocations?since=SEQ` (every role): the feed, signed by the newest issuer key.
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<Since>,
) -> Result<Json<SignedFeed>, Denial> {
    caller.require(&[Role::Admin, Role::Gateway, Role::Attester, Role::Auditor])?;
    let (since, limit) = (q.since.unwrap_or(0), q.limit.unwrap_or(1000).clamp(1, 10_000));
    let revocations = blocking(&state, move |s| s.revocations(since, limit)).await?;
    let next = revocations.last().map_or(since, |r| r.seq + 1);
    let revocations = revocations.into_iter().map(RevocationView::from).collect();
    let time = state.clock.now_unix();
    let feed = RevocationFeed { issuer: state.config.service_id.clone(), since, next, time, revocations };
    let payload = serde_json::to_vec(&feed).map_err(Denial::internal)?;
    let signature = state.sign_detached(&payload)?;
    Ok(Json(SignedFeed { payload, signature }))
}
