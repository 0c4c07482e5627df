//! The host inventory: list and show (admin, auditor); the operator's tags (`hosts tag`, docs/design.md §5)
//! and lifting a host's revocation (`hosts unrevoke`, docs/design.md §11), admin only, each durable with its
//! audit entry naming the admin before the answer leaves. Their refusals are audited as `host.deny`.

use axum::extract::State;
use axum::Json;
use serde_json::json;

use super::auth::Caller;
use super::revocation::host_revoked;
use super::{blocking, tags, AppState, Body, Denial, Path};
use crate::api::{HostView, RevocationView, RevokeRequest, SetTags, UnrevokeRequest};
use crate::audit::AuditEntry;
use crate::model::{lift_key, HostId, HostRecord, Revocation, RevocationKind, Role};
use crate::store::{Store, StoreError};

/// Bound on a lift's reason.
const MAX_REASON: usize = 1024;

/// A host with its revocation state.
pub fn view(s: &dyn Store, h: &HostRecord) -> Result<HostView, StoreError> {
    let revocation = host_revoked(s, &h.host_id)?;
    let lifted = s.revoked(&lift_key(&h.host_id))?;
    Ok(HostView {
        host_id: h.host_id.to_string(),
        tags: h.tags.clone(),
        ak_name: h.ak_name.clone(),
        ek_certificate_sha256: h.ek_certificate_sha256.clone(),
        enrolled_at: h.enrolled_at,
        revoked: revocation.is_some(),
        enrolled_by: h.enrolled_by.clone(),
        updated_at: h.updated_at,
        revocation: revocation.map(RevocationView::from),
        lifted: lifted.map(RevocationView::from),
    })
}

/// A host id from a path: `sha256:<64 hex>`, any case.
fn host_id(raw: &str) -> Result<HostId, Denial> {
    raw.parse().map_err(|_| Denial::bad_request("a host id is sha256:<64 hex digits>, as `runtrust enroll` prints it"))
}

/// `GET /v1/hosts`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<HostView>>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    let views = blocking(&state, |s| s.hosts()?.iter().map(|h| view(s, h)).collect()).await?;
    Ok(Json(views))
}

/// `GET /v1/hosts/{host_id}`.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<HostView>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    let id = host_id(&raw)?;
    let found = blocking(&state, move |s| s.host(&id)?.map(|h| view(s, &h)).transpose()).await?;
    found.map(Json).ok_or_else(|| Denial::not_found(format!("no host {raw} is enrolled")))
}

/// `POST /v1/hosts/{host_id}/tags`.
pub async fn tag(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<SetTags>,
) -> Result<Json<HostView>, Denial> {
    set_tags(&state, &caller, &raw, &req.tags).await.map(Json)
}

/// Replaces a host's tags (admin): which policies select it changes with them.
pub async fn set_tags(state: &AppState, caller: &Caller, raw: &str, asked: &[String]) -> Result<HostView, Denial> {
    caller.require(&[Role::Admin])?;
    let id = host_id(raw)?;
    let tags = tags::normalize(asked)?;
    let entry = AuditEntry::new(state.clock.now_unix(), "host.tag", format!("tags [{}]", tags.join(", ")))
        .by(caller.name())
        .host(&id)
        .diagnostics(json!({ "tags": tags }));
    let key = id.clone();
    let updated = blocking(state, move |s| s.set_host_tags(&key, &tags, &entry)?.map(|h| view(s, &h)).transpose())
        .await?
        .ok_or_else(|| Denial::not_found(format!("no host {id} is enrolled")).about_host(Some(&id)))?;
    tracing::info!(host = %id, tags = ?updated.tags, by = %caller.name(), "host tags set");
    Ok(updated)
}

/// `POST /v1/hosts/{host_id}/unrevoke`.
pub async fn unrevoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<UnrevokeRequest>,
) -> Result<Json<RevocationView>, Denial> {
    lift(&state, &caller, &raw, &req.reason).await.map(|r| Json(r.into()))
}

