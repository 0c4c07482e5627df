//! Issue 11, findings 3 and 5, in-process through the router: strangers cost no durable write, repeated
//! denials are throttled, `/readyz` follows a failing store, and nothing a failed write left behind is
//! served or gives an index a second meaning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use runtrust_attestation::ClockInfo;
use tower_service::Service as _;

use super::storage::Storage;
use super::test_support::{self, principal};
use super::{router, AppState, Fault};
use crate::audit::AuditEntry;
use crate::model::{ManualClock, Principal, Role};
use crate::store::{
    Admission, AttestedState, Cap, Challenge, EnrollOutcome, ExecStart, ExecutionEnd, ExecutionRecord, HostId,
    HostRecord, Joined, Nonce, NonceState, PendingEnrollment, Revocation, SledStore, Store, StoreConfig, StoreError,
    StoredPolicy, Swept, TokenRecord,
};

const T0: u64 = 1_800_000_000;
/// A well-formed revocation: an auditor is refused it (403, audited as `revoke.deny`).
const REVOKE: &str = r#"{"kind": "token", "target": "00", "reason": "test"}"#;

/// A sled store whose writes fail while `full` is set, as on a full disk.
struct Flaky {
    inner: SledStore,
    full: AtomicBool,
}

impl Flaky {
    fn write(&self) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("IO error: No space left on device (os error 28)".into()));
        }
        Ok(())
    }
}

impl Store for Flaky {
    fn add_principal(&self, p: &Principal, a: &AuditEntry) -> Result<(), StoreError> {
        self.write()?;
        self.inner.add_principal(p, a)
    }
    fn principal(&self, id: &str) -> Result<Option<Principal>, StoreError> {
        self.inner.principal(id)
    }
    fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        self.inner.principals()
    }
    fn remove_principal(&self, name: &str, a: &AuditEntry) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.remove_principal(name, a)
    }
    fn rotate_principal(&self, n: &str, s: &str, a: &AuditEntry) -> Result<Option<Principal>, StoreError> {
        self.write()?;
        self.inner.rotate_principal(n, s, a)
    }
    fn put_enrollment(&self, e: &PendingEnrollment, cap: Cap) -> Result<Admission, StoreError> {
        self.write()?;
        self.inner.put_enrollment(e, cap)
    }
    fn take_enrollment(&self, id: &str) -> Result<Option<PendingEnrollment>, StoreError> {
        self.write()?;
        self.inner.take_enrollment(id)
    }
    fn put_console_link(&self, l: &crate::model::ConsoleLink, a: &AuditEntry) -> Result<(), StoreError> {
        self.write()?;
        self.inner.put_console_link(l, a)
    }
    fn take_console_link(&self, id: &str) -> Result<Option<crate::model::ConsoleLink>, StoreError> {
        self.write()?;
        self.inner.take_console_link(id)
    }
    fn enroll_host(&self, h: &HostRecord, p: &str, a: &AuditEntry) -> Result<EnrollOutcome, StoreError> {
        self.write()?;
        self.inner.enroll_host(h, p, a)
    }
    fn join_host(&self, j: &str, n: u64, p: &Principal, h: &HostRecord, a: &AuditEntry) -> Result<Joined, StoreError> {
        self.write()?;
        self.inner.join_host(j, n, p, h, a)
    }
    fn principal_host(&self, principal_id: &str) -> Result<Option<HostId>, StoreError> {
        self.inner.principal_host(principal_id)
    }
    fn host(&self, host_id: &str) -> Result<Option<HostRecord>, StoreError> {
        self.inner.host(host_id)
    }
    fn host_by_ak(&self, ak_name: &str) -> Result<Option<HostRecord>, StoreError> {
        self.inner.host_by_ak(ak_name)
    }
    fn hosts(&self) -> Result<Vec<HostRecord>, StoreError> {
        self.inner.hosts()
    }
    fn set_host_tags(&self, h: &str, t: &[String], a: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.write()?;
        self.inner.set_host_tags(h, t, a)
    }
    fn rebaseline_host(&self, h: &str, a: &AuditEntry) -> Result<Option<ClockInfo>, StoreError> {
        self.write()?;
        self.inner.rebaseline_host(h, a)
    }
    fn remove_host(&self, h: &str, a: &AuditEntry) -> Result<Option<HostRecord>, StoreError> {
        self.write()?;
        self.inner.remove_host(h, a)
    }
    fn sweep(&self, now: u64) -> Result<Swept, StoreError> {
        self.write()?;
        self.inner.sweep(now)
    }
    fn unrevoke_host(&self, l: &Revocation, a: &AuditEntry) -> Result<Option<Revocation>, StoreError> {
        self.write()?;
        self.inner.unrevoke_host(l, a)
    }
    fn put_policy(&self, p: &StoredPolicy, a: &AuditEntry) -> Result<u64, StoreError> {
        self.write()?;
        self.inner.put_policy(p, a)
    }
    fn policies(&self) -> Result<Vec<StoredPolicy>, StoreError> {
        self.inner.policies()
    }
    fn policies_version(&self) -> Result<u64, StoreError> {
        self.inner.policies_version()
    }
    fn put_challenge(&self, c: &Challenge, a: &AuditEntry, cap: Cap) -> Result<Admission, StoreError> {
        self.write()?;
        self.inner.put_challenge(c, a, cap)
    }
    fn void_challenges(&self) -> Result<usize, StoreError> {
        self.write()?;
        self.inner.void_challenges()
    }
    fn consume_nonce(&self, nonce: &Nonce, now: u64) -> Result<NonceState, StoreError> {
        self.write()?;
        self.inner.consume_nonce(nonce, now)
    }
    fn record_issuance(
        &self,
        t: &TokenRecord,
        a: &AuditEntry,
        h: &str,
        c: &ClockInfo,
        s: &AttestedState,
    ) -> Result<u64, StoreError> {
        self.write()?;
        self.inner.record_issuance(t, a, h, c, s)
    }
    fn token(&self, cti: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.token(cti)
    }
    fn children(&self, cti: &str) -> Result<Vec<String>, StoreError> {
        self.inner.children(cti)
    }
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.tokens()
    }
    fn tokens_by_host(&self, host: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.tokens_by_host(host, limit)
    }
    fn tokens_by_policy(&self, hash: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.tokens_by_policy(hash, limit)
    }
    fn revoke(&self, r: &Revocation, a: &AuditEntry) -> Result<Revocation, StoreError> {
        self.write()?;
        self.inner.revoke(r, a)
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
        single: bool,
        keys: &[String],
        a: &AuditEntry,
    ) -> Result<ExecStart, StoreError> {
        self.write()?;
        self.inner.start_execution(e, single, keys, a)
    }
    fn end_execution(
        &self,
        cti: &str,
        id: &str,
        end: &ExecutionEnd,
        a: &AuditEntry,
    ) -> Result<Option<ExecutionRecord>, StoreError> {
        self.write()?;
        self.inner.end_execution(cti, id, end, a)
    }
    fn executions(&self, cti: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.executions(cti)
    }
    fn append_audit(&self, entry: &AuditEntry) -> Result<u64, StoreError> {
        self.write()?;
        self.inner.append_audit(entry)
    }
    fn audit(&self, from: u64, limit: usize) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
        self.inner.audit(from, limit)
    }
    fn audit_len(&self) -> Result<u64, StoreError> {
        self.inner.audit_len()
    }
    fn revocations_len(&self) -> Result<u64, StoreError> {
        self.inner.revocations_len()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.write()?;
        self.inner.flush()
    }
    fn probe(&self) -> Result<(), StoreError> {
        self.write()?;
        self.inner.probe()
    }
    fn flushes(&self) -> u64 {
        self.inner.flushes()
    }
    fn export(&self) -> Result<crate::store::Dump, StoreError> {
        self.inner.export()
    }
    fn import(&self, d: &crate::store::Dump) -> Result<(), StoreError> {
        self.write()?;
        self.inner.import(d)
    }
}

