//! EK certificate trust anchors (docs/design.md §5): loaded from the PEM files `ek.anchors` lists, and managed
//! at run time (`runtrust ek-ca list|add|remove`) without `init --force`: `GET|POST /v1/ek-anchors`,
//! `DELETE /v1/ek-anchors/{fingerprint}`. A change is audited first, then written to the data directory
//! (`ek-ca/<fingerprint>.pem`, `config.toml` edited in place), then used by the next enrollment.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use runtrust_attestation::ek::TrustAnchors;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Caller;
use super::{AppState, Body, Denial, Fault, Path};
use crate::audit::AuditEntry;
use crate::config::edit::{edit_config, set_ek_anchors};
use crate::config::{resolve, ConfigError};
use crate::fsutil;
use crate::model::Role;

/// Largest PEM text `POST /v1/ek-anchors` takes (a vendor bundle of a few dozen CAs fits).
pub const MAX_PEM_BYTES: usize = 256 * 1024;

/// The anchors and the file each came from.
#[derive(Default)]
pub struct AnchorFiles {
    /// Each configured file (as `ek.anchors` names it) and its certificates (DER).
    files: Vec<(PathBuf, Vec<Vec<u8>>)>,
    /// All of them, for path validation.
    pub anchors: TrustAnchors,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

impl AnchorFiles {
    /// Reads every file of `ek.anchors`, all or nothing.
    pub fn load(data_dir: &FsPath, files: &[PathBuf]) -> Result<Self, AnchorError> {
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let p = resolve(data_dir, f);
            let pem = std::fs::read(&p).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
            let certs = TrustAnchors::from_pem(&pem)
                .map_err(|e| AnchorError::Invalid { path: p.clone(), detail: e.to_string() })?;
            out.push((f.clone(), certs.der_certs().to_vec()));
        }
        Self::from_files(out).map_err(|detail| AnchorError::Invalid { path: data_dir.join("ek-ca"), detail })
    }

    fn from_files(files: Vec<(PathBuf, Vec<Vec<u8>>)>) -> Result<Self, String> {
        let all = files.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
        let anchors = TrustAnchors::from_der_certs(all).map_err(|e| e.to_string())?;
        Ok(Self { files, anchors })
    }

    fn list(&self) -> Vec<AnchorView> {
        let mut out = Vec::new();
        for (file, certs) in &self.files {
            let Ok(one) = TrustAnchors::from_der_certs(certs.clone()) else { continue };
            out.extend(one.describe().into_iter().map(|a| AnchorView {
                fingerprint: hex::encode(a.fingerprint_sha256),
                subject: a.subject,
                not_after: a.not_after,
                file: file.clone(),
            }));
        }
        out
    }
}

/// One anchor, as `GET /v1/ek-anchors` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnchorView {
    /// SHA-256 of the certificate's DER, hex.
    pub fingerprint: String,
    pub subject: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// The file in the data directory it is kept in.
    pub file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddAnchors {
    /// PEM text with one or more CERTIFICATE blocks.
    pem: String,
}

fn current(state: &AppState) -> Result<Arc<AnchorFiles>, Fault> {
    state.anchors.read().map(|a| Arc::clone(&a)).map_err(|_| Fault::Poisoned("EK anchors"))
}

/// `GET /v1/ek-anchors` (admin, auditor).
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<AnchorView>>, Denial> {
    caller.require(&[Role::Admin, Role::Auditor])?;
    Ok(Json(current(&state)?.list()))
}

