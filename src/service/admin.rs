//! Administration: principals and the host inventory.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::auth::Caller;
use super::Fault;
use super::{blocking, AppState, Body, Denial, Path};
use crate::api::{CreatedPrincipal, HostView, NewPrincipal, PrincipalView};
use crate::model::{HostRecord, Principal, Role};
use crate::principal;

/// Principal names: 1-64 of [A-Za-z0-9._-], so they print and log safely.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub fn host_view(h: &HostRecord) -> HostView {
    HostView {
        host_id: h.host_id.to_string(),
        tags: h.tags.clone(),
        ak_name: h.ak_name.clone(),
        ek_certificate_sha256: h.ek_certificate_sha256.clone(),
        enrolled_at: h.enrolled_at,
        revoked: false,
    }
}

pub async fn list_hosts(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<HostView>>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    let hosts = blocking(&state, |s| s.hosts()).await?;
    Ok(Json(hosts.iter().map(host_view).collect()))
}

pub async fn list_principals(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PrincipalView>>, Denial> {
    caller.require(&[Role::Admin])?;
    let all = blocking(&state, |s| s.principals()).await?;
    Ok(Json(all.into_iter().map(|p| PrincipalView { name: p.name, role: p.role, created_at: p.created_at }).collect()))
}

pub async fn add_principal(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<NewPrincipal>,
) -> Result<(StatusCode, Json<CreatedPrincipal>), Denial> {
    caller.require(&[Role::Admin])?;
    if !valid_name(&req.name) {
        return Err(Denial::bad_request("principal names are 1-64 characters of A-Z a-z 0-9 . _ -"));
    }
    let minted = principal::mint(&state.rng).map_err(|_| Fault::Random)?;
    let p = Principal {
        id: minted.principal_id,
        name: req.name.clone(),
        role: req.role,
        secret_sha256: minted.secret_sha256,
        created_at: state.clock.now_unix(),
    };
    blocking(&state, move |s| s.add_principal(&p)).await?;
    tracing::info!(by = %caller.0.name, name = %req.name, role = req.role.name(), "principal added");
    Ok((StatusCode::CREATED, Json(CreatedPrincipal { name: req.name, role: req.role, credential: minted.credential })))
}

pub async fn remove_principal(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, Denial> {
    caller.require(&[Role::Admin])?;
    if name == caller.0.name {
        return Err(Denial::conflict("a principal cannot remove itself"));
    }
    let n = name.clone();
    if blocking(&state, move |s| s.remove_principal(&n)).await? {
        tracing::info!(by = %caller.0.name, %name, "principal removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Denial::not_found(format!("no principal {name:?}")))
    }
}
