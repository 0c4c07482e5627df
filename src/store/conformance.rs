//! The store conformance suite (docs/design.md §12, §15): what every backend must do, checked the same way
//! for each. A backend plugs in with one line in its test module, `crate::store_conformance!(MyBackend);`,
//! where `MyBackend` implements [`Backend`]: a fresh, empty store whose `open` can be called again to reopen
//! the same data (what a restart sees).

use runtrust_attestation::ClockInfo;

use super::{
    revoked_key, AttestedState, AuditEntry, Challenge, EnrollOutcome, ExecStart, ExecutionEnd, ExecutionRecord, HostId,
    HostRecord, Nonce, NonceState, PendingEnrollment, Principal, Revocation, RevocationKind, Role, Store, StoreError,
    StoredPolicy, TokenRecord,
};

/// A backend under test.
pub trait Backend {
    /// An empty store of this backend (its own directory, database or schema).
    fn new() -> Self;
    /// Opens it; called again after the previous handle is dropped, it must see everything written.
    fn open(&self) -> Box<dyn Store>;
}

/// One `#[test]` per check of the suite, for backend `$backend`.
#[macro_export]
macro_rules! store_conformance {
    ($backend:ty) => {
        $crate::store_conformance!(@tests $backend;
            principals_are_unique_by_name,
            enrollment_rules_and_reopen,
            nonces_are_consumed_once_and_audit_is_dense,
            pending_enrollments_are_taken_once,
            children_revocations_and_single_use_executions,
            issuance_updates_the_host,
            challenges_are_voided,
            concurrent_nonce_consumption_has_one_winner,
            concurrent_single_use_has_one_winner,
            revoked_keys_refuse_a_start_in_its_step,
            revocation_excludes_concurrent_starts,
            tokens_are_indexed_by_host_and_policy,
            applying_a_policy_changes_the_version,
            export_import_round_trip,
        );
    };
    (@tests $backend:ty; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let backend = <$backend as $crate::store::conformance::Backend>::new();
                $crate::store::conformance::$check(&backend);
            }
        )*
    };
}

pub fn hid(n: u8) -> HostId {
    format!("sha256:{}", hex::encode([n; 32])).parse().unwrap()
}

fn host(id: u8, ak: &str) -> HostRecord {
    HostRecord {
        host_id: hid(id),
        ek_public: vec![1],
        ek_certificate_sha256: None,
        ak_public: vec![2],
        ak_name: ak.into(),
        tags: vec![],
        enrolled_at: 1,
        updated_at: 1,
        first_clock: ClockInfo::default(),
        last_clock: ClockInfo::default(),
        last_attested: None,
        enrolled_by: "p".into(),
    }
}

fn entry() -> AuditEntry {
    AuditEntry::new(1, "enroll.allow", "")
}

fn challenge(n: u8, expires_at: u64) -> Challenge {
    Challenge {
        nonce: Nonce([n; 32]),
        host_id: hid(1),
        principal_id: "p".into(),
        selection: "sha256:0".parse().unwrap(),
        expires_at,
    }
}

fn token(cti: &str, parent: Option<&str>) -> TokenRecord {
    TokenRecord {
        cti: cti.into(),
        host_id: hid(1),
        initiator: "p".into(),
        scope: "s".into(),
        audience: "a".into(),
        policy_id: "web".into(),
        policy_hash: "ph".into(),
        parent_cti: parent.map(Into::into),
        delegation_depth: u32::from(parent.is_some()),
        single_use: true,
        issued_at: 1,
        expires_at: 100,
        audit_index: 0,
        consumed_at: None,
    }
}

fn attested() -> AttestedState {
    AttestedState {
        pcr_selection: "sha256:0".parse().unwrap(),
        pcr_digest: "00".into(),
        policy_hash: "ph".into(),
        time: 1,
    }
}

fn exec(id: &str, cti: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        cti: cti.into(),
        host_id: hid(1),
        gateway: "g".into(),
        scope: "s".into(),
        argv_sha256: "00".into(),
        started_at: 5,
        start_audit_index: 0,
        end: None,
    }
}

pub fn principals_are_unique_by_name(b: &impl Backend) {
    let s = b.open();
    let p =
        Principal { id: "01".into(), name: "a".into(), role: Role::Admin, secret_sha256: "x".into(), created_at: 0 };
    s.add_principal(&p).unwrap();
    assert!(matches!(s.add_principal(&Principal { id: "02".into(), ..p.clone() }), Err(StoreError::Conflict(_))));
    assert_eq!(s.principal("01").unwrap(), Some(p));
    assert!(s.remove_principal("a").unwrap());
    assert!(!s.remove_principal("a").unwrap());
    assert_eq!(s.principal("01").unwrap(), None);
}

