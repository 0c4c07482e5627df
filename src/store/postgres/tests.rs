//! The PostgreSQL backend runs the store conformance suite, each test in a fresh schema of the throwaway
//! cluster that scripts/test.sh starts (RUNTRUST_TEST_POSTGRES). Without PostgreSQL these tests fail.

use postgres::NoTls;

use super::PgStore;
use crate::store::conformance::Backend;
use crate::store::Store;

/// The test cluster's URL: RUNTRUST_TEST_POSTGRES, else the cluster scripts/pg.sh runs; otherwise a failure
/// that says how to get one.
pub(crate) fn test_url() -> String {
    if let Ok(url) = std::env::var("RUNTRUST_TEST_POSTGRES") {
        return url;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
    match std::process::Command::new(&script).arg("url").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!(
            "the PostgreSQL store tests need a PostgreSQL server and none is reachable: install it \
             (apt-get install postgresql), then start a throwaway cluster with scripts/pg.sh start and \
             export RUNTRUST_TEST_POSTGRES=$(scripts/pg.sh url) — scripts/test.sh does both"
        ),
    }
}

/// A fresh schema on the test cluster, dropped when this is.
pub(crate) struct TestSchema {
    base: String,
    name: String,
}

impl TestSchema {
    pub(crate) fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let base = test_url();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("t{}_{}_{}", std::process::id(), nanos, N.fetch_add(1, Ordering::SeqCst));
        let mut c = postgres::Client::connect(&base, NoTls).unwrap_or_else(|e| {
            panic!("PostgreSQL at {base}: {e} (start it with scripts/pg.sh start; install: apt-get install postgresql)")
        });
        c.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        TestSchema { base, name }
    }

    /// The cluster's URL with this schema as the search path.
    pub(crate) fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    pub(crate) fn open(&self) -> PgStore {
        PgStore::open(&self.url(), 8).unwrap()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base, NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

struct Pg(TestSchema);

impl Backend for Pg {
    fn new() -> Self {
        Pg(TestSchema::new())
    }

    fn open(&self) -> Box<dyn Store> {
        Box::new(self.0.open())
    }
}

crate::store_conformance!(Pg);

#[test]
fn migrations_apply_once_and_are_recorded() {
    let schema = TestSchema::new();
    drop(schema.open());
    drop(schema.open());
    let mut c = postgres::Client::connect(&schema.url(), NoTls).unwrap();
    let rows = c.query("SELECT version FROM schema_migrations ORDER BY version", &[]).unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(), vec![1, 2, 3]);
    c.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')", &[]).unwrap();
    let Err(e) = PgStore::open(&schema.url(), 2) else { panic!("a newer schema must be refused") };
    assert!(e.to_string().contains("upgrade runtrust"), "{e}");
}

