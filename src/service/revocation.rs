//! Revocation (DESIGN §11). `POST /v1/revocations` (admin) revokes a token and its descendants, a host and
//! its tokens, or a policy version and its tokens, durably before it answers; `GET /v1/revocations` is the
//! signed, sequence-numbered feed for gateways; [`why_revoked`] is the one question every later check asks.

use std::collections::VecDeque;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, AppState, Body, Denial};
use crate::api::{now_unix, RevocationFeed, RevokeRequest, SignedFeed};
use crate::policy::MAX_DELEGATION_DEPTH;
use crate::store::{revoked_key, AuditEntry, Revocation, RevocationKind, Role, Store, StoreError, TokenRecord};

/// Bound on the tokens one revocation lists (the revoked index still covers the rest by ancestry).
const MAX_LISTED: usize = 100_000;

/// Why a token no longer holds: the revocation, and what it named (`token …`, `ancestor …`, `host …`,
/// `policy …`).
#[derive(Clone, Debug)]
pub struct Revoked {
    pub revocation: Revocation,
    pub via: String,
}

impl Revoked {
    pub fn detail(&self) -> String {
        let r = &self.revocation;
        format!("revoked ({}) by {} at {}: {}", self.via, r.by, r.time, r.reason)
    }
}

/// Whether `token` is revoked: itself or any ancestor, the host of any of them, or the policy version any of
/// them was issued under.
pub fn why_revoked(s: &dyn Store, token: &TokenRecord) -> Result<Option<Revoked>, StoreError> {
    let mut current = token.clone();
    // A chain is at most MAX_DELEGATION_DEPTH deep; the bound also stops a corrupt cycle.
    for _ in 0..=MAX_DELEGATION_DEPTH + 1 {
        // Every host on the chain counts: a child delegated across hosts dies with its ancestor's host.
        if let Some(r) = s.revoked(&revoked_key(RevocationKind::Host, &current.host_id))? {
            return Ok(Some(Revoked { via: format!("host {}", current.host_id), revocation: r }));
        }
        if let Some(r) = s.revoked(&revoked_key(RevocationKind::Policy, &current.policy_hash))? {
            return Ok(Some(Revoked {
                via: format!("policy {} {}", current.policy_id, current.policy_hash),
                revocation: r,
            }));
        }
        if let Some(r) = s.revoked(&revoked_key(RevocationKind::Token, &current.cti))? {
            // Marked directly, or by the cascade of an ancestor's revocation: name what was revoked.
            let via =
                if r.target == token.cti { format!("token {}", token.cti) } else { format!("ancestor {}", r.target) };
            return Ok(Some(Revoked { via, revocation: r }));
        }
        let Some(parent) = &current.parent_cti else { return Ok(None) };
        current = s.token(parent)?.ok_or_else(|| StoreError::Corrupt {
            key: format!("tokens/{parent}"),
            detail: format!("parent of {} is missing", current.cti),
        })?;
    }
    Err(StoreError::Corrupt { key: format!("tokens/{}", token.cti), detail: "ancestry too deep".into() })
}

/// Every descendant of `cti` (breadth first, bounded).
pub fn descendants(s: &dyn Store, cti: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let mut queue = VecDeque::from([cti.to_owned()]);
    while let Some(next) = queue.pop_front() {
        for child in s.children(&next)? {
            if out.len() >= MAX_LISTED {
                return Ok(out);
            }
            out.push(child.clone());
            queue.push_back(child);
        }
    }
    Ok(out)
}

/// A refused revocation is audited too (`revoke.deny`).
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<RevokeRequest>,
) -> Result<Json<Revocation>, Denial> {
    match revoke_now(&state, &caller, req).await {
        Ok(r) => Ok(Json(r)),
        Err(d) => Err(super::issue::audit_denial(&state, Some(&caller), None, "revoke.deny", d).await),
    }
}

async fn revoke_now(state: &AppState, caller: &Caller, req: RevokeRequest) -> Result<Revocation, Denial> {
    caller.require(&[Role::Admin])?;
    let reason = if req.reason.trim().is_empty() { "no reason given".to_owned() } else { req.reason.clone() };
    if reason.len() > 1024 || req.target.len() > 256 {
        return Err(Denial::bad_request("reason is at most 1024 bytes, target at most 256"));
    }
    let kind = req.kind;
    let target = req.target.to_ascii_lowercase();
    let by = caller.0.name.clone();
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
    // No execution starts while a revocation is being decided and written (see execution.rs).
    let _gate = state.revocation_gate.write().await;
    let revoked = blocking(state, move |s| {
        let (host, tokens) = match kind {
            RevocationKind::Token => {
                let Some(t) = s.token(&target)? else {
                    return Ok(Err(Denial::not_found(format!("no token {target} was issued here"))));
                };
                (Some(t.host_id), descendants(s, &target)?)
            }
            RevocationKind::Host => {
                if s.host(&target)?.is_none() {
                    return Ok(Err(Denial::not_found(format!("no host {target} is enrolled"))));
                }
                let all = s.tokens()?;
                (
                    Some(target.clone()),
                    all.into_iter().filter(|t| t.host_id == target).map(|t| t.cti).take(MAX_LISTED).collect(),
                )
            }
            RevocationKind::Policy => {
                let hash = policy_hash_revoked.clone().unwrap_or_default();
                let all = s.tokens()?;
                (None, all.into_iter().filter(|t| t.policy_hash == hash).map(|t| t.cti).take(MAX_LISTED).collect())
            }
        };
        let r = Revocation {
            seq: 0,
            kind,
            target: target.clone(),
            policy_hash: policy_hash_revoked.clone(),
            reason: reason.clone(),
            time: now_unix(),
            by: by.clone(),
            tokens,
            audit_index: 0,
        };
        let mut entry =
            AuditEntry::new(&format!("revoke.{}", kind.name()), format!("{} {target}: {reason}", kind.name()))
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
    let feed = RevocationFeed { issuer: state.config.service_id.clone(), since, next, time: now_unix(), revocations };
    let payload = serde_json::to_vec(&feed).map_err(Denial::internal)?;
    let signature = state.sign_detached(&payload)?;
    Ok(Json(SignedFeed { payload, signature }))
}
