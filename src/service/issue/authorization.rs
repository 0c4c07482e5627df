//! Stage 5, authorization issuance: the COSE_Sign1 execution token over CWT/EAT claims (DESIGN §7),
//! bound to the AK (cnf) and to the PCR state it quoted.

use super::super::{AppState, Denial};
use super::environment::Evidence;
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::api::now_unix;
use crate::token::{Claims, ConfirmationKey, EAT_PROFILE};
use runtrust_attestation::PcrSelection;

pub struct SignedToken {
    pub bytes: Vec<u8>,
    pub claims: Claims,
}

pub fn issue(
    state: &AppState,
    req: &ExecutionRequest,
    decision: &Decision,
    evidence: &Evidence,
) -> Result<SignedToken, Denial> {
    let cti = crate::token::new_cti(&state.rng).map_err(Denial::internal)?;
    let now = i64::try_from(now_unix()).map_err(Denial::internal)?;
    let ttl = i64::try_from(decision.ttl_secs).map_err(Denial::internal)?;
    let signed = &evidence.quote.attest.quote;
    let policy = &decision.policy;
    // The subject: the attesting host, or for a child delegated across hosts the other host, bound to the
    // PCR state its policy last accepted.
    let (subject, pcr_selection, pcr_digest) = match decision.delegation.as_ref().and_then(|d| d.subject.as_ref()) {
        None => (&decision.host, signed.pcr_select.clone(), signed.pcr_digest.clone()),
        Some(other) => {
            let a = other.last_attested.as_ref().ok_or_else(|| Denial::internal("subject has no attested state"))?;
            let selection: PcrSelection = a.pcr_selection.parse().map_err(Denial::internal)?;
            (other, selection, hex::decode(&a.pcr_digest).map_err(Denial::internal)?)
        }
    };
    let bank = pcr_selection.banks().first().map(|b| b.hash.name()).unwrap_or("sha256");
    let parent = decision.delegation.as_ref().map(|d| &d.parent);
    let claims = Claims {
        iss: state.config.service_id.clone(),
        sub: subject.host_id.clone(),
        aud: req.audience.clone(),
        // A child never outlives its parent (the ttl was capped a moment ago; time has passed since).
        exp: parent.map_or(now + ttl, |p| (now + ttl).min(p.exp)),
        nbf: now,
        iat: now,
        cti,
        cnf: ConfirmationKey::from_public(
            &runtrust_attestation::Public::from_tpm2b(&subject.ak_public).map_err(Denial::internal)?,
        )
        .map_err(Denial::internal)?,
        eat_nonce: evidence.nonce.clone(),
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