pub fn enrollment_rules_and_reopen(b: &impl Backend) {
    {
        let s = b.open();
        assert_eq!(s.enroll_host(&host(1, "ak1"), "p1", &entry()).unwrap(), EnrollOutcome::New);
        assert_eq!(s.enroll_host(&host(1, "ak1"), "p1", &entry()).unwrap(), EnrollOutcome::Unchanged);
        assert!(matches!(s.enroll_host(&host(2, "ak1"), "p2", &entry()), Err(StoreError::Conflict(_))));
        assert!(matches!(s.enroll_host(&host(2, "ak9"), "p1", &entry()), Err(StoreError::Conflict(_))), "p1 is h1's");
        assert_eq!(s.host(&hid(2)).unwrap(), None);
        assert_eq!(s.enroll_host(&host(1, "ak2"), "p1", &entry()).unwrap(), EnrollOutcome::AkReplaced);
        assert_eq!(s.principal_host("p1").unwrap(), Some(hid(1)));
        assert_eq!(s.host_by_ak("ak1").unwrap(), None);
        assert_eq!(s.host_by_ak("ak2").unwrap().unwrap().host_id, hid(1));
        assert_eq!(s.audit_len().unwrap(), 3, "each enrollment is audited in its own step");
    }
    let s = b.open();
    assert_eq!(s.hosts().unwrap().len(), 1);
}

pub fn nonces_are_consumed_once_and_audit_is_dense(b: &impl Backend) {
    let s = b.open();
    let c = challenge(1, 100);
    s.put_challenge(&c, &entry()).unwrap();
    s.put_challenge(&challenge(2, 100), &entry()).unwrap();
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Fresh(c.clone()));
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Replayed);
    assert!(matches!(s.consume_nonce(&Nonce([2; 32]), 101).unwrap(), NonceState::Expired(_)));
    assert_eq!(s.consume_nonce(&Nonce([2; 32]), 50).unwrap(), NonceState::Replayed);
    assert_eq!(s.consume_nonce(&Nonce([9; 32]), 50).unwrap(), NonceState::Unknown);
    let e = AuditEntry::new(1, "token.deny", "x").code("pcr_mismatch");
    // The two challenges above are entries 0 and 1 (put_challenge audits them).
    assert_eq!(s.append_audit(&e).unwrap(), 2);
    assert_eq!(s.append_audit(&e).unwrap(), 3);
    drop(s);
    let s = b.open();
    assert_eq!(s.append_audit(&e).unwrap(), 4);
    assert_eq!(s.audit(3, 10).unwrap().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(s.audit(3, 10).unwrap()[0].1, e, "entries read back as written");
    assert_eq!(s.audit_len().unwrap(), 5);
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Replayed, "after reopen too");
}

pub fn pending_enrollments_are_taken_once(b: &impl Backend) {
    let s = b.open();
    let e = PendingEnrollment {
        id: "e1".into(),
        principal_id: "p".into(),
        host: host(1, "ak"),
        secret_sha256: "s".into(),
        nonce: Nonce([3; 32]),
        selection: "sha256:0".parse().unwrap(),
        expires_at: 0,
    };
    s.put_enrollment(&e).unwrap();
    assert_eq!(s.take_enrollment("e1").unwrap(), Some(e));
    assert_eq!(s.take_enrollment("e1").unwrap(), None);
}

