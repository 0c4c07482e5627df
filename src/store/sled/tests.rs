//! The sled backend runs the store conformance suite.

use super::SledStore;
use crate::audit::AuditEntry;
use crate::store::conformance::Backend;
use crate::store::{Principal, Revocation, RevocationKind, Role, Store, StoreConfig, StoreError};

/// A sled store in a temporary directory; every `open` reopens the same directory.
struct Sled(tempfile::TempDir);

impl Backend for Sled {
    fn new() -> Self {
        Sled(tempfile::tempdir().unwrap())
    }

    /// sled's background threads may hold the previous handle's file lock for a moment after it is dropped
    /// (seen on a loaded machine): a reopen waits for it, briefly.
    fn open(&self) -> Box<dyn Store> {
        for _ in 0..100 {
            match SledStore::open(self.0.path()) {
                Err(StoreError::Open { detail, .. }) if detail.contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                opened => return Box::new(opened.unwrap()),
            }
        }
        panic!("the previous handle's lock was never released")
    }
}

crate::store_conformance!(Sled);

fn revocation() -> Revocation {
    Revocation {
        seq: 0,
        kind: RevocationKind::Host,
        target: "h".into(),
        policy_hash: None,
        reason: "r".into(),
        time: 7,
        by: "admin".into(),
        tokens: vec![],
        audit_index: 0,
        lifts: None,
    }
}

/// Finding 9 of issue 11: a truncated store (a second log segment cut short, snapshots gone) made sled panic
/// inside open ("tried to serialize Uninitialized"); it is a clean error now.
#[test]
fn a_truncated_store_is_an_error_not_a_panic() {
    // Where sled's log puts what depends on when its background flusher runs, so one layout in a few has no
    // cut that reproduces the panic: build fresh layouts until one does (every cut of each must not panic).
    let mut damaged = 0;
    for _ in 0..5 {
        damaged += truncated_layout_cuts();
        if damaged > 0 {
            break;
        }
    }
    assert!(damaged > 0, "no cut reproduced sled's panic on open; the test no longer exercises it");
}

/// Writes the layout that reproduced the panic, cuts its second segment at many offsets and opens each cut
/// copy: none may panic. Returns how many were refused as damaged.
fn truncated_layout_cuts() -> usize {
    let d = tempfile::tempdir().unwrap();
    // The layout that reproduced it: one admin action (with its audit entry) per step. It depends on sled's
    // page layout, so on the trees the store opens: with the token indices by host and policy, 5 × 250.
    for round in 0..5 {
        let s = SledStore::open(d.path()).unwrap();
        for i in 0..250 {
            let name = format!("n{round}-{i}");
            let p = Principal {
                id: name.clone(),
                name,
                role: Role::Admin,
                secret_sha256: "x".repeat(64),
                created_at: 0,
                tags: Vec::new(),
                created_by: None,
                join: None,
            };
            s.add_principal(&p, &AuditEntry::new(i, "x", "y".repeat(100))).unwrap();
            if i % 3 == 0 {
                s.remove_principal(&p.name, &AuditEntry::new(i, "principal.remove", "")).unwrap();
            }
            if i % 50 == 0 {
                s.revoke(&revocation(), &AuditEntry::new(i, "x", "y")).unwrap();
            }
        }
    }
    let segment = 1 << 20;
    assert!(std::fs::metadata(d.path().join("db")).unwrap().len() > segment + 4096, "a second segment");
    let (mut damaged, mut panicked) = (0, 0);
    for cut in (segment + 26..segment + 4096).step_by(61) {
        let copy = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(d.path()).unwrap().map(Result::unwrap) {
            if e.path().is_file() && !e.file_name().to_string_lossy().starts_with("snap.") {
                std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
            }
        }
        std::fs::OpenOptions::new().write(true).open(copy.path().join("db")).unwrap().set_len(cut).unwrap();
        match std::panic::catch_unwind(|| crate::store::open(&StoreConfig::Sled { path: copy.path().into() })) {
            Err(_) => panicked += 1,
            Ok(Err(StoreError::Open { detail, .. })) if detail.contains("damaged") => damaged += 1,
            Ok(_) => {}
        }
    }
    assert_eq!(panicked, 0, "opening a damaged store panicked");
    damaged
}
