//! Governed execution, the service's half (docs/design.md §2 stage 7): `POST /v1/executions` is the gateway's
//! online check — the token verifies (as this service's, for the audience the gateway names), is on record
//! byte for byte, nothing on its ancestry, host or policy is revoked,
//! and a single-use token is spent atomically — recorded with its audit entry before the gateway may
//! start the command. `POST /v1/executions/{cti}/{id}/end` records how it ended.

use axum::extract::State;
use axum::Json;
use runtrust_attestation::DenialCode;
use serde_json::json;

use super::auth::Caller;
use super::issue::valid_audience;
use super::revocation::{chain_keys, revoked_via, why_revoked, RevocationError};
use super::{blocking, quick, AppState, Body, Denial, Path};
use crate::api::{ExecEndRequest, ExecStartRequest, ExecStartResponse, ExecutionView};
use crate::audit::AuditEntry;
use crate::model::{ExecutionEnd, ExecutionRecord, Role};
use crate::store::ExecStart;
use crate::token::{verify, Expectations};

/// `POST /v1/executions`; a refusal is audited as `exec.deny` (routes.rs), naming the token's host.
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<ExecStartRequest>,
) -> Result<Json<ExecStartResponse>, Denial> {
    let mut host = None;
    match check_and_start(&state, &caller, req, &mut host).await {
        Ok(r) => Ok(Json(r)),
        Err(d) => Err(d.about_host(host.as_deref())),
    }
}

async fn check_and_start(
    state: &AppState,
    caller: &Caller,
    req: ExecStartRequest,
    host: &mut Option<String>,
) -> Result<ExecStartResponse, Denial> {
    caller.require(&[Role::Gateway, Role::Attester])?;
    if req.argv_sha256.len() != 64 || !req.argv_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Denial::bad_request("argv_sha256 must be 64 hex digits"));
    }
    // The gateway names itself (docs/design.md §9): an execution request without an audience is refused.
    let audience = req.audience.as_deref().unwrap_or_default();
    if !valid_audience(audience) {
        return Err(Denial::new(
            DenialCode::AudienceMismatch,
            "the execution request must name the gateway's audience (1-256 printable ASCII characters)",
        ));
    }
    // Checked before the token, so that nothing unbounded reaches a denial's detail.
    crate::scope::validate(&req.scope, true).map_err(|e| Denial::new(DenialCode::ScopeDenied, e.to_string()))?;
    let now = state.clock.now_unix();
    let keys = state.verifying_keys()?;
    let expect = Expectations {
        now: state.clock.now_i64(),
        issuer: &state.config.service_id,
        audience: Some(audience),
        scope: Some(&req.scope),
        leeway_secs: 0,
    };
    let claims = verify(&req.token, &keys, &expect).map_err(|e| Denial::new(e.code(), format!("token: {e}")))?;
    let cti = hex::encode(&claims.cti);
    *host = Some(claims.sub.clone());
    let id = hex::encode(state.random::<16>()?);
    let caller_name = caller.0.name.clone();
    let caller_id = caller.0.id.clone();
    let is_attester = caller.0.role == Role::Attester;
    let scope = req.scope.clone();
    let argv = req.argv_sha256.to_ascii_lowercase();
    let c2 = cti.clone();
    let token = req.token;
    let outcome = quick(state, move |s| {
        let Some(record) = s.token(&c2)? else {
            return Ok(Err(Denial::new(
                DenialCode::SignatureInvalid,
                format!("token {c2} was not issued by this service"),
            )));
        };
        // The token on record under this cti, byte for byte: a re-signed one (another scope or exp) is not it.
        if !record.is_token(&token) {
            return Ok(Err(not_as_issued(&c2, &record)));
        }
        // Everything on the chain, a lifted host's earlier tokens included (docs/design.md §11)...
        if let Some(r) = why_revoked(s, &record)? {
            return Ok(Err(RevocationError::Token(Box::new(r)).into()));
        }
        // ...and again inside the start's own transaction (docs/design.md §15): a revocation answered by any
        // replica before this start commits refuses it.
        let keys = chain_keys(s, &record)?;
        // An attester credential runs commands on its own host only.
        if is_attester && s.principal_host(&caller_id)?.as_ref() != Some(&record.host_id) {
            return Ok(Err(Denial::new(
                DenialCode::RuntimeIdentityMismatch,
                format!("token {c2} is bound to host {}, not to this credential's host", record.host_id),
            )));
        }
        let exec = ExecutionRecord {
            id: id.clone(),
            cti: c2.clone(),
            host_id: record.host_id.clone(),
            gateway: caller_name.clone(),
            scope: scope.clone(),
            argv_sha256: argv.clone(),
            started_at: now,
            start_audit_index: 0,
            end: None,
        };
        let entry = AuditEntry::new(now, "exec.start", format!("execution {id} under scope {scope}"))
            .by(&caller_name)
            .host(&record.host_id)
            .cti(&c2)
            .diagnostics(json!({ "execution_id": id, "argv_sha256": argv, "single_use": record.single_use }));
        Ok(match s.start_execution(&exec, record.single_use, &keys, &entry)? {
            ExecStart::Started(e) => Ok(e),
            ExecStart::Revoked { key, revocation } => {
                Err(RevocationError::Token(Box::new(revoked_via(&key, &record, revocation))).into())
            }
            ExecStart::Replayed { consumed_at } => Err(Denial::new(
                DenialCode::TokenReplayed,
                format!("single-use token {c2} was already used at {consumed_at}"),
            )),
            ExecStart::UnknownToken => Err(Denial::internal(format!("token {c2} vanished"))),
        })
    })
    .await??;
    tracing::info!(cti = %cti, execution = %outcome.id, gateway = %outcome.gateway, "execution allowed");
    Ok(ExecStartResponse { execution_id: outcome.id, cti, audit_index: outcome.start_audit_index })
}

