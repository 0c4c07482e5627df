//! Enrollment (docs/design.md §5): a host proves that its AK lives in a genuine TPM.
//!
//! `start`: EK certificate path → EK public matches → host not revoked → the tags the host may have
//! ([`super::tags`]) → AK appraisal → AK not another host's → MakeCredential challenge. `activate`: the
//! challenge is consumed once → the secret matches → a first quote by the AK verifies → the host is stored
//! (still not revoked; a known host keeps its tags). Any failure is a denial and stores nothing.
//!
//! With a join token instead of an attester credential, the same checks run; on success one of the token's
//! uses is spent and the host becomes an attester principal of its own, whose credential is returned once.

use axum::extract::State;
use axum::Json;
use runtrust_attestation::ak::check_ak;
use runtrust_attestation::credential::make_credential;
use runtrust_attestation::ek::verify_ek_certificate;
use runtrust_attestation::{verify_quote, ClockInfo, DenialCode, HashAlg, Public, QuoteEvidence, QuoteOptions};

use super::auth::Caller;
use super::revocation::{host_revoked, RevocationError};
use super::tags::{self, enrollment_tags, Conferral};
use super::{blocking, AppState, Body, Denial, Fault, Path};
use crate::api::{ActivationAnswer, EnrollChallenge, EnrollRequest, Enrolled};
use crate::audit::AuditEntry;
use crate::model::{HostId, HostRecord, JoinRefusal, Nonce, PendingEnrollment, Principal, Revocation, Role};
use crate::store::{Admission, Cap, EnrollOutcome, Joined, StoreError, TAGS_DIFFER};

/// Who may enroll: an attester, or a join token (docs/design.md §5).
const ENROLLERS: [Role; 2] = [Role::Attester, Role::JoinToken];
/// Pending enrollments a join token may hold at once, whatever its uses (hosts of a batch enroll together).
const MAX_JOIN_PENDING: usize = 1024;

/// A join token that cannot enroll a host now: `authorization_missing`, 403.
fn join_refused(r: JoinRefusal) -> Denial {
    let hint = match r {
        JoinRefusal::Unknown => "",
        JoinRefusal::Expired | JoinRefusal::Spent => "; an admin makes another: runtrust join-token create",
    };
    Denial::new(DenialCode::AuthorizationMissing, format!("{r}{hint}")).with_status(axum::http::StatusCode::FORBIDDEN)
}

/// A join token caller's allowance must allow one more host at `now`.
fn check_join(caller: &Caller, now: u64) -> Result<(), Denial> {
    if caller.0.role != Role::JoinToken {
        return Ok(());
    }
    caller.0.join.ok_or(JoinRefusal::Unknown).and_then(|j| j.check(now)).map_err(join_refused)
}

/// The attester principal a host that joined gets: named after its host id, so that joining again finds it.
fn host_principal_name(host: &HostId) -> String {
    let hex = host.to_string();
    let digest = hex.strip_prefix("sha256:").unwrap_or(&hex);
    format!("host-{}", &digest[..digest.len().min(16)])
}

/// What the first quote covers; its clock becomes the host's baseline.
const ENROLLMENT_SELECTION: &str = "sha256:0,1,2,3,4,5,6,7";

/// Step 1: the EK certificate chains to a configured anchor and certifies exactly this EK.
fn trust_ek(state: &AppState, req: &EnrollRequest, ek: &Public, host_id: &str) -> Result<Option<String>, Denial> {
    let Some(cert) = &req.ek_certificate else {
        if state.config.ek.trusted_hosts.iter().any(|h| h == host_id) {
            return Ok(None);
        }
        return Err(Denial::new(
            DenialCode::EkUntrusted,
            format!("no EK certificate, and EK {host_id} is not trusted explicitly (ek.trusted_hosts)"),
        ));
    };
    let anchors = state.anchors.read().map(|a| std::sync::Arc::clone(&a)).map_err(|_| Fault::Poisoned("EK anchors"))?;
    if anchors.anchors.is_empty() {
        return Err(Denial::new(DenialCode::EkUntrusted, "no EK trust anchors configured (runtrust ek-ca add PEM)"));
    }
    let verified = verify_ek_certificate(cert, &req.ek_intermediates, &anchors.anchors, ek, state.clock.now_i64())
        .map_err(|e| Denial::new(e.code(), format!("EK certificate: {e}")))?;
    Ok(Some(hex::encode(verified.fingerprint_sha256)))
}

