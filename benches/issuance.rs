//! Token signing and verification beside ring's raw Ed25519, and the whole issuance pipeline in-process
//! (request → policy → identity → environment → authorization → durable audit), on a real swtpm quote.
//!
//! cargo bench -p runtrust --bench issuance

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use runtrust::api::{QuoteEvidence, TokenRequest};
use runtrust::config::{IssuerKeyFile, ServiceConfig};
use runtrust::model::{HostId, Nonce};
use runtrust::service::auth::Caller;
use runtrust::service::issue::issue_token;
use runtrust::service::AppState;
use runtrust::store::{
    Admission, AuditEntry, Cap, Challenge, ExecStart, ExecutionEnd, ExecutionRecord, HostRecord, NonceState, Principal,
    Revocation, Role, SledStore, Store, StoreError, Swept,
};
use runtrust::token::{verify, Claims, ConfirmationKey, Expectations, IssuerKey, KeySet, SigningAlg, EAT_PROFILE};
use runtrust_attestation::{Attest, PcrValues, Public};

fn vector(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("attestation/tests/vectors/rsa").join(file))
        .expect("vector")
}

/// The real store, except that the vector's one nonce is handed out fresh on every call (each call still
/// writes and durably consumes a challenge of its own, so the cost is the real one).
struct OneNonceStore {
    inner: SledStore,
    challenge: Challenge,
    n: std::sync::atomic::AtomicU64,
}

