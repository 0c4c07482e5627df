//! Execution lineage (docs/design.md §2 stage 9): `GET /v1/lineage/{cti}` — a token's ancestry, its
//! descendants as a tree, and the executions under each, with each token's status (active, spent, expired,
//! revoked and why).

use axum::extract::State;
use axum::Json;

use super::auth::Caller;
use super::revocation::why_revoked;
use super::{blocking, AppState, Denial, Path};
use crate::api::{ExecutionView, Lineage, LineageNode, RevokedVia, TokenStatus};
use crate::model::{Role, TokenRecord};
use crate::policy::MAX_DELEGATION_DEPTH;
use crate::store::{Store, StoreError};

/// Bound on the tokens one answer shows.
const MAX_NODES: usize = 10_000;

pub async fn lineage(
    State(state): State<AppState>,
    caller: Caller,
    Path(cti): Path<String>,
) -> Result<Json<Lineage>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor, Role::Gateway])?;
    let cti = cti.to_ascii_lowercase();
    let now = state.clock.now_unix();
    let answer = blocking(&state, move |s| build(s, &cti, now)).await?;
    answer.map(Json).ok_or_else(|| Denial::not_found("no such token"))
}

/// The lineage of token `cti` at `now`, or None if no such token was issued.
pub fn build(s: &dyn Store, cti: &str, now: u64) -> Result<Option<Lineage>, StoreError> {
    let Some(token) = s.token(cti)? else { return Ok(None) };
    let mut ancestors = Vec::new();
    let mut current = token.clone();
    for _ in 0..=MAX_DELEGATION_DEPTH {
        let Some(parent) = current.parent_cti.clone() else { break };
        let Some(p) = s.token(&parent)? else { break };
        ancestors.push(node(s, &p, now)?);
        current = p;
    }
    ancestors.reverse();
    let mut budget = MAX_NODES;
    let tree = subtree(s, &token, now, &mut budget)?;
    Ok(Some(Lineage { cti: cti.to_owned(), ancestors, token: tree, truncated: budget == 0 }))
}

/// One token: its facts, status and executions (no children).
pub fn node(s: &dyn Store, t: &TokenRecord, now: u64) -> Result<LineageNode, StoreError> {
    let revoked = why_revoked(s, t)?;
    let status = if revoked.is_some() {
        TokenStatus::Revoked
    } else if t.expires_at <= now {
        TokenStatus::Expired
    } else if t.consumed_at.is_some() {
        TokenStatus::Spent
    } else {
        TokenStatus::Active
    };
    Ok(LineageNode {
        cti: t.cti.clone(),
        host_id: t.host_id.clone(),
        scope: t.scope.clone(),
        audience: t.audience.clone(),
        initiator: t.initiator.clone(),
        policy_id: t.policy_id.clone(),
        depth: t.delegation_depth,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        single_use: t.single_use,
        status,
        revoked: revoked.map(|r| RevokedVia {
            via: r.via,
            reason: r.revocation.reason,
            by: r.revocation.by,
            time: r.revocation.time,
            seq: r.revocation.seq,
        }),
        audit_index: t.audit_index,
        executions: s.executions(&t.cti)?.into_iter().map(ExecutionView::from).collect(),
        children: None,
    })
}

fn subtree(s: &dyn Store, t: &TokenRecord, now: u64, budget: &mut usize) -> Result<LineageNode, StoreError> {
    let mut v = node(s, t, now)?;
    *budget = budget.saturating_sub(1);
    let mut children = Vec::new();
    for child in s.children(&t.cti)? {
        if *budget == 0 {
            break;
        }
        if let Some(c) = s.token(&child)? {
            children.push(subtree(s, &c, now, budget)?);
        }
    }
    v.children = Some(children);
    Ok(v)
}