/// A token whose cti is on record but whose bytes are not the ones issued (docs/design.md §7): refused as
/// `signature_invalid`, the code of every token this service did not issue.
pub(crate) fn not_as_issued(cti: &str, record: &crate::model::TokenRecord) -> Denial {
    let detail = match record.token_sha256 {
        Some(_) => format!("token {cti} is not the token issued under that id (altered or re-signed)"),
        None => format!("token {cti} was issued before tokens were bound to their bytes: request a new one"),
    };
    Denial::new(DenialCode::SignatureInvalid, detail)
}

pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path((cti, id)): Path<(String, String)>,
    Body(req): Body<ExecEndRequest>,
) -> Result<Json<ExecutionView>, Denial> {
    caller.require(&[Role::Gateway, Role::Attester])?;
    let name = caller.0.name.clone();
    let now = state.clock.now_unix();
    let end = ExecutionEnd {
        time: now,
        exit_code: req.exit_code,
        signal: req.signal,
        duration_ms: req.duration_ms,
        audit_index: 0,
    };
    // Not `quick`: a multi-use token's executions are a scan that grows with its use.
    let record = blocking(&state, move |s| {
        let started = s.executions(&cti)?.into_iter().find(|e| e.id == id);
        let Some(started) = started else { return Ok(Err(Denial::not_found(format!("no execution {cti}/{id}")))) };
        if started.gateway != name {
            // Authenticated but not allowed: 403 (RFC 9110 §15.5.4), not 401.
            return Ok(Err(Denial::new(DenialCode::AuthorizationMissing, "only the gateway that started it may end it")
                .with_status(axum::http::StatusCode::FORBIDDEN)));
        }
        let outcome = match (end.exit_code, end.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "unknown status".to_owned(),
        };
        let entry = AuditEntry::new(now, "exec.end", format!("execution {id}: {outcome} after {} ms", end.duration_ms))
            .by(&name)
            .host(&started.host_id)
            .cti(&cti)
            .diagnostics(json!({ "execution_id": id, "exit_code": end.exit_code, "signal": end.signal, "duration_ms": end.duration_ms }));
        Ok(s.end_execution(&cti, &id, &end, &entry)?.ok_or_else(|| Denial::not_found("no such execution")))
    })
    .await??;
    Ok(Json(ExecutionRecord::into(record)))
}
