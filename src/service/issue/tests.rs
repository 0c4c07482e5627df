//! Every issuance stage's denials, in-process: a real store, a quote recorded from swtpm
//! (`attestation/tests/vectors/rsa`), the injected clock; no TPM and no HTTP. Each denial also shows that
//! nothing was issued and that the refusal was audited with its code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runtrust_attestation::{Attest, ClockInfo, PcrValues, Public};

use super::issue_token;
use crate::api::{QuoteEvidence, TokenRequest, TokenResponse};
use crate::audit::AuditEntry;
use crate::config::{IssuerKeyFile, ServiceConfig};
use crate::model::{Challenge, HostRecord, ManualClock, Nonce, Principal, Revocation, RevocationKind, Role};
use crate::service::auth::Caller;
use crate::service::{AppState, Denial};
use crate::store::{Store, StoreConfig};
use crate::token::{verify, Expectations, IssuerKey, KeySet, SigningAlg};

/// When the fixture's clock starts (the vector's quote carries no wall time).
pub(super) const T0: u64 = 1_800_000_000;

fn vector(file: &str) -> Vec<u8> {
    vector_in("rsa", file)
}

/// A file of `attestation/tests/vectors/<dir>` (`rsa`; `batch`: quotes over nonce-batch roots).
fn vector_in(dir: &str, file: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("attestation/tests/vectors").join(dir).join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub(super) struct Fixture {
    pub(super) state: AppState,
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<ManualClock>,
    pub(super) caller: Caller,
    pub(super) host: HostRecord,
    pub(super) nonce: Nonce,
    /// The vector directory the host's AK and quotes come from.
    vectors: &'static str,
    _dir: tempfile::TempDir,
}

/// The vector's PCR values as a `[pcrs.sha256]` table; `tamper` replaces PCR 0's value.
fn pcr_table(tamper: bool) -> String {
    let pcrs: PcrValues = serde_json::from_slice(&vector("pcrs.json")).unwrap();
    let mut out = String::from("[pcrs.sha256]\n");
    for (bank, index, value) in pcrs.iter() {
        assert_eq!(bank.name(), "sha256");
        let value = if tamper && index == 0 { "00".repeat(32) } else { hex::encode(value) };
        out.push_str(&format!("{index} = [\"{value}\"]\n"));
    }
    out
}

fn vector_pcr0() -> Vec<u8> {
    let pcrs: PcrValues = serde_json::from_slice(&vector("pcrs.json")).unwrap();
    let pcr0 = pcrs.iter().find(|(_, i, _)| *i == 0).map(|(_, _, v)| v.to_vec());
    pcr0.unwrap()
}

/// A policy for hosts tagged `env=test`, granting deploy/* to every initiator.
pub(super) fn policy(id: &str, extra: &str) -> String {
    format!(
        "id = \"{id}\"\n[hosts]\ntags = [\"env=test\"]\n{}\n[[grant]]\nprincipals = [\"*\"]\nscopes = [\"deploy/*\"]\n\
         [token]\ndefault_ttl = \"5m\"\nmax_ttl = \"15m\"\nmax_delegation_depth = 2\n{extra}",
        pcr_table(false)
    )
}

impl Fixture {
    /// An enrolled host (the vector's AK), its attester principal, the policy `web`, and a challenge for
    /// the vector's nonce.
    pub(super) fn new() -> Self {
        Self::with_policies(&[policy("web", "")])
    }

    fn with_policies(policies: &[String]) -> Self {
        Self::with_config(policies, "")
    }

    /// With `extra` appended to the service's config.toml (e.g. `[limits]`, `[ek]`).
    pub(super) fn with_config(policies: &[String], extra: &str) -> Self {
        Self::build("rsa", policies, extra)
    }

    /// As [`Fixture::with_policies`], the host's AK and quote from `attestation/tests/vectors/<vectors>`;
    /// the challenge is for the directory's first nonce (`nonce.hex`, or `nonces.hex` of a batch).
    fn with_vectors(vectors: &'static str, policies: &[String]) -> Self {
        Self::build(vectors, policies, "")
    }

    fn build(vectors: &'static str, policies: &[String], extra: &str) -> Self {
        let vector = |file: &str| vector_in(vectors, file);
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&StoreConfig::Sled { path: dir.path().join("store") }).unwrap();
        let clock = Arc::new(ManualClock::at(T0));
        let ak = Public::from_tpm2b(&vector("ak.pub")).unwrap();
        let quote_clock = Attest::parse_quote(&vector("attest")).unwrap().clock_info;
        let principal = Principal {
            id: "a1".repeat(8),
            name: "web-01".into(),
            role: Role::Attester,
            secret_sha256: String::new(),
            created_at: T0,
            tags: vec!["env=test".into()],
            created_by: Some("admin".into()),
            join: None,
        };
        store.add_principal(&principal, &AuditEntry::new(T0, "principal.add", "")).unwrap();
        let host = HostRecord {
            host_id: format!("sha256:{}", "cd".repeat(32)).parse().unwrap(),
            ek_public: vec![],
            ek_certificate_sha256: None,
            ak_public: ak.to_tpm2b(),
            ak_name: hex::encode(ak.name()),
            tags: vec!["env=test".into()],
            enrolled_at: T0,
            updated_at: T0,
            first_clock: quote_clock,
            last_clock: quote_clock,
            last_attested: None,
            enrolled_by: principal.name.clone(),
        };
        store.enroll_host(&host, &principal.id, &AuditEntry::new(T0, "enroll.allow", "")).unwrap();
        let (key, pkcs8) = IssuerKey::generate(SigningAlg::EdDsa, &ring::rand::SystemRandom::new()).unwrap();
        std::fs::write(dir.path().join("issuer.pk8"), pkcs8).unwrap();
        let config: ServiceConfig = toml::from_str(&format!(
            "service_id = \"test\"\nlisten = \"127.0.0.1:0\"\n[tls]\nca = \"x\"\ncert = \"x\"\nkey = \"x\"\n\
             [issuer]\nkeys = [{{ path = \"issuer.pk8\", alg = \"eddsa\" }}]\n{extra}",
        ))
        .unwrap();
        let issuer = vec![(IssuerKeyFile { path: PathBuf::from("issuer.pk8"), alg: SigningAlg::EdDsa }, key)];
        let state =
            AppState::with_store_and_clock(config, dir.path().into(), store.clone(), issuer, clock.clone()).unwrap();
        for text in policies {
            let loaded = crate::policy::parse("test", text.as_bytes()).unwrap();
            state.policies.write().unwrap().push(Arc::new(loaded));
        }
        let nonce_file = if vectors == "batch" { "nonces.hex" } else { "nonce.hex" };
        let nonces = String::from_utf8(vector(nonce_file)).unwrap();
        let nonce: Nonce = nonces.lines().next().unwrap().trim().parse().unwrap();
        let f = Fixture { state, store, clock, caller: Caller(principal), host, nonce, vectors, _dir: dir };
        f.challenge(&f.caller.0.id.clone(), T0 + 60);
        f
    }

    /// Issues the vector's nonce as a challenge to `principal_id`, expiring at `expires_at`.
    pub(super) fn challenge(&self, principal_id: &str, expires_at: u64) {
        let c = Challenge {
            nonce: self.nonce,
            host_id: self.host.host_id.clone(),
            principal_id: principal_id.into(),
            selection: "sha256:0,1,2,3,4,5,6,7".parse().unwrap(),
            expires_at,
            host_clock: None,
        };
        let uncapped = crate::store::Cap { max: usize::MAX, now: T0 };
        let stored = self.store.put_challenge(&c, &AuditEntry::new(T0, "challenge.issue", ""), uncapped).unwrap();
        assert_eq!(stored, crate::store::Admission::Stored);
    }

    pub(super) fn request(&self) -> TokenRequest {
        TokenRequest {
            nonce: self.nonce.to_string(),
            scope: "deploy/web".into(),
            audience: "gw-1".into(),
            ttl_secs: Some(300),
            ak_name: self.host.ak_name.clone(),
            quote: QuoteEvidence {
                attest: vector_in(self.vectors, "attest"),
                signature: vector_in(self.vectors, "signature"),
                pcrs: serde_json::from_slice(&vector_in(self.vectors, "pcrs.json")).unwrap(),
                batch: None,
            },
            parent: None,
            for_host: None,
            event_log: None,
        }
    }

    pub(super) fn run(&self, req: TokenRequest) -> Result<TokenResponse, Denial> {
        self.run_as(&self.caller, req)
    }

    fn run_as(&self, caller: &Caller, req: TokenRequest) -> Result<TokenResponse, Denial> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(issue_token(&self.state, caller, req))
    }

    /// Runs `req`, expects the denial `code`, and checks that no token was recorded and that the last audit
    /// entry is the refusal with that code (naming the host once it is known).
    pub(super) fn denied(&self, req: TokenRequest, code: &str) -> Denial {
        self.denied_as(&self.caller, req, code)
    }

    fn denied_as(&self, caller: &Caller, req: TokenRequest, code: &str) -> Denial {
        let tokens_before = self.store.tokens().unwrap().len();
        let audit_before = self.store.audit_len().unwrap();
        let denial = match self.run_as(caller, req) {
            Ok(t) => panic!("expected {code}, a token was issued: {}", t.cti),
            Err(d) => d,
        };
        assert_eq!(denial.code, code, "detail: {}", denial.detail);
        assert_eq!(self.store.tokens().unwrap().len(), tokens_before, "nothing issued");
        assert_eq!(self.store.audit_len().unwrap(), audit_before + 1, "the denial is audited");
        let (_, entry) = self.store.audit(audit_before, 1).unwrap().pop().unwrap();
        assert_eq!(entry.event, "token.deny");
        assert_eq!(entry.code.as_deref(), Some(code));
        assert_eq!(entry.principal.as_deref(), Some(caller.name()));
        assert_eq!(entry.time, crate::model::Clock::now_unix(&*self.clock), "stamped by the injected clock");
        denial
    }

    fn revoke(&self, kind: RevocationKind, target: &str, policy_hash: Option<String>) {
        let r = Revocation {
            seq: 0,
            kind,
            target: target.into(),
            policy_hash,
            reason: "test".into(),
            time: T0,
            by: "admin".into(),
            tokens: vec![],
            audit_index: 0,
            lifts: None,
        };
        self.store.revoke(&r, &AuditEntry::new(T0, "revoke.test", "")).unwrap();
    }

    pub(super) fn keys(&self) -> KeySet {
        self.state.verifying_keys().unwrap()
    }
}

