//! Issue 11 in-process, on the issuance fixture (`tests.rs`): a token is bound to its exact bytes at exec and
//! at delegation (finding 6), the service checks `iss` and requires the gateway's audience (finding 11), and
//! what an authenticated principal can make the store hold is bounded (finding 7).

use axum::extract::State;
use axum::Json;
use runtrust_attestation::Public;

use super::tests::{policy, Fixture, T0};
use crate::api::{EnrollRequest, ExecStartRequest, ExecStartResponse, TokenRequest};
use crate::model::{HostId, Principal, Role, TokenRecord};
use crate::service::auth::Caller;
use crate::service::{Body, Denial};
use crate::token::{decode_unverified, Claims};

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn gateway() -> Caller {
    Caller(Principal {
        id: "9a".repeat(8),
        name: "gw".into(),
        role: Role::Gateway,
        secret_sha256: String::new(),
        created_at: T0,
        tags: Vec::new(),
        created_by: None,
        join: None,
    })
}

fn exec_request(token: &[u8], scope: &str) -> ExecStartRequest {
    ExecStartRequest {
        token: token.to_vec(),
        scope: scope.into(),
        audience: Some("gw-1".into()),
        argv_sha256: "00".repeat(32),
    }
}

/// `POST /v1/executions` as the gateway principal.
fn exec(f: &Fixture, req: ExecStartRequest) -> Result<ExecStartResponse, Denial> {
    let state = f.state.clone();
    block_on(crate::service::execution::start(State(state), gateway(), Body(req))).map(|Json(r)| r)
}

/// The issued token's claims changed by `edit`, signed with the service's own issuer key (a leaked key).
fn re_signed(f: &Fixture, token: &[u8], edit: impl FnOnce(&mut Claims)) -> Vec<u8> {
    let (_, mut claims) = decode_unverified(token).unwrap();
    edit(&mut claims);
    f.state.sign(&claims).unwrap()
}

fn denied<T: std::fmt::Debug>(r: Result<T, Denial>, code: &str) -> Denial {
    let d = r.unwrap_err();
    assert_eq!(d.code, code, "{}", d.detail);
    d
}

// Finding 6: the online exec check and delegation accept only the token issued under a cti, byte for byte.

#[test]
fn exec_refuses_a_re_signed_token_with_a_wider_scope() {
    let f = Fixture::new();
    let issued = f.run(f.request()).unwrap(); // scope deploy/web
    let forged = re_signed(&f, &issued.token, |c| c.scope = "deploy/*".into());
    let d = denied(exec(&f, exec_request(&forged, "deploy/db")), "signature_invalid");
    assert!(d.detail.contains("re-signed"), "{}", d.detail);
    assert_eq!(d.host_id.as_deref(), Some(f.host.host_id.as_str()), "the denial names the host for its audit entry");
    assert!(f.store.executions(&issued.cti).unwrap().is_empty(), "no execution under a scope the record never had");
    // The token as issued still runs.
    let started = exec(&f, exec_request(&issued.token, "deploy/web")).unwrap();
    assert_eq!(started.cti, issued.cti);
    assert_eq!(f.store.executions(&issued.cti).unwrap()[0].scope, "deploy/web");
}

#[test]
fn exec_refuses_an_expired_token_whose_exp_was_moved() {
    let f = Fixture::new();
    let issued = f.run(TokenRequest { ttl_secs: Some(60), ..f.request() }).unwrap();
    f.clock.advance(61);
    denied(exec(&f, exec_request(&issued.token, "deploy/web")), "token_expired");
    let forged = re_signed(&f, &issued.token, |c| c.exp += 365 * 86_400);
    denied(exec(&f, exec_request(&forged, "deploy/web")), "signature_invalid");
    assert!(f.store.executions(&issued.cti).unwrap().is_empty());
}

