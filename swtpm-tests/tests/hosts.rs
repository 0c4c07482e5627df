//! Issue 11 findings 1, 2 and 12 end to end: host tags are the operator's (a host cannot move itself into
//! another policy's grants; an admin's `hosts tag` can), admin actions are audit entries naming the admin,
//! and `hosts unrevoke` lets a revoked host back in while its earlier tokens stay revoked.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use swtpm_tests::{Run, Service, SwTpm};

/// A service, one TPM enrolled by an attester conferring `tags`, and the policies `(id, tag, scope)`
/// captured from it and applied.
struct Fx {
    svc: Service,
    tpm: SwTpm,
    cred: PathBuf,
    host: String,
    dir: tempfile::TempDir,
}

impl Fx {
    fn new(tags: &[&str], policies: &[(&str, &str, &str)]) -> Self {
        let tpm = SwTpm::start();
        let svc = Service::start(&[tpm.ca_root(), tpm.ca_intermediate()]);
        let cred = svc.add_attester("web-01", tags);
        let r = svc.client(Some(&tpm), Some(&cred), &["--json", "enroll"]);
        assert_eq!(r.code, 0, "enroll: {r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["tags"], serde_json::json!(tags), "the conferred set: {v}");
        let host = v["host_id"].as_str().unwrap().to_owned();
        let fx = Fx { svc, tpm, cred, host, dir: tempfile::tempdir().unwrap() };
        for (id, tag, scope) in policies {
            let file = fx.dir.path().join(format!("{id}.toml"));
            let args = ["policy", "capture", "--id", id, "--pcrs", "0-7", "--tag", tag, "--scope", scope];
            let r = fx.host_run(&[&args[..], &["--out", file.to_str().unwrap()]].concat());
            assert_eq!(r.code, 0, "capture {id}: {r:?}");
            let r = fx.admin(&["policy", "apply", file.to_str().unwrap()]);
            assert_eq!(r.code, 0, "apply {id}: {r:?}");
        }
        fx
    }

    fn host_run(&self, args: &[&str]) -> Run {
        self.svc.client(Some(&self.tpm), Some(&self.cred), args)
    }

    fn admin(&self, args: &[&str]) -> Run {
        self.svc.client(None, Some(&self.svc.admin_credential()), args)
    }

    /// `token request --scope S`; the run and the token file.
    fn request(&self, name: &str, scope: &str) -> (Run, PathBuf) {
        let out = self.dir.path().join(name);
        let r = self.host_run(&[
            "token",
            "request",
            "--scope",
            scope,
            "--audience",
            "gw-1",
            "--out",
            out.to_str().unwrap(),
        ]);
        (r, out)
    }

    fn claims(&self, token: &Path) -> serde_json::Value {
        let r = self.svc.client(None, None, &["--json", "token", "inspect", token.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
        serde_json::from_str(&r.stdout).unwrap()
    }

    fn show(&self) -> serde_json::Value {
        let r = self.admin(&["--json", "hosts", "show", &self.host]);
        assert_eq!(r.code, 0, "hosts show: {r:?}");
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// `exec` of a command that writes a marker and exits 7; the run and whether it ran.
    fn exec(&self, token: &Path, name: &str) -> (Run, bool) {
        let marker = self.dir.path().join(format!("ran-{name}"));
        let script = format!("touch '{}'; exit 7", marker.display());
        let args = ["exec", "--token", token.to_str().unwrap(), "--scope", "deploy/web/api", "--audience", "gw-1"];
        let r = self.host_run(&[&args[..], &["--", "sh", "-c", &script]].concat());
        (r, marker.exists())
    }
}

fn denied(r: &Run, code: &str) {
    assert_eq!(r.code, 3, "expected {code}: {r:?}");
    assert!(r.stderr.contains(code), "expected {code}: {r:?}");
}

/// The entries of `event` in the log.
fn events(svc: &Service, event: &str) -> Vec<serde_json::Value> {
    svc.audit().into_iter().filter(|e| e["event"] == event).collect()
}

/// Finding 1: the attester of a `role=web` host asks to re-enroll as `role=db`: refused, its tags stay, and
/// a `deploy/db/…` token under the `db` policy is refused; only an admin's `hosts tag` moves it.
#[test]
fn a_host_cannot_move_itself_into_another_policy() {
    let fx = Fx::new(&["role=web"], &[("web", "role=web", "deploy/web/*"), ("db", "role=db", "deploy/db/*")]);

    let r = fx.host_run(&["enroll", "--tag", "role=db"]);
    denied(&r, "authorization_missing");
    assert!(r.stderr.contains("hosts tag"), "says who changes tags: {r:?}");
    assert!(!r.stderr.contains("nothing changed"), "{r:?}");
    assert_eq!(fx.show()["tags"], serde_json::json!(["role=web"]), "the tags did not change");
    let refusals = events(&fx.svc, "enroll.deny");
    assert!(refusals.iter().any(|e| e["code"] == "authorization_missing"), "the refusal is audited: {refusals:?}");

    // Narrowing to nothing it was not given, and re-enrolling as it is, both stay as they were.
    let r = fx.host_run(&["--json", "enroll", "--tag", "role=web"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["new"], false);

    let (r, _) = fx.request("db-1", "deploy/db/migrate");
    denied(&r, "scope_denied");
    let (r, web) = fx.request("web-1", "deploy/web/api");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.claims(&web)["policy_id"], "web");

    // A host cannot retag itself; an admin can, and is named in the log.
    denied(&fx.host_run(&["hosts", "tag", &fx.host, "--set", "role=db"]), "authorization_missing");
    let r = fx.admin(&["hosts", "tag", &fx.host, "--set", "role=db"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.show()["tags"], serde_json::json!(["role=db"]));
    let tagged = events(&fx.svc, "host.tag");
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    assert_eq!((&tagged[0]["principal"], &tagged[0]["host_id"]), (&"admin".into(), &fx.host.as_str().into()));
    assert!(events(&fx.svc, "host.deny").iter().any(|e| e["principal"] == "web-01"), "the attempt is audited");

    let (r, db) = fx.request("db-2", "deploy/db/migrate");
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.claims(&db)["policy_id"], "db", "the admin's tags chose the policy");
    denied(&fx.request("web-2", "deploy/web/api").0, "scope_denied");

    // The enrollment's initial tags named the admin that conferred them.
    let enrolled = events(&fx.svc, "enroll.allow");
    assert_eq!(enrolled[0]["diagnostics"]["conferred_by"], "admin", "{enrolled:?}");
    assert_eq!(enrolled[0]["diagnostics"]["tags"], serde_json::json!(["role=web"]));
}

/// Finding 2: principal add and remove and keys rotate are audit entries naming the admin.
#[test]
fn admin_actions_are_audited_with_the_admin() {
    let svc = Service::start(&[]);
    let admin = svc.admin_credential();
    let cred = svc.add_attester("web-01", &["role=web", "dc=1"]);
    let r = svc.client(None, Some(&admin), &["--json", "principal", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let p = list.iter().find(|p| p["name"] == "web-01").expect("listed");
    assert_eq!((&p["tags"], &p["created_by"]), (&serde_json::json!(["role=web", "dc=1"]), &"admin".into()));
    let r = svc.client(None, Some(&admin), &["principal", "list"]);
    assert!(r.stdout.contains("tags=[role=web,dc=1]"), "{r:?}");

    // Only attesters confer tags; only admins add principals (neither refusal changes anything).
    let r = svc.client(None, Some(&admin), &["principal", "add", "gw", "--role", "gateway", "--tag", "x"]);
    assert_eq!(r.code, 1, "{r:?}");
    let r = svc.client(None, Some(&cred), &["principal", "add", "mine", "--role", "admin"]);
    denied(&r, "authorization_missing");

    let r = svc.client(None, Some(&admin), &["principal", "remove", "web-01"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = svc.client(None, Some(&admin), &["--json", "keys", "rotate"]);
    assert_eq!(r.code, 0, "{r:?}");
    let kid = serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["kid"].as_str().unwrap().to_owned();

    let log = svc.audit();
    let named: Vec<(&str, &str)> =
        log.iter().map(|e| (e["event"].as_str().unwrap(), e["principal"].as_str().unwrap_or("-"))).collect();
    assert_eq!(
        named,
        vec![
            ("principal.add", "-"),
            ("principal.add", "admin"),
            ("principal.remove", "admin"),
            ("keys.rotate", "admin")
        ],
        "init's first admin, then each change by the admin, and nothing for the refusals"
    );
    assert_eq!(log[1]["diagnostics"]["tags"], serde_json::json!(["role=web", "dc=1"]));
    assert_eq!(log[3]["diagnostics"]["kid"], kid.as_str());
    let r = svc.client(None, Some(&admin), &["audit", "verify"]);
    assert_eq!(r.code, 0, "the new entries verify like any other: {r:?}");
}

/// Finding 12: a revoked host gets no token and cannot re-enroll; `hosts unrevoke` lets it back in, and the
/// tokens it was issued before stay revoked at exec and in its lineage.
#[test]
fn unrevoke_lets_a_host_back_in_but_not_its_earlier_tokens() {
    let fx = Fx::new(&["env=test"], &[("web", "env=test", "deploy/*")]);
    let (r, old) = fx.request("old", "deploy/*");
    assert_eq!(r.code, 0, "{r:?}");

    let r = fx.admin(&["revoke", "host", &fx.host, "--reason", "suspected compromise"]);
    assert_eq!(r.code, 0, "{r:?}");
    denied(&fx.request("while-revoked", "deploy/*").0, "revoked");
    let r = fx.host_run(&["enroll"]);
    denied(&r, "revoked");
    assert!(!r.stderr.contains("nothing changed") && r.stderr.contains("hosts unrevoke"), "{r:?}");
    assert_eq!(fx.show()["revoked"], true);

    denied(&fx.host_run(&["hosts", "unrevoke", &fx.host, "--reason", "mine"]), "authorization_missing");
    let r = fx.admin(&["--json", "hosts", "unrevoke", &fx.host, "--reason", "false positive"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lift: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((&lift["kind"], &lift["lifts"]), (&"unrevoke".into(), &0.into()), "{lift}");
    let r = fx.admin(&["hosts", "unrevoke", &fx.host, "--reason", "twice"]);
    assert_eq!(r.code, 1, "nothing left to lift: {r:?}");
    let shown = fx.show();
    assert_eq!((&shown["revoked"], &shown["lifted"]["reason"]), (&false.into(), &"false positive".into()));

    let (r, new) = fx.request("new", "deploy/*");
    assert_eq!(r.code, 0, "issued again after the lift: {r:?}");
    let (r, ran) = fx.exec(&new, "new");
    assert_eq!((r.code, ran), (7, true), "{r:?}");
    let (r, ran) = fx.exec(&old, "old");
    assert_eq!((r.code, ran), (125, false), "the earlier token stays revoked: {r:?}");
    assert!(r.stderr.contains("revoked"), "{r:?}");
    let cti = fx.claims(&old)["cti"].as_str().unwrap().to_owned();
    let r = fx.admin(&["--json", "lineage", &cti]);
    assert_eq!(r.code, 0, "{r:?}");
    let lineage: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(lineage["token"]["status"], "revoked", "{lineage}");
    assert_eq!(lineage["token"]["revoked"]["reason"], "suspected compromise");

    let lifted = events(&fx.svc, "host.unrevoke");
    assert_eq!(lifted.len(), 1, "{lifted:?}");
    assert_eq!((&lifted[0]["principal"], &lifted[0]["host_id"]), (&"admin".into(), &fx.host.as_str().into()));
    let r = fx.admin(&["revoke", "list"]);
    assert!(r.stdout.contains("unrevoke") && r.stdout.contains("lifts seq 0"), "the feed records the lift: {r:?}");
    let r = fx.host_run(&["enroll"]);
    assert_eq!(r.code, 0, "re-enrolls once lifted: {r:?}");
}

/// Issue 14: `hosts remove` decommissions a host: its tokens stop at once and nothing runs, it leaves the
/// inventory, the same TPM cannot enroll or get a token until an admin lifts the revocation, and both
/// steps are audited naming the admin.
#[test]
fn a_removed_host_is_revoked_and_gone_until_an_admin_lets_it_back() {
    let fx = Fx::new(&["env=test"], &[("web", "env=test", "deploy/*")]);
    let (r, token) = fx.request("before", "deploy/*");
    assert_eq!(r.code, 0, "{r:?}");

    denied(&fx.host_run(&["hosts", "remove", &fx.host, "--reason", "mine"]), "authorization_missing");
    let r = fx.admin(&["hosts", "remove", &fx.host, "--reason", ""]);
    assert_ne!(r.code, 0, "a reason is required: {r:?}");
    let r = fx.admin(&["hosts", "remove", &fx.host, "--reason", "decommissioned"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("hosts unrevoke"), "says how to let it back: {r:?}");

    let r = fx.admin(&["--json", "hosts", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains(&fx.host), "gone from the inventory: {r:?}");
    let r = fx.admin(&["hosts", "show", &fx.host]);
    assert_ne!(r.code, 0, "{r:?}");
    let (r, ran) = fx.exec(&token, "after-remove");
    assert_eq!((r.code, ran), (125, false), "its token stops at once and nothing runs: {r:?}");
    assert!(r.stderr.contains("revoked"), "{r:?}");
    let (r, file) = fx.request("after-remove", "deploy/*");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(!file.exists(), "nothing issued");
    denied(&fx.host_run(&["enroll"]), "revoked");
    let r = fx.admin(&["--json", "hosts", "list"]);
    assert!(!r.stdout.contains(&fx.host), "a refused enrollment adds nothing: {r:?}");
    let r = fx.admin(&["hosts", "remove", &fx.host, "--reason", "again"]);
    assert_ne!(r.code, 0, "removed once: {r:?}");

    let removed = events(&fx.svc, "host.remove");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!((&removed[0]["principal"], &removed[0]["host_id"]), (&"admin".into(), &fx.host.as_str().into()));
    assert_eq!(events(&fx.svc, "revoke.host").len(), 1);

    // The TPM comes back (reimaged): the admin lifts the revocation, and it enrolls as a new host.
    let r = fx.admin(&["hosts", "unrevoke", &fx.host, "--reason", "reimaged"]);
    assert_eq!(r.code, 0, "a removed host's revocation can be lifted: {r:?}");
    let r = fx.host_run(&["enroll"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fx.show()["revoked"], false);
    let (r, _) = fx.request("back", "deploy/*");
    assert_eq!(r.code, 0, "{r:?}");
    let (r, ran) = fx.exec(&token, "old-again");
    assert_eq!((r.code, ran), (125, false), "the token from before stays revoked: {r:?}");
}