// The path that issues, as the baseline every denial below departs from.

#[test]
fn the_vector_is_issued_a_token_bound_to_its_quote() {
    let f = Fixture::new();
    f.clock.advance(7);
    let issued = f.run(f.request()).unwrap();
    assert_eq!(issued.expires_at, T0 + 7 + 300, "exp comes from the injected clock");
    assert_eq!(issued.host_id, f.host.host_id.to_string());
    let exp = Expectations::new(i64::try_from(T0 + 8).unwrap(), "test");
    let claims = verify(&issued.token, &f.keys(), &exp).unwrap();
    assert_eq!(claims.eat_nonce, f.nonce.as_bytes());
    assert_eq!(claims.iat, i64::try_from(T0 + 7).unwrap());
    let record = f.store.token(&issued.cti).unwrap().unwrap();
    assert_eq!(record.audit_index, issued.audit_index);
    let host = f.store.host(&f.host.host_id).unwrap().unwrap();
    assert_eq!(host.last_attested.map(|a| a.time), Some(T0 + 7));
}

// Stage 1: the execution request.

#[test]
fn stage1_a_non_attester_is_refused() {
    let f = Fixture::new();
    let gateway = Caller(Principal { role: Role::Gateway, ..f.caller.0.clone() });
    let d = f.denied_as(&gateway, f.request(), "authorization_missing");
    assert_eq!(d.status.as_u16(), 403);
}