#[test]
fn a_record_without_the_token_digest_matches_no_token() {
    // A record written before the digest existed (serde default: none) is refused, fail closed.
    let f = Fixture::new();
    let issued = f.run(f.request()).unwrap();
    let mut record = f.store.token(&issued.cti).unwrap().unwrap();
    assert!(record.is_token(&issued.token));
    assert_eq!(record.token_sha256.as_deref(), Some(TokenRecord::digest(&issued.token).as_str()));
    let mut json = serde_json::to_value(&record).unwrap();
    json.as_object_mut().unwrap().remove("token_sha256");
    let old: TokenRecord = serde_json::from_value(json).unwrap();
    assert_eq!(old.token_sha256, None);
    assert!(!old.is_token(&issued.token) && !old.is_token(b""));
    record.token_sha256 = None;
    let entry = crate::audit::AuditEntry::new(T0, "token.issue", "");
    let attested = f.store.host(&f.host.host_id).unwrap().unwrap().last_attested.unwrap();
    f.store.record_issuance(&record, &entry, &f.host.host_id, &f.host.last_clock, &attested).unwrap();
    let d = denied(exec(&f, exec_request(&issued.token, "deploy/web")), "signature_invalid");
    assert!(d.detail.contains("request a new one"), "{}", d.detail);
}

#[test]
fn delegation_refuses_a_re_signed_parent() {
    let f = Fixture::new();
    let parent = f.run(TokenRequest { scope: "deploy/web/*".into(), ..f.request() }).unwrap();
    let forged = re_signed(&f, &parent.token, |c| {
        c.scope = "deploy/*".into();
        c.exp += 365 * 86_400;
    });
    f.challenge(&f.caller.0.id.clone(), T0 + 60);
    let child = TokenRequest { scope: "deploy/db".into(), parent: Some(forged), ..f.request() };
    let d = f.denied(child, "signature_invalid");
    assert!(d.detail.contains("re-signed"), "{}", d.detail);
}

// Finding 11: the service checks iss at exec and at delegation, and requires the gateway's audience.

#[test]
fn the_service_refuses_tokens_of_another_issuer() {
    let f = Fixture::new();
    let issued = f.run(TokenRequest { scope: "deploy/web/*".into(), ..f.request() }).unwrap();
    let evil = re_signed(&f, &issued.token, |c| c.iss = "evil".into());
    let d = denied(exec(&f, exec_request(&evil, "deploy/web/x")), "signature_invalid");
    assert!(d.detail.contains("issuer \"evil\" is not \"test\""), "{}", d.detail);
    let child = TokenRequest { scope: "deploy/web/x".into(), parent: Some(evil), ..f.request() };
    let d = f.denied(child, "signature_invalid");
    assert!(d.detail.contains("issuer \"evil\""), "{}", d.detail);
}

#[test]
fn exec_requires_a_bounded_audience_and_scope() {
    let f = Fixture::new();
    let issued = f.run(f.request()).unwrap();
    let without = ExecStartRequest { audience: None, ..exec_request(&issued.token, "deploy/web") };
    denied(exec(&f, without), "audience_mismatch");
    let long = ExecStartRequest { audience: Some("g".repeat(300)), ..exec_request(&issued.token, "deploy/web") };
    denied(exec(&f, long), "audience_mismatch");
    let huge = format!("deploy/{}", "x".repeat(500_000));
    let d = denied(exec(&f, exec_request(&issued.token, &huge)), "scope_denied");
    assert!(d.detail.len() < 300, "the scope is not repeated whole: {} bytes", d.detail.len());
    assert!(f.store.executions(&issued.cti).unwrap().is_empty());
}

// Finding 7: bounded strings, per-principal caps, and the sweep.

#[test]
fn oversized_request_strings_are_refused_early_and_not_stored() {
    let f = Fixture::new();
    let d = f.denied(TokenRequest { ak_name: "ab".repeat(100_000), ..f.request() }, "runtime_identity_mismatch");
    assert!(d.detail.len() < 200, "{}", d.detail);
    f.denied(TokenRequest { ak_name: "zz".repeat(34), ..f.request() }, "runtime_identity_mismatch");
    let d = f.denied(TokenRequest { scope: format!("deploy/{}", "é".repeat(250_000)), ..f.request() }, "scope_denied");
    assert!(d.detail.len() < 300, "{} bytes", d.detail.len());
    let for_host = Some("sha256:".to_owned() + &"0".repeat(200_000));
    f.denied(TokenRequest { for_host, parent: Some(vec![1]), ..f.request() }, "host_unknown");
    // Every entry the refusals wrote is small.
    let entries = f.store.audit(0, 100).unwrap();
    assert!(entries.iter().all(|(_, e)| e.detail.len() < 300), "an audit entry repeats an oversized input");
}

