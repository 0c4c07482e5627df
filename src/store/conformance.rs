//! The store conformance suite (docs/design.md §12, §15): what every backend must do, checked the same way
//! for each. A backend plugs in with one line in its test module, `crate::store_conformance!(MyBackend);`,
//! where `MyBackend` implements [`Backend`]: a fresh, empty store whose `open` can be called again to reopen
//! the same data (what a restart sees).

use runtrust_attestation::ClockInfo;

use super::{
    lift_key, revoked_key, Admission, AttestedState, AuditEntry, Cap, Challenge, ConsoleLink, EnrollOutcome, ExecStart,
    ExecutionEnd, ExecutionRecord, HostId, HostRecord, JoinAllowance, JoinRefusal, Joined, Nonce, NonceState,
    PendingEnrollment, Principal, Revocation, RevocationKind, Role, Store, StoreError, StoredPolicy, Swept,
    TokenRecord,
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
            console_links_are_taken_once_and_swept,
            children_revocations_and_single_use_executions,
            issuance_updates_the_host,
            challenges_keep_the_host_clock,
            rebaseline_forgets_the_clock,
            a_removed_host_frees_its_ak_and_its_principal,
            challenges_are_voided,
            concurrent_nonce_consumption_has_one_winner,
            concurrent_single_use_has_one_winner,
            principal_changes_are_audited,
            reenrollment_never_changes_tags,
            host_tags_are_replaced_with_their_audit_entry,
            a_lifted_host_revocation_keeps_earlier_tokens_revoked,
            challenges_are_capped_per_principal,
            pending_enrollments_are_capped_per_principal,
            expired_items_are_swept_and_stay_refused,
            concurrent_capped_puts_respect_the_cap,
            lengths_count_what_is_durable,
            reads_see_a_durable_dense_prefix,
            probe_changes_nothing_visible,
            revoked_keys_refuse_a_start_in_its_step,
            revocation_excludes_concurrent_starts,
            tokens_are_indexed_by_host_and_policy,
            applying_a_policy_changes_the_version,
            export_import_round_trip,
            join_tokens_are_spent_use_by_use,
            a_rotated_principal_has_only_its_new_secret,
            a_host_that_joins_again_keeps_its_principal,
            concurrent_joins_never_overspend,
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

/// No cap in effect: what the checks that are not about caps put under.
const UNCAPPED: Cap = Cap { max: usize::MAX, now: 0 };

fn put(s: &dyn Store, c: &Challenge) {
    assert_eq!(s.put_challenge(c, &entry(), UNCAPPED).unwrap(), Admission::Stored);
}

fn challenge(n: u8, expires_at: u64) -> Challenge {
    Challenge {
        nonce: Nonce([n; 32]),
        host_id: hid(1),
        principal_id: "p".into(),
        selection: "sha256:0".parse().unwrap(),
        expires_at,
        host_clock: None,
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
        token_sha256: Some(TokenRecord::digest(cti.as_bytes())),
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

fn principal(id: &str, name: &str) -> Principal {
    Principal {
        id: id.into(),
        name: name.into(),
        role: Role::Attester,
        secret_sha256: "x".into(),
        created_at: 0,
        tags: vec!["role=web".into()],
        created_by: Some("admin".into()),
        join: None,
    }
}

pub fn principals_are_unique_by_name(b: &impl Backend) {
    let s = b.open();
    let p = principal("01", "a");
    s.add_principal(&p, &entry()).unwrap();
    let again = Principal { id: "02".into(), ..p.clone() };
    assert!(matches!(s.add_principal(&again, &entry()), Err(StoreError::Conflict(_))));
    assert_eq!(s.principal("01").unwrap(), Some(p), "tags and creator read back");
    assert!(s.remove_principal("a", &entry()).unwrap());
    assert!(!s.remove_principal("a", &entry()).unwrap());
    assert_eq!(s.principal("01").unwrap(), None);
}

/// docs/design.md §11: a principal added or removed is audited in the same step, a refused one is not.
pub fn principal_changes_are_audited(b: &impl Backend) {
    let s = b.open();
    let added = AuditEntry::new(1, "principal.add", "a").by("admin");
    s.add_principal(&principal("01", "a"), &added).unwrap();
    assert!(s.add_principal(&principal("02", "a"), &added).is_err());
    assert!(!s.remove_principal("nobody", &added).unwrap());
    assert_eq!(s.audit_len().unwrap(), 1, "only the change that happened is recorded");
    let removed = AuditEntry::new(2, "principal.remove", "a").by("admin");
    assert!(s.remove_principal("a", &removed).unwrap());
    drop(s);
    let s = b.open();
    let log: Vec<AuditEntry> = s.audit(0, 10).unwrap().into_iter().map(|(_, e)| e).collect();
    assert_eq!(log, vec![added, removed]);
}

/// docs/design.md §5: a re-enrollment keeps the host's tags; asking for others is refused and writes nothing.
pub fn reenrollment_never_changes_tags(b: &impl Backend) {
    let s = b.open();
    let web = HostRecord { tags: vec!["role=web".into(), "dc=1".into()], ..host(1, "ak1") };
    assert_eq!(s.enroll_host(&web, "p1", &entry()).unwrap(), EnrollOutcome::New);
    let db = HostRecord { tags: vec!["role=db".into()], ..host(1, "ak1") };
    match s.enroll_host(&db, "p1", &entry()) {
        Err(StoreError::Conflict(d)) => assert!(d.starts_with(super::TAGS_DIFFER), "{d}"),
        other => panic!("re-enrolling with other tags must be refused, got {other:?}"),
    }
    let new_ak = HostRecord { tags: vec!["role=db".into()], ..host(1, "ak2") };
    assert!(matches!(s.enroll_host(&new_ak, "p1", &entry()), Err(StoreError::Conflict(_))), "nor with a new AK");
    assert_eq!(s.audit_len().unwrap(), 1, "a refusal writes nothing");
    let same = HostRecord { tags: vec!["dc=1".into(), "role=web".into()], ..host(1, "ak1") };
    assert_eq!(s.enroll_host(&same, "p1", &entry()).unwrap(), EnrollOutcome::Unchanged);
    let replaced = HostRecord { tags: vec!["dc=1".into(), "role=web".into()], ..host(1, "ak2") };
    assert_eq!(s.enroll_host(&replaced, "p1", &entry()).unwrap(), EnrollOutcome::AkReplaced);
    assert_eq!(s.host(&hid(1)).unwrap().unwrap().tags, web.tags, "the recorded tags, as recorded");
}

/// docs/design.md §5: an admin replaces a host's tags, audited in the same step.
pub fn host_tags_are_replaced_with_their_audit_entry(b: &impl Backend) {
    let s = b.open();
    s.enroll_host(&HostRecord { tags: vec!["role=web".into()], ..host(1, "ak1") }, "p1", &entry()).unwrap();
    let tagged = AuditEntry::new(9, "host.tag", "role=db").by("admin").host(&hid(1));
    let tags = vec!["role=db".to_owned()];
    let h = s.set_host_tags(&hid(1), &tags, &tagged).unwrap().unwrap();
    assert_eq!((h.tags.clone(), h.updated_at), (tags.clone(), 9));
    assert_eq!(s.set_host_tags(&hid(2), &tags, &tagged).unwrap(), None, "no such host");
    assert_eq!(s.audit_len().unwrap(), 2, "enrollment and the one tag change");
    drop(s);
    let s = b.open();
    assert_eq!(s.host(&hid(1)).unwrap().unwrap().tags, tags);
    assert_eq!(s.audit(1, 1).unwrap()[0].1, tagged);
    let again = HostRecord { tags: tags.clone(), ..host(1, "ak1") };
    assert_eq!(s.enroll_host(&again, "p1", &entry()).unwrap(), EnrollOutcome::Unchanged, "re-enrolls as tagged");
}

/// docs/design.md §11: lifting a host's revocation appends to the feed (nothing in it is rewritten), lets
/// the host be issued tokens again, and leaves every token issued before the lift revoked.
pub fn a_lifted_host_revocation_keeps_earlier_tokens_revoked(b: &impl Backend) {
    let s = b.open();
    let h = hid(1).to_string();
    let lift = Revocation {
        seq: 0,
        kind: RevocationKind::Unrevoke,
        target: h.clone(),
        policy_hash: None,
        reason: "false positive".into(),
        time: 8,
        by: "admin".into(),
        tokens: vec![],
        audit_index: 0,
        lifts: None,
    };
    assert_eq!(s.unrevoke_host(&lift, &entry()).unwrap(), None, "not revoked: nothing to lift");
    assert_eq!((s.audit_len().unwrap(), s.revocations(0, 10).unwrap().len()), (0, 0), "and nothing written");

    let old = s.record_issuance(&token("t1", None), &entry(), &hid(1), &ClockInfo::default(), &attested()).unwrap();
    let revoke = Revocation { kind: RevocationKind::Host, reason: "suspect".into(), tokens: vec![], ..lift.clone() };
    let revoked = s.revoke(&revoke, &entry()).unwrap();
    let lifted = s.unrevoke_host(&lift, &entry()).unwrap().unwrap();
    assert_eq!((lifted.seq, lifted.kind, lifted.lifts), (1, RevocationKind::Unrevoke, Some(revoked.seq)));
    assert!(lifted.audit_index > old, "the lift comes after the tokens it keeps revoked");
    assert_eq!(s.revoked(&revoked_key(RevocationKind::Host, &h)).unwrap(), None, "the host may be issued again");
    assert_eq!(s.revoked(&lift_key(&h)).unwrap(), Some(lifted.clone()));
    assert_eq!(s.unrevoke_host(&lift, &entry()).unwrap(), None, "lifted once");
    drop(s);

    let s = b.open();
    assert_eq!(s.revocations(0, 10).unwrap(), vec![revoked.clone(), lifted.clone()], "append-only, durable");
    let again = s.revoke(&revoke, &entry()).unwrap();
    assert_eq!(s.revoked(&revoked_key(RevocationKind::Host, &h)).unwrap(), Some(again.clone()), "revocable again");
    let second = s.unrevoke_host(&lift, &entry()).unwrap().unwrap();
    assert_eq!(second.lifts, Some(again.seq));
    assert_eq!(s.revoked(&lift_key(&h)).unwrap(), Some(second), "the latest lift counts");
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
    put(&*s, &c);
    put(&*s, &challenge(2, 100));
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

fn enrollment(id: &str, principal: &str, expires_at: u64) -> PendingEnrollment {
    PendingEnrollment {
        id: id.into(),
        principal_id: principal.into(),
        host: host(1, "ak"),
        secret_sha256: "s".into(),
        nonce: Nonce([3; 32]),
        selection: "sha256:0".parse().unwrap(),
        expires_at,
    }
}

pub fn pending_enrollments_are_taken_once(b: &impl Backend) {
    let s = b.open();
    let e = enrollment("e1", "p", 0);
    assert_eq!(s.put_enrollment(&e, UNCAPPED).unwrap(), Admission::Stored);
    assert_eq!(s.take_enrollment("e1").unwrap(), Some(e));
    assert_eq!(s.take_enrollment("e1").unwrap(), None);
}

/// docs/design.md §17: a console link is stored with its audit entry, taken once (also by concurrent takers,
/// also after a reopen), and swept once expired.
pub fn console_links_are_taken_once_and_swept(b: &impl Backend) {
    let s = b.open();
    let link = |id: &str, exp: u64| ConsoleLink {
        id: id.into(),
        principal_id: "p".into(),
        cred: "c".into(),
        created_at: 0,
        expires_at: exp,
    };
    let before = s.audit_len().unwrap();
    s.put_console_link(&link("l1", 100), &entry()).unwrap();
    s.put_console_link(&link("l2", 100), &entry()).unwrap();
    s.put_console_link(&link("l3", 300), &entry()).unwrap();
    assert_eq!(s.audit_len().unwrap(), before + 3, "each link is audited in its step");
    drop(s);
    let s: std::sync::Arc<dyn Store> = b.open().into();
    assert_eq!(s.take_console_link("l1").unwrap(), Some(link("l1", 100)), "durable across a reopen");
    assert_eq!(s.take_console_link("l1").unwrap(), None, "once");
    assert_eq!(s.take_console_link("nope").unwrap(), None);
    let winners = std::thread::scope(|scope| {
        let takers: Vec<_> = (0..8).map(|_| scope.spawn(|| s.take_console_link("l2").unwrap().is_some())).collect();
        takers.into_iter().map(|t| t.join().unwrap()).filter(|won| *won).count()
    });
    assert_eq!(winners, 1, "one of concurrent takers gets the link");
    assert_eq!(s.sweep(100).unwrap(), Swept::default(), "nothing is swept at its expiry second");
    s.put_console_link(&link("l4", 150), &entry()).unwrap();
    assert_eq!(s.sweep(151).unwrap(), Swept { console_links: 1, ..Swept::default() });
    assert_eq!(s.take_console_link("l4").unwrap(), None, "swept");
    assert!(s.take_console_link("l3").unwrap().is_some(), "unexpired: kept");
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
        lifts: None,
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
    // An older quote appraised later (concurrent requests of one host, docs/design.md §14) leaves the
    // host's latest clock and the state quoted then.
    let older = ClockInfo { clock: 9, ..clock };
    let stale = AttestedState { pcr_digest: "11".into(), ..attested() };
    s.record_issuance(&token("t2", None), &entry(), &hid(1), &older, &stale).unwrap();
    let h = s.host(&hid(1)).unwrap().unwrap();
    assert_eq!((h.last_clock, h.last_attested), (clock, Some(attested())));
    assert_eq!(s.tokens().unwrap().len(), 2, "the token is recorded all the same");
    // An earlier restart or reset is earlier too, whatever its clock.
    let restarted_before = ClockInfo { clock: 99, restart_count: 1, ..clock };
    s.record_issuance(&token("t3", None), &entry(), &hid(1), &restarted_before, &stale).unwrap();
    assert_eq!(s.host(&hid(1)).unwrap().unwrap().last_clock, clock, "an earlier restart is older");
    // A later TPM reset restarts the clock: its quote is the latest although its clock is lower.
    let reset = ClockInfo { clock: 1, reset_count: 2, restart_count: 0, safe: true };
    let now = AttestedState { pcr_digest: "22".into(), ..attested() };
    s.record_issuance(&token("t4", None), &entry(), &hid(1), &reset, &now).unwrap();
    drop(s);
    let s = b.open();
    let h = s.host(&hid(1)).unwrap().unwrap();
    assert_eq!((h.last_clock, h.last_attested), (reset, Some(now)), "durable across reopen");
    assert_eq!(s.tokens().unwrap().len(), 4);
    assert_eq!(s.audit_len().unwrap(), 5, "every issuance audited");
}

/// A challenge keeps the host's clock at issue (docs/design.md §14: a batched quote may not be older than
/// it), absent for a challenge that has none; durable across a reopen.
pub fn challenges_keep_the_host_clock(b: &impl Backend) {
    let s = b.open();
    let clock = ClockInfo { clock: 10, reset_count: 1, restart_count: 2, safe: true };
    let with = Challenge { host_clock: Some(clock), ..challenge(1, 100) };
    put(&*s, &with);
    put(&*s, &challenge(2, 100));
    drop(s);
    let s = b.open();
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Fresh(with));
    assert_eq!(s.consume_nonce(&Nonce([2; 32]), 50).unwrap(), NonceState::Fresh(challenge(2, 100)));
}

pub fn rebaseline_forgets_the_clock(b: &impl Backend) {
    let s = b.open();
    assert_eq!(s.rebaseline_host(&hid(9), &entry()).unwrap(), None, "no such host");
    assert_eq!(s.audit_len().unwrap(), 0, "nothing written for an unknown host");
    s.enroll_host(&host(1, "ak1"), "p1", &entry()).unwrap();
    let clock = ClockInfo { clock: 10, reset_count: 4, restart_count: 2, safe: true };
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    assert_eq!(s.rebaseline_host(&hid(1), &entry()).unwrap(), Some(clock));
    assert_eq!(s.audit_len().unwrap(), 3, "the re-baseline is audited");
    drop(s);
    let s = b.open();
    let h = s.host(&hid(1)).unwrap().unwrap();
    assert_eq!(h.last_clock, ClockInfo::default(), "durable across reopen");
    assert_eq!(h.last_attested, Some(attested()), "only the clock is forgotten");
}

/// `hosts remove`: the record, the AK's index entry and the principal's binding go in one audited step;
/// tokens and revocations stay; the AK and the principal may enroll again.
pub fn a_removed_host_frees_its_ak_and_its_principal(b: &impl Backend) {
    let s = b.open();
    assert_eq!(s.remove_host(&hid(9), &entry()).unwrap(), None, "no such host");
    assert_eq!(s.audit_len().unwrap(), 0, "nothing written for an unknown host");
    s.enroll_host(&host(1, "ak1"), "p1", &entry()).unwrap();
    s.enroll_host(&host(2, "ak2"), "p2", &entry()).unwrap();
    let clock = ClockInfo { clock: 10, reset_count: 4, restart_count: 2, safe: true };
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    let removed = s.remove_host(&hid(1), &entry()).unwrap().expect("removed");
    assert_eq!(removed.host_id, hid(1));
    assert_eq!(s.audit_len().unwrap(), 4, "the removal is audited");
    drop(s);
    let s = b.open();
    assert_eq!(s.host(&hid(1)).unwrap(), None, "durable across reopen");
    assert_eq!(s.host_by_ak("ak1").unwrap(), None);
    assert_eq!(s.principal_host("p1").unwrap(), None);
    assert_eq!(s.hosts().unwrap().len(), 1, "the other host stays");
    assert_eq!(s.principal_host("p2").unwrap(), Some(hid(2)));
    assert!(s.token("t1").unwrap().is_some(), "its tokens stay, for lineage");
    assert_eq!(s.remove_host(&hid(1), &entry()).unwrap(), None, "removed once");
    assert_eq!(s.audit_len().unwrap(), 4);
    // The principal may enroll another TPM, and the AK may be enrolled anew.
    assert_eq!(s.enroll_host(&host(3, "ak3"), "p1", &entry()).unwrap(), EnrollOutcome::New);
    assert_eq!(s.enroll_host(&host(1, "ak1"), "p4", &entry()).unwrap(), EnrollOutcome::New);
}

pub fn challenges_are_voided(b: &impl Backend) {
    let s = b.open();
    put(&*s, &challenge(1, 100));
    put(&*s, &challenge(2, 100));
    drop(s);
    let s = b.open();
    assert_eq!(s.void_challenges().unwrap(), 2);
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Unknown, "voided, not usable");
    assert_eq!(s.void_challenges().unwrap(), 0);
}

/// docs/design.md §6: of many concurrent consumers of one nonce, exactly one finds it fresh.
pub fn concurrent_nonce_consumption_has_one_winner(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    put(&*s, &challenge(7, 100));
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

fn owned(n: u8, principal: &str, expires_at: u64) -> Challenge {
    Challenge { principal_id: principal.into(), ..challenge(n, expires_at) }
}

/// docs/design.md §16: at most `max` unexpired challenges per principal; a refused put writes nothing.
pub fn challenges_are_capped_per_principal(b: &impl Backend) {
    let s = b.open();
    let cap = Cap { max: 2, now: 50 };
    assert_eq!(s.put_challenge(&owned(1, "p", 100), &entry(), cap).unwrap(), Admission::Stored);
    assert_eq!(s.put_challenge(&owned(2, "p", 60), &entry(), cap).unwrap(), Admission::Stored);
    let audit = s.audit_len().unwrap();
    assert_eq!(s.put_challenge(&owned(3, "p", 100), &entry(), cap).unwrap(), Admission::Full { outstanding: 2 });
    assert_eq!(s.audit_len().unwrap(), audit, "a refused challenge is not audited by the store");
    assert_eq!(s.consume_nonce(&Nonce([3; 32]), 50).unwrap(), NonceState::Unknown, "nothing was stored");
    assert_eq!(s.put_challenge(&owned(4, "q", 100), &entry(), cap).unwrap(), Admission::Stored, "per principal");
    // A consumed challenge is no longer outstanding.
    assert!(matches!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Fresh(_)));
    assert_eq!(s.put_challenge(&owned(5, "p", 100), &entry(), cap).unwrap(), Admission::Stored);
    assert!(matches!(s.put_challenge(&owned(6, "p", 100), &entry(), cap).unwrap(), Admission::Full { .. }));
    // An expired one does not count, swept or not (challenge 2 expired at 60).
    let later = Cap { max: 2, now: 61 };
    assert_eq!(s.put_challenge(&owned(6, "p", 100), &entry(), later).unwrap(), Admission::Stored);
    assert!(matches!(s.put_challenge(&owned(7, "p", 100), &entry(), later).unwrap(), Admission::Full { .. }));
    drop(s);
    let s = b.open();
    assert!(matches!(s.put_challenge(&owned(7, "p", 100), &entry(), later).unwrap(), Admission::Full { .. }));
    assert_eq!(s.void_challenges().unwrap(), 4, "challenges 2, 4, 5 and 6 were outstanding");
    assert_eq!(s.put_challenge(&owned(7, "p", 100), &entry(), later).unwrap(), Admission::Stored, "voided");
}

/// docs/design.md §16: at most `max` unexpired pending enrollments per principal.
pub fn pending_enrollments_are_capped_per_principal(b: &impl Backend) {
    let s = b.open();
    let cap = Cap { max: 1, now: 50 };
    assert_eq!(s.put_enrollment(&enrollment("e1", "p", 100), cap).unwrap(), Admission::Stored);
    let full = s.put_enrollment(&enrollment("e2", "p", 100), cap).unwrap();
    assert_eq!(full, Admission::Full { outstanding: 1 });
    assert_eq!(s.take_enrollment("e2").unwrap(), None, "nothing was stored");
    assert_eq!(s.put_enrollment(&enrollment("e3", "q", 100), cap).unwrap(), Admission::Stored);
    assert!(s.take_enrollment("e1").unwrap().is_some());
    assert_eq!(s.put_enrollment(&enrollment("e4", "p", 100), cap).unwrap(), Admission::Stored, "taken: freed");
    drop(s);
    let s = b.open();
    assert!(matches!(s.put_enrollment(&enrollment("e5", "p", 100), cap).unwrap(), Admission::Full { .. }));
    let after = Cap { max: 1, now: 101 };
    assert_eq!(s.put_enrollment(&enrollment("e5", "p", 200), after).unwrap(), Admission::Stored, "e4 expired");
}

/// docs/design.md §12: expired challenges, pending enrollments and used nonces are swept; a swept nonce is
/// never accepted again, and nothing unexpired is touched.
pub fn expired_items_are_swept_and_stay_refused(b: &impl Backend) {
    let s = b.open();
    put(&*s, &challenge(1, 100));
    put(&*s, &challenge(2, 200));
    put(&*s, &challenge(3, 150));
    assert!(matches!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Fresh(_)));
    assert!(matches!(s.consume_nonce(&Nonce([2; 32]), 50).unwrap(), NonceState::Fresh(_)));
    for (id, exp) in [("e1", 100), ("e2", 300)] {
        assert_eq!(s.put_enrollment(&enrollment(id, "p", exp), UNCAPPED).unwrap(), Admission::Stored);
    }
    assert_eq!(s.sweep(100).unwrap(), Swept::default(), "nothing is swept at its expiry second");
    assert_eq!(s.sweep(151).unwrap(), Swept { challenges: 1, enrollments: 1, nonces: 1, console_links: 0 });
    assert_eq!(s.sweep(151).unwrap(), Swept::default(), "idempotent");
    // Nonce 1 was used and its record swept: still refused, never fresh again.
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 151).unwrap(), NonceState::Unknown);
    assert_eq!(s.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Unknown, "whatever the clock says");
    // Nonce 2's challenge is unexpired: its use is still remembered.
    assert_eq!(s.consume_nonce(&Nonce([2; 32]), 151).unwrap(), NonceState::Replayed);
    // Challenge 3 expired unused and was swept.
    assert_eq!(s.consume_nonce(&Nonce([3; 32]), 50).unwrap(), NonceState::Unknown);
    assert_eq!(s.take_enrollment("e1").unwrap(), None);
    drop(s);
    let s = b.open();
    assert_eq!(s.take_enrollment("e2").unwrap().map(|e| e.expires_at), Some(300), "unexpired: kept");
    assert_eq!(s.sweep(201).unwrap(), Swept { challenges: 0, enrollments: 0, nonces: 1, console_links: 0 });
    assert_eq!(s.consume_nonce(&Nonce([2; 32]), 50).unwrap(), NonceState::Unknown, "after reopen too");
}