#[test]
fn stage1_malformed_scope_audience_ttl_and_nonce() {
    let f = Fixture::new();
    f.denied(TokenRequest { scope: "deploy/../db".into(), ..f.request() }, "scope_denied");
    f.denied(TokenRequest { audience: "gw 1".into(), ..f.request() }, "audience_mismatch");
    f.denied(TokenRequest { ttl_secs: Some(0), ..f.request() }, "policy_mismatch");
    f.denied(TokenRequest { nonce: "not-hex".into(), ..f.request() }, "nonce_unknown");
    let big = vec![0u8; crate::api::MAX_EVENT_LOG_BYTES + 1];
    f.denied(TokenRequest { event_log: Some(big), ..f.request() }, "event_log_mismatch");
}

#[test]
fn stage1_a_principal_without_a_host_is_refused() {
    let f = Fixture::new();
    let other = Caller(Principal { id: "b2".repeat(8), name: "web-02".into(), ..f.caller.0.clone() });
    let d = f.denied_as(&other, f.request(), "host_unknown");
    assert!(d.detail.contains("runtrust enroll"), "{}", d.detail);
}

// Stage 3: identity, before any policy work.

#[test]
fn stage3_a_revoked_host_is_refused_before_policy_work() {
    // No policy applies to the host at all: a policy-first pipeline would answer policy_mismatch.
    let f = Fixture::with_policies(&[]);
    f.revoke(RevocationKind::Host, &f.host.host_id, None);
    let d = f.denied(f.request(), "revoked");
    assert!(d.detail.contains(f.host.host_id.as_str()), "{}", d.detail);
    assert_eq!(d.host_id.as_deref(), Some(f.host.host_id.as_str()));
}

