//! Administration: principals (the host inventory is in [`super::hosts`]). Every change is durable with its
//! audit entry naming the admin before the answer leaves (docs/design.md §11).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use super::auth::Caller;
use super::Fault;
use super::{blocking, tags, AppState, Body, Denial, Path};
use crate::api::{CreatedPrincipal, NewPrincipal, PrincipalView};
use crate::audit::AuditEntry;
use crate::model::{Principal, Role};
use crate::principal;

/// Principal names: 1-64 of [A-Za-z0-9._-], so they print and log safely.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub async fn list_principals(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<PrincipalView>>, Denial> {
    caller.require(&[Role::Admin])?;
    let all = blocking(&state, |s| s.principals()).await?;
    // Join tokens are listed by `GET /v1/join-tokens`.
    let views = all.into_iter().filter(|p| p.role != Role::JoinToken).map(|p| PrincipalView {
        name: p.name,
        role: p.role,
        created_at: p.created_at,
        tags: p.tags,
        created_by: p.created_by,
    });
    Ok(Json(views.collect()))
}

pub async fn add_principal(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<NewPrincipal>,
) -> Result<(StatusCode, Json<CreatedPrincipal>), Denial> {
    add(&state, &caller, req).await.map(|created| (StatusCode::CREATED, Json(created)))
}

/// Adds a principal (admin); an attester may be given the tags it confers (docs/design.md §5).
pub async fn add(state: &AppState, caller: &Caller, req: NewPrincipal) -> Result<CreatedPrincipal, Denial> {
    caller.require(&[Role::Admin])?;
    if !valid_name(&req.name) {
        return Err(Denial::bad_request("principal names are 1-64 characters of A-Z a-z 0-9 . _ -"));
    }
    if req.role == Role::JoinToken {
        return Err(Denial::bad_request("join tokens are made by POST /v1/join-tokens (runtrust join-token create)"));
    }
    let tags = tags::normalize(&req.tags)?;
    if !tags.is_empty() && req.role != Role::Attester {
        return Err(Denial::bad_request("only an attester principal confers tags (docs/design.md §5)"));
    }
    let minted = principal::mint(&state.rng).map_err(|_| Fault::Random)?;
    let now = state.clock.now_unix();
    let p = Principal {
        id: minted.principal_id,
        name: req.name.clone(),
        role: req.role,
        secret_sha256: minted.secret_sha256,
        created_at: now,
        tags: tags.clone(),
        created_by: Some(caller.name().to_owned()),
        join: None,
    };
    let detail = format!("principal {:?} with role {}, conferring tags [{}]", req.name, req.role, tags.join(", "));
    let entry = AuditEntry::new(now, "principal.add", detail)
        .by(caller.name())
        .diagnostics(json!({ "name": req.name, "role": req.role, "tags": tags }));
    blocking(state, move |s| s.add_principal(&p, &entry)).await?;
    tracing::info!(by = %caller.0.name, name = %req.name, role = req.role.name(), "principal added");
    Ok(CreatedPrincipal { name: req.name, role: req.role, credential: minted.credential, tags })
}

/// `POST /v1/principals/{name}/rotate` (admin): a new credential for principal `name`, shown once; the old
/// one stops working at once (docs/design.md §9 `principal rotate`). Audited as `principal.rotate`.
pub async fn rotate_principal(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<CreatedPrincipal>, Denial> {
    caller.require(&[Role::Admin])?;
    let minted = principal::mint(&state.rng).map_err(|_| Fault::Random)?;
    let entry = AuditEntry::new(state.clock.now_unix(), "principal.rotate", format!("principal {name:?}"))
        .by(caller.name())
        .diagnostics(json!({ "name": name }));
    let n = name.clone();
    let secret_sha256 = minted.secret_sha256.clone();
    let rotated = blocking(&state, move |s| {
        // A join token is not rotated: make another (runtrust join-token create) and revoke it.
        match s.principals()?.into_iter().find(|p| p.name == n) {
            Some(p) if p.role == Role::JoinToken => Ok(Err(())),
            Some(_) => s.rotate_principal(&n, &secret_sha256, &entry).map(Ok),
            None => Ok(Ok(None)),
        }
    })
    .await?;
    let p = match rotated {
        Err(()) => return Err(Denial::bad_request("a join token is not rotated: create another and revoke this one")),
        Ok(None) => return Err(Denial::not_found(format!("no principal {name:?}"))),
        Ok(Some(p)) => p,
    };
    tracing::info!(by = %caller.0.name, %name, "principal credential rotated");
    Ok(Json(CreatedPrincipal {
        name: p.name,
        role: p.role,
        credential: principal::bearer(&p.id, &minted.secret),
        tags: p.tags,
    }))
}

pub async fn remove_principal(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, Denial> {
    remove(&state, &caller, &name).await.map(|()| StatusCode::NO_CONTENT)
}

/// Removes a principal (admin): its credential stops working at once.
pub async fn remove(state: &AppState, caller: &Caller, name: &str) -> Result<(), Denial> {
    caller.require(&[Role::Admin])?;
    if name == caller.0.name {
        return Err(Denial::conflict("a principal cannot remove itself"));
    }
    let (n, name) = (name.to_owned(), name.to_owned());
    let entry = AuditEntry::new(state.clock.now_unix(), "principal.remove", format!("principal {name:?}"))
        .by(caller.name())
        .diagnostics(json!({ "name": name }));
    if blocking(state, move |s| s.remove_principal(&n, &entry)).await? {
        tracing::info!(by = %caller.0.name, %name, "principal removed");
        Ok(())
    } else {
        Err(Denial::not_found(format!("no principal {name:?}")))
    }
}