/// docs/design.md §16: concurrent puts of one principal never exceed its cap.
pub fn concurrent_capped_puts_respect_the_cap(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    let cap = Cap { max: 3, now: 50 };
    let stored = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12u8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || s.put_challenge(&owned(i, "p", 100), &entry(), cap))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).filter(|r| matches!(r, Ok(Ok(Admission::Stored)))).count()
    });
    assert_eq!(stored, 3);
}

/// docs/design.md §12: `audit_len` and `revocations_len` count the entries and revocations written, across a
/// reopen (the service's high-water mark is built from them).
pub fn lengths_count_what_is_durable(b: &impl Backend) {
    let s = b.open();
    assert_eq!((s.audit_len().unwrap(), s.revocations_len().unwrap()), (0, 0));
    let r = Revocation {
        seq: 0,
        kind: RevocationKind::Host,
        target: hid(1).to_string(),
        policy_hash: None,
        reason: "r".into(),
        time: 7,
        by: "admin".into(),
        tokens: vec![],
        audit_index: 0,
        lifts: None,
    };
    s.revoke(&r, &entry()).unwrap();
    s.revoke(&r, &entry()).unwrap();
    s.append_audit(&entry()).unwrap();
    assert_eq!((s.audit_len().unwrap(), s.revocations_len().unwrap()), (3, 2));
    drop(s);
    let s = b.open();
    assert_eq!((s.audit_len().unwrap(), s.revocations_len().unwrap()), (3, 2), "after reopen");
}