#[test]
fn stage3_another_ak_is_a_runtime_identity_mismatch() {
    let f = Fixture::with_policies(&[]);
    let d = f.denied(TokenRequest { ak_name: "000b".repeat(8), ..f.request() }, "runtime_identity_mismatch");
    assert!(d.detail.contains(&f.host.ak_name), "{}", d.detail);
}

// Stage 2: policy evaluation.

#[test]
fn stage2_no_policy_selects_the_host() {
    let f = Fixture::with_policies(&[]);
    f.denied(f.request(), "policy_mismatch");
}

#[test]
fn stage2_scope_not_granted_names_the_policies() {
    let f = Fixture::new();
    let d = f.denied(TokenRequest { scope: "db/migrate".into(), ..f.request() }, "scope_denied");
    assert_eq!(d.diagnostics["policies"], serde_json::json!(["web"]));
}

#[test]
fn stage2_two_policies_granting_is_ambiguous() {
    let f = Fixture::with_policies(&[policy("web", ""), policy("web2", "")]);
    let d = f.denied(f.request(), "policy_mismatch");
    assert!(d.detail.contains("ambiguous"), "{}", d.detail);
}

#[test]
fn stage2_ttl_over_the_policy_max() {
    let f = Fixture::new();
    let d = f.denied(TokenRequest { ttl_secs: Some(3600), ..f.request() }, "policy_mismatch");
    assert_eq!(d.diagnostics["max_ttl_secs"], 900);
}

#[test]
fn stage2_a_revoked_policy_version() {
    let f = Fixture::new();
    let hash = f.state.policies()[0].hash_hex();
    f.revoke(RevocationKind::Policy, "web", Some(hash));
    f.denied(f.request(), "revoked");
}

#[test]
fn stage2_delegation_needs_a_valid_parent() {
    let f = Fixture::new();
    f.denied(TokenRequest { for_host: Some(f.host.host_id.to_string()), ..f.request() }, "delegation_denied");
    f.denied(TokenRequest { parent: Some(b"not a token".to_vec()), ..f.request() }, "signature_invalid");
}