impl Store for OneNonceStore {
    fn add_principal(&self, p: &Principal, a: &AuditEntry) -> Result<(), StoreError> {
        self.inner.add_principal(p, a)
    }
    fn principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        self.inner.principal(id)
    }
    fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        self.inner.principals()
    }
    fn remove_principal(&self, name: &str, a: &AuditEntry) -> Result<bool, StoreError> {
        self.inner.remove_principal(name, a)
    }
    fn put_enrollment(&self, e: &runtrust::store::PendingEnrollment, cap: Cap) -> Result<Admission, StoreError> {
        self.inner.put_enrollment(e, cap)
    }
    fn take_enrollment(&self, id: &str) -> Result<Option<runtrust::store::PendingEnrollment>, StoreError> {
        self.inner.take_enrollment(id)
    }
    fn put_console_link(&self, l: &runtrust::model::ConsoleLink, a: &AuditEntry) -> Result<(), StoreError> {
        self.inner.put_console_link(l, a)
    }
    fn take_console_link(&self, id: &str) -> Result<Option<runtrust::model::ConsoleLink>, StoreError> {
        self.inner.take_console_link(id)
    }
    fn enroll_host(
        &self,
        h: &HostRecord,
        p: &str,
        a: &AuditEntry,
    ) -> Result<runtrust::store::EnrollOutcome, StoreError> {
        self.inner.enroll_host(h, p, a)
    }
    fn join_host(
        &self,
        j: &str,
        n: u64,
        p: &runtrust::model::Principal,
        h: &HostRecord,
        a: &AuditEntry,
    ) -> Result<runtrust::store::Joined, StoreError> {
        self.inner.join_host(j, n, p, h, a)
    }
    fn rotate_principal(
        &self,
        n: &str,
        s: &str,
        a: &AuditEntry,
    ) -> Result<Option<runtrust::model::Principal>, StoreError> {
        self.inner.rotate_principal(n, s, a)
    }
    fn principal_host(&self, p: &str) -> Result<Option<HostId>, StoreError> {
        self.inner.principal_host(p)
    }
    fn host(&self, h: &str) -> Result<Option<HostRecord>, StoreError> {
        self.inner.host(h)
    }
    fn host_by_ak(&self, a: &str) -> Result<Option<HostRecord>, StoreError> {
        self.inner.host_by_ak(a)
    }
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.hosts()
    }
    fn set_host_tags(&self, h: &str, t: &[String], a: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.inner.set_host_tags(h, t, a)
    }
    fn revocations_len(&self) -> Result<u64, StoreError> {
        self.inner.revocations_len()
    }
    fn probe(&self) -> Result<(), StoreError> {
        self.inner.probe()
    }
    fn rebaseline_host(&self, h: &str, a: &AuditEntry) -> Result<Option<runtrust_attestation::ClockInfo>, StoreError> {
        self.inner.rebaseline_host(h, a)
    }
    fn remove_host(&self, h: &str, a: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.inner.remove_host(h, a)
    }
    fn put_policy(&self, p: &runtrust::store::StoredPolicy, a: &AuditEntry) -> Result<u64, StoreError> {
        self.inner.put_policy(p, a)
    }
    fn policies(&self) -> Result<Vec<runtrust::store::StoredPolicy>, StoreError> {
        self.inner.policies()
    }
    fn policies_version(&self) -> Result<u64, StoreError> {
        self.inner.policies_version()
    }
    fn put_challenge(&self, c: &Challenge, a: &AuditEntry, cap: Cap) -> Result<Admission, StoreError> {
        self.inner.put_challenge(c, a, cap)
    }
    fn void_challenges(&self) -> Result<usize, StoreError> {
        self.inner.void_challenges()
    }
    fn sweep(&self, now: u64) -> Result<Swept, StoreError> {
        self.inner.sweep(now)
    }
    fn consume_nonce(&self, _nonce: &Nonce, now: u64) -> Result<NonceState, StoreError> {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut k = Nonce([0; 32]);
        k.0[..8].copy_from_slice(&n.to_be_bytes());
        let audit = AuditEntry::new(now, "challenge.issue", "");
        let uncapped = Cap { max: usize::MAX, now };
        let _ = self.inner.put_challenge(&Challenge { nonce: k, ..self.challenge.clone() }, &audit, uncapped)?;
        self.inner.consume_nonce(&k, now)?;
        Ok(NonceState::Fresh(self.challenge.clone()))
    }
    fn record_issuance(
        &self,
        t: &runtrust::store::TokenRecord,
        a: &AuditEntry,
        h: &str,
        c: &runtrust_attestation::ClockInfo,
        s: &runtrust::store::AttestedState,
    ) -> Result<u64, StoreError> {
        self.inner.record_issuance(t, a, h, c, s)
    }
    fn token(&self, cti: &str) -> Result<Option<runtrust::store::TokenRecord>, StoreError> {
        self.inner.token(cti)
    }
    fn children(&self, cti: &str) -> Result<Vec<String>, StoreError> {
        self.inner.children(cti)
    }
    fn tokens(&self) -> Result<Vec<runtrust::store::TokenRecord>, StoreError> {
        self.inner.tokens()
    }
    fn tokens_by_host(&self, host: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.tokens_by_host(host, limit)
    }
    fn tokens_by_policy(&self, hash: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.tokens_by_policy(hash, limit)
    }
    fn revoke(&self, r: &Revocation, a: &AuditEntry) -> Result<Revocation, StoreError> {
        self.inner.revoke(r, a)
    }
    fn unrevoke_host(&self, r: &Revocation, a: &AuditEntry) -> Result<Option<Revocation>, StoreError> {
        self.inner.unrevoke_host(r, a)
    }
    fn revoked(&self, key: &str) -> Result<Option<Revocation>, StoreError> {
        self.inner.revoked(key)
    }
    fn revocations(&self, since: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        self.inner.revocations(since, limit)
    }
    fn start_execution(
        &self,
        e: &ExecutionRecord,
        single_use: bool,
        keys: &[String],
        a: &AuditEntry,
    ) -> Result<ExecStart, StoreError> {
        self.inner.start_execution(e, single_use, keys, a)
    }
    fn end_execution(
        &self,
        cti: &str,
        id: &str,
        end: &ExecutionEnd,
        a: &AuditEntry,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.inner.end_execution(cti, id, end, a)
    }
    fn executions(&self, cti: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.executions(cti)
    }
    fn append_audit(&self, e: &AuditEntry) -> Result<u64, StoreError> {
        self.inner.append_audit(e)
    }
    fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        self.inner.audit(from, limit)
    }
    fn audit_len(&self) -> Result<u64, StoreError> {
        self.inner.audit_len()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn flushes(&self) -> u64 {
        self.inner.flushes()
    }
    fn export(&self) -> Result<runtrust::store::Dump, StoreError> {
        self.inner.export()
    }
    fn import(&self, d: &runtrust::store::Dump) -> Result<(), StoreError> {
        self.inner.import(d)
    }
}