/// docs/design.md §11: while writers append, a reader sees a dense prefix of the log, never longer than the
/// length reported after it, and never an entry that is not durable yet.
pub fn reads_see_a_durable_dense_prefix(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25 {
                    s.append_audit(&entry()).unwrap();
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..50 {
                let read = s.audit(0, 1000).unwrap();
                let len = s.audit_len().unwrap();
                assert!(read.len() as u64 <= len, "{} entries read, {len} durable", read.len());
                assert!(read.iter().enumerate().all(|(i, (index, _))| *index == i as u64), "dense");
            }
        });
    });
    assert_eq!(s.audit(0, 1000).unwrap().len(), 100);
}

/// docs/design.md §16: the readiness probe is a durable write that no record, length or read shows.
pub fn probe_changes_nothing_visible(b: &impl Backend) {
    let s = b.open();
    s.append_audit(&entry()).unwrap();
    s.probe().unwrap();
    s.probe().unwrap();
    assert_eq!((s.audit_len().unwrap(), s.revocations_len().unwrap()), (1, 0));
    assert_eq!(s.audit(0, 10).unwrap().len(), 1);
    assert!(s.principals().unwrap().is_empty() && s.hosts().unwrap().is_empty() && s.policies().unwrap().is_empty());
    drop(s);
    assert_eq!(b.open().append_audit(&entry()).unwrap(), 1, "the next index follows");
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
        lifts: None,
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

/// A store with one of everything (principals, hosts with tags, policies, challenges, pending enrollments,
/// nonces, tokens, revocations and a lifted host revocation, executions, audit entries, a join token partly
/// spent and the host that joined with it).
pub fn populate(s: &dyn Store) {
    s.add_principal(&principal("01", "a"), &entry()).unwrap();
    s.enroll_host(&HostRecord { tags: vec!["role=web".into()], ..host(1, "ak1") }, "01", &entry()).unwrap();
    s.set_host_tags(&hid(1), &["role=db".to_owned()], &entry()).unwrap();
    s.put_policy(&policy("web", "ph"), &entry()).unwrap();
    put(s, &challenge(1, 100));
    put(s, &with_host_clock(challenge(2, 100)));
    assert_eq!(s.put_enrollment(&enrollment("e1", "p", 100), UNCAPPED).unwrap(), Admission::Stored);
    s.consume_nonce(&Nonce([1; 32]), 50).unwrap();
    let clock = ClockInfo { clock: 10, reset_count: 1, restart_count: 2, safe: true };
    s.record_issuance(&token("t1", None), &entry(), &hid(1), &clock, &attested()).unwrap();
    s.record_issuance(&token("t2", Some("t1")), &entry(), &hid(1), &clock, &attested()).unwrap();
    s.start_execution(&exec("e1", "t2"), true, &[], &entry()).unwrap();
    let end = ExecutionEnd { time: 6, exit_code: Some(0), signal: None, duration_ms: 1, audit_index: 0 };
    s.end_execution("t2", "e1", &end, &entry()).unwrap();
    s.revoke(&revocation(RevocationKind::Token, "t1", &["t2"]), &entry()).unwrap();
    s.revoke(&revocation(RevocationKind::Host, hid(1).as_str(), &[]), &entry()).unwrap();
    s.unrevoke_host(&revocation(RevocationKind::Unrevoke, hid(1).as_str(), &[]), &entry()).unwrap();
    s.append_audit(&AuditEntry::new(9, "token.deny", "x").code("pcr_mismatch")).unwrap();
    s.add_principal(&join_token("j1", 2, 100), &entry()).unwrap();
    assert_eq!(joined_id(s.join_host("j1", 50, &principal("h2", "host-2"), &host(2, "ak2"), &entry()).unwrap()), "h2");
}

/// `c` issued when its host's last clock was a known one.
fn with_host_clock(c: Challenge) -> Challenge {
    Challenge { host_clock: Some(ClockInfo { clock: 7, reset_count: 1, restart_count: 2, safe: true }), ..c }
}

/// `runtrust store migrate` (docs/design.md §15): everything, counters and audit indices included, survives an
/// export into a fresh store, which then goes on from where the source stopped.
pub fn export_import_round_trip<B: Backend>(b: &B) {
    let s = b.open();
    populate(s.as_ref());
    let dump = s.export().unwrap();
    assert_eq!(dump.audit.len() as u64, s.audit_len().unwrap());
    assert_eq!(dump.counters.revocation_next, 3);
    let target = B::new();
    let t = target.open();
    t.import(&dump).unwrap();
    assert_eq!(t.export().unwrap(), dump, "the copy reads back as the original");
    let roots = (super::dump::audit_root(s.as_ref()).unwrap(), super::dump::audit_root(t.as_ref()).unwrap());
    assert_eq!(roots.0, roots.1, "the same audit root");
    assert!(matches!(t.import(&dump), Err(StoreError::Conflict(_))), "only into an empty store");
    drop(t);
    let t = target.open();
    assert_eq!((t.audit_len().unwrap(), t.revocations_len().unwrap()), (dump.counters.audit_next, 3), "durable");
    assert_eq!(t.principal("01").unwrap(), Some(principal("01", "a")), "tags and creator carried");
    assert_eq!(t.host(&hid(1)).unwrap().unwrap().tags, vec!["role=db"]);
    assert_eq!(t.children("t1").unwrap(), vec!["t2"]);
    assert_eq!(t.tokens_by_host(&hid(1), 10).unwrap(), vec!["t1", "t2"]);
    assert_eq!(t.token("t1").unwrap().unwrap().token_sha256, Some(TokenRecord::digest(b"t1")));
    assert!(t.revoked("token:t2").unwrap().is_some());
    assert_eq!(t.revoked(&revoked_key(RevocationKind::Host, &hid(1))).unwrap(), None, "lifted");
    assert_eq!(t.revoked(&lift_key(&hid(1))).unwrap().and_then(|l| l.lifts), Some(1), "the lift is carried");
    // The per-principal counts behind the caps come along: "p" has challenge 2 and enrollment e1 outstanding.
    let one = Cap { max: 1, now: 50 };
    assert!(matches!(t.put_challenge(&challenge(5, 100), &entry(), one).unwrap(), Admission::Full { .. }));
    assert!(matches!(t.put_enrollment(&enrollment("e2", "p", 100), one).unwrap(), Admission::Full { .. }));
    assert_eq!(t.consume_nonce(&Nonce([1; 32]), 50).unwrap(), NonceState::Replayed);
    assert_eq!(
        t.consume_nonce(&Nonce([2; 32]), 50).unwrap(),
        NonceState::Fresh(with_host_clock(challenge(2, 100))),
        "the challenge and its host clock are carried"
    );
    assert_eq!(t.take_enrollment("e1").unwrap().map(|e| e.expires_at), Some(100));
    assert_eq!(t.revoke(&revocation(RevocationKind::Token, "t1", &[]), &entry()).unwrap().seq, 3, "counters carried");
    assert_eq!(t.append_audit(&entry()).unwrap(), dump.counters.audit_next + 1);
    assert_eq!(t.principal_host("01").unwrap(), Some(hid(1)));
    assert_eq!(t.host_by_ak("ak1").unwrap().map(|h| h.host_id), Some(hid(1)));
    assert_eq!(t.sweep(101).unwrap().nonces, 2, "the used nonces's expiry is carried");
    // A join token comes along with its uses spent, and the host that joined with its own principal.
    assert_eq!(t.principal("j1").unwrap().unwrap().join, Some(JoinAllowance { uses: 2, used: 1, expires_at: 100 }));
    assert_eq!(t.principal_host("h2").unwrap(), Some(hid(2)));
    assert_eq!(joined_id(t.join_host("j1", 60, &principal("h3", "host-3"), &host(3, "ak3"), &entry()).unwrap()), "h3");
    assert_eq!(
        t.join_host("j1", 60, &principal("h4", "host-4"), &host(4, "ak4"), &entry()).unwrap(),
        Joined::Refused(JoinRefusal::Spent)
    );
}

fn join_token(id: &str, uses: u32, expires_at: u64) -> Principal {
    let join = Some(JoinAllowance { uses, used: 0, expires_at });
    Principal { role: Role::JoinToken, name: format!("join-{id}"), join, ..principal(id, "") }
}

fn joined_id(j: Joined) -> String {
    match j {
        Joined::Enrolled { principal_id, .. } => principal_id,
        Joined::Refused(r) => panic!("refused: {r}"),
    }
}

/// docs/design.md §5: each join spends one use with its audit entry; unknown, expired and spent tokens are
/// refused and write nothing; the host's own attester principal is stored and bound.
pub fn join_tokens_are_spent_use_by_use(b: &impl Backend) {
    let s = b.open();
    s.add_principal(&join_token("j1", 2, 100), &entry()).unwrap();
    let joined = s.join_host("j1", 50, &principal("h1", "host-1"), &host(1, "ak1"), &entry()).unwrap();
    assert_eq!(joined, Joined::Enrolled { outcome: EnrollOutcome::New, principal_id: "h1".into() });
    assert_eq!(s.principal_host("h1").unwrap(), Some(hid(1)));
    assert_eq!(s.principal("h1").unwrap().unwrap().role, Role::Attester);
    assert_eq!(s.principal("j1").unwrap().unwrap().join.unwrap().used, 1);
    let before = s.audit_len().unwrap();
    assert_eq!(
        s.join_host("j1", 101, &principal("h2", "host-2"), &host(2, "ak2"), &entry()).unwrap(),
        Joined::Refused(JoinRefusal::Expired)
    );
    assert_eq!(
        s.join_host("nope", 50, &principal("h2", "host-2"), &host(2, "ak2"), &entry()).unwrap(),
        Joined::Refused(JoinRefusal::Unknown)
    );
    // An ordinary attester is no join token.
    s.add_principal(&principal("a1", "attester"), &entry()).unwrap();
    let before_attester = s.audit_len().unwrap();
    assert_eq!(before_attester, before + 1);
    assert_eq!(
        s.join_host("a1", 50, &principal("h2", "host-2"), &host(2, "ak2"), &entry()).unwrap(),
        Joined::Refused(JoinRefusal::Unknown)
    );
    assert_eq!(joined_id(s.join_host("j1", 60, &principal("h2", "host-2"), &host(2, "ak2"), &entry()).unwrap()), "h2");
    assert_eq!(
        s.join_host("j1", 60, &principal("h3", "host-3"), &host(3, "ak3"), &entry()).unwrap(),
        Joined::Refused(JoinRefusal::Spent)
    );
    assert_eq!(s.audit_len().unwrap(), before_attester + 1, "only the join that happened is recorded");
    assert_eq!(s.principal("h3").unwrap(), None, "a refused join stores no principal");
    assert_eq!(s.host(&hid(3)).unwrap(), None);
    // An AK of another host: a Conflict, and the use is not spent.
    s.add_principal(&join_token("j2", 1, 100), &entry()).unwrap();
    let stolen = HostRecord { ak_name: "ak1".into(), ..host(4, "ak1") };
    assert!(matches!(
        s.join_host("j2", 60, &principal("h4", "host-4"), &stolen, &entry()),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.principal("j2").unwrap().unwrap().join.unwrap().used, 0);
    assert_eq!(s.principal("h4").unwrap(), None);
    drop(s);
    let s = b.open();
    assert_eq!(s.principal("j1").unwrap().unwrap().join.unwrap().used, 2, "durable");
}

/// A host that lost its credential joins again: its own principal takes the new secret; a same-named
/// principal that is not that host's is a Conflict.
pub fn a_host_that_joins_again_keeps_its_principal(b: &impl Backend) {
    let s = b.open();
    s.add_principal(&join_token("j1", 3, 100), &entry()).unwrap();
    assert_eq!(joined_id(s.join_host("j1", 10, &principal("h1", "host-1"), &host(1, "ak1"), &entry()).unwrap()), "h1");
    let again = Principal { secret_sha256: "y".into(), ..principal("h9", "host-1") };
    let joined = s.join_host("j1", 20, &again, &host(1, "ak1"), &entry()).unwrap();
    assert_eq!(joined, Joined::Enrolled { outcome: EnrollOutcome::Unchanged, principal_id: "h1".into() });
    assert_eq!(s.principal("h1").unwrap().unwrap().secret_sha256, "y", "the new secret");
    assert_eq!(s.principal("h9").unwrap(), None);
    // host-1's name on another host's join: refused.
    let clash = principal("h8", "host-1");
    assert!(matches!(s.join_host("j1", 20, &clash, &host(2, "ak2"), &entry()), Err(StoreError::Conflict(_))));
    assert_eq!(s.principal("j1").unwrap().unwrap().join.unwrap().used, 2);
}

/// Racing joins on one token: exactly `uses` succeed.
pub fn concurrent_joins_never_overspend(b: &impl Backend) {
    let s: std::sync::Arc<dyn Store> = b.open().into();
    s.add_principal(&join_token("j1", 3, 100), &entry()).unwrap();
    let handles: Vec<_> = (1..=8u8)
        .map(|n| {
            let s = s.clone();
            std::thread::spawn(move || {
                let p = principal(&format!("h{n}"), &format!("host-{n}"));
                s.join_host("j1", 10, &p, &host(n, &format!("ak{n}")), &entry()).unwrap()
            })
        })
        .collect();
    let joined = handles.into_iter().map(|h| h.join().unwrap()).filter(|j| matches!(j, Joined::Enrolled { .. }));
    assert_eq!(joined.count(), 3);
    assert_eq!(s.hosts().unwrap().len(), 3);
    assert_eq!(s.principal("j1").unwrap().unwrap().join.unwrap().used, 3);
}

/// `principal rotate`: the new secret replaces the old in one durable step with its audit entry; an unknown
/// name writes nothing.
pub fn a_rotated_principal_has_only_its_new_secret(b: &impl Backend) {
    let s = b.open();
    s.add_principal(&principal("01", "a"), &entry()).unwrap();
    let rotated = s.rotate_principal("a", "new", &AuditEntry::new(2, "principal.rotate", "a")).unwrap().unwrap();
    assert_eq!((rotated.id.as_str(), rotated.secret_sha256.as_str()), ("01", "new"));
    assert_eq!(s.rotate_principal("nobody", "x", &entry()).unwrap(), None);
    assert_eq!(s.audit_len().unwrap(), 2, "the add and the rotation, not the refusal");
    drop(s);
    let s = b.open();
    let p = s.principal("01").unwrap().unwrap();
    assert_eq!(
        (p.secret_sha256.as_str(), p.tags.clone()),
        ("new", vec!["role=web".to_owned()]),
        "only the secret changed"
    );
}