struct App {
    router: Router,
    state: AppState,
    flaky: Arc<Flaky>,
    clock: Arc<ManualClock>,
    admin: String,
    auditor: String,
    _dir: tempfile::TempDir,
}

impl App {
    fn new(limits: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let flaky = Arc::new(Flaky { inner: SledStore::open(&dir.path().join("store")).unwrap(), full: false.into() });
        let admin = principal(flaky.as_ref(), "admin", Role::Admin, T0);
        let auditor = principal(flaky.as_ref(), "auditor", Role::Auditor, T0);
        let clock = Arc::new(ManualClock::at(T0));
        let state = test_support::state(dir.path(), flaky.clone(), clock.clone(), limits);
        App { router: router(state.clone()), state, flaky, clock, admin, auditor, _dir: dir }
    }

    async fn send(&self, method: &str, path: &str, credential: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
        if let Some(c) = credential {
            req = req.header("authorization", format!("Bearer {c}"));
        }
        let response = self.router.clone().call(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn audit_len(&self) -> u64 {
        self.flaky.audit_len().unwrap()
    }

    async fn metric(&self, line_start: &str) -> u64 {
        let (status, text) = self.send("GET", "/metrics", None, "").await;
        assert_eq!(status, StatusCode::OK);
        text.lines()
            .find_map(|l| l.strip_prefix(line_start).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    }
}

/// Finding 3: unauthenticated requests to every audited route are refused and counted, never written.
#[tokio::test]
async fn strangers_cost_no_durable_write() {
    let app = App::new("");
    let before = app.audit_len();
    let forged = "rt1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for path in ["/v1/enroll", "/v1/challenge", "/v1/tokens", "/v1/executions"] {
        for i in 0..25 {
            let credential = (i % 2 == 1).then_some(forged);
            let (status, body) = app.send("POST", path, credential, "{}").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
            assert!(body.contains("authorization_missing"), "{body}");
        }
    }
    assert_eq!(app.audit_len(), before, "an unauthenticated request wrote to the audit log");
    assert_eq!(app.metric("runtrust_unauthenticated_total{route=\"/v1/tokens\"}").await, 25);
    let deny = "runtrust_decisions_total{route=\"/v1/enroll\",outcome=\"deny\",code=\"authorization_missing\"}";
    assert_eq!(app.metric(deny).await, 25);
    assert_eq!(app.metric("runtrust_audit_entries").await, before);
}

/// Finding 3: an authenticated principal's denials are audited up to the configured rate; past it, its
/// requests are refused unevaluated (429) and counted, and one entry marks the episode.
#[tokio::test]
async fn repeated_authenticated_denials_are_throttled() {
    let app = App::new("audited_denials_per_minute = 5");
    let before = app.audit_len();
    let auditor = app.auditor.clone();
    for i in 0..20 {
        let (status, body) = app.send("POST", "/v1/revocations", Some(&auditor), REVOKE).await;
        let want = if i < 5 { StatusCode::FORBIDDEN } else { StatusCode::TOO_MANY_REQUESTS };
        assert_eq!(status, want, "request {i}: {body}");
    }
    let entries = app.flaky.audit(before, 100).unwrap();
    let events: Vec<&str> = entries.iter().map(|(_, e)| e.event.as_str()).collect();
    assert_eq!(events, ["revoke.deny"; 5].iter().copied().chain(["principal.throttled"]).collect::<Vec<_>>());
    assert_eq!(app.metric("runtrust_throttled_total{route=\"/v1/revocations\"}").await, 15);
    // Another principal is not affected; an allow-only principal never is.
    let (status, _) = app.send("GET", "/v1/audit", Some(&app.admin.clone()), "").await;
    assert_eq!(status, StatusCode::OK);
    // The bucket drains: a minute later the auditor is evaluated (and audited) again.
    app.clock.advance(60);
    let (status, _) = app.send("POST", "/v1/revocations", Some(&auditor), REVOKE).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.audit_len(), before + 7);
}

/// Finding 5: while writes fail, `/readyz` is 503 and requests that need the store are refused (nothing is
/// served from it); once space returns the service is ready again without a restart, and the log goes on
/// at the next index.
#[tokio::test]
async fn readiness_follows_the_store() {
    let app = App::new("");
    let (admin, auditor) = (app.admin.clone(), app.auditor.clone());
    assert_eq!(app.send("GET", "/readyz", None, "").await.0, StatusCode::OK);
    let (status, _) = app.send("POST", "/v1/revocations", Some(&auditor), REVOKE).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a denial, audited");
    let served = app.flaky.audit(0, 100).unwrap();

    app.flaky.full.store(true, Ordering::SeqCst);
    let (status, body) = app.send("POST", "/v1/revocations", Some(&auditor), REVOKE).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "a denial that cannot be audited: {body}");
    let (status, body) = app.send("GET", "/readyz", None, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(app.send("GET", "/healthz", None, "").await.0, StatusCode::OK, "liveness is not readiness");
    let (status, body) = app.send("GET", "/v1/audit", Some(&admin), "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "nothing is served from a failed store: {body}");
    assert!(body.contains("verifier_unavailable"), "{body}");
    assert_eq!(app.metric("runtrust_store_ready").await, 0);

    app.flaky.full.store(false, Ordering::SeqCst);
    assert_eq!(app.send("GET", "/readyz", None, "").await.0, StatusCode::OK, "space returned: ready");
    let (status, _) = app.send("POST", "/v1/revocations", Some(&auditor), REVOKE).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let after = app.flaky.audit(0, 100).unwrap();
    assert_eq!(after[..served.len()], served[..], "served entries keep their index and content");
    assert_eq!(after.len(), served.len() + 1, "the log goes on at the next index");
    assert_eq!(app.state.store.failures(), 1);
}

/// A sled store in a temporary directory, and a `Storage` that can reopen it from there.
fn reopenable_sled() -> (tempfile::TempDir, Arc<SledStore>, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let sled = Arc::new(SledStore::open(&path).unwrap());
    let storage = Storage::new(sled.clone(), Some(StoreConfig::Sled { path }));
    (dir, sled, storage)
}

/// The `n`th test audit entry.
fn entry(n: u64) -> AuditEntry {
    AuditEntry::new(T0 + n, "test", format!("entry {n}"))
}

/// Finding 5 on sled itself: a write that sled applied in memory but could not flush is never served; the
/// failed store is reopened from its files (dropping what it held only in memory) and takes writes again;
/// an index that was served never changes its entry.
#[tokio::test]
async fn a_write_that_failed_to_flush_is_never_served() {
    let (_dir, sled, storage) = reopenable_sled();
    for n in 0..3 {
        storage.run(move |s| s.append_audit(&entry(n))).await.unwrap();
    }
    let served = storage.run(|s| s.audit(0, 100)).await.unwrap();

    sled.fail_flushes(true);
    assert!(storage.run(move |s| s.append_audit(&entry(3))).await.is_err(), "the flush failed");
    assert_eq!(sled.audit(0, 100).unwrap(), served, "sled holds entry 3 in memory; it is not served");
    assert_eq!(sled.audit_len().unwrap(), 3);
    assert!(!storage.is_ready());
    let refused = storage.run(|s| s.audit(0, 100)).await;
    assert!(matches!(refused, Err(Fault::StoreUnavailable(_))), "a failed store is not read: {refused:?}");

    // Space returns: the failed handle is dropped and the store reopened from its files.
    drop(sled);
    storage.recover().await.unwrap();
    assert!(storage.is_ready());
    let index = storage.run(move |s| s.append_audit(&entry(4))).await.unwrap();
    let after = storage.run(|s| s.audit(0, 100)).await.unwrap();
    assert_eq!(after[..3], served[..], "served entries keep their index and content");
    assert_eq!(after.last().map(|(i, e)| (*i, e.detail.as_str())), Some((index, "entry 4")));
    assert!(after.iter().all(|(i, e)| *i < 3 || e.detail != "entry 2"), "no entry appears twice");
}

/// The same through [`Storage::quick`], where sled runs on the async thread and its flush is awaited
/// (deferred): a failed flush is still an error that takes the store out of service, never an answer.
#[tokio::test]
async fn a_deferred_write_that_failed_to_flush_is_an_error_and_is_never_served() {
    let (_dir, sled, storage) = reopenable_sled();
    for n in 0..3 {
        assert_eq!(storage.quick(move |s| s.append_audit(&entry(n))).await.unwrap(), n);
    }
    assert_eq!(sled.audit_len().unwrap(), 3, "each deferred write was durable before quick returned");
    let flushes = sled.flushes();

    sled.fail_flushes(true);
    let failed = storage.quick(move |s| s.append_audit(&entry(3))).await;
    assert!(matches!(failed, Err(Fault::Store(StoreError::Backend(_)))), "the flush failed: {failed:?}");
    assert!(sled.flushes() > flushes, "the failure came from a flush, not before one");
    assert_eq!(sled.audit_len().unwrap(), 3, "sled holds entry 3 in memory; it is not served");
    assert!(!storage.is_ready());
    let refused = storage.quick(|s| s.audit_len()).await;
    assert!(matches!(refused, Err(Fault::StoreUnavailable(_))), "a failed store is not read: {refused:?}");

    drop(sled);
    storage.recover().await.unwrap();
    let index = storage.quick(move |s| s.append_audit(&entry(4))).await.unwrap();
    let after = storage.run(|s| s.audit(0, 100)).await.unwrap();
    assert_eq!(after.last().map(|(i, e)| (*i, e.detail.as_str())), Some((index, "entry 4")));
    assert!(after.iter().all(|(i, e)| *i < 3 || e.detail != "entry 2"), "no entry appears twice");
}

/// A store call that panics on the async thread is an error answer (as through spawn_blocking), and the
/// thread does not go on deferring durability afterwards.
#[tokio::test]
async fn a_panicking_quick_call_is_an_error_and_leaves_no_deferral_behind() {
    let dir = tempfile::tempdir().unwrap();
    let sled = Arc::new(SledStore::open(&dir.path().join("store")).unwrap());
    let storage = Storage::new(sled.clone(), None);
    let panicked = storage
        .quick(|s| -> Result<(), StoreError> {
            s.append_audit(&AuditEntry::new(T0, "test", "before the panic"))?;
            panic!("a bug in store code")
        })
        .await;
    assert!(matches!(panicked, Err(Fault::Task(_))), "{panicked:?}");
    // On this same thread, a plain write waits for its flush again: the durable prefix covers it at once.
    sled.append_audit(&AuditEntry::new(T0, "test", "after")).unwrap();
    assert_eq!(sled.audit_len().unwrap(), 2);
    assert!(storage.is_ready(), "a panic is not a store failure");
}