/// `POST /v1/ek-anchors` (admin): trusts the certificates of one PEM text, kept as one new file.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<AddAnchors>,
) -> Result<(StatusCode, Json<Vec<AnchorView>>), Denial> {
    caller.require(&[Role::Admin])?;
    if req.pem.len() > MAX_PEM_BYTES {
        return Err(Denial::bad_request(format!("the PEM text is over {MAX_PEM_BYTES} bytes")));
    }
    let new = TrustAnchors::from_pem(req.pem.as_bytes()).map_err(|e| Denial::bad_request(e.to_string()))?;
    let added = new.describe();
    let known: Vec<String> = current(&state)?.list().into_iter().map(|a| a.fingerprint).collect();
    if let Some(dup) = added.iter().find(|a| known.contains(&hex::encode(a.fingerprint_sha256))) {
        return Err(Denial::conflict(format!("{} is already a trust anchor", dup.subject)));
    }
    let current = current(&state)?;
    let all = current.anchors.der_certs().iter().chain(new.der_certs()).cloned().collect();
    TrustAnchors::from_der_certs(all).map_err(|e| Denial::bad_request(e.to_string()))?;
    let Some(first) = added.first() else { return Err(Denial::bad_request("no certificate")) };
    let file = PathBuf::from(format!("ek-ca/{}.pem", &hex::encode(first.fingerprint_sha256)[..16]));
    let views: Vec<AnchorView> = added
        .iter()
        .map(|a| AnchorView {
            fingerprint: hex::encode(a.fingerprint_sha256),
            subject: a.subject.clone(),
            not_after: a.not_after,
            file: file.clone(),
        })
        .collect();
    let entry = AuditEntry::new(state.clock.now_unix(), "ek_ca.add", format!("{} EK trust anchor(s)", views.len()))
        .by(caller.name())
        .diagnostics(json!({ "anchors": views }));
    let pem = canonical_pem(new.der_certs());
    change(&state, entry, move |data_dir, files| {
        fsutil::write_atomic(&resolve(data_dir, &file), pem.as_bytes(), 0o644).map_err(Denial::internal)?;
        files.push((file, new.der_certs().to_vec()));
        Ok(())
    })
    .await?;
    tracing::info!(by = %caller.0.name, count = views.len(), "EK trust anchors added");
    Ok((StatusCode::CREATED, Json(views)))
}

/// `DELETE /v1/ek-anchors/{fingerprint}` (admin): stops trusting one certificate. Its file is rewritten
/// without it, or dropped (and deleted) when it held only this one.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(fingerprint): Path<String>,
) -> Result<Json<AnchorView>, Denial> {
    caller.require(&[Role::Admin])?;
    let fingerprint = fingerprint.to_ascii_lowercase();
    let Some(view) = current(&state)?.list().into_iter().find(|a| a.fingerprint == fingerprint) else {
        return Err(Denial::not_found(format!("no trust anchor with SHA-256 fingerprint {fingerprint}")));
    };
    let entry = AuditEntry::new(state.clock.now_unix(), "ek_ca.remove", format!("EK trust anchor {}", view.subject))
        .by(caller.name())
        .diagnostics(json!({ "anchor": view }));
    let (fp, file) = (fingerprint.clone(), view.file.clone());
    change(&state, entry, move |data_dir, files| {
        let Some(i) = files.iter().position(|(f, _)| *f == file) else { return Ok(()) };
        let path = resolve(data_dir, &file);
        files[i].1.retain(|der| hex::encode(ring::digest::digest(&ring::digest::SHA256, der)) != fp);
        if files[i].1.is_empty() {
            files.remove(i);
            // The copy is ours (init and `ek-ca add` write them); a file kept elsewhere is left in place.
            if path.starts_with(data_dir.join("ek-ca")) {
                let _ = std::fs::remove_file(&path);
            }
        } else {
            fsutil::write_atomic(&path, canonical_pem(&files[i].1).as_bytes(), 0o644).map_err(Denial::internal)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(by = %caller.0.name, %fingerprint, "EK trust anchor removed");
    Ok(Json(view))
}

/// Audits `entry` (durably, first), applies `edit` to the files, rewrites `ek.anchors` in config.toml and swaps
/// the anchors in use. One change at a time (the anchors' write lock is held throughout).
async fn change(
    state: &AppState,
    entry: AuditEntry,
    edit: impl FnOnce(&FsPath, &mut Vec<(PathBuf, Vec<Vec<u8>>)>) -> Result<(), Denial> + Send + 'static,
) -> Result<(), Denial> {
    let state2 = state.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || -> Result<(), Denial> {
        let state = state2;
        let mut guard = state.anchors.write().map_err(|_| Fault::Poisoned("EK anchors"))?;
        runtime.block_on(state.store.run(move |s| s.append_audit(&entry)))?;
        let mut files = guard.files.clone();
        edit(&state.data_dir, &mut files)?;
        let names: Vec<PathBuf> = files.iter().map(|(f, _)| f.clone()).collect();
        let next = AnchorFiles::from_files(files).map_err(Denial::bad_request)?;
        edit_config(&state.data_dir, |doc| set_ek_anchors(doc, &names)).map_err(Denial::internal)?;
        *guard = Arc::new(next);
        Ok(())
    })
    .await
    .map_err(Denial::internal)?
}

/// DER certificates as PEM (RFC 7468 §5).
fn canonical_pem(certs: &[Vec<u8>]) -> String {
    certs.iter().map(|der| crate::token::pem::encode("CERTIFICATE", der)).collect()
}
