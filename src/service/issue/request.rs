//! Stage 1, execution request (docs/design.md §2): who (the initiator), what (scope), for whom (audience),
//! how long (ttl), from which host (the one this initiator enrolled), under which nonce.

use runtrust_attestation::DenialCode;

use super::super::auth::{AuthError, Caller};
use super::super::{denial_from, quick, AppState, DenialReason, Fault};
use crate::api::{QuoteEvidence, TokenRequest, MAX_EVENT_LOG_BYTES};
use crate::model::{HostId, Nonce, Principal, Role};
use crate::scope;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Scope(scope::ScopeError),
    #[error("audience must be 1-256 printable ASCII characters")]
    Audience,
    #[error("ttl must be positive")]
    ZeroTtl,
    #[error("ak_name must be the hex of a TPM name (at most {MAX_AK_NAME_HEX} hex digits)")]
    AkName,
    #[error("for_host must be a host id (sha256: and 64 hex digits)")]
    ForHost,
    #[error("the event log is {len} bytes; the limit is {MAX_EVENT_LOG_BYTES}")]
    EventLogTooLarge { len: usize },
    /// Not 64 hex digits: no challenge ever carried it.
    #[error("this nonce was never issued")]
    Nonce,
    #[error("this credential has not enrolled a host: run runtrust enroll")]
    NotEnrolled,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for RequestError {
    fn code(&self) -> DenialCode {
        match self {
            RequestError::Auth(e) => e.code(),
            RequestError::Scope(_) => DenialCode::ScopeDenied,
            RequestError::Audience => DenialCode::AudienceMismatch,
            RequestError::ZeroTtl => DenialCode::PolicyMismatch,
            // Not a name any AK has, so not the enrolled one's.
            RequestError::AkName => DenialCode::RuntimeIdentityMismatch,
            RequestError::ForHost => DenialCode::HostUnknown,
            RequestError::EventLogTooLarge { .. } => DenialCode::EventLogMismatch,
            RequestError::Nonce => DenialCode::NonceUnknown,
            RequestError::NotEnrolled => DenialCode::HostUnknown,
            RequestError::Fault(_) => DenialCode::InternalError,
        }
    }

    fn status(&self) -> Option<axum::http::StatusCode> {
        match self {
            RequestError::Auth(e) => e.status(),
            _ => None,
        }
    }
}

denial_from!(RequestError);

/// A TPM name is a 2-byte hash algorithm id and a digest of at most 64 bytes (SHA-512), TPM 2.0 Part 1 §16.
const MAX_AK_NAME_HEX: usize = 2 * (2 + 64);

/// Hex of at most a TPM name's length; whether it names the enrolled AK is stage 3's question.
fn valid_ak_name(n: &str) -> bool {
    (2..=MAX_AK_NAME_HEX).contains(&n.len()) && n.len() % 2 == 0 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Audiences name relying parties: 1-256 printable ASCII characters.
pub(crate) fn valid_audience(a: &str) -> bool {
    (1..=256).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_graphic())
}

pub struct ExecutionRequest {
    pub initiator: Principal,
    pub host_id: HostId,
    pub scope: String,
    pub audience: String,
    pub ttl_secs: Option<u64>,
    pub nonce: Nonce,
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
) -> Result<ExecutionRequest, RequestError> {
    caller.require(&[Role::Attester])?;
    // A token's scope may be a pattern (deploy/web/*): the gateway runs scopes within it.
    scope::validate(&req.scope, true).map_err(RequestError::Scope)?;
    if !valid_audience(&req.audience) {
        return Err(RequestError::Audience);
    }
    if req.ttl_secs == Some(0) {
        return Err(RequestError::ZeroTtl);
    }
    // Every string of the request is bounded before anything can repeat it (docs/design.md §16).
    if !valid_ak_name(&req.ak_name) {
        return Err(RequestError::AkName);
    }
    let for_host = match req.for_host {
        Some(h) => Some(h.parse::<HostId>().map_err(|_| RequestError::ForHost)?.to_string()),
        None => None,
    };
    if let Some(log) = req.event_log.as_ref().filter(|l| l.len() > MAX_EVENT_LOG_BYTES) {
        return Err(RequestError::EventLogTooLarge { len: log.len() });
    }
    let nonce: Nonce = req.nonce.parse().map_err(|_| RequestError::Nonce)?;
    let principal_id = caller.0.id.clone();
    let host_id = quick(state, move |s| s.principal_host(&principal_id)).await?.ok_or(RequestError::NotEnrolled)?;
    Ok(ExecutionRequest {
        initiator: caller.0.clone(),
        host_id,
        scope: req.scope,
        audience: req.audience,
        ttl_secs: req.ttl_secs,
        nonce,
        ak_name: req.ak_name,
        quote: req.quote,
        parent: req.parent,
        for_host,
        event_log: req.event_log,
    })
}
