//! Join tokens (docs/design.md §5): an admin makes one for a batch of hosts; each host that enrolls with it
//! becomes an attester principal of its own ([`super::enroll`]). A join token is a principal of role
//! `join_token` that carries the tags it confers and its [`JoinAllowance`]; it may do nothing but enroll.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use super::auth::Caller;
use super::{blocking, tags, AppState, Body, Denial, Fault, Path};
use crate::api::{CreatedJoinToken, JoinTokenView, NewJoinToken};
use crate::audit::AuditEntry;
use crate::model::{JoinAllowance, Principal, Role};
use crate::principal;

/// At most this many hosts per join token.
pub const MAX_USES: u32 = 100_000;
/// A join token lives at most a year.
pub const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

fn view(p: &Principal) -> Option<JoinTokenView> {
    let j = p.join.filter(|_| p.role == Role::JoinToken)?;
    Some(JoinTokenView {
        id: p.id.clone(),
        tags: p.tags.clone(),
        uses: j.uses,
        used: j.used,
        expires_at: j.expires_at,
        created_at: p.created_at,
        created_by: p.created_by.clone(),
    })
}

/// `POST /v1/join-tokens` (admin); its secret is in the answer only.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<NewJoinToken>,
) -> Result<(StatusCode, Json<CreatedJoinToken>), Denial> {
    caller.require(&[Role::Admin])?;
    let tags = tags::normalize(&req.tags)?;
    if !(1..=MAX_USES).contains(&req.uses) {
        return Err(Denial::bad_request(format!("uses must be 1 to {MAX_USES}")));
    }
    if !(1..=MAX_TTL_SECS).contains(&req.ttl_secs) {
        return Err(Denial::bad_request(format!("ttl_secs must be 1 to {MAX_TTL_SECS} (366 days)")));
    }
    let minted = principal::mint(&state.rng).map_err(|_| Fault::Random)?;
    let now = state.clock.now_unix();
    let p = Principal {
        id: minted.principal_id.clone(),
        name: format!("join-{}", minted.principal_id),
        role: Role::JoinToken,
        secret_sha256: minted.secret_sha256,
        created_at: now,
        tags: tags.clone(),
        created_by: Some(caller.name().to_owned()),
        join: Some(JoinAllowance { uses: req.uses, used: 0, expires_at: now.saturating_add(req.ttl_secs) }),
    };
    let view = view(&p).ok_or_else(|| Denial::internal("a join token without its allowance"))?;
    let detail = format!(
        "join token {} for {} hosts until {}, conferring tags [{}]",
        p.id,
        req.uses,
        view.expires_at,
        tags.join(", ")
    );
    let entry = AuditEntry::new(now, "join_token.create", detail)
        .by(caller.name())
        .diagnostics(json!({ "id": p.id, "uses": req.uses, "expires_at": view.expires_at, "tags": tags }));
    blocking(&state, move |s| s.add_principal(&p, &entry)).await?;
    tracing::info!(by = %caller.0.name, id = %view.id, uses = view.uses, "join token created");
    Ok((StatusCode::CREATED, Json(CreatedJoinToken { view, token: minted.credential })))
}

/// `GET /v1/join-tokens` (admin): every join token not revoked, spent and expired ones included.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<JoinTokenView>>, Denial> {
    caller.require(&[Role::Admin])?;
    let all = blocking(&state, |s| s.principals()).await?;
    Ok(Json(all.iter().filter_map(view).collect()))
}

/// `DELETE /v1/join-tokens/{id}` (admin): it enrolls no more hosts; those it enrolled keep their principals.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Denial> {
    caller.require(&[Role::Admin])?;
    let wanted = id.clone();
    let found = blocking(&state, move |s| s.principal(&wanted)).await?.and_then(|p| view(&p).map(|v| (p.name, v)));
    let Some((name, v)) = found else {
        return Err(Denial::not_found(format!("no join token {id:?} (runtrust join-token list)")));
    };
    let detail = format!("join token {id} ({} of {} uses spent)", v.used, v.uses);
    let entry = AuditEntry::new(state.clock.now_unix(), "join_token.revoke", detail)
        .by(caller.name())
        .diagnostics(json!({ "id": id, "used": v.used, "uses": v.uses }));
    if blocking(&state, move |s| s.remove_principal(&name, &entry)).await? {
        tracing::info!(by = %caller.0.name, %id, "join token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Denial::not_found(format!("no join token {id:?}")))
    }
}
