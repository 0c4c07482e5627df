//! The audit log over HTTP (docs/design.md §11): entries (`GET /v1/audit?from=N&limit=M`), the signed checkpoint
//! (`GET /v1/audit/checkpoint`), an issued token's inclusion proof (`GET /v1/audit/prove/{cti}`) and a
//! consistency proof from an earlier size (`GET /v1/audit/consistency?from=N`).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::audit_log::sign_checkpoint;
use super::auth::Caller;
use super::{blocking, AppState, Denial, Path, Query};
use crate::api::{ConsistencyProof, InclusionProof, IndexedEntry};
use crate::audit::export_line;
use crate::model::Role;
use crate::store::StoreError;

/// Everyone who may read the log; checkpoints may be read by every role.
const READERS: &[Role] = &[Role::Admin, Role::Auditor];

#[derive(Deserialize)]
pub struct Range {
    from: Option<u64>,
    limit: Option<usize>,
}

pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(r): Query<Range>,
) -> Result<Json<Vec<IndexedEntry>>, Denial> {
    caller.require(READERS)?;
    let (from, limit) = (r.from.unwrap_or(0), r.limit.unwrap_or(1000).min(10_000));
    let entries = blocking(&state, move |s| s.audit(from, limit)).await?;
    Ok(Json(entries.into_iter().map(|(index, entry)| IndexedEntry { index, entry }).collect()))
}

/// The current signed checkpoint, as text (c2sp.org/tlog-checkpoint in a signed note).
pub async fn checkpoint(State(state): State<AppState>, caller: Caller) -> Result<String, Denial> {
    caller.require(&[Role::Admin, Role::Auditor, Role::Gateway, Role::Attester])?;
    let tree = state.audit_tree.clone();
    let view = blocking(&state, move |s| tree.view(s, |_, _| Ok(()))).await?;
    Ok(sign_checkpoint(&state, view.size, view.root)?.to_text())
}

pub async fn prove(
    State(state): State<AppState>,
    caller: Caller,
    Path(cti): Path<String>,
) -> Result<Json<InclusionProof>, Denial> {
    caller.require(READERS)?;
    let cti = cti.to_ascii_lowercase();
    let tree = state.audit_tree.clone();
    let c2 = cti.clone();
    let found = blocking(&state, move |s| {
        let Some(token) = s.token(&c2)? else { return Ok(None) };
        let index = token.audit_index;
        let Some((_, entry)) = s.audit(index, 1)?.into_iter().find(|(i, _)| *i == index) else {
            return Err(StoreError::Corrupt {
                key: format!("audit/{index}"),
                detail: format!("entry of token {c2} missing"),
            });
        };
        let view = tree.view(s, |log, size| {
            log.inclusion_proof(index, size).map_err(|e| StoreError::Backend(format!("inclusion proof: {e}")))
        })?;
        Ok(Some((index, entry, view)))
    })
    .await?;
    let (index, entry, view) = found.ok_or_else(|| Denial::not_found(format!("no token {cti} was issued here")))?;
    let checkpoint = sign_checkpoint(&state, view.size, view.root)?.to_text();
    Ok(Json(InclusionProof {
        cti,
        line: export_line(&entry, index),
        index,
        tree_size: view.size,
        proof: view.proof.iter().map(hex::encode).collect(),
        checkpoint,
    }))
}

#[derive(Deserialize)]
pub struct From {
    from: u64,
}

pub async fn consistency(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<From>,
) -> Result<Json<ConsistencyProof>, Denial> {
    caller.require(READERS)?;
    let tree = state.audit_tree.clone();
    let from = q.from;
    let view = blocking(&state, move |s| {
        tree.view(s, |log, size| {
            log.consistency_proof(from, size).map_err(|e| StoreError::Conflict(format!("consistency proof: {e}")))
        })
    })
    .await?;
    let checkpoint = sign_checkpoint(&state, view.size, view.root)?.to_text();
    Ok(Json(ConsistencyProof {
        from,
        tree_size: view.size,
        proof: view.proof.iter().map(hex::encode).collect(),
        checkpoint,
    }))
}