/// Lifts a host's revocation (admin): the host may be issued tokens again; every token issued before the
/// lift stays revoked (docs/design.md §11). The lift is appended to the revocation feed.
pub async fn lift(state: &AppState, caller: &Caller, raw: &str, reason: &str) -> Result<Revocation, Denial> {
    caller.require(&[Role::Admin])?;
    let id = host_id(raw)?;
    let reason = reason.trim().to_owned();
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(Denial::bad_request(format!("a lift needs a reason of 1-{MAX_REASON} bytes")).about_host(Some(&id)));
    }
    let now = state.clock.now_unix();
    let by = caller.name().to_owned();
    // The store reads the revocation it lifts inside its own step (serialized with revocations and execution
    // starts, docs/design.md §15); the one read here only names it in the audit entry.
    let key = id.clone();
    let lifted = blocking(state, move |s| {
        // A removed host (`hosts remove`) has no record but keeps its revocation: lifting it lets it enroll again.
        let Some(current) = host_revoked(s, &key)? else {
            if s.host(&key)?.is_none() {
                return Ok(Err(Denial::not_found(format!("no host {key} is enrolled or revoked"))));
            }
            return Ok(Err(Denial::conflict(format!("host {key} is not revoked"))));
        };
        let lift = Revocation {
            seq: 0,
            kind: RevocationKind::Unrevoke,
            target: key.to_string(),
            policy_hash: None,
            reason: reason.clone(),
            time: now,
            by: by.clone(),
            tokens: Vec::new(),
            audit_index: 0,
            lifts: None,
        };
        let detail = format!("lifted revocation {} of host {key} ({}): {reason}", current.seq, current.reason);
        let entry = AuditEntry::new(now, "host.unrevoke", detail)
            .by(&by)
            .host(&key)
            .diagnostics(json!({ "lifts": current.seq }));
        Ok(s.unrevoke_host(&lift, &entry)?.ok_or_else(|| Denial::conflict(format!("host {key} is not revoked"))))
    })
    .await?
    .map_err(|d| d.about_host(Some(&id)))?;
    tracing::info!(host = %id, seq = lifted.seq, lifts = ?lifted.lifts, by = %caller.name(), "host revocation lifted");
    Ok(lifted)
}

/// `POST /v1/hosts/{host_id}/remove` (admin): decommissions a host. It is revoked first (unless it already
/// is), so that every token issued to it stops at once and the same TPM cannot enroll again unnoticed; then
/// its record, AK index entry and principal binding go, audited as `host.remove`. Its tokens, executions and
/// revocations stay for lineage and audit. To let the TPM enroll again: `hosts unrevoke`, then enroll.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(req): Body<UnrevokeRequest>,
) -> Result<Json<HostView>, Denial> {
    caller.require(&[Role::Admin])?;
    let id = host_id(&raw)?;
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(
            Denial::bad_request(format!("a removal needs a reason of 1-{MAX_REASON} bytes")).about_host(Some(&id))
        );
    }
    let key = id.clone();
    let Some(before) = blocking(&state, move |s| s.host(&key)?.map(|h| view(s, &h)).transpose()).await? else {
        return Err(Denial::not_found(format!("no host {id} is enrolled")).about_host(Some(&id)));
    };
    if !before.revoked {
        let revoke =
            RevokeRequest { kind: RevocationKind::Host, target: id.to_string(), reason: format!("removed: {reason}") };
        super::revocation::revoke_now(&state, &caller, revoke).await?;
        super::high_water::advance(&state).await;
    }
    let entry = AuditEntry::new(state.clock.now_unix(), "host.remove", format!("host {id}: {reason}"))
        .by(caller.name())
        .host(id.as_ref())
        .diagnostics(json!({ "tags": before.tags, "ak_name": before.ak_name, "enrolled_by": before.enrolled_by }));
    let key = id.clone();
    let removed = blocking(&state, move |s| s.remove_host(&key, &entry)).await?;
    if removed.is_none() {
        return Err(Denial::not_found(format!("host {id} was removed meanwhile")).about_host(Some(&id)));
    }
    tracing::info!(by = %caller.0.name, host = %id, "host removed");
    Ok(Json(HostView { revoked: true, ..before }))
}
