//! Stage 4, environmental validation (docs/design.md §2, §4): the nonce (single use, unexpired, bound to
//! this host and initiator), the quote (signature by the enrolled AK, signed selection, pcrDigest), PCR
//! values against policy, the TPM clock against the last quote accepted from this host, and the event log
//! when the policy has measured-boot rules.

use runtrust_attestation::{verify_quote, DenialCode, QuoteError, QuoteEvidence, QuoteOptions, VerifiedQuote};
use serde_json::{json, Value};

use super::super::{denial_from, quick, AppState, DenialReason, Fault};
use super::identity::RuntimeIdentity;
use super::measured_boot::{self, MeasuredBootError};
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::model::Nonce;
use crate::store::NonceState;

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("the nonce expired; ask for a new challenge")]
    NonceExpired,
    #[error("this nonce was already used")]
    NonceReplayed,
    #[error("this nonce was never issued")]
    NonceUnknown,
    #[error("this nonce was issued to another host or principal")]
    NonceMismatch,
    #[error("quote: {0}")]
    Quote(QuoteError),
    #[error("policy {policy}: {detail}")]
    Pcrs { policy: String, detail: String, mismatches: Value },
    #[error(transparent)]
    MeasuredBoot(#[from] MeasuredBootError),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for EnvironmentError {
    fn code(&self) -> DenialCode {
        match self {
            EnvironmentError::NonceExpired => DenialCode::NonceExpired,
            EnvironmentError::NonceReplayed => DenialCode::NonceReplayed,
            EnvironmentError::NonceUnknown => DenialCode::NonceUnknown,
            EnvironmentError::NonceMismatch => DenialCode::NonceMismatch,
            EnvironmentError::Quote(e) => e.code(),
            EnvironmentError::Pcrs { .. } => DenialCode::PcrMismatch,
            EnvironmentError::MeasuredBoot(e) => e.code(),
            EnvironmentError::Fault(_) => DenialCode::InternalError,
        }
    }

    fn diagnostics(&self) -> Value {
        match self {
            EnvironmentError::Pcrs { policy, mismatches, .. } => json!({ "policy": policy, "pcrs": mismatches }),
            EnvironmentError::MeasuredBoot(e) => e.diagnostics(),
            // clock_regressed says why it happens and how to recover (docs/design.md §4).
            EnvironmentError::Quote(e) => e.hint().map_or(Value::Null, |hint| json!({ "hint": hint })),
            _ => Value::Null,
        }
    }
}

denial_from!(EnvironmentError);

pub struct Evidence {
    pub quote: VerifiedQuote,
    pub nonce: Nonce,
}

pub async fn validate(
    state: &AppState,
    req: &ExecutionRequest,
    identity: &RuntimeIdentity,
    decision: &Decision,
) -> Result<Evidence, EnvironmentError> {
    // The nonce is consumed (durably) before anything else looks at the evidence.
    let nonce = req.nonce;
    let now = state.clock.now_unix();
    let challenge = match quick(state, move |s| s.consume_nonce(&nonce, now)).await? {
        NonceState::Fresh(c) => c,
        NonceState::Expired(_) => return Err(EnvironmentError::NonceExpired),
        NonceState::Replayed => return Err(EnvironmentError::NonceReplayed),
        NonceState::Unknown => return Err(EnvironmentError::NonceUnknown),
    };
    if challenge.host_id != identity.host.host_id || challenge.principal_id != req.initiator.id {
        return Err(EnvironmentError::NonceMismatch);
    }
    let q = &req.quote;
    let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    // docs/design.md §14: a batched quote must carry a proof that leads from this nonce to its extraData.
    let batch = q
        .batch
        .as_ref()
        .map(|b| b.to_proof())
        .transpose()
        .map_err(|e| EnvironmentError::Quote(QuoteError::Batch(e)))?;
    // The clock must not be older than the host's when the challenge was issued: any quote made for this
    // nonce came later. (Concurrent requests of one host — one batch, or the next — may be appraised in
    // any order, so the last clock accepted since then is no bound.) An admin re-baseline since the
    // challenge (docs/design.md §4) lowered the host's clock below it: the lower of the two applies.
    let current = &identity.host.last_clock;
    let baseline = match challenge.host_clock.as_ref() {
        Some(issued) if runtrust_attestation::clock::not_earlier(current, issued) => issued,
        _ => current,
    };
    let options = QuoteOptions {
        allow_sha1: false,
        expected_selection: Some(&challenge.selection),
        previous_clock: Some(baseline),
        nonce_batch: batch.as_ref(),
    };
    let quote = verify_quote(&identity.ak, &evidence, nonce.as_bytes(), &options).map_err(EnvironmentError::Quote)?;
    let policy = &decision.policy.policy;
    policy.check_pcrs(&quote.pcrs).map_err(|m| EnvironmentError::Pcrs {
        policy: policy.id.clone(),
        detail: m.to_string(),
        mismatches: serde_json::to_value(&m.mismatches).unwrap_or_default(),
    })?;
    if let Some(rules) = &policy.measured_boot {
        measured_boot::check(&policy.id, rules, req.event_log.as_deref(), &quote.pcrs)?;
    }
    Ok(Evidence { quote, nonce })
}
