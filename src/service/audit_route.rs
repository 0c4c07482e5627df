//! `GET /v1/audit?from=N&limit=M` (admin, auditor): the audit log, oldest first.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, AppState, Denial};
use crate::store::{AuditEntry, Role};

#[derive(Deserialize)]
pub struct Range {
    from: Option<u64>,
    limit: Option<usize>,
}

#[derive(serde::Serialize)]
pub struct Indexed {
    index: u64,
    #[serde(flatten)]
    entry: AuditEntry,
}

pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(r): Query<Range>,
) -> Result<Json<Vec<Indexed>>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    let (from, limit) = (r.from.unwrap_or(0), r.limit.unwrap_or(1000).min(10_000));
    let entries = blocking(&state, move |s| s.audit(from, limit)).await?;
    Ok(Json(entries.into_iter().map(|(index, entry)| Indexed { index, entry }).collect()))
}
