//! Stage 3, identity verification (docs/design.md §2): the host is enrolled and not revoked, and the
//! quote comes from its enrolled AK — the runtime identity. It runs before policy work, so that an unknown
//! or revoked host, or another TPM, costs no policy or parent-signature checks.

use runtrust_attestation::{DenialCode, Public};

use super::super::revocation::{self, RevocationError};
use super::super::{denial_from, quick, AppState, DenialReason, Fault};
use super::request::ExecutionRequest;
use crate::model::{HostId, HostRecord};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("host {0} is not enrolled")]
    HostUnknown(HostId),
    #[error(transparent)]
    Revoked(#[from] RevocationError),
    #[error("the quote is by AK {quoted}, host {host} enrolled AK {enrolled}")]
    OtherAk { quoted: String, host: HostId, enrolled: String },
    #[error("the enrolled AK of host {0} does not parse")]
    StoredAk(HostId),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for IdentityError {
    fn code(&self) -> DenialCode {
        match self {
            IdentityError::HostUnknown(_) => DenialCode::HostUnknown,
            IdentityError::Revoked(e) => e.code(),
            IdentityError::OtherAk { .. } => DenialCode::RuntimeIdentityMismatch,
            IdentityError::StoredAk(_) | IdentityError::Fault(_) => DenialCode::InternalError,
        }
    }
}

denial_from!(IdentityError);

/// The attesting host, as enrolled.
pub struct RuntimeIdentity {
    pub host: HostRecord,
    /// The enrolled AK: the only key whose quotes count for this host.
    pub ak: Public,
}

pub async fn verify(state: &AppState, req: &ExecutionRequest) -> Result<RuntimeIdentity, IdentityError> {
    let id = req.host_id.clone();
    let (host, revoked) = quick(state, move |s| {
        let Some(host) = s.host(&id)? else { return Ok((None, None)) };
        let revoked = revocation::host_revoked(s, &host.host_id)?;
        Ok((Some(host), revoked))
    })
    .await?;
    let host = host.ok_or_else(|| IdentityError::HostUnknown(req.host_id.clone()))?;
    if let Some(r) = revoked {
        return Err(RevocationError::Host { host: host.host_id.clone(), revocation: Box::new(r) }.into());
    }
    if !runtrust_attestation::ct_eq(req.ak_name.as_bytes(), host.ak_name.as_bytes()) {
        return Err(IdentityError::OtherAk {
            quoted: req.ak_name.clone(),
            host: host.host_id.clone(),
            enrolled: host.ak_name.clone(),
        });
    }
    let ak = Public::from_tpm2b(&host.ak_public).map_err(|_| IdentityError::StoredAk(host.host_id.clone()))?;
    Ok(RuntimeIdentity { host, ak })
}