pub fn children_revocations_and_single_use_executions(b: &impl Backend) {
    let s = b.open();
    let clock = ClockInfo::default();
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    s.record_issuance(&token("t2", Some("t1")), &entry(), &hid(1), &clock, &attested()).unwrap();
    assert_eq!(s.children("t1").unwrap(), vec!["t2".to_owned()]);
    assert!(s.children("t2").unwrap().is_empty());

    let ExecStart::Started(first) = s.start_execution(&exec("e1", "t2"), true, &[], &entry()).unwrap() else {
        panic!("first use must start")
    };
    assert_eq!(
        s.start_execution(&exec("e2", "t2"), true, &[], &entry()).unwrap(),
        ExecStart::Replayed { consumed_at: 5 }
    );
    let before = s.audit_len().unwrap();
    assert!(matches!(s.start_execution(&exec("e3", "t2"), false, &[], &entry()).unwrap(), ExecStart::Started(_)));
    assert_eq!(s.audit_len().unwrap(), before + 1, "the start is audited in the same step");
    assert_eq!(s.start_execution(&exec("e4", "zz"), false, &[], &entry()).unwrap(), ExecStart::UnknownToken);
    let end = ExecutionEnd { time: 6, exit_code: Some(0), signal: None, duration_ms: 1, audit_index: 0 };
    let ended = s.end_execution("t2", "e1", &end, &entry()).unwrap().unwrap();
    assert_eq!(ended.end.as_ref().map(|e| e.exit_code), Some(Some(0)));
    assert!(matches!(s.end_execution("t2", "e1", &end, &entry()), Err(StoreError::Conflict(_))), "ends once");
    assert_eq!(s.executions("t2").unwrap().len(), 2);
    assert_eq!(s.executions("t2").unwrap()[0].id, first.id);

    let r = Revocation {
        seq: 9,
        kind: RevocationKind::Token,
        target: "t1".into(),
        policy_hash: None,
        reason: "r".into(),
        time: 7,
        by: "admin".into(),
        tokens: vec!["t2".into()],
        audit_index: 0,
    };
    let stored = s.revoke(&r, &entry()).unwrap();
    assert_eq!(stored.seq, 0, "the store assigns the sequence");
    assert!(s.revoked("token:t2").unwrap().is_some(), "the cascade is marked");
    assert!(s.revoked("token:t3").unwrap().is_none());
    drop(s);
    let s = b.open();
    assert_eq!(s.revocations(0, 10).unwrap(), vec![stored.clone()], "durable across reopen");
    assert_eq!(s.revoke(&r, &entry()).unwrap().seq, 1);
    assert_eq!(s.revocations(1, 10).unwrap().len(), 1);
}

pub fn issuance_updates_the_host(b: &impl Backend) {
    let s = b.open();
    s.enroll_host(&host(1, "ak1"), "p1", &entry()).unwrap();
    let clock = ClockInfo { clock: 10, reset_count: 1, restart_count: 2, safe: true };
    let index = s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    assert_eq!(index, 1, "the issuance's audit entry follows the enrollment's");
    drop(s);
    let s = b.open();
    let h = s.host(&hid(1)).unwrap().unwrap();
    assert_eq!(h.last_clock, clock);
    assert_eq!(h.last_attested, Some(attested()));
    assert_eq!(s.token("t1").unwrap().map(|t| t.audit_index), Some(1));
    assert_eq!(s.tokens().unwrap().len(), 1);
}

pub fn challenges_are_voided(b: &impl Backend) {
    let s = b.open();
    s.put_challenge(&challenge(1, 100), &entry()).unwrap();
    s.put_challenge(&challenge(2, 100), &entry()).unwrap();
    drop(s);
    let s = b.open();
    assert_eq!(s.void_challenges().unwrap(), 2);
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Unknown, "voided, not usable");
    assert_eq!(s.void_challenges().unwrap(), 0);
}

/// docs/design.md §6: of many concurrent consumers of one nonce, exactly one finds it fresh.
pub fn concurrent_nonce_consumption_has_one_winner(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    s.put_challenge(&challenge(7, 100), &entry()).unwrap();
    let fresh = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| matches!(s.consume_nonce(&Nonce([7; 32]), 50), Ok(NonceState::Fresh(_)))))
            .collect();
        handles.into_iter().map(|h| h.join()).filter(|r| matches!(r, Ok(true))).count()
    });
    assert_eq!(fresh, 1);
}

/// docs/design.md §11: of many concurrent starts under one single-use token, exactly one starts.
pub fn concurrent_single_use_has_one_winner(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &ClockInfo::default(), &attested()).unwrap();
    let started = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    matches!(
                        s.start_execution(&exec(&format!("e{i}"), "t1"), true, &[], &entry()),
                        Ok(ExecStart::Started(_))
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).filter(|r| matches!(r, Ok(true))).count()
    });
    assert_eq!(started, 1);
}

fn revocation(kind: RevocationKind, target: &str, tokens: &[&str]) -> Revocation {
    Revocation {
        seq: 0,
        kind,
        target: target.into(),
        policy_hash: None,
        reason: "r".into(),
        time: 7,
        by: "admin".into(),
        tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
        audit_index: 0,
    }
}

/// The keys a start under `t2` (child of `t1`, both on host 1 under policy "ph") must not hit.
fn chain_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for cti in ["t2", "t1"] {
        keys.push(revoked_key(RevocationKind::Host, &hid(1)));
        keys.push(revoked_key(RevocationKind::Policy, "ph"));
        keys.push(revoked_key(RevocationKind::Token, cti));
    }
    keys
}

