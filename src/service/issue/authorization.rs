//! Stage 5, authorization issuance (docs/design.md §2, §7): the COSE_Sign1 execution token over CWT/EAT
//! claims, bound to the AK (cnf) and to the PCR state it quoted.

use runtrust_attestation::DenialCode;

use super::super::{denial_from, AppState, DenialReason, Fault};
use super::environment::Evidence;
use super::identity::RuntimeIdentity;
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::token::{Claims, ConfirmationKey, EAT_PROFILE};

/// Every failure here is the service's own: the evidence was accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    #[error("delegation subject {0} has no attested state")]
    SubjectUnattested(String),
    #[error("stored attested state: {0}")]
    AttestedState(String),
    #[error("the subject's AK: {0}")]
    SubjectAk(String),
    #[error("token id: {0}")]
    Cti(String),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl DenialReason for AuthorizationError {
    fn code(&self) -> DenialCode {
        DenialCode::InternalError
    }
}

denial_from!(AuthorizationError);

pub struct SignedToken {
    pub bytes: Vec<u8>,
    pub claims: Claims,
}

pub fn issue(
    state: &AppState,
    req: &ExecutionRequest,
    identity: &RuntimeIdentity,
    decision: &Decision,
    evidence: &Evidence,
) -> Result<SignedToken, AuthorizationError> {
    let cti = crate::token::new_cti(&state.rng).map_err(|e| AuthorizationError::Cti(e.to_string()))?;
    let now = state.clock.now_i64();
    let ttl = i64::try_from(decision.ttl_secs).unwrap_or(i64::MAX);
    let signed = &evidence.quote.attest.quote;
    let policy = &decision.policy;
    // The subject: the attesting host, or for a child delegated across hosts the other host, bound to the
    // PCR state its policy last accepted.
    let (subject, pcr_selection, pcr_digest) = match decision.delegation.as_ref().and_then(|d| d.subject.as_ref()) {
        None => (&identity.host, signed.pcr_select.clone(), signed.pcr_digest.clone()),
        Some(other) => {
            let a = other
                .last_attested
                .as_ref()
                .ok_or_else(|| AuthorizationError::SubjectUnattested(other.host_id.to_string()))?;
            let digest = hex::decode(&a.pcr_digest).map_err(|e| AuthorizationError::AttestedState(e.to_string()))?;
            (other, a.pcr_selection.clone(), digest)
        }
    };
    let bank = pcr_selection.banks().first().map(|b| b.hash.name()).unwrap_or("sha256");
    let parent = decision.delegation.as_ref().map(|d| &d.parent);
    let ak = runtrust_attestation::Public::from_tpm2b(&subject.ak_public)
        .map_err(|e| AuthorizationError::SubjectAk(e.to_string()))?;
    let claims = Claims {
        iss: state.config.service_id.clone(),
        sub: subject.host_id.to_string(),
        aud: req.audience.clone(),
        // A child never outlives its parent (the ttl was capped a moment ago; time has passed since).
        exp: parent.map_or(now.saturating_add(ttl), |p| now.saturating_add(ttl).min(p.exp)),
        nbf: now,
        iat: now,
        cti,
        cnf: ConfirmationKey::from_public(&ak).map_err(|e| AuthorizationError::SubjectAk(e.to_string()))?,
        eat_nonce: evidence.nonce.as_bytes().to_vec(),
        eat_profile: EAT_PROFILE.to_owned(),
        scope: req.scope.clone(),
        initiator: req.initiator.name.clone(),
        policy_id: policy.policy.id.clone(),
        policy_hash: policy.hash.to_vec(),
        pcr_bank: bank.to_owned(),
        pcr_selection: pcr_selection.to_string(),
        pcr_digest,
        parent_cti: parent.map(|p| p.cti.clone()),
        delegation_depth: parent.map_or(0, |p| p.delegation_depth + 1),
        audit_index: None,
        // A child of a single-use parent is single use too.
        single_use: policy.policy.token.single_use || parent.is_some_and(|p| p.single_use),
    };
    let bytes = state.sign(&claims)?;
    Ok(SignedToken { bytes, claims })
}
