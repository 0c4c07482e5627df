//! Stage 1, execution request: who (the initiator), what (scope), for whom (audience), how long (ttl), from
//! which host (the one this initiator enrolled).

use runtrust_attestation::DenialCode;

use super::super::auth::Caller;
use super::super::{blocking, AppState, Denial};
use crate::api::{QuoteEvidence, TokenRequest};
use crate::scope;
use crate::store::{Principal, Role};

/// Audiences name relying parties: 1-256 printable ASCII characters.
fn valid_audience(a: &str) -> bool {
    (1..=256).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_graphic())
}

pub struct ExecutionRequest {
    pub initiator: Principal,
    pub host_id: String,
    pub scope: String,
    pub audience: String,
    pub ttl_secs: Option<u64>,
    pub nonce: String,
    pub ak_name: String,
    pub quote: QuoteEvidence,
    pub parent: Option<Vec<u8>>,
    /// Delegate to this enrolled host instead of the requester's.
    pub for_host: Option<String>,
    /// The host's TCG event log, when it sent one.
    pub event_log: Option<Vec<u8>>,
}

pub async fn execution_request(
    state: &AppState,
    caller: &Caller,
    req: TokenRequest,
) -> Result<ExecutionRequest, Denial> {
    caller.require(&[Role::Attester])?;
    // A token's scope may be a pattern (deploy/web/*): the gateway runs scopes within it.
    scope::validate(&req.scope, true).map_err(|e| Denial::new(DenialCode::ScopeDenied, e.to_string()))?;
    if !valid_audience(&req.audience) {
        return Err(Denial::new(DenialCode::AudienceMismatch, "audience must be 1-256 printable ASCII characters"));
    }
    if req.ttl_secs == Some(0) {
        return Err(Denial::new(DenialCode::PolicyMismatch, "ttl must be positive"));
    }
    if let Some(log) = req.event_log.as_ref().filter(|l| l.len() > crate::api::MAX_EVENT_LOG_BYTES) {
        return Err(Denial::new(
            DenialCode::EventLogMismatch,
            format!("the event log is {} bytes; the limit is {}", log.len(), crate::api::MAX_EVENT_LOG_BYTES),
        ));
    }
    let principal_id = caller.0.id.clone();
    let host_id = blocking(state, move |s| s.principal_host(&principal_id)).await?.ok_or_else(|| {
        Denial::new(DenialCode::HostUnknown, "this credential has not enrolled a host: run runtrust enroll")
    })?;
    Ok(ExecutionRequest {
        initiator: caller.0.clone(),
        host_id,
        scope: req.scope,
        audience: req.audience,
        ttl_secs: req.ttl_secs,
        nonce: req.nonce,
        ak_name: req.ak_name,
        quote: req.quote,
        parent: req.parent,
        for_host: req.for_host.map(|h| h.to_ascii_lowercase()),
        event_log: req.event_log,
    })
}
