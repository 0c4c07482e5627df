//! Stage 8, immutable audit: every allow and every deny is appended durably before the answer leaves.

use super::super::auth::Caller;
use super::super::{blocking, AppState, Denial};
use super::authorization::SignedToken;
use super::environment::Evidence;
use super::policy::Decision;
use super::request::ExecutionRequest;
use crate::api::{now_unix, TokenResponse};
use crate::store::{AttestedState, AuditEntry, TokenRecord};

/// Records the issuance (token record, audit entry, host clock) in one durable step, then answers.
pub async fn issued(
    state: &AppState,
    req: &ExecutionRequest,
    decision: &Decision,
    evidence: &Evidence,
    token: SignedToken,
) -> Result<TokenResponse, Denial> {
    let c = &token.claims;
    let cti = hex::encode(&c.cti);
    let record = TokenRecord {
        cti: cti.clone(),
        host_id: c.sub.clone(),
        initiator: c.initiator.clone(),
        scope: c.scope.clone(),
        audience: c.aud.clone(),
        policy_id: c.policy_id.clone(),
        policy_hash: hex::encode(&c.policy_hash),
        parent_cti: c.parent_cti.as_ref().map(hex::encode),
        delegation_depth: c.delegation_depth,
        single_use: c.single_use,
        issued_at: u64::try_from(c.iat).unwrap_or(0),
        expires_at: u64::try_from(c.exp).unwrap_or(0),
        audit_index: 0,
        consumed_at: None,
    };
    // A delegation is its own kind of decision in the log.
    let (event, detail) = match &record.parent_cti {
        None => ("token.issue", format!("scope {} for {} under policy {}", c.scope, c.aud, c.policy_id)),
        Some(parent) => (
            "token.delegate",
            format!(
                "scope {} for {} under policy {}, child of {parent} at depth {}",
                c.scope, c.aud, c.policy_id, c.delegation_depth
            ),
        ),
    };
    let entry = AuditEntry::new(event, detail).by(&req.initiator.name).host(&record.host_id).cti(&cti).diagnostics(
        serde_json::json!({
            "policy_hash": record.policy_hash,
            "pcr_selection": c.pcr_selection,
            "pcr_digest": hex::encode(&c.pcr_digest),
            "exp": c.exp,
            "parent_cti": record.parent_cti,
            "attested_by": decision.host.host_id,
        }),
    );
    let signed = &evidence.quote.attest.quote;
    let attested = AttestedState {
        pcr_selection: signed.pcr_select.to_string(),
        pcr_digest: hex::encode(&signed.pcr_digest),
        policy_hash: record.policy_hash.clone(),
        time: now_unix(),
    };
    let (host_id, clock) = (decision.host.host_id.clone(), evidence.quote.attest.clock_info);
    let rec = record.clone();
    let audit_index = blocking(state, move |s| s.record_issuance(&rec, &entry, &host_id, &clock, &attested)).await?;
    tracing::info!(cti = %cti, host = %record.host_id, scope = %record.scope, audit_index, "token issued");
    Ok(TokenResponse {
        token: token.bytes,
        cti,
        expires_at: record.expires_at,
        policy_id: record.policy_id,
        host_id: record.host_id,
        audit_index,
    })
}

/// Records a token denial; if even that fails, the answer is still a denial.
pub async fn denied(state: &AppState, caller: Option<&Caller>, host_id: Option<String>, denial: Denial) -> Denial {
    record_denial(state, caller, host_id, "token.deny", denial).await
}

/// Records a denial under `event`; if even that fails, the answer is still a denial.
pub async fn record_denial(
    state: &AppState,
    caller: Option<&Caller>,
    host_id: Option<String>,
    event: &str,
    denial: Denial,
) -> Denial {
    let principal = caller.map(|c| c.0.name.clone());
    let mut entry =
        AuditEntry::new(event, denial.detail.clone()).code(&denial.code).diagnostics(denial.diagnostics.clone());
    entry.principal = principal.clone();
    entry.host_id = host_id;
    match blocking(state, move |s| s.append_audit(&entry)).await {
        Ok(_) => {
            tracing::info!(code = %denial.code, principal = ?principal, event, "denied: {}", denial.detail);
            denial
        }
        Err(e) => {
            tracing::error!("could not audit a denial: {}", e.detail);
            Denial::internal("the denial could not be audited")
        }
    }
}