/// docs/design.md §15: the revocation check is inside the start's step; a revoked chain writes nothing.
pub fn revoked_keys_refuse_a_start_in_its_step(b: &impl Backend) {
    let s = b.open();
    let clock = ClockInfo::default();
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    s.record_issuance(&token("t2", Some("t1")), &entry(), &hid(1), &clock, &attested()).unwrap();
    assert!(matches!(
        s.start_execution(&exec("e1", "t2"), false, &chain_keys(), &entry()).unwrap(),
        ExecStart::Started(_)
    ));
    // Revoked after t2 was issued: only the ancestry names t2's chain.
    let r = s.revoke(&revocation(RevocationKind::Token, "t1", &[]), &entry()).unwrap();
    let before = s.audit_len().unwrap();
    match s.start_execution(&exec("e2", "t2"), true, &chain_keys(), &entry()).unwrap() {
        ExecStart::Revoked { key, revocation } => {
            assert_eq!(key, "token:t1");
            assert_eq!(revocation, r);
        }
        other => panic!("a revoked ancestor must refuse the start: {other:?}"),
    }
    assert_eq!(s.audit_len().unwrap(), before, "a refused start writes nothing");
    assert_eq!(s.token("t2").unwrap().unwrap().consumed_at, None, "nor spends the token");
    // The first revoked key in the order given is the one reported.
    s.revoke(&revocation(RevocationKind::Host, hid(1).as_str(), &[]), &entry()).unwrap();
    let ExecStart::Revoked { key, .. } = s.start_execution(&exec("e3", "t2"), false, &chain_keys(), &entry()).unwrap()
    else {
        panic!("still revoked")
    };
    assert_eq!(key, revoked_key(RevocationKind::Host, &hid(1)));
    assert_eq!(s.start_execution(&exec("e4", "zz"), false, &chain_keys(), &entry()).unwrap(), ExecStart::UnknownToken);
}

