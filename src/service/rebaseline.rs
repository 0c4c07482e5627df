//! `POST /v1/hosts/{host_id}/rebaseline` (admin, audited): the service forgets the host's last accepted TPM
//! clock, so its next quote becomes the baseline of the monotonic checks (docs/design.md §4). For a TPM whose
//! counters legitimately went back (TPM2_Clear, a restored vTPM); an unsafe clock is not waved through.

use axum::extract::State;
use axum::Json;
use serde_json::json;

use super::auth::Caller;
use super::{blocking, AppState, Body, Denial, Path};
use crate::api::{RebaselineRequest, Rebaselined, MAX_REASON_BYTES};
use crate::audit::AuditEntry;
use crate::model::{HostId, Role};

pub async fn rebaseline(
    State(state): State<AppState>,
    caller: Caller,
    Path(host_id): Path<String>,
    Body(req): Body<RebaselineRequest>,
) -> Result<Json<Rebaselined>, Denial> {
    caller.require(&[Role::Admin])?;
    let host_id: HostId = host_id.parse().map_err(|e| Denial::bad_request(format!("host id: {e}")))?;
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control) {
        return Err(Denial::bad_request(format!("a reason is required: 1-{MAX_REASON_BYTES} bytes, one line")));
    }
    let entry = AuditEntry::new(state.clock.now_unix(), "host.rebaseline", format!("clock baseline reset: {reason}"))
        .by(caller.name())
        .host(&host_id)
        .diagnostics(json!({ "reason": reason }));
    let id = host_id.to_string();
    let previous = blocking(&state, move |s| s.rebaseline_host(&id, &entry))
        .await?
        .ok_or_else(|| Denial::not_found(format!("no enrolled host {host_id}")))?;
    tracing::info!(%host_id, by = %caller.name(), "host clock re-baselined");
    Ok(Json(Rebaselined {
        host_id: host_id.to_string(),
        previous_clock: previous.clock,
        previous_reset_count: previous.reset_count,
        previous_restart_count: previous.restart_count,
    }))
}
