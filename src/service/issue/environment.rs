//! Stage 4, environmental validation: the nonce (single use, unexpired, bound to this host and initiator),
//! the quote (signature by the enrolled AK, signed selection, pcrDigest), PCR values against policy, and
//! the TPM clock against the last quote accepted from this host.

use std::collections::BTreeMap;

use runtrust_attestation::{
    verify_quote, DenialCode, HashAlg, PcrSelection, QuoteEvidence, QuoteOptions, VerifiedQuote,
};
use serde_json::json;

use super::super::{blocking, AppState, Denial};
use super::identity::RuntimeIdentity;
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::api::now_unix;
use crate::policy::LoadedPolicy;
use crate::store::{HostRecord, NonceState};

pub struct Evidence {
    pub quote: VerifiedQuote,
    pub nonce: Vec<u8>,
}

/// What a host must quote: the union of the PCRs constrained by the policies that select it, and of the
/// PCRs their measured-boot rules read (sha256:0-7 when none does, so that the request can still be
/// answered with a precise denial).
pub fn selection_for(host: &HostRecord, policies: &[std::sync::Arc<LoadedPolicy>]) -> PcrSelection {
    let mut union: BTreeMap<HashAlg, Vec<u8>> = BTreeMap::new();
    for p in policies.iter().filter(|p| p.policy.selects(&host.host_id, &host.tags)) {
        for (bank, index) in p.policy.selection().iter() {
            union.entry(bank).or_default().push(index);
        }
        if let Some(mb) = &p.policy.measured_boot {
            union.entry(crate::policy::MEASURED_BOOT_BANK).or_default().extend(mb.pcrs());
        }
    }
    for pcrs in union.values_mut() {
        pcrs.sort_unstable();
        pcrs.dedup();
    }
    let banks = union
        .into_iter()
        .filter_map(|(bank, pcrs)| runtrust_attestation::tpm2::PcrBank::new(bank, pcrs).ok())
        .collect::<Vec<_>>();
    match PcrSelection::new(banks) {
        Ok(s) if !s.is_empty() => s,
        _ => PcrSelection::parse_spec(HashAlg::Sha256, "0-7").unwrap_or_default(),
    }
}

/// Whether the host must send its event log: a policy that selects it has `[measured_boot]`.
pub fn event_log_wanted(host: &HostRecord, policies: &[std::sync::Arc<LoadedPolicy>]) -> bool {
    policies.iter().any(|p| p.policy.selects(&host.host_id, &host.tags) && p.policy.measured_boot.is_some())
}

pub async fn validate(
    state: &AppState,
    req: &ExecutionRequest,
    decision: &Decision,
    identity: &RuntimeIdentity,
) -> Result<Evidence, Denial> {
    // The nonce is consumed (durably) before anything else looks at the evidence.
    let nonce_hex = req.nonce.to_ascii_lowercase();
    let now = now_unix();
    let key = nonce_hex.clone();
    let challenge = match blocking(state, move |s| s.consume_nonce(&key, now)).await? {
        NonceState::Fresh(c) => c,
        NonceState::Expired(_) => {
            return Err(Denial::new(DenialCode::NonceExpired, "the nonce expired; ask for a new challenge"))
        }
        NonceState::Replayed => return Err(Denial::new(DenialCode::NonceReplayed, "this nonce was already used")),
        NonceState::Unknown => return Err(Denial::new(DenialCode::NonceUnknown, "this nonce was never issued")),
    };
    if challenge.host_id != decision.host.host_id || challenge.principal_id != req.initiator.id {
        return Err(Denial::new(DenialCode::NonceMismatch, "this nonce was issued to another host or principal"));
    }
    let nonce = hex::decode(&nonce_hex).map_err(|_| Denial::new(DenialCode::NonceUnknown, "nonce is not hex"))?;
    let selection: PcrSelection = challenge.selection.parse().map_err(Denial::internal)?;

    let q = &req.quote;
    let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    let options = QuoteOptions {
        allow_sha1: false,
        expected_selection: Some(&selection),
        previous_clock: Some(&decision.host.last_clock),
    };
    let quote = verify_quote(&identity.ak, &evidence, &nonce, &options)
        .map_err(|e| Denial::new(e.code(), format!("quote: {e}")))?;

    decision.policy.policy.check_pcrs(&quote.pcrs).map_err(|m| {
        Denial::new(DenialCode::PcrMismatch, format!("policy {}: {m}", decision.policy.policy.id))
            .with_diagnostics(json!({ "policy": decision.policy.policy.id, "pcrs": m.mismatches }))
    })?;
    if let Some(rules) = &decision.policy.policy.measured_boot {
        let policy_id = &decision.policy.policy.id;
        super::measured_boot::check(policy_id, rules, req.event_log.as_deref(), &quote.pcrs)?;
    }
    Ok(Evidence { quote, nonce })
}