/// `POST /v1/enroll`; refusals of both steps are audited as `enroll.deny` (routes.rs).
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<EnrollRequest>,
) -> Result<Json<EnrollChallenge>, Denial> {
    caller.require(&ENROLLERS)?;
    check_join(&caller, state.clock.now_unix())?;
    let ek = Public::from_tpm2b(&req.ek_public)
        .map_err(|e| Denial::new(DenialCode::EkUntrusted, format!("EK public area: {e}")))?;
    let host_id = HostId::of_ek(&ek);
    let ek_certificate_sha256 = trust_ek(&state, &req, &ek, &host_id)?;

    let asked = tags::normalize(&req.tags)?;
    let principal_id = caller.0.id.clone();
    if let Some(bound) = blocking(&state, move |s| s.principal_host(&principal_id)).await? {
        if bound != host_id {
            return Err(Denial::new(
                DenialCode::RuntimeIdentityMismatch,
                format!("this credential enrolled host {bound}; a different TPM ({host_id}) cannot enroll under it"),
            ));
        }
    }

    let id = host_id.to_string();
    let (recorded, revoked) = blocking(&state, move |s| Ok((s.host(&id)?, host_revoked(s, &id)?))).await?;
    if let Some(r) = revoked {
        return Err(revoked_denial(&host_id, r));
    }
    // docs/design.md §5: the operator's tags, never the host's choice.
    let tags = enrollment_tags(&Conferral::of_principal(&caller), &asked, recorded.as_ref())
        .map_err(|e| Denial::from(e).about_host(Some(&host_id)))?;

    let ak = Public::from_tpm2b(&req.ak_public)
        .map_err(|e| Denial::new(DenialCode::AkInvalid, format!("AK public area: {e}")))?;
    check_ak(&ak, false).map_err(|e| Denial::new(e.code(), e.to_string()))?;
    let ak_name = hex::encode(ak.name());
    let name = ak_name.clone();
    if let Some(owner) = blocking(&state, move |s| s.host_by_ak(&name)).await? {
        if owner.host_id != host_id {
            return Err(Denial::new(
                DenialCode::AkInvalid,
                format!("AK {ak_name} is enrolled as host {}", owner.host_id),
            ));
        }
    }

    let secret: [u8; 32] = state.random()?;
    let made = make_credential(&ek, &ak.name(), &secret, &state.rng)
        .map_err(|e| Denial::new(e.code(), format!("MakeCredential: {e}")))?;
    let id = hex::encode(state.random::<16>()?);
    let nonce = Nonce(state.random()?);
    let now = state.clock.now_unix();
    let expires_at = now + state.config.limits.challenge_ttl_secs;
    let pending = PendingEnrollment {
        id: id.clone(),
        principal_id: caller.0.id.clone(),
        host: HostRecord {
            host_id,
            ek_public: ek.to_tpm2b(),
            ek_certificate_sha256,
            ak_public: ak.to_tpm2b(),
            ak_name,
            tags,
            enrolled_at: now,
            updated_at: now,
            first_clock: ClockInfo::default(),
            last_clock: ClockInfo::default(),
            last_attested: None,
            enrolled_by: caller.0.name.clone(),
        },
        secret_sha256: hex::encode(HashAlg::Sha256.digest(&secret)),
        nonce,
        selection: ENROLLMENT_SELECTION.parse().map_err(Denial::internal)?,
        expires_at,
    };
    // docs/design.md §16: a principal holds only so many unexpired enrollment challenges at once.
    let mut cap = Cap { max: state.config.limits.max_enrollments_per_principal, now };
    if let Some(j) = caller.0.join.filter(|_| caller.0.role == Role::JoinToken) {
        cap.max = cap.max.max((j.remaining() as usize).min(MAX_JOIN_PENDING));
    }
    if let Admission::Full { outstanding } = blocking(&state, move |s| s.put_enrollment(&pending, cap)).await? {
        return Err(Denial::limit_exceeded(format!(
            "{outstanding} enrollments of this principal are pending (limits.max_enrollments_per_principal = {}): \
             answer them or let them expire",
            cap.max
        )));
    }
    Ok(Json(EnrollChallenge {
        enrollment_id: id,
        credential_blob: made.credential_blob,
        encrypted_secret: made.encrypted_secret,
        nonce: nonce.to_string(),
        pcr_selection: ENROLLMENT_SELECTION.into(),
        expires_at,
    }))
}