#[test]
fn stage2_an_expired_parent_is_refused_by_the_injected_clock() {
    let f = Fixture::new();
    let parent = f.run(TokenRequest { ttl_secs: Some(60), ..f.request() }).unwrap();
    f.clock.advance(61);
    f.challenge(&f.caller.0.id.clone(), T0 + 200);
    let d = f.denied(TokenRequest { parent: Some(parent.token), ..f.request() }, "token_expired");
    assert!(d.detail.starts_with("parent token"), "{}", d.detail);
}

#[test]
fn stage2_a_child_is_within_its_parent() {
    let f = Fixture::new();
    let parent = f.run(TokenRequest { scope: "deploy/web/*".into(), ttl_secs: Some(120), ..f.request() }).unwrap();
    f.challenge(&f.caller.0.id.clone(), T0 + 60);
    let wider = TokenRequest { scope: "deploy/db".into(), parent: Some(parent.token.clone()), ..f.request() };
    f.denied(wider, "scope_denied");
    f.challenge(&f.caller.0.id.clone(), T0 + 60);
    let longer = TokenRequest {
        scope: "deploy/web/api".into(),
        ttl_secs: Some(600),
        parent: Some(parent.token.clone()),
        ..f.request()
    };
    f.denied(longer, "delegation_denied");
    // Once the parent is revoked its children are refused.
    f.revoke(RevocationKind::Token, &parent.cti, None);
    let child = TokenRequest { scope: "deploy/web/api".into(), parent: Some(parent.token), ..f.request() };
    f.denied(child, "revoked");
}

// Stage 4: environmental validation.

#[test]
fn stage4_an_unissued_nonce_is_unknown() {
    let f = Fixture::new();
    f.denied(TokenRequest { nonce: "ab".repeat(32), ..f.request() }, "nonce_unknown");
}

#[test]
fn stage4_a_nonce_expires_on_the_injected_clock() {
    let f = Fixture::new();
    f.clock.advance(61);
    f.denied(f.request(), "nonce_expired");
}

#[test]
fn stage4_a_nonce_is_single_use() {
    let f = Fixture::new();
    f.run(f.request()).unwrap();
    f.denied(f.request(), "nonce_replayed");
}

#[test]
fn stage4_a_nonce_issued_to_another_principal() {
    let f = Fixture::new();
    // The same nonce, now on record as issued to another principal.
    f.challenge("someone-else", T0 + 60);
    f.denied(f.request(), "nonce_mismatch");
}

#[test]
fn stage4_a_tampered_quote_signature() {
    let f = Fixture::new();
    let mut req = f.request();
    let last = req.quote.signature.len() - 1;
    req.quote.signature[last] ^= 1;
    f.denied(req, "signature_invalid");
}

#[test]
fn stage4_pcrs_other_than_the_policy_says() {
    let f = Fixture::with_policies(&[policy("web", "").replace(&pcr_table(false), &pcr_table(true))]);
    let d = f.denied(f.request(), "pcr_mismatch");
    assert_eq!(d.diagnostics["policy"], "web");
    assert_eq!(d.diagnostics["pcrs"][0]["index"], 0, "{}", d.diagnostics);
    assert_eq!(d.diagnostics["pcrs"][0]["actual"], hex::encode(vector_pcr0()), "the quoted value is shown");
}

#[test]
fn stage4_a_tpm_clock_that_went_back() {
    let f = Fixture::new();
    let mut host = f.store.host(&f.host.host_id).unwrap().unwrap();
    host.last_clock = ClockInfo { reset_count: host.last_clock.reset_count + 1, ..host.last_clock };
    // Record a later issuance state for the host: its last accepted clock is now ahead of the vector's.
    let token = crate::model::TokenRecord {
        cti: "00".repeat(16),
        host_id: host.host_id.clone(),
        initiator: "x".into(),
        scope: "x".into(),
        audience: "x".into(),
        policy_id: "x".into(),
        policy_hash: "x".into(),
        parent_cti: None,
        delegation_depth: 0,
        single_use: false,
        issued_at: T0,
        expires_at: T0,
        audit_index: 0,
        consumed_at: None,
        token_sha256: None,
    };
    let attested = crate::model::AttestedState {
        pcr_selection: "sha256:0".parse().unwrap(),
        pcr_digest: "00".into(),
        policy_hash: "x".into(),
        time: T0,
    };
    let entry = AuditEntry::new(T0, "token.issue", "");
    f.store.record_issuance(&token, &entry, &host.host_id, &host.last_clock, &attested).unwrap();
    f.denied(f.request(), "clock_regressed");
}