/// docs/design.md §15: a revocation and execution starts exclude each other. Every start that succeeded was
/// audited before the revocation; every start after the revoke returned is refused.
pub fn revocation_excludes_concurrent_starts(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    s.record_issuance(
        &TokenRecord { single_use: false, ..token("t1", None) },
        &entry(),
        &hid(1),
        &ClockInfo::default(),
        &attested(),
    )
    .unwrap();
    let keys = vec![revoked_key(RevocationKind::Token, "t1")];
    let (started, revoked) = std::thread::scope(|scope| {
        let starters: Vec<_> = (0..4)
            .map(|t| {
                let (s, keys) = (&s, &keys);
                scope.spawn(move || {
                    let mut started = Vec::new();
                    for i in 0..10_000 {
                        match s.start_execution(&exec(&format!("e{t}-{i}"), "t1"), false, keys, &entry()).unwrap() {
                            ExecStart::Started(e) => started.push(e.start_audit_index),
                            ExecStart::Revoked { .. } => return started,
                            other => panic!("{other:?}"),
                        }
                    }
                    panic!("the revocation never reached the starts")
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let r = s.revoke(&revocation(RevocationKind::Token, "t1", &[]), &entry()).unwrap();
        let after = s.start_execution(&exec("late", "t1"), false, &keys, &entry()).unwrap();
        assert!(matches!(after, ExecStart::Revoked { .. }), "after the revoke returned: {after:?}");
        let started: Vec<u64> = starters.into_iter().flat_map(|h| h.join().unwrap()).collect();
        (started, r)
    });
    assert!(!started.is_empty(), "some starts ran before the revocation");
    assert!(started.iter().all(|i| *i < revoked.audit_index), "no start is ordered after the revocation");
}

/// docs/design.md §11: revoking a host or a policy lists its tokens from an index.
pub fn tokens_are_indexed_by_host_and_policy(b: &impl Backend) {
    let s = b.open();
    let clock = ClockInfo::default();
    for (cti, host, policy) in [("a1", 1, "p1"), ("a2", 1, "p2"), ("b1", 2, "p1"), ("a0", 1, "p1")] {
        let t = TokenRecord { host_id: hid(host), policy_hash: policy.into(), ..token(cti, None) };
        s.record_issuance(&t, &entry(), &hid(host), &clock, &attested()).unwrap();
    }
    assert_eq!(s.tokens_by_host(&hid(1), 10).unwrap(), vec!["a0", "a1", "a2"]);
    assert_eq!(s.tokens_by_host(&hid(1), 2).unwrap(), vec!["a0", "a1"], "bounded");
    assert_eq!(s.tokens_by_host(&hid(2), 10).unwrap(), vec!["b1"]);
    assert!(s.tokens_by_host(&hid(3), 10).unwrap().is_empty());
    assert_eq!(s.tokens_by_policy("p1", 10).unwrap(), vec!["a0", "a1", "b1"]);
    assert_eq!(s.tokens_by_policy("p2", 10).unwrap(), vec!["a2"]);
    drop(s);
    assert_eq!(b.open().tokens_by_policy("p1", usize::MAX).unwrap().len(), 3, "after reopen too");
}

fn policy(id: &str, hash: &str) -> StoredPolicy {
    StoredPolicy {
        id: id.into(),
        hash: hash.into(),
        bytes: b"id = 1".to_vec(),
        signed_by: None,
        applied_at: 3,
        applied_by: "admin".into(),
    }
}

/// docs/design.md §15: replicas reload their parsed policies when the version moves.
pub fn applying_a_policy_changes_the_version(b: &impl Backend) {
    let s = b.open();
    let v0 = s.policies_version().unwrap();
    s.put_policy(&policy("web", "h1"), &entry()).unwrap();
    let v1 = s.policies_version().unwrap();
    assert_ne!(v0, v1);
    s.put_policy(&policy("web", "h2"), &entry()).unwrap();
    assert_ne!(s.policies_version().unwrap(), v1, "replacing a policy changes it too");
    assert_eq!(s.policies().unwrap(), vec![policy("web", "h2")]);
}

/// A store with one of everything (principals, hosts, policies, challenges, nonces, tokens, revocations,
/// executions, audit entries).
pub fn populate(s: &dyn Store) {
    let p =
        Principal { id: "01".into(), name: "a".into(), role: Role::Attester, secret_sha256: "x".into(), created_at: 0 };
    s.add_principal(&p).unwrap();
    s.enroll_host(&host(1, "ak1"), "01", &entry()).unwrap();
    s.put_policy(&policy("web", "ph"), &entry()).unwrap();
    s.put_challenge(&challenge(1, 100), &entry()).unwrap();
    s.put_challenge(&challenge(2, 100), &entry()).unwrap();
    s.consume_nonce(&Nonce([1; 32]), 50).unwrap();
    let clock = ClockInfo { clock: 10, reset_count: 1, restart_count: 2, safe: true };
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    s.record_issuance(&token("t2", Some("t1")), &entry(), &hid(1), &clock, &attested()).unwrap();
    s.start_execution(&exec("e1", "t2"), true, &[], &entry()).unwrap();
    let end = ExecutionEnd { time: 6, exit_code: Some(0), signal: None, duration_ms: 1, audit_index: 0 };
    s.end_execution("t2", "e1", &end, &entry()).unwrap();
    s.revoke(&revocation(RevocationKind::Token, "t1", &["t2"]), &entry()).unwrap();
    s.append_audit(&AuditEntry::new(9, "token.deny", "x").code("pcr_mismatch")).unwrap();
}

/// `runtrust store migrate` (docs/design.md §15): everything, counters and audit indices included, survives an
/// export into a fresh store, which then goes on from where the source stopped.
pub fn export_import_round_trip<B: Backend>(b: &B) {
    let s = b.open();
    populate(s.as_ref());
    let dump = s.export().unwrap();
    assert_eq!(dump.audit.len() as u64, s.audit_len().unwrap());
    let target = B::new();
    let t = target.open();
    t.import(&dump).unwrap();
    assert_eq!(t.export().unwrap(), dump, "the copy reads back as the original");
    let roots = (super::dump::audit_root(s.as_ref()).unwrap(), super::dump::audit_root(t.as_ref()).unwrap());
    assert_eq!(roots.0, roots.1, "the same audit root");
    assert!(matches!(t.import(&dump), Err(StoreError::Conflict(_))), "only into an empty store");
    assert_eq!(t.children("t1").unwrap(), vec!["t2"]);
    assert_eq!(t.tokens_by_host(&hid(1), 10).unwrap(), vec!["t1", "t2"]);
    assert!(t.revoked("token:t2").unwrap().is_some());
    assert_eq!(t.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Replayed);
    assert!(matches!(t.consume_nonce(&Nonce([2; 32]), 50).unwrap(), NonceState::Fresh(_)));
    assert_eq!(t.revoke(&revocation(RevocationKind::Token, "t1", &[]), &entry()).unwrap().seq, 1, "counters carried");
    assert_eq!(t.append_audit(&entry()).unwrap(), dump.counters.audit_next + 1);
    assert_eq!(t.principal_host("01").unwrap(), Some(hid(1)));
    assert_eq!(t.host_by_ak("ak1").unwrap().map(|h| h.host_id), Some(hid(1)));
}