/// `POST /v1/enroll/{enrollment_id}`.
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(answer): Body<ActivationAnswer>,
) -> Result<Json<Enrolled>, Denial> {
    caller.require(&ENROLLERS)?;
    check_join(&caller, state.clock.now_unix())?;
    let pending = blocking(&state, move |s| s.take_enrollment(&id))
        .await?
        .ok_or_else(|| Denial::new(DenialCode::NonceUnknown, "unknown enrollment: never issued or already answered"))?;
    if pending.principal_id != caller.0.id {
        return Err(Denial::new(DenialCode::ActivationFailed, "this enrollment was started by another principal"));
    }
    if state.clock.now_unix() > pending.expires_at {
        return Err(Denial::new(DenialCode::NonceExpired, "the enrollment challenge expired; enroll again"));
    }
    // Only the TPM holding both the EK and this AK can have recovered the secret (Part 1 §24).
    let answered = hex::encode(HashAlg::Sha256.digest(&answer.secret));
    if !runtrust_attestation::ct_eq(answered.as_bytes(), pending.secret_sha256.as_bytes()) {
        return Err(Denial::new(DenialCode::ActivationFailed, "the activated secret does not match the challenge"));
    }

    let ak = Public::from_tpm2b(&pending.host.ak_public).map_err(Denial::internal)?;
    let q = &answer.quote;
    let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    // The first quote may come from the host agent's batch (docs/design.md §14).
    let batch = q
        .batch
        .as_ref()
        .map(|b| b.to_proof())
        .transpose()
        .map_err(|e| Denial::new(e.code(), format!("enrollment quote: nonce batch: {e}")))?;
    // Enrolling again does not reset a known TPM's clock baseline: only an admin re-baseline does (§4).
    let known = pending.host.host_id.to_string();
    let previous = blocking(&state, move |s| s.host(&known)).await?.map(|h| h.last_clock);
    let options = QuoteOptions {
        expected_selection: Some(&pending.selection),
        previous_clock: previous.as_ref(),
        nonce_batch: batch.as_ref(),
        ..Default::default()
    };
    let verified = verify_quote(&ak, &evidence, pending.nonce.as_bytes(), &options).map_err(|e| {
        let hint = e.hint().map_or(serde_json::Value::Null, |hint| serde_json::json!({ "hint": hint }));
        Denial::new(e.code(), format!("enrollment quote: {e}")).with_diagnostics(hint)
    })?;

    let clock = verified.attest.clock_info;
    let host = HostRecord { first_clock: clock, last_clock: clock, ..pending.host };
    if caller.0.role == Role::JoinToken {
        return join(&state, &caller, host).await.map(Json);
    }
    let (host_id, ak_name, tags) = (host.host_id.clone(), host.ak_name.clone(), host.tags.clone());
    let principal_id = caller.0.id.clone();
    let conferral = Conferral::of_principal(&caller);
    let (now, by) = (state.clock.now_unix(), caller.name().to_owned());
    let stored = blocking(&state, move |s| {
        // Revoked since the challenge: still refused.
        if let Some(r) = host_revoked(s, &host.host_id)? {
            return Ok(Err(Refused::Revoked(r)));
        }
        let new = s.host(&host.host_id)?.is_none();
        let entry = enrolled_entry(now, &by, &host, new.then_some(&conferral));
        Ok(s.enroll_host(&host, &principal_id, &entry).map_err(Refused::Store))
    })
    .await?;
    let outcome = match stored {
        Ok(o) => o,
        Err(Refused::Revoked(r)) => return Err(revoked_denial(&host_id, r)),
        Err(Refused::Join(r)) => return Err(join_refused(r)),
        Err(Refused::Store(e)) => return Err(conflict_denial(e)),
    };
    tracing::info!(%host_id, %ak_name, ?outcome, by = %caller.0.name, "host enrolled");
    let new = outcome != EnrollOutcome::Unchanged;
    Ok(Json(Enrolled { host_id: host_id.to_string(), ak_name, new, tags, principal: None, credential: None }))
}

/// Why storing an activated enrollment did not happen.
enum Refused {
    Revoked(Revocation),
    Store(StoreError),
    Join(JoinRefusal),
}

/// The store's Conflicts on enrolling, as denials.
fn conflict_denial(e: StoreError) -> Denial {
    match e {
        StoreError::Conflict(detail) if detail.starts_with(TAGS_DIFFER) => {
            Denial::new(DenialCode::AuthorizationMissing, format!("{detail}; enroll again without --tag"))
                .with_status(axum::http::StatusCode::FORBIDDEN)
        }
        StoreError::Conflict(detail) if detail.contains("credential") => {
            Denial::new(DenialCode::RuntimeIdentityMismatch, detail)
        }
        StoreError::Conflict(detail) => Denial::new(DenialCode::AkInvalid, detail),
        e => Denial::internal(e),
    }
}

