//! Stage 4, event log replay when the policy has `[measured_boot]` (docs/design.md §2, §10): the host's TCG event
//! log must reproduce the quoted PCRs the facts come from, its data-bound digests must hold, and then its
//! facts must satisfy the rules. A missing, malformed or non-replaying log is `event_log_mismatch`; a failed
//! rule is `policy_mismatch`.

use runtrust_attestation::eventlog::{self, MismatchKind, PcrMismatch};
use runtrust_attestation::{DenialCode, PcrValues};
use serde_json::{json, Value};

use super::super::DenialReason;
use crate::policy::{MeasuredBoot, MEASURED_BOOT_BANK};

#[derive(Debug, thiserror::Error)]
pub enum MeasuredBootError {
    /// Missing, malformed, or not reproducing the quoted PCRs.
    #[error("{detail}")]
    EventLog { detail: String, diagnostics: Value },
    /// The log holds, and its facts break a rule.
    #[error("{detail}")]
    Rules { detail: String, diagnostics: Value },
    #[error("PCR values: {0}")]
    Values(String),
}

impl DenialReason for MeasuredBootError {
    fn code(&self) -> DenialCode {
        match self {
            MeasuredBootError::EventLog { .. } => DenialCode::EventLogMismatch,
            MeasuredBootError::Rules { .. } => DenialCode::PolicyMismatch,
            MeasuredBootError::Values(_) => DenialCode::InternalError,
        }
    }

    fn diagnostics(&self) -> Value {
        match self {
            MeasuredBootError::EventLog { diagnostics, .. } | MeasuredBootError::Rules { diagnostics, .. } => {
                diagnostics.clone()
            }
            MeasuredBootError::Values(_) => Value::Null,
        }
    }
}

/// An `event_log_mismatch` with its diagnostics.
fn mismatch(detail: String, diagnostics: Value) -> MeasuredBootError {
    MeasuredBootError::EventLog { detail, diagnostics }
}

/// Checks `event_log` against the verified quote's `quoted` PCR values and `rules`.
pub fn check(
    policy_id: &str,
    rules: &MeasuredBoot,
    event_log: Option<&[u8]>,
    quoted: &PcrValues,
) -> Result<(), MeasuredBootError> {
    let Some(bytes) = event_log else {
        return Err(mismatch(
            format!("policy {policy_id} requires the event log, and the request has none"),
            json!({ "policy": policy_id }),
        ));
    };
    let log = eventlog::parse(bytes)
        .map_err(|e| mismatch(format!("event log: {e}"), json!({ "policy": policy_id, "offset": e.offset() })))?;
    // Only the PCRs the facts come from, in the bank the rules are written in: the log need not explain
    // other quoted PCRs (IMA's PCR 10, say).
    let mut relevant = PcrValues::new();
    for pcr in rules.pcrs() {
        let Some(value) = quoted.get(MEASURED_BOOT_BANK, pcr) else {
            return Err(mismatch(
                format!(
                    "the quote does not cover {MEASURED_BOOT_BANK} PCR {pcr}, which policy {policy_id}'s measured-boot \
                     rules need; ask for a new challenge"
                ),
                Value::Null,
            ));
        };
        relevant
            .insert(MEASURED_BOOT_BANK, pcr, value.to_vec())
            .map_err(|e| MeasuredBootError::Values(e.to_string()))?;
    }
    let verified = log.verify(&relevant).map_err(|e| {
        let diagnostics = match &e {
            eventlog::VerifyError::Replay(r) => {
                json!({ "policy": policy_id, "pcrs": r.mismatches.iter().map(mismatch_json).collect::<Vec<_>>() })
            }
            eventlog::VerifyError::DataDigest(d) => {
                let eventlog::DataDigestError::Mismatch { index, offset, type_name, bank, .. } = d;
                json!({ "policy": policy_id, "event": index, "offset": offset, "type": type_name, "bank": bank.name() })
            }
        };
        mismatch(format!("event log: {e}"), diagnostics)
    })?;
    let facts = verified.facts().map_err(|e| mismatch(format!("event log: {e}"), Value::Null))?;
    rules.check(&facts).map_err(|f| MeasuredBootError::Rules {
        detail: format!("policy {policy_id}: {f}"),
        diagnostics: json!({ "policy": policy_id, "measured_boot": f.failures }),
    })
}

/// `{bank, pcr, quoted, replayed, last_agreeing_event | last_event}` of one PCR the log does not reproduce.
fn mismatch_json(m: &PcrMismatch) -> Value {
    let mut v = json!({
        "bank": m.bank.name(),
        "pcr": m.pcr,
        "quoted": hex::encode(&m.quoted),
        "replayed": hex::encode(&m.replayed),
    });
    let (kind, key, index) = match m.kind {
        MismatchKind::BankMissing => ("bank_missing", None, None),
        MismatchKind::ExtraEvents { last_agreeing_event } => {
            ("extra_events", Some("last_agreeing_event"), last_agreeing_event)
        }
        MismatchKind::Diverged { last_event } => ("diverged", Some("last_event"), last_event),
    };
    v["kind"] = json!(kind);
    if let Some(key) = key {
        v[key] = json!(index);
    }
    v
}