#[test]
fn challenges_beyond_the_cap_are_refused_until_used_or_expired() {
    let limits = "[limits]\nmax_body_bytes = 1048576\nchallenge_ttl_secs = 60\nmax_challenges_per_principal = 3\n";
    let f = Fixture::with_config(&[policy("web", "")], limits);
    let challenge = || block_on(crate::service::challenge::challenge(State(f.state.clone()), f.caller.clone()));
    // The fixture's own challenge is the first of three.
    let _ = challenge().unwrap();
    let _ = challenge().unwrap();
    let d = denied(challenge(), "limit_exceeded");
    assert_eq!(d.status.as_u16(), 429);
    assert!(d.detail.contains("max_challenges_per_principal = 3"), "{}", d.detail);
    // Using one frees its place.
    f.run(f.request()).unwrap();
    let _ = challenge().unwrap();
    denied(challenge(), "limit_exceeded");
    // Expired ones do not count; once expired for a sweep interval (60 s), the sweep removes them.
    f.clock.advance(61);
    let _ = challenge().unwrap();
    let swept = block_on(crate::service::sweep::sweep_once(&f.state)).unwrap();
    assert_eq!(swept, crate::store::Swept::default(), "just expired: still there (nonce_expired, not unknown)");
    f.clock.advance(60);
    let swept = block_on(crate::service::sweep::sweep_once(&f.state)).unwrap();
    assert_eq!((swept.challenges, swept.nonces), (3, 1), "three expired unused, one used: {swept:?}");
}

#[test]
fn pending_enrollments_beyond_the_cap_are_refused() {
    let ek = Public::from_tpm2b(&std::fs::read(ekcert("ek-rsa.pub")).unwrap()).unwrap();
    let host = HostId::of_ek(&ek);
    let config = format!(
        "[ek]\ntrusted_hosts = [\"{host}\"]\n[limits]\nmax_body_bytes = 1048576\nchallenge_ttl_secs = 60\n\
         max_enrollments_per_principal = 2\n"
    );
    let f = Fixture::with_config(&[policy("web", "")], &config);
    let newcomer = Principal { id: "7e".repeat(8), name: "web-09".into(), ..f.caller.0.clone() };
    f.store.add_principal(&newcomer, &crate::audit::AuditEntry::new(T0, "principal.add", "")).unwrap();
    let start = || {
        let req = EnrollRequest {
            ek_certificate: None,
            ek_intermediates: vec![],
            ek_public: ek.to_tpm2b(),
            // Another AK than the fixture host's (which is enrolled already).
            ak_public: std::fs::read(format!("{}/attestation/tests/vectors/ecc/ak.pub", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
            tags: vec![],
        };
        let caller = Caller(newcomer.clone());
        block_on(crate::service::enroll::start(State(f.state.clone()), caller, Body(req))).map(|Json(c)| c)
    };
    start().unwrap();
    start().unwrap();
    let d = denied(start(), "limit_exceeded");
    assert!(d.detail.contains("max_enrollments_per_principal = 2"), "{}", d.detail);
    f.clock.advance(61);
    let fresh = start().unwrap();
    f.clock.advance(60);
    let swept = block_on(crate::service::sweep::sweep_once(&f.state)).unwrap();
    assert_eq!(swept.enrollments, 2, "{swept:?}");
    assert!(f.store.take_enrollment(&fresh.enrollment_id).unwrap().is_some(), "the unexpired one stays");
}

#[test]
fn a_swept_nonce_is_never_accepted_again() {
    let f = Fixture::new();
    f.run(f.request()).unwrap();
    f.denied(f.request(), "nonce_replayed");
    f.clock.advance(121);
    let swept = block_on(crate::service::sweep::sweep_once(&f.state)).unwrap();
    assert_eq!(swept.nonces, 1);
    // Its record is gone: the nonce is unknown now, and refused all the same.
    f.denied(f.request(), "nonce_unknown");
}

fn ekcert(file: &str) -> String {
    format!("{}/attestation/tests/vectors/ekcerts/{file}", env!("CARGO_MANIFEST_DIR"))
}