#[test]
fn stage4_measured_boot_rules_need_the_event_log() {
    let rules = policy("web", "[measured_boot]\nrequire_secure_boot = true\n");
    let f = Fixture::with_policies(std::slice::from_ref(&rules));
    let d = f.denied(f.request(), "event_log_mismatch");
    assert_eq!(d.diagnostics["policy"], "web");
    // A log that does not parse (each fixture has one nonce: the first refusal consumed it).
    let f = Fixture::with_policies(&[rules]);
    let d = f.denied(TokenRequest { event_log: Some(vec![1, 2, 3]), ..f.request() }, "event_log_mismatch");
    assert!(d.detail.starts_with("event log:"), "{}", d.detail);
}

#[test]
fn stage_errors_map_to_their_codes() {
    use crate::service::DenialReason;
    use runtrust_attestation::DenialCode;
    assert_eq!(super::RequestError::NotEnrolled.code(), DenialCode::HostUnknown);
    assert_eq!(super::EnvironmentError::NonceReplayed.code(), DenialCode::NonceReplayed);
    assert_eq!(super::DelegationError::ForHostWithoutParent.code(), DenialCode::DelegationDenied);
    assert_eq!(super::PolicyError::Ambiguous(vec![]).code(), DenialCode::PolicyMismatch);
    let fault = super::AuthorizationError::SubjectUnattested("h".into());
    assert_eq!(fault.code(), DenialCode::InternalError);
    assert_eq!(fault.to_denial().detail, "internal error (see the service log)", "faults are not detailed");
}

// Issue 11: the operator's tags decide the policy (finding 1); a lifted host revocation (finding 12).

fn admin() -> Caller {
    Caller(Principal {
        id: "ad".repeat(8),
        name: "admin".into(),
        role: Role::Admin,
        secret_sha256: String::new(),
        created_at: T0,
        tags: vec![],
        created_by: None,
        join: None,
    })
}

#[test]
fn stage2_a_host_retagged_by_an_admin_is_selected_by_the_other_policy() {
    let db = policy("db", "").replace("tags = [\"env=test\"]", "tags = [\"env=db\"]").replace("deploy/*", "db/*");
    let f = Fixture::with_policies(&[policy("web", ""), db]);
    let (admin, tags) = (admin(), vec!["env=db".to_owned()]);
    let tagged = crate::service::hosts::set_tags(&f.state, &admin, &f.host.host_id, &tags);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(tagged).unwrap().tags, tags);
    let issued = f.run(TokenRequest { scope: "db/migrate".into(), ..f.request() }).unwrap();
    let record = f.store.token(&issued.cti).unwrap().unwrap();
    assert_eq!(record.policy_id, "db", "the admin's tags, not the host's wish, chose the policy");
}

#[test]
fn stage3_a_host_whose_revocation_was_lifted_is_issued_again() {
    let f = Fixture::new();
    f.revoke(RevocationKind::Host, &f.host.host_id, None);
    let admin = admin();
    let lift = crate::service::hosts::lift(&f.state, &admin, &f.host.host_id, "false positive");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(rt.block_on(lift).unwrap().kind, RevocationKind::Unrevoke);
    let issued = f.run(f.request()).unwrap();
    let record = f.store.token(&issued.cti).unwrap().unwrap();
    assert!(crate::service::revocation::why_revoked(f.store.as_ref(), &record).unwrap().is_none());
}

// Batched quotes (docs/design.md §14).
mod batched;
