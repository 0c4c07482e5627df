//! Issuer keys: `GET /v1/keys` (a COSE_KeySet, or PEM with `?format=pem`) and `POST /v1/keys/rotate`.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::{AppState, Body, Denial, Fault, Path, Query};
use crate::api::routes::SERVICE_ID_HEADER;
use crate::audit::AuditEntry;
use crate::config::edit::{edit_config, set_issuer_keys};
use crate::config::IssuerKeyFile;
use crate::model::Role;
use crate::token::{IssuerKey, SigningAlg};

#[derive(Deserialize)]
pub struct KeysQuery {
    format: Option<String>,
}

/// Public: relying parties need it to verify tokens offline. The service id (every token's `iss`) rides
/// along in a header, so that a gateway learns both from one answer (docs/design.md §9).
pub async fn keys(State(state): State<AppState>, Query(q): Query<KeysQuery>) -> Result<Response, Denial> {
    let set = state.verifying_keys()?;
    let (content_type, body) = match q.format.as_deref() {
        // For people (`runtrust keys list`): configuration order, the last one signs.
        Some("json") => {
            let n = set.len();
            let rows: Vec<serde_json::Value> = set
                .keys()
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let role = if i + 1 == n { "signing" } else { "verifying" };
                    serde_json::json!({ "kid": k.kid_hex(), "alg": k.alg().to_string(), "role": role })
                })
                .collect();
            ("application/json", serde_json::to_vec(&rows).map_err(Denial::internal)?)
        }
        None | Some("cose") => ("application/cose-key-set", set.to_cose_keyset()),
        Some("pem") => ("application/x-pem-file", set.to_pem().into_bytes()),
        Some(other) => return Err(Denial::bad_request(format!("format {other:?}: cose, pem or json"))),
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    // A service id that is not header-safe ASCII is not sent: its gateways are given it with --issuer.
    if let Ok(id) = HeaderValue::from_str(&state.config.service_id) {
        response.headers_mut().insert(SERVICE_ID_HEADER, id);
    }
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[serde(default)]
    alg: Option<SigningAlg>,
}

/// Adds a new signing key; tokens signed by older keys keep verifying until they expire.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<RotateRequest>,
) -> Result<Json<serde_json::Value>, Denial> {
    rotate_key(&state, &caller, req.alg).await.map(|kid| Json(serde_json::json!({ "kid": kid })))
}

/// Makes a new issuer key the signing key (admin); audited as `keys.rotate` with the admin's name, durably
/// before the new key is configured or used (docs/design.md §11): no key signs anything unaudited.
pub async fn rotate_key(state: &AppState, caller: &Caller, alg: Option<SigningAlg>) -> Result<String, Denial> {
    caller.require(&[Role::Admin])?;
    let (state2, by) = (state.clone(), caller.name().to_owned());
    let runtime = tokio::runtime::Handle::current();
    let kid = tokio::task::spawn_blocking(move || -> Result<String, Denial> {
        let state = state2;
        let mut keys = state.issuer.write().map_err(|_| Fault::Poisoned("issuer keys"))?;
        let alg = alg.or(keys.last().map(|(f, _)| f.alg)).unwrap_or_default();
        let n = keys.len() + 1;
        let file =
            crate::service::init::new_issuer_key(&state.data_dir, n, alg, &state.rng).map_err(Denial::internal)?;
        let pkcs8 = std::fs::read(state.data_dir.join(&file.path)).map_err(Denial::internal)?;
        let key = IssuerKey::from_pkcs8(alg, &pkcs8).map_err(Denial::internal)?;
        let kid = hex::encode(key.kid());
        let entry = AuditEntry::new(state.clock.now_unix(), "keys.rotate", format!("issuer key {kid} ({alg})"))
            .by(&by)
            .diagnostics(serde_json::json!({ "kid": kid, "key": file.path }));
        // Still under the keys' lock: on a blocking thread, waiting for the store is allowed.
        runtime.block_on(state.store.run(move |s| s.append_audit(&entry)))?;
        let files: Vec<IssuerKeyFile> = keys.iter().map(|(f, _)| f.clone()).chain([file.clone()]).collect();
        edit_config(&state.data_dir, |doc| set_issuer_keys(doc, &files)).map_err(Denial::internal)?;
        keys.push((file, key));
        Ok(kid)
    })
    .await
    .map_err(Denial::internal)??;
    tracing::info!(by = %caller.0.name, %kid, "issuer key rotated");
    Ok(kid)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    /// Why (a compromised key, a finished rotation): kept in the audit entry.
    reason: String,
}

/// `POST /v1/keys/{kid}/retire` (admin): an older issuer key stops verifying at once, so tokens it signed are
/// refused everywhere keys are fetched anew. The signing key cannot be retired: rotate first. Audited as
/// `keys.retire` before the key is dropped from config.toml (its file stays, for the operator to destroy).
pub async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    Path(kid): Path<String>,
    Body(req): Body<RetireRequest>,
) -> Result<Json<serde_json::Value>, Denial> {
    caller.require(&[Role::Admin])?;
    if req.reason.trim().is_empty() {
        return Err(Denial::bad_request("a reason is required"));
    }
    let (state2, by, kid2) = (state.clone(), caller.name().to_owned(), kid.to_ascii_lowercase());
    let runtime = tokio::runtime::Handle::current();
    let retired = tokio::task::spawn_blocking(move || -> Result<IssuerKeyFile, Denial> {
        let (state, kid) = (state2, kid2);
        let mut keys = state.issuer.write().map_err(|_| Fault::Poisoned("issuer keys"))?;
        let Some(i) = keys.iter().position(|(_, k)| hex::encode(k.kid()) == kid) else {
            return Err(Denial::not_found(format!("no issuer key {kid}")));
        };
        if i + 1 == keys.len() {
            return Err(Denial::conflict(format!(
                "{kid} is the signing key: `runtrust keys rotate` first, then retire it"
            )));
        }
        let file = keys[i].0.clone();
        let entry = AuditEntry::new(state.clock.now_unix(), "keys.retire", format!("issuer key {kid}: {}", req.reason))
            .by(&by)
            .diagnostics(serde_json::json!({ "kid": kid, "key": file.path, "reason": req.reason }));
        runtime.block_on(state.store.run(move |s| s.append_audit(&entry)))?;
        let files: Vec<IssuerKeyFile> =
            keys.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, (f, _))| f.clone()).collect();
        edit_config(&state.data_dir, |doc| set_issuer_keys(doc, &files)).map_err(Denial::internal)?;
        keys.remove(i);
        Ok(file)
    })
    .await
    .map_err(Denial::internal)??;
    tracing::info!(by = %caller.0.name, %kid, "issuer key retired");
    Ok(Json(serde_json::json!({ "kid": kid.to_ascii_lowercase(), "file": retired.path })))
}
