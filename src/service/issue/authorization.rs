//! Stage 5, authorization issuance: the COSE_Sign1 execution token over CWT/EAT claims (DESIGN §7),
//! bound to the AK (cnf) and to the PCR state it quoted.

use super::super::{AppState, Denial};
use super::environment::Evidence;
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::api::now_unix;
use crate::token::{Claims, ConfirmationKey, EAT_PROFILE};

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
    let bank = signed.pcr_select.banks().first().map(|b| b.hash.name()).unwrap_or("sha256");
    let claims = Claims {
        iss: state.config.service_id.clone(),
        sub: decision.host.host_id.clone(),
        aud: req.audience.clone(),
        exp: now + ttl,
        nbf: now,
        iat: now,
        cti,
        cnf: ConfirmationKey::from_public(
            &runtrust_attestation::Public::from_tpm2b(&decision.host.ak_public).map_err(Denial::internal)?,
        )
        .map_err(Denial::internal)?,
        eat_nonce: evidence.nonce.clone(),
        eat_profile: EAT_PROFILE.to_owned(),
        scope: req.scope.clone(),
        initiator: req.initiator.name.clone(),
        policy_id: policy.policy.id.clone(),
        policy_hash: policy.hash.to_vec(),
        pcr_bank: bank.to_owned(),
        pcr_selection: signed.pcr_select.to_string(),
        pcr_digest: signed.pcr_digest.clone(),
        parent_cti: None,
        delegation_depth: 0,
        audit_index: None,
        single_use: policy.policy.token.single_use,
    };
    let bytes = state.sign(&claims)?;
    Ok(SignedToken { bytes, claims })
}