/// An activated enrollment through a join token: one use spent, the host's own attester principal made (or
/// given a new secret, if the host joined before), the host stored bound to it, in one durable step.
async fn join(state: &AppState, caller: &Caller, host: HostRecord) -> Result<Enrolled, Denial> {
    let minted = crate::principal::mint(&state.rng).map_err(|_| super::Fault::Random)?;
    let now = state.clock.now_unix();
    let name = host_principal_name(&host.host_id);
    let principal = Principal {
        id: minted.principal_id,
        name: name.clone(),
        role: Role::Attester,
        secret_sha256: minted.secret_sha256,
        created_at: now,
        tags: host.tags.clone(),
        created_by: caller.0.created_by.clone(),
        join: None,
    };
    let (host_id, ak_name, tags) = (host.host_id.clone(), host.ak_name.clone(), host.tags.clone());
    let join_id = caller.0.id.clone();
    let conferral = Conferral::of_principal(caller);
    let by = caller.name().to_owned();
    let stored = blocking(state, move |s| {
        if let Some(r) = host_revoked(s, &host.host_id)? {
            return Ok(Err(Refused::Revoked(r)));
        }
        let new = s.host(&host.host_id)?.is_none();
        let mut entry = enrolled_entry(now, &by, &host, new.then_some(&conferral));
        entry.detail.push_str(&format!("; joined with join token {join_id} as principal {name}"));
        if let Some(d) = entry.diagnostics.as_object_mut() {
            d.insert("join_token".into(), join_id.clone().into());
            d.insert("principal".into(), name.clone().into());
        }
        match s.join_host(&join_id, now, &principal, &host, &entry) {
            Ok(Joined::Enrolled { outcome, principal_id }) => Ok(Ok((outcome, principal_id))),
            Ok(Joined::Refused(r)) => Ok(Err(Refused::Join(r))),
            Err(e) => Ok(Err(Refused::Store(e))),
        }
    })
    .await?;
    let (outcome, principal_id) = match stored {
        Ok(joined) => joined,
        Err(Refused::Revoked(r)) => return Err(revoked_denial(&host_id, r)),
        Err(Refused::Join(r)) => return Err(join_refused(r)),
        Err(Refused::Store(e)) => return Err(conflict_denial(e)),
    };
    tracing::info!(%host_id, %ak_name, ?outcome, join_token = %caller.0.id, "host joined");
    Ok(Enrolled {
        host_id: host_id.to_string(),
        ak_name,
        new: outcome != EnrollOutcome::Unchanged,
        tags,
        principal: Some(host_principal_name(&host_id)),
        credential: Some(crate::principal::bearer(&principal_id, &minted.secret)),
    })
}

/// A revoked host cannot enroll again until an admin lifts its revocation (docs/design.md §11).
fn revoked_denial(host: &HostId, revocation: Revocation) -> Denial {
    let e = RevocationError::Host { host: host.clone(), revocation: Box::new(revocation) };
    let mut d = Denial::from(e).about_host(Some(host));
    d.detail.push_str("; an admin can lift it: runtrust hosts unrevoke HOST --reason R");
    d
}

/// `enroll.allow`; a new host's initial tags name the admin that conferred them (docs/design.md §5).
fn enrolled_entry(now: u64, by: &str, host: &HostRecord, conferred: Option<&Conferral>) -> AuditEntry {
    let tags = host.tags.join(", ");
    let (detail, diagnostics) = match conferred {
        Some(c) => {
            let admin = c.by.as_deref().unwrap_or("(unrecorded)");
            let detail = format!("AK {}; tags [{tags}] conferred by {admin} ({})", host.ak_name, c.source);
            (detail, serde_json::json!({ "tags": host.tags, "conferred_by": c.by, "new": true }))
        }
        None => (format!("AK {}; tags [{tags}] as recorded", host.ak_name), serde_json::json!({ "tags": host.tags })),
    };
    AuditEntry::new(now, "enroll.allow", detail).by(by).host(&host.host_id).diagnostics(diagnostics)
}

#[cfg(test)]
mod tests {
    #[test]
    fn enrollment_selection_parses() {
        let s: runtrust_attestation::PcrSelection = super::ENROLLMENT_SELECTION.parse().unwrap();
        assert_eq!(s.to_string(), super::ENROLLMENT_SELECTION);
    }
}