fn claims(ak: &Public) -> Claims {
    Claims {
        iss: "runtrust".into(),
        sub: format!("sha256:{}", "ab".repeat(32)),
        aud: "gw-1".into(),
        exp: 4_000_000_000,
        nbf: 1_700_000_000,
        iat: 1_700_000_000,
        cti: vec![7; 16],
        cnf: ConfirmationKey::from_public(ak).expect("cnf"),
        eat_nonce: vec![1; 32],
        eat_profile: EAT_PROFILE.into(),
        scope: "deploy/web/api".into(),
        initiator: "web-01".into(),
        policy_id: "web".into(),
        policy_hash: vec![2; 32],
        pcr_bank: "sha256".into(),
        pcr_selection: "sha256:0,1,2,3,4,5,6,7".into(),
        pcr_digest: vec![3; 32],
        parent_cti: None,
        delegation_depth: 0,
        audit_index: None,
        single_use: false,
    }
}

fn bench_tokens(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let ak = Public::from_tpm2b(&vector("ak.pub")).expect("ak");
    let mut g = c.benchmark_group("token");
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let (key, _) = IssuerKey::generate(alg, &rng).expect("key");
        let cl = claims(&ak);
        let token = key.sign(&cl, &rng).expect("sign");
        let keys = KeySet::new(vec![key.public()]).expect("keyset");
        let exp = Expectations::new(1_800_000_000, &cl.iss);
        g.bench_function(format!("sign/{}", alg.name()), |b| b.iter(|| key.sign(black_box(&cl), &rng)));
        g.bench_function(format!("verify/{}", alg.name()), |b| b.iter(|| verify(black_box(&token), &keys, &exp)));
        if alg == SigningAlg::EdDsa {
            // Issue 13's baseline: ring alone on the same bytes, the token's Sig_structure (RFC 9052 §4.4) and
            // signature, with the same public key.
            use coset::TaggedCborSerializable;
            let sign1 = coset::CoseSign1::from_tagged_slice(&token).expect("COSE_Sign1");
            let tbs = sign1.tbs_data(&[]);
            let public = key.public();
            let pk = UnparsedPublicKey::new(&ED25519, public.public_bytes().to_vec());
            pk.verify(&tbs, &sign1.signature).expect("the token's own signature verifies");
            g.bench_function("ring_raw/ed25519_verify_token_bytes", |b| {
                b.iter(|| pk.verify(black_box(&tbs), black_box(&sign1.signature)))
            });
        }
    }
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("pkcs8");
    let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("kp");
    let msg = vec![0x5a; 700];
    let sig = kp.sign(&msg);
    let pk = UnparsedPublicKey::new(&ED25519, kp.public_key().as_ref().to_vec());
    g.bench_function("ring_raw/ed25519_sign_700B", |b| b.iter(|| kp.sign(black_box(&msg))));
    g.bench_function("ring_raw/ed25519_verify_700B", |b| b.iter(|| pk.verify(black_box(&msg), sig.as_ref())));
    g.finish();
}

