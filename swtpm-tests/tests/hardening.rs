//! Issue 11 end to end, against `runtrust serve`: a store that lost its tail is refused at start with a
//! message that says how to recover, an explicit override starts it (audited), and a checkpoint saved before
//! the loss no longer verifies (exit 3); strangers are counted in /metrics, not written to the audit log.
//! No TPM is needed here.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use runtrust::client::{Client, ClientOptions};
use swtpm_tests::Service;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().map(Result::unwrap) {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn revoke_policy_hash(svc: &Service, n: u8) {
    let hash = format!("{n:02x}").repeat(32);
    let r = svc.client(None, Some(&svc.admin_credential()), &["revoke", "policy", &hash, "--reason", "test"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_store_that_lost_its_tail_is_refused_at_start() {
    let mut svc = Service::start(&[]);
    revoke_policy_hash(&svc, 1);
    assert!(svc.stop().success());
    let data = svc.data_dir();
    let backup = data.parent().unwrap().join("store-backup");
    copy_dir(&data.join("store"), &backup);

    svc.restart();
    revoke_policy_hash(&svc, 2);
    revoke_policy_hash(&svc, 3);
    let checkpoint = data.parent().unwrap().join("checkpoint.txt");
    let r = svc.client(
        None,
        Some(&svc.admin_credential()),
        &["audit", "checkpoint", "--out", checkpoint.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let entries = svc.audit().len();
    assert!(svc.stop().success());

    // The store is restored from the older copy: its tail (two revocations) is gone.
    std::fs::remove_dir_all(data.join("store")).unwrap();
    copy_dir(&backup, &data.join("store"));
    let r = svc.serve_refused(&[]);
    assert_ne!(r.code, 0, "serve started on a rolled-back store: {r:?}");
    assert_ne!(r.code, -1, "serve kept running on a rolled-back store: {r:?}");
    assert!(!r.stdout.contains("serving on"), "{r:?}");
    for words in ["refusing to start", "1 revocations", "3 revocations", "restore the store", "--accept-store-rollback"]
    {
        assert!(r.stderr.contains(words), "the refusal should say {words:?}: {}", r.stderr);
    }

    // Accepted knowingly: it starts, and says so in the audit log.
    svc.restart_with(&["--accept-store-rollback"]);
    let audit = svc.audit();
    assert!(audit.len() < entries, "the lost tail is gone: {} entries, {entries} before", audit.len());
    let accepted = audit.iter().find(|e| e["event"] == "store.rollback_accepted").expect("an audit entry");
    assert!(accepted["detail"].as_str().unwrap().contains("below its high-water mark"), "{accepted}");
    // A checkpoint saved before the loss is newer than the log: that does not verify (exit 3).
    let r = svc.client(
        None,
        Some(&svc.admin_credential()),
        &["audit", "verify", "--checkpoint", checkpoint.to_str().unwrap()],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("rolled back"), "{r:?}");

    // The mark now follows the accepted store: a plain restart works.
    assert!(svc.stop().success());
    svc.restart();
    assert!(svc.audit().iter().any(|e| e["event"] == "store.rollback_accepted"));
}

#[test]
fn strangers_are_counted_not_written() {
    let svc = Service::start(&[]);
    let before = svc.audit().len();
    let anonymous =
        Client::new(&ClientOptions { server: Some(svc.url().to_owned()), server_ca: Some(svc.ca()), credential: None })
            .unwrap();
    for path in ["/v1/enroll", "/v1/challenge", "/v1/tokens", "/v1/executions"] {
        for _ in 0..10 {
            let r = anonymous.post::<_, serde_json::Value>(path, &serde_json::json!({}));
            assert!(format!("{r:?}").contains("authorization_missing"), "{path}: {r:?}");
        }
    }
    assert_eq!(svc.audit().len(), before, "unauthenticated requests were written to the audit log");
    let metrics = anonymous.get_text("/metrics").unwrap();
    for route in ["/v1/enroll", "/v1/challenge", "/v1/tokens", "/v1/executions"] {
        let line = format!("runtrust_unauthenticated_total{{route=\"{route}\"}} 10");
        assert!(metrics.lines().any(|l| l == line), "{line} missing from\n{metrics}");
    }
    assert!(anonymous.get_text("/readyz").unwrap().contains("ready"));
}
