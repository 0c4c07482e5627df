//! Stages 8 and 9, immutable audit and lineage (docs/design.md §2): the issuance (token record with its
//! parent, audit entry, the host's clock and accepted PCR state) is durable before the token leaves.
//! Denials are recorded by the audit layer (`service::audited`).

use super::super::{quick, AppState, Fault};
use super::authorization::SignedToken;
use super::environment::Evidence;
use super::identity::RuntimeIdentity;
use super::request::ExecutionRequest;
use crate::api::TokenResponse;
use crate::audit::AuditEntry;
use crate::model::{AttestedState, HostId, TokenRecord};

/// Records the issuance in one durable step, then answers.
pub async fn issued(
    state: &AppState,
    req: &ExecutionRequest,
    identity: &RuntimeIdentity,
    evidence: &Evidence,
    token: SignedToken,
) -> Result<TokenResponse, Fault> {
    let c = &token.claims;
    let cti = hex::encode(&c.cti);
    let record = TokenRecord {
        cti: cti.clone(),
        host_id: c.sub.parse::<HostId>().map_err(|e| Fault::Corrupt(format!("token subject: {e}")))?,
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
        // The exact bytes, so that no re-signed token can pass for this one (docs/design.md §7).
        token_sha256: Some(TokenRecord::digest(&token.bytes)),
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
    let now = state.clock.now_unix();
    let entry =
        AuditEntry::new(now, event, detail).by(&req.initiator.name).host(&record.host_id).cti(&cti).diagnostics(
            serde_json::json!({
                "policy_hash": record.policy_hash,
                "pcr_selection": c.pcr_selection,
                "pcr_digest": hex::encode(&c.pcr_digest),
                "exp": c.exp,
                "parent_cti": record.parent_cti,
                "attested_by": identity.host.host_id,
            }),
        );
    let signed = &evidence.quote.attest.quote;
    let attested = AttestedState {
        pcr_selection: signed.pcr_select.clone(),
        pcr_digest: hex::encode(&signed.pcr_digest),
        policy_hash: record.policy_hash.clone(),
        time: now,
    };
    let (host_id, clock) = (identity.host.host_id.clone(), evidence.quote.attest.clock_info);
    let rec = record.clone();
    let audit_index = quick(state, move |s| s.record_issuance(&rec, &entry, &host_id, &clock, &attested)).await?;
    tracing::info!(cti = %cti, host = %record.host_id, scope = %record.scope, audit_index, "token issued");
    Ok(TokenResponse {
        token: token.bytes,
        cti,
        expires_at: record.expires_at,
        policy_id: record.policy_id,
        host_id: record.host_id.to_string(),
        audit_index,
    })
}