fn bench_pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rng = SystemRandom::new();
    let ak = Public::from_tpm2b(&vector("ak.pub")).expect("ak");
    let attest = vector("attest");
    let pcrs: PcrValues = serde_json::from_slice(&vector("pcrs.json")).expect("pcrs");
    let nonce = String::from_utf8(vector("nonce.hex")).expect("utf8").trim().to_owned();
    let clock = Attest::parse_quote(&attest).expect("attest").clock_info;
    let host_id: HostId = format!("sha256:{}", "cd".repeat(32)).parse().expect("host id");

    let principal = Principal {
        id: "00".repeat(8),
        name: "web-01".into(),
        role: Role::Attester,
        secret_sha256: String::new(),
        created_at: 0,
        tags: vec!["env=bench".into()],
        created_by: None,
        join: None,
    };
    let challenge = Challenge {
        nonce: nonce.parse().expect("nonce"),
        host_id: host_id.clone(),
        principal_id: principal.id.clone(),
        selection: "sha256:0,1,2,3,4,5,6,7".parse().expect("selection"),
        expires_at: u64::MAX,
        host_clock: None,
    };
    let store = OneNonceStore {
        inner: SledStore::open(&dir.path().join("store")).expect("store"),
        challenge,
        n: Default::default(),
    };
    store.add_principal(&principal, &AuditEntry::new(0, "principal.add", "")).expect("principal");
    let host = HostRecord {
        host_id: host_id.clone(),
        ek_public: vec![],
        ek_certificate_sha256: None,
        ak_public: ak.to_tpm2b(),
        ak_name: hex::encode(ak.name()),
        tags: vec!["env=bench".into()],
        enrolled_at: 0,
        updated_at: 0,
        first_clock: clock,
        last_clock: clock,
        last_attested: None,
        enrolled_by: "web-01".into(),
    };
    let entry = AuditEntry::new(0, "enroll.allow", "");
    store.enroll_host(&host, &principal.id, &entry).expect("enroll");

    let text =
        runtrust::policy::capture("bench", &pcrs, &["deploy/*".into()], &["*".into()], &["env=bench".into()], &[]);
    let policy = runtrust::policy::parse("bench", text.as_bytes()).expect("policy");
    let (key, pkcs8) = IssuerKey::generate(SigningAlg::EdDsa, &rng).expect("key");
    let key_path = PathBuf::from("issuer.pk8");
    std::fs::write(dir.path().join(&key_path), pkcs8).expect("key file");
    let config: ServiceConfig = toml::from_str(concat!(
        "service_id = \"bench\"\nlisten = \"127.0.0.1:0\"\n",
        "[tls]\nca = \"x\"\ncert = \"x\"\nkey = \"x\"\n",
        "[issuer]\nkeys = [{ path = \"issuer.pk8\", alg = \"eddsa\" }]\n",
    ))
    .expect("config");
    let state = AppState::with_store(
        config,
        dir.path().to_path_buf(),
        Arc::new(store),
        vec![(IssuerKeyFile { path: key_path, alg: SigningAlg::EdDsa }, key)],
    )
    .expect("state");
    state.policies.write().expect("lock").push(Arc::new(policy));

    let request = TokenRequest {
        nonce,
        scope: "deploy/web".into(),
        audience: "gw-1".into(),
        ttl_secs: Some(300),
        ak_name: hex::encode(ak.name()),
        quote: QuoteEvidence { attest, signature: vector("signature"), pcrs, batch: None },
        parent: None,
        for_host: None,
        event_log: None,
    };
    let caller = Caller(principal);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(issue_token(&state, &caller, request.clone())).expect("the pipeline issues on the vector");
    let mut g = c.benchmark_group("issuance");
    g.sample_size(30);
    g.bench_function("pipeline_in_process_durable", |b| {
        b.iter(|| rt.block_on(issue_token(&state, &caller, black_box(request.clone()))).expect("issued"))
    });
    g.finish();
}

criterion_group!(benches, bench_tokens, bench_pipeline);
criterion_main!(benches);
