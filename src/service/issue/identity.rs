//! Stage 3, identity verification: the host is enrolled (stage 2 loaded it) and not revoked, and the quote
//! comes from its enrolled AK — the runtime identity.

use runtrust_attestation::{DenialCode, Public};

use super::super::{blocking, AppState, Denial};
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::store::{revoked_key, RevocationKind};

pub struct RuntimeIdentity {
    /// The enrolled AK: the only key whose quotes count for this host.
    pub ak: Public,
}

pub async fn verify(state: &AppState, req: &ExecutionRequest, decision: &Decision) -> Result<RuntimeIdentity, Denial> {
    let host = &decision.host;
    let key = revoked_key(RevocationKind::Host, &host.host_id);
    if let Some(r) = blocking(state, move |s| s.revoked(&key)).await? {
        return Err(Denial::new(
            DenialCode::Revoked,
            format!("host {} was revoked by {} at {}: {}", host.host_id, r.by, r.time, r.reason),
        ));
    }
    if !runtrust_attestation::ct_eq(req.ak_name.as_bytes(), host.ak_name.as_bytes()) {
        return Err(Denial::new(
            DenialCode::RuntimeIdentityMismatch,
            format!("the quote is by AK {}, host {} enrolled AK {}", req.ak_name, host.host_id, host.ak_name),
        ));
    }
    let ak = Public::from_tpm2b(&host.ak_public).map_err(Denial::internal)?;
    Ok(RuntimeIdentity { ak })
}
