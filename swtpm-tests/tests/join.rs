//! Join tokens end to end (docs/design.md §5, issue 14): one token with `--uses 3` enrolls three swtpm hosts,
//! each of which then gets an execution token with the credential it stored; the fourth use is refused and
//! stores nothing; each use is in the audit log; a revoked join token enrolls nobody.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use swtpm_tests::{Run, Service, SwTpm};

fn anchors(tpms: &[SwTpm]) -> Vec<PathBuf> {
    tpms.iter().flat_map(|t| [t.ca_root(), t.ca_intermediate()]).collect()
}

fn admin(svc: &Service, args: &[&str]) -> Run {
    svc.client(None, Some(&svc.admin_credential()), args)
}

fn json(r: &Run) -> serde_json::Value {
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// `join-token create --tag role=web --uses N --out FILE`; the token's id.
fn create(svc: &Service, uses: &str, out: &Path) -> String {
    let r = admin(
        svc,
        &[
            "--json",
            "join-token",
            "create",
            "--tag",
            "role=web",
            "--uses",
            uses,
            "--ttl",
            "1h",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let v = json(&r);
    assert!(v["token"].is_null(), "with --out the secret is only in the file: {v}");
    assert_eq!(std::fs::metadata(out).unwrap().permissions().mode() & 0o777, 0o600);
    v["id"].as_str().unwrap().to_owned()
}

fn enroll_with(svc: &Service, tpm: &SwTpm, token: &Path) -> Run {
    svc.client(Some(tpm), None, &["--json", "enroll", "--join-token", token.to_str().unwrap()])
}

#[test]
fn one_join_token_enrolls_three_hosts_and_refuses_the_fourth() {
    let tpms: Vec<SwTpm> = (0..4).map(|_| SwTpm::start()).collect();
    let svc = Service::start(&anchors(&tpms));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("web.join");
    let id = create(&svc, "3", &token);

    // A policy for role=web, captured from the first host (fresh swtpms share their PCR values).
    let policy = dir.path().join("web.toml");
    let args = ["policy", "capture", "--id", "web", "--pcrs", "0-7", "--tag", "role=web", "--scope", "deploy/web/*"];
    let r = svc.client(Some(&tpms[0]), None, &[&args[..], &["--out", policy.to_str().unwrap()]].concat());
    assert_eq!(r.code, 0, "capture: {r:?}");
    assert_eq!(admin(&svc, &["policy", "apply", policy.to_str().unwrap()]).code, 0);

    let mut principals = Vec::new();
    for (n, tpm) in tpms[..3].iter().enumerate() {
        let v = json(&enroll_with(&svc, tpm, &token));
        assert_eq!(v["tags"], serde_json::json!(["role=web"]), "the token's tags: {v}");
        assert_eq!(v["new"], true);
        let stored = tpm.host_state_dir().join("credential");
        assert_eq!(v["credential_file"], stored.to_str().unwrap());
        assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600, "host {n}");
        let own = std::fs::read_to_string(&stored).unwrap();
        assert_ne!(own.trim(), std::fs::read_to_string(&token).unwrap().trim(), "its own credential, not the token");
        principals.push(v["principal"].as_str().unwrap().to_owned());

        // No --credential: the stored one is used, and the host is issued a token that verifies.
        let out = dir.path().join(format!("exec-{n}.token"));
        let r = svc.client(
            Some(tpm),
            None,
            &["token", "request", "--scope", "deploy/web/api", "--audience", "gw-1", "--out", out.to_str().unwrap()],
        );
        assert_eq!(r.code, 0, "host {n} token request with its stored credential: {r:?}");
        let r = svc.client(None, None, &["token", "verify", out.to_str().unwrap(), "--audience", "gw-1"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    principals.sort();
    principals.dedup();
    assert_eq!(principals.len(), 3, "one principal per host");

    // The fourth use: refused with a code, nothing stored, no credential written.
    let r = enroll_with(&svc, &tpms[3], &token);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("authorization_missing") && r.stderr.contains("no uses left"), "{r:?}");
    assert!(!tpms[3].host_state_dir().join("credential").exists());
    assert_eq!(svc.hosts().len(), 3);
    let listed = json(&admin(&svc, &["--json", "join-token", "list"]));
    assert_eq!((listed[0]["id"].as_str(), listed[0]["used"].as_u64()), (Some(id.as_str()), Some(3)), "{listed}");
    let out = dir.path().join("exec-3.token");
    let r = svc.client(
        Some(&tpms[3]),
        None,
        &["token", "request", "--scope", "deploy/web/api", "--audience", "gw-1", "--out", out.to_str().unwrap()],
    );
    assert_eq!(r.code, 3, "the refused host has no credential: {r:?}");
    assert!(r.stderr.contains("authorization_missing") && !out.exists(), "{r:?}");

    // Each use is audited, naming the token and the principal it made.
    let audit = svc.audit();
    let joins: Vec<_> = audit.iter().filter(|e| e["event"] == "enroll.allow").collect();
    assert_eq!(joins.len(), 3, "{joins:?}");
    for e in &joins {
        assert_eq!(e["diagnostics"]["join_token"], id.as_str(), "{e}");
        assert_eq!(e["principal"], format!("join-{id}"), "{e}");
    }
    assert!(audit.iter().any(|e| e["event"] == "join_token.create" && e["principal"] == "admin"));
    assert!(audit.iter().any(|e| e["event"] == "enroll.deny" && e["code"] == "authorization_missing"));

    // Revoked: a new token enrolls nobody; the hosts it did not make keep working.
    let second = dir.path().join("second.join");
    let second_id = create(&svc, "5", &second);
    assert_eq!(admin(&svc, &["join-token", "revoke", &second_id]).code, 0);
    let r = enroll_with(&svc, &tpms[3], &second);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("authorization_missing"), "{r:?}");
    assert_eq!(svc.hosts().len(), 3);
    assert!(svc.audit().iter().any(|e| e["event"] == "join_token.revoke"));
    // A join token may do nothing but enroll.
    let r = svc.client(None, Some(&token), &["hosts", "list"]);
    assert_eq!(r.code, 3, "{r:?}");
}
