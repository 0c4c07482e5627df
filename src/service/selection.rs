//! What a host must show for its policies: the PCRs to quote and whether to send the event log
//! (docs/design.md §6, §10). The challenge asks for them; stage 4 holds the quote to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use runtrust_attestation::{HashAlg, PcrSelection};

use crate::model::HostRecord;
use crate::policy::LoadedPolicy;

/// What a host must quote: the union of the PCRs constrained by the policies that select it, and of the
/// PCRs their measured-boot rules read (sha256:0-7 when none does, so that the request can still be
/// answered with a precise denial).
pub fn selection_for(host: &HostRecord, policies: &[Arc<LoadedPolicy>]) -> PcrSelection {
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
pub fn event_log_wanted(host: &HostRecord, policies: &[Arc<LoadedPolicy>]) -> bool {
    policies.iter().any(|p| p.policy.selects(&host.host_id, &host.tags) && p.policy.measured_boot.is_some())
}