#[test]
fn an_unreachable_server_is_an_error_not_a_hang() {
    let started = std::time::Instant::now();
    let Err(e) = PgStore::open("postgres://nobody:secret@127.0.0.1:1/none?connect_timeout=2", 2) else {
        panic!("nothing listens on port 1")
    };
    assert!(!e.to_string().contains("secret"), "the password stays out of messages: {e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

/// `runtrust store migrate` (docs/design.md §15): sled to PostgreSQL keeps every record, counter and audit
/// index, so the audit root is the same before and after.
#[test]
fn migrate_from_sled_keeps_everything_and_the_audit_root() {
    let dir = tempfile::tempdir().unwrap();
    let sled = crate::store::SledStore::open(dir.path()).unwrap();
    crate::store::conformance::populate(&sled);
    let schema = TestSchema::new();
    let pg = schema.open();
    let report = crate::store::migrate(&sled, &pg).unwrap();
    assert_eq!(report.root_before, report.root_after);
    assert_eq!(report.audit_entries, sled.audit_len().unwrap());
    assert_eq!((report.tokens, report.revocations, report.executions), (2, 3, 1));
    assert_eq!(pg.export().unwrap(), sled.export().unwrap(), "the same records, counters and indices");
    assert!(matches!(crate::store::migrate(&sled, &pg), Err(crate::store::StoreError::Conflict(_))));
    // And back: PostgreSQL to an empty sled store.
    let back_dir = tempfile::tempdir().unwrap();
    let back = crate::store::SledStore::open(back_dir.path()).unwrap();
    assert_eq!(crate::store::migrate(&pg, &back).unwrap().root_after, report.root_before);
}

/// A database at schema version 1 (the first PostgreSQL schema) is carried to version 2 at open: the new
/// columns are filled from the records already stored, so caps, sweep, token digests and lifts hold for them.
#[test]
fn migration_2_fills_its_columns_from_version_1_records() {
    use crate::store::conformance::hid;
    use crate::store::{
        Admission, Cap, Challenge, Nonce, NonceState, Principal, Revocation, RevocationKind, Role, Swept,
    };

    let schema = TestSchema::new();
    let mut c = postgres::Client::connect(&schema.url(), NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .unwrap();
    c.batch_execute(include_str!("../../../migrations/postgres/0001_init.sql")).unwrap();
    c.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'init')", &[]).unwrap();
    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }
    let p = Principal {
        id: "01".into(),
        name: "a".into(),
        role: Role::Attester,
        secret_sha256: "x".into(),
        created_at: 0,
        tags: vec!["role=web".into()],
        created_by: Some("admin".into()),
        join: None,
    };
    c.execute("INSERT INTO principals (id, name, record) VALUES ('01', 'a', $1)", &[&json(&p)]).unwrap();
    let ch = Challenge {
        nonce: Nonce([1; 32]),
        host_id: hid(1),
        principal_id: "p".into(),
        selection: "sha256:0".parse().unwrap(),
        expires_at: 100,
        host_clock: None,
    };
    // A version-1 record has no host_clock (the field came with the agent's batched quotes).
    let other = Challenge { nonce: Nonce([3; 32]), principal_id: "q".into(), ..ch.clone() };
    for x in [&ch, &other] {
        assert!(!json(x).contains("host_clock"));
        c.execute("INSERT INTO challenges (nonce, record) VALUES ($1, $2)", &[&x.nonce.to_hex(), &json(x)]).unwrap();
    }
    let host = Revocation {
        seq: 0,
        kind: RevocationKind::Host,
        target: hid(1).to_string(),
        policy_hash: None,
        reason: "r".into(),
        time: 1,
        by: "admin".into(),
        tokens: vec![],
        audit_index: 0,
        lifts: None,
    };
    let lift = Revocation { seq: 1, kind: RevocationKind::Unrevoke, lifts: Some(0), audit_index: 1, ..host.clone() };
    for r in [&host, &lift] {
        c.execute("INSERT INTO revocations (seq, record) VALUES ($1, $2)", &[&i64::try_from(r.seq).unwrap(), &json(r)])
            .unwrap();
    }
    c.execute("UPDATE counters SET value = 2 WHERE name = 'revocation_next'", &[]).unwrap();

    let s = schema.open();
    let tags: Vec<String> = c.query_one("SELECT tags FROM principals", &[]).unwrap().get(0);
    assert_eq!(tags, vec!["role=web"]);
    let lifts: Option<i64> = c.query_one("SELECT lifts FROM revocations WHERE seq = 1", &[]).unwrap().get(0);
    assert_eq!(lifts, Some(0));
    assert_eq!(s.principal("01").unwrap(), Some(p), "records read as before");
    let one = Cap { max: 1, now: 50 };
    let next = Challenge { nonce: Nonce([2; 32]), ..ch.clone() };
    let full = s.put_challenge(&next, &crate::audit::AuditEntry::new(1, "x", ""), one).unwrap();
    assert_eq!(full, Admission::Full { outstanding: 1 }, "the old challenge counts against the cap");
    assert_eq!(s.consume_nonce(&other.nonce, 50).unwrap(), NonceState::Fresh(other), "read without a host clock");
    assert_eq!(
        s.sweep(101).unwrap(),
        Swept { challenges: 1, enrollments: 0, nonces: 1, console_links: 0 },
        "and is swept"
    );
    assert_eq!(s.revocations_len().unwrap(), 2);
}
