//! Issue "Governed execution, revocation, lineage and a tamper-evident audit log" end to end: `runtrust
//! exec` runs an allowed command and refuses (exit 125, command never started) on every denial; revocation
//! cascades; delegation; lineage; `audit verify` on the live log and on tampered exports; a kill -9 crash.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runtrust::api::{ChallengeResponse, TokenResponse};
use runtrust::client::{Client, ClientError, ClientOptions};
use runtrust::token::{decode_unverified, Claims, IssuerKey, SigningAlg};
use runtrust::tpm::{KeyAlg, TpmOptions, TssTpm};
use swtpm_tests::{Run, Service, SwTpm};

/// An enrolled host: its TPM and its attester credential.
struct Host {
    tpm: SwTpm,
    cred: PathBuf,
    id: String,
}

/// A service, host A enrolled with tag env=test, and a policy "web" captured from it (PCRs 0-7 and 16,
/// scope deploy/web/* for everyone) whose [token] section is `token_rules`.
struct Fx {
    svc: Service,
    a: Host,
    dir: tempfile::TempDir,
}

const PCR16: &str = "golden app v1";

fn enroll(svc: &Service, tpm: SwTpm, name: &str) -> Host {
    let cred = svc.add_attester(name, &["env=test"]);
    let r = svc.client(Some(&tpm), Some(&cred), &["--json", "enroll", "--tag", "env=test"]);
    assert_eq!(r.code, 0, "enroll: {r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("enroll JSON");
    let id = v["host_id"].as_str().expect("host_id").to_owned();
    let r = svc.client(Some(&tpm), Some(&cred), &["tpm", "extend", "--pcr", "16", "--data", PCR16]);
    assert_eq!(r.code, 0, "{r:?}");
    Host { tpm, cred, id }
}

impl Fx {
    fn new(token_rules: &str) -> Self {
        Self::with_others(token_rules, 0).0
    }

    /// As `new`, with `n` more TPMs whose EK CAs the service trusts too (not enrolled).
    fn with_others(token_rules: &str, n: usize) -> (Self, Vec<SwTpm>) {
        let tpm = SwTpm::start();
        let others: Vec<SwTpm> = (0..n).map(|_| SwTpm::start()).collect();
        let anchors: Vec<PathBuf> =
            std::iter::once(&tpm).chain(&others).flat_map(|t| [t.ca_root(), t.ca_intermediate()]).collect();
        let svc = Service::start(&anchors);
        let a = enroll(&svc, tpm, "web-01");
        let dir = tempfile::tempdir().unwrap();
        let fx = Fx { svc, a, dir };
        fx.apply_policy(token_rules);
        (fx, others)
    }

    fn apply_policy(&self, token_rules: &str) {
        let policy = self.path("policy.toml");
        let r = self.run(
            &self.a,
            &["policy", "capture", "--id", "web", "--pcrs", "0-7,16", "--tag", "env=test", "--scope", "deploy/web/*"],
        );
        assert_eq!(r.code, 0, "capture: {r:?}");
        let text = r.stdout.split("[token]").next().unwrap().to_owned() + "[token]\nmax_ttl = \"10m\"\n" + token_rules;
        std::fs::write(&policy, text).unwrap();
        let r = self.admin(&["policy", "apply", policy.to_str().unwrap()]);
        assert_eq!(r.code, 0, "apply: {r:?}");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, h: &Host, args: &[&str]) -> Run {
        self.svc.client(Some(&h.tpm), Some(&h.cred), args)
    }

    fn admin(&self, args: &[&str]) -> Run {
        self.svc.client(None, Some(&self.svc.admin_credential()), args)
    }

    /// `token request` on host `h`; returns the run and the token file.
    fn request(&self, h: &Host, name: &str, scope: &str, extra: &[&str]) -> (Run, PathBuf) {
        let out = self.path(name);
        let mut args = vec!["token", "request", "--scope", scope, "--audience", "gw-1", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        (self.run(h, &args), out)
    }

    /// A token that must be issued.
    fn token(&self, h: &Host, name: &str, scope: &str, extra: &[&str]) -> PathBuf {
        let (r, out) = self.request(h, name, scope, extra);
        assert_eq!(r.code, 0, "token request: {r:?}");
        out
    }

    /// `exec` on host `h` of a command that appends to a marker file and exits 7; returns the run and the
    /// marker (which exists only if the command ran).
    fn exec(&self, h: &Host, token: &Path, scope: &str, audience: &str, marker: &str) -> (Run, PathBuf) {
        self.exec_with(h, token, scope, audience, &[], marker)
    }

    /// `exec` with `extra` options, of a command that appends to a marker file and exits 7.
    fn exec_with(
        &self,
        h: &Host,
        token: &Path,
        scope: &str,
        audience: &str,
        extra: &[&str],
        marker: &str,
    ) -> (Run, PathBuf) {
        let marker = self.path(&format!("marker-{marker}"));
        let script = format!("echo ran >> '{}'; exit 7", marker.display());
        let mut args = vec!["exec", "--token", token.to_str().unwrap(), "--scope", scope, "--audience", audience];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", &script]);
        (self.run(h, &args), marker)
    }

    fn exec_starts(&self) -> usize {
        self.svc.audit().iter().filter(|e| e["event"] == "exec.start").count()
    }

    /// Denied: exit 125, the code on stderr, and the command never started.
    fn assert_exec_denied(&self, (r, marker): (Run, PathBuf), code: &str) {
        assert_eq!(r.code, 125, "expected exit 125 ({code}): {r:?}");
        assert!(r.stderr.contains(code), "expected {code}: {r:?}");
        assert!(!marker.exists(), "the command ran although exec was denied ({code})");
    }

    /// `audit verify` (admin) passes on the log as it is.
    fn assert_audit_verifies(&self) {
        let r = self.admin(&["audit", "verify"]);
        assert_eq!(r.code, 0, "audit verify: {r:?}");
        assert!(r.stdout.contains("audit log verified"), "{r:?}");
    }

    fn cti(&self, token: &Path) -> String {
        let r = self.svc.client(None, None, &["--json", "token", "inspect", token.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["cti"].as_str().unwrap().to_owned()
    }
}

fn ran(marker: &Path) -> usize {
    std::fs::read_to_string(marker).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn exec_runs_allowed_commands_and_refuses_before_starting() {
    let fx = Fx::new("");
    let token = fx.token(&fx.a, "t1", "deploy/web/*", &[]);

    // Allowed: the command runs once and exec returns its exit status; the start and the end are reported.
    let (r, marker) = fx.exec(&fx.a, &token, "deploy/web/api", "gw-1", "allowed");
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(ran(&marker), 1);
    let audit = fx.svc.audit();
    let start = audit.iter().find(|e| e["event"] == "exec.start").expect("exec.start audited");
    assert_eq!(start["cti"].as_str(), Some(fx.cti(&token).as_str()));
    let end = audit.iter().find(|e| e["event"] == "exec.end").expect("exec.end audited");
    assert_eq!(end["diagnostics"]["exit_code"], 7, "{end}");
    assert!(end["diagnostics"]["duration_ms"].is_u64());
    assert_eq!(start["diagnostics"]["argv_sha256"].as_str().map(str::len), Some(64));
    let starts = fx.exec_starts() + 1; // + the signal test below, which runs

    // Offline checks: wrong scope, wrong audience, expired.
    fx.assert_exec_denied(fx.exec(&fx.a, &token, "deploy/db/x", "gw-1", "scope"), "scope_denied");
    fx.assert_exec_denied(fx.exec(&fx.a, &token, "deploy/web/api", "gw-2", "aud"), "audience_mismatch");
    let short = fx.token(&fx.a, "short", "deploy/web/*", &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    fx.assert_exec_denied(fx.exec(&fx.a, &short, "deploy/web/api", "gw-1", "expired"), "token_expired");

    // Runtime binding: the token presented on another TPM (its own AK, same PCR values).
    let other = SwTpm::start();
    let r = other.runtrust(&["tpm", "extend", "--pcr", "16", "--data", PCR16]);
    assert_eq!(r.code, 0, "{r:?}");
    let thief = Host { tpm: other, cred: fx.a.cred.clone(), id: String::new() };
    fx.assert_exec_denied(fx.exec(&thief, &token, "deploy/web/api", "gw-1", "thief"), "runtime_identity_mismatch");

    // A signal sent to the gateway reaches the command, and the command's status comes back.
    let (started, got) = (fx.path("sig-started"), fx.path("sig-got"));
    let script = format!(
        "trap 'echo term > \"{}\"; exit 3' TERM; touch '{}'; while :; do sleep 0.05; done",
        got.display(),
        started.display()
    );
    let mut gateway = fx
        .svc
        .command(
            Some(&fx.a.tpm),
            Some(&fx.a.cred),
            &["exec", "--token", token.to_str().unwrap(), "--scope", "deploy/web/api", "--audience", "gw-1"],
        )
        .args(["--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill").args(["-TERM", &gateway.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = gateway.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the command's exit status after its TERM trap");
    assert_eq!(std::fs::read_to_string(&got).unwrap().trim(), "term");

    // The service stopped: the online check cannot be made, so nothing runs.
    let mut fx = fx;
    fx.svc.stop();
    fx.assert_exec_denied(fx.exec(&fx.a, &token, "deploy/web/api", "gw-1", "offline"), "verifier_unavailable");
    fx.svc.restart();

    // PCR 16 extended after issuance.
    let r = fx.run(&fx.a, &["tpm", "extend", "--pcr", "16", "--data", "tampered"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (r, marker) = fx.exec(&fx.a, &token, "deploy/web/api", "gw-1", "pcr");
    assert!(r.stderr.contains("\"16\""), "diagnostics show the PCRs now: {r:?}");
    fx.assert_exec_denied((r, marker), "pcr_mismatch");

    // None of the denials reached the point of starting anything.
    assert_eq!(fx.exec_starts(), starts, "a denied exec was recorded as started");
    fx.assert_audit_verifies();
}

#[test]
fn revocation_of_token_ancestor_and_host_stops_exec_and_issuance() {
    let fx = Fx::new("max_delegation_depth = 2\n");
    let gw = fx.svc.add_principal("gw-1", "gateway");
    let _ = gw;

    // A revoked token.
    let t1 = fx.token(&fx.a, "t1", "deploy/web/*", &[]);
    let (r, m) = fx.exec(&fx.a, &t1, "deploy/web/api", "gw-1", "t1-ok");
    assert_eq!((r.code, ran(&m)), (7, 1), "{r:?}");
    let r = fx.admin(&["revoke", "token", &fx.cti(&t1), "--reason", "leaked"]);
    assert_eq!(r.code, 0, "{r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &t1, "deploy/web/api", "gw-1", "t1-revoked"), "revoked");

    // A revoked ancestor: parent → child → grandchild; revoking the parent kills both below it.
    let parent = fx.token(&fx.a, "p", "deploy/web/*", &[]);
    let child = fx.token(&fx.a, "c", "deploy/web/api/*", &["--parent", fx.path("p").to_str().unwrap()]);
    let grandchild = fx.token(&fx.a, "g", "deploy/web/api/x", &["--parent", child.to_str().unwrap()]);
    let (r, m) = fx.exec(&fx.a, &grandchild, "deploy/web/api/x", "gw-1", "g-ok");
    assert_eq!((r.code, ran(&m)), (7, 1), "{r:?}");
    let r = fx.admin(&["--json", "revoke", "token", &fx.cti(&parent), "--reason", "compromised"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rev: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rev["tokens"].as_array().map(Vec::len), Some(2), "the cascade names both descendants: {rev}");
    fx.assert_exec_denied(fx.exec(&fx.a, &child, "deploy/web/api/y", "gw-1", "c-revoked"), "revoked");
    let (r, m) = fx.exec(&fx.a, &grandchild, "deploy/web/api/x", "gw-1", "g-revoked");
    assert!(r.stderr.contains(&format!("ancestor {}", fx.cti(&parent))), "names the revoked ancestor: {r:?}");
    fx.assert_exec_denied((r, m), "revoked");
    // No delegation from a revoked parent.
    let (r, out) = fx.request(&fx.a, "c2", "deploy/web/api", &["--parent", parent.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("revoked") && !out.exists(), "{r:?}");

    // A revoked host: its live tokens stop working and nothing more is issued to it.
    let t2 = fx.token(&fx.a, "t2", "deploy/web/*", &[]);
    let r = fx.admin(&["revoke", "host", &fx.a.id, "--reason", "decommissioned"]);
    assert_eq!(r.code, 0, "{r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &t2, "deploy/web/api", "gw-1", "host-revoked"), "revoked");
    let (r, out) = fx.request(&fx.a, "t3", "deploy/web/*", &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("revoked") && !out.exists(), "{r:?}");

    // An unknown target is refused, and the refusal is audited too.
    let r = fx.admin(&["revoke", "token", &"ab".repeat(16)]);
    assert!(r.code == 1 && r.stderr.contains("no token"), "{r:?}");
    assert!(fx.svc.audit().iter().any(|e| e["event"] == "revoke.deny"));

    // The feed: signed, sequence-numbered, verified by the CLI; `since` pages it.
    let r = fx.svc.client(None, Some(&gw), &["--json", "revoke", "list"]);
    assert_eq!(r.code, 0, "{r:?}");
    let feed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let seqs: Vec<u64> = feed["revocations"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert_eq!(feed["revocations"][2]["kind"], "host");
    let r = fx.svc.client(None, Some(&gw), &["--json", "revoke", "list", "--since", "2"]);
    let feed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(feed["revocations"].as_array().map(Vec::len), Some(1), "{feed}");
    assert_eq!(feed["next"], 3);

    // Revocations survive a restart (durable before the answer).
    let mut fx = fx;
    fx.svc.kill9();
    fx.svc.restart();
    fx.assert_exec_denied(fx.exec(&fx.a, &t1, "deploy/web/api", "gw-1", "after-restart"), "revoked");
    fx.assert_audit_verifies();
}

#[test]
fn single_use_token_runs_once() {
    let fx = Fx::new("single_use = true\n");
    let token = fx.token(&fx.a, "once", "deploy/web/*", &[]);
    let (r, marker) = fx.exec(&fx.a, &token, "deploy/web/api", "gw-1", "once");
    assert_eq!(r.code, 7, "{r:?}");
    let r2 = fx.exec(&fx.a, &token, "deploy/web/api", "gw-1", "twice");
    fx.assert_exec_denied(r2, "token_replayed");
    assert_eq!(ran(&marker), 1);
    assert!(fx.svc.audit().iter().any(|e| e["event"] == "exec.deny" && e["code"] == "token_replayed"));

    // Revoking the policy: its tokens stop, and nothing more is issued under that version…
    let unused = fx.token(&fx.a, "unused", "deploy/web/*", &[]);
    let r = fx.admin(&["revoke", "policy", "web", "--reason", "superseded"]);
    assert_eq!(r.code, 0, "{r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &unused, "deploy/web/api", "gw-1", "policy-revoked"), "revoked");
    let (r, out) = fx.request(&fx.a, "after", "deploy/web/*", &[]);
    assert!(r.code == 3 && r.stderr.contains("revoked") && !out.exists(), "{r:?}");
    // …until a changed policy (a new hash) is applied.
    fx.apply_policy("single_use = true\nmax_delegation_depth = 0\n");
    fx.token(&fx.a, "again", "deploy/web/*", &[]);
    fx.assert_audit_verifies();
}

#[test]
fn delegation_lineage_and_audit_verification() {
    let fx = Fx::new("max_delegation_depth = 1\n");
    let parent = fx.token(&fx.a, "parent", "deploy/web/*", &[]);
    let p = parent.to_str().unwrap();

    // A narrower child works.
    let child = fx.token(&fx.a, "child", "deploy/web/api", &["--parent", p]);
    let (r, m) = fx.exec(&fx.a, &child, "deploy/web/api", "gw-1", "child-ok");
    assert_eq!((r.code, ran(&m)), (7, 1), "{r:?}");
    let (r, m) = fx.exec(&fx.a, &parent, "deploy/web/site", "gw-1", "parent-ok");
    assert_eq!((r.code, ran(&m)), (7, 1), "{r:?}");
    // A broader child, a child beyond the parent's expiry, and a grandchild beyond the depth are denied.
    let (r, out) = fx.request(&fx.a, "broad", "deploy/*", &["--parent", p]);
    assert!(r.code == 3 && r.stderr.contains("scope_denied") && !out.exists(), "{r:?}");
    let (r, out) = fx.request(&fx.a, "long", "deploy/web/x", &["--parent", p, "--ttl", "9m"]);
    assert!(r.code == 3 && r.stderr.contains("delegation_denied") && !out.exists(), "{r:?}");
    let (r, out) = fx.request(&fx.a, "deep", "deploy/web/api", &["--parent", child.to_str().unwrap()]);
    assert!(r.code == 3 && r.stderr.contains("delegation_denied") && !out.exists(), "{r:?}");
    // Cross-host delegation is off in this policy.
    let hex = &fx.a.id["sha256:".len()..];
    let other = format!("sha256:{}{}", if hex.starts_with('0') { '1' } else { '0' }, &hex[1..]);
    let (r, out) = fx.request(&fx.a, "x", "deploy/web/api", &["--parent", p, "--for-host", &other]);
    assert!(r.code == 3 && r.stderr.contains("delegation_denied") && !out.exists(), "{r:?}");

    // Revoking the parent kills the child.
    let r = fx.admin(&["revoke", "token", &fx.cti(&parent), "--reason", "rotate"]);
    assert_eq!(r.code, 0, "{r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &child, "deploy/web/api", "gw-1", "child-dead"), "revoked");

    // Lineage: the tree, statuses, and the executions under each token.
    let auditor = fx.svc.add_principal("auditor", "auditor");
    let r = fx.svc.client(None, Some(&auditor), &["--json", "lineage", &fx.cti(&child)]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ancestors"][0]["cti"].as_str(), Some(fx.cti(&parent).as_str()));
    assert_eq!(v["ancestors"][0]["status"], "revoked");
    assert_eq!(v["token"]["status"], "revoked");
    assert!(v["token"]["revoked"]["via"].as_str().unwrap().starts_with("ancestor "), "{v}");
    assert_eq!(v["token"]["executions"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["token"]["executions"][0]["end"]["exit_code"], 7);
    let r = fx.svc.client(None, Some(&auditor), &["lineage", &fx.cti(&parent)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&fx.cti(&child)) && r.stdout.contains("execution"), "{}", r.stdout);
    assert!(r.stdout.contains("rotate"), "the reason is shown: {}", r.stdout);

    // The audit log: prove the child's issuance, verify the whole log against a checkpoint, and keep the
    // checkpoint: after more decisions the log verifies as consistent with it.
    let r = fx.svc.client(None, Some(&auditor), &["audit", "prove", &fx.cti(&child)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("token.delegate"), "{}", r.stdout);
    let saved = fx.path("checkpoint.txt");
    let r = fx.svc.client(None, Some(&auditor), &["audit", "checkpoint", "--out", saved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    fx.token(&fx.a, "later", "deploy/web/*", &[]);
    let r = fx.svc.client(None, Some(&auditor), &["audit", "verify", "--checkpoint", saved.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("consistent with the saved checkpoint"), "{}", r.stdout);
    let events: Vec<String> =
        fx.svc.audit().iter().map(|e| e["event"].as_str().unwrap_or_default().to_owned()).collect();
    for want in ["enroll.allow", "challenge.issue", "token.issue", "token.delegate", "token.deny", "revoke.token"] {
        assert!(events.iter().any(|e| e == want), "no {want} entry in {events:?}");
    }
    for want in ["policy.apply", "exec.start", "exec.end", "exec.deny"] {
        assert!(events.iter().any(|e| e == want), "no {want} entry in {events:?}");
    }

    // Offline: an export verifies against the checkpoint; altering one byte of one entry, dropping one
    // entry, or swapping two entries each makes it fail with exit 3.
    // An export of everything is more than the saved checkpoint covers: refused, nothing passes unverified.
    let r = fx.svc.client(None, Some(&auditor), &["--json", "audit", "tail", "--all"]);
    assert_eq!(r.code, 0, "{r:?}");
    let everything = fx.path("everything.jsonl");
    std::fs::write(&everything, &r.stdout).unwrap();
    let r = fx.svc.client(
        None,
        Some(&auditor),
        &["audit", "verify", "--log", everything.to_str().unwrap(), "--checkpoint", saved.to_str().unwrap()],
    );
    assert!(r.code == 3 && r.stderr.contains("covers"), "{r:?}");
    // The export of what the checkpoint covers.
    let r = fx.svc.client(
        None,
        Some(&auditor),
        &["--json", "audit", "tail", "--all", "--checkpoint", saved.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let export = fx.path("audit.jsonl");
    std::fs::write(&export, &r.stdout).unwrap();
    let verify = |file: &Path| {
        fx.svc.client(
            None,
            Some(&auditor),
            &["audit", "verify", "--log", file.to_str().unwrap(), "--checkpoint", saved.to_str().unwrap()],
        )
    };
    let ok = verify(&export);
    assert_eq!(ok.code, 0, "{ok:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.len() > 10);
    let tampered = |name: &str, lines: Vec<String>| {
        let f = fx.path(name);
        std::fs::write(&f, lines.join("\n") + "\n").unwrap();
        let r = verify(&f);
        assert_eq!(r.code, 3, "{name} must fail: {r:?}");
        assert!(r.stderr.contains("signature_invalid"), "{r:?}");
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // One byte of one entry: a digit of entry 5's time.
    let mut altered = owned.clone();
    let at = altered[5].find("\"time\":").unwrap() + 8;
    let mut bytes = altered[5].clone().into_bytes();
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    altered[5] = String::from_utf8(bytes).unwrap();
    tampered("altered.jsonl", altered);
    let mut dropped = owned.clone();
    dropped.remove(3);
    tampered("dropped.jsonl", dropped);
    let mut swapped = owned.clone();
    swapped.swap(2, 3);
    tampered("swapped.jsonl", swapped);
    let mut last = owned.clone();
    last.pop();
    tampered("last-dropped.jsonl", last);
    let f = fx.path("not-utf8.jsonl");
    let mut raw = std::fs::read(&export).unwrap();
    let at = raw.iter().position(|b| *b == b'e').unwrap();
    raw[at] = 0xff;
    std::fs::write(&f, raw).unwrap();
    let r = verify(&f);
    assert_eq!(r.code, 3, "a byte that breaks UTF-8 is an alteration too: {r:?}");
    // The intact export still verifies (nothing above touched it).
    assert_eq!(verify(&export).code, 0);
}

#[test]
fn cross_host_delegation_binds_the_child_to_the_other_host() {
    let (fx, mut others) = Fx::with_others("max_delegation_depth = 1\ncross_host_delegation = true\n", 2);
    let b = enroll(&fx.svc, others.remove(0), "web-02");
    // B needs a PCR state its policy accepted: one token of its own.
    fx.token(&b, "b-own", "deploy/web/*", &[]);
    let parent = fx.token(&fx.a, "parent", "deploy/web/*", &[]);
    let child =
        fx.token(&fx.a, "for-b", "deploy/web/api", &["--parent", parent.to_str().unwrap(), "--for-host", &b.id]);
    let r = fx.svc.client(None, None, &["--json", "token", "inspect", child.to_str().unwrap()]);
    let claims: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(claims["sub"].as_str(), Some(b.id.as_str()), "{claims}");
    // It runs on B, not on A (whose AK is not the child's cnf).
    let (r, m) = fx.exec(&b, &child, "deploy/web/api", "gw-1", "on-b");
    assert_eq!((r.code, ran(&m)), (7, 1), "{r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &child, "deploy/web/api", "gw-1", "on-a"), "runtime_identity_mismatch");
    // A host that has never been accepted by a policy cannot receive a delegation.
    let c = enroll(&fx.svc, others.remove(0), "web-03");
    let (r, out) =
        fx.request(&fx.a, "for-c", "deploy/web/api", &["--parent", parent.to_str().unwrap(), "--for-host", &c.id]);
    assert!(r.code == 3 && r.stderr.contains("delegation_denied") && !out.exists(), "{r:?}");
    fx.assert_audit_verifies();
}

/// The token at `path` with its claims changed by `edit`, signed with the service's own issuer key (what a
/// leaked key allows); written to `name`.
fn re_signed(fx: &Fx, path: &Path, name: &str, edit: impl FnOnce(&mut Claims)) -> PathBuf {
    let pkcs8 = std::fs::read(fx.svc.data_dir().join("keys/issuer-1.pk8")).unwrap();
    let key = IssuerKey::from_pkcs8(SigningAlg::EdDsa, &pkcs8).unwrap();
    let (_, mut claims) = decode_unverified(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut claims);
    let out = fx.path(name);
    std::fs::write(&out, key.sign(&claims, &ring::rand::SystemRandom::new()).unwrap()).unwrap();
    out
}

/// Issue 11 findings 6 and 11 across the process boundary: a token re-signed with the real issuer key under an
/// issued cti runs nothing and delegates nothing; a token naming another issuer is refused by `token verify`
/// and `exec`; `exec` without an audience is a usage error that exits 125.
#[test]
fn re_signed_tokens_other_issuers_and_missing_audiences_are_refused() {
    let fx = Fx::new("");
    let token = fx.token(&fx.a, "t", "deploy/web/*", &[]);
    let t = token.to_str().unwrap();

    // Same cti, scope widened, or exp a year later: valid offline (real key, this TPM, these PCRs), and
    // refused online, because the service keeps the SHA-256 of the bytes it issued.
    let wider = re_signed(&fx, &token, "wider", |c| c.scope = "deploy/*".into());
    let r = fx.svc.client(None, None, &["token", "verify", wider.to_str().unwrap(), "--scope", "deploy/db/x"]);
    assert_eq!(r.code, 0, "offline, a leaked key makes a valid token: {r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &wider, "deploy/db/migrate", "gw-1", "wider"), "signature_invalid");
    let later = re_signed(&fx, &token, "later", |c| c.exp += 365 * 86_400);
    fx.assert_exec_denied(fx.exec(&fx.a, &later, "deploy/web/api", "gw-1", "later"), "signature_invalid");
    // Nor does it delegate, not even what its parent could have (the policy grants deploy/web/* only).
    let (r, out) = fx.request(&fx.a, "child", "deploy/web/api", &["--parent", wider.to_str().unwrap()]);
    assert!(r.code == 3 && r.stderr.contains("signature_invalid") && !out.exists(), "{r:?}");
    assert_eq!(fx.exec_starts(), 0, "no execution under a scope or time the record never had");
    // The token as issued runs.
    let (r, m) = fx.exec(&fx.a, &token, "deploy/web/api", "gw-1", "issued");
    assert_eq!((r.code, ran(&m)), (7, 1), "{r:?}");

    // iss "evil", signed with the real key.
    let evil = re_signed(&fx, &token, "evil", |c| c.iss = "evil".into());
    let r = fx.svc.client(None, None, &["token", "verify", evil.to_str().unwrap()]);
    assert!(r.code == 3 && r.stderr.contains("signature_invalid") && r.stderr.contains("\"evil\""), "{r:?}");
    fx.assert_exec_denied(fx.exec(&fx.a, &evil, "deploy/web/api", "gw-1", "evil"), "signature_invalid");
    // Keys from a file name no issuer: --issuer is needed, and checked.
    let keys = fx.path("keys.cose");
    assert_eq!(fx.svc.client(None, None, &["keys", "export", "--out", keys.to_str().unwrap()]).code, 0);
    let with_file = |file: &Path, issuer: &[&str]| {
        let mut args = vec!["token", "verify", file.to_str().unwrap(), "--keys", keys.to_str().unwrap()];
        args.extend_from_slice(issuer);
        fx.svc.command(None, None, &args).env_remove("RUNTRUST_ISSUER").output().unwrap()
    };
    let out = with_file(&token, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--issuer"), "{out:?}");
    assert_eq!(with_file(&token, &["--issuer", "runtrust"]).status.code(), Some(0));
    assert_eq!(with_file(&evil, &["--issuer", "runtrust"]).status.code(), Some(3));

    // exec without --audience or RUNTRUST_AUDIENCE: exit 125, nothing runs; exec --help still exits 0.
    let marker = fx.path("marker-no-audience");
    let script = format!("echo ran >> '{}'", marker.display());
    let out = fx
        .svc
        .command(Some(&fx.a.tpm), Some(&fx.a.cred), &["exec", "--token", t, "--scope", "deploy/web/api"])
        .args(["--", "sh", "-c", &script])
        .env_remove("RUNTRUST_AUDIENCE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--audience"), "{out:?}");
    assert!(!marker.exists(), "exec ran a command without an audience");
    let out = fx.svc.command(None, None, &["exec", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "a usage error of exec: {out:?}");
    let out = fx.svc.command(None, None, &["exec", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(fx.exec_starts(), 1);
    fx.assert_audit_verifies();
}

fn client(svc: &Service, cred: &Path) -> Client {
    Client::new(&ClientOptions {
        server: Some(svc.url().to_owned()),
        server_ca: Some(svc.ca()),
        credential: Some(cred.to_path_buf()),
    })
    .unwrap()
}

#[test]
fn kill9_during_token_requests_loses_nothing() {
    let mut fx = Fx::new("");
    // Nonces handed out before the crash, never used.
    let c = client(&fx.svc, &fx.a.cred);
    let early: Vec<ChallengeResponse> =
        (0..3).map(|_| c.post("/v1/challenge", &serde_json::json!({})).unwrap()).collect();

    // A stream of token requests (the `runtrust token request` CLI, one after another) while the service
    // is killed once at least 5 have been answered.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (url, ca, cred) = (fx.svc.url().to_owned(), fx.svc.ca(), fx.a.cred.clone());
    let (tcti, state) = (fx.a.tpm.tcti(), fx.a.tpm.host_state_dir());
    let outdir = fx.path("stream");
    std::fs::create_dir_all(&outdir).unwrap();
    let stream = {
        let (stop, answered) = (stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let out = outdir.join(format!("t{n}"));
                let r = std::process::Command::new(swtpm_tests::runtrust_bin())
                    .args(["--json", "token", "request", "--scope", "deploy/web/api", "--audience", "gw-1", "--out"])
                    .arg(&out)
                    .env("RUNTRUST_SERVER", &url)
                    .env("RUNTRUST_SERVER_CA", &ca)
                    .env("RUNTRUST_CREDENTIAL_FILE", &cred)
                    .env("RUNTRUST_TCTI", &tcti)
                    .env("RUNTRUST_STATE_DIR", &state)
                    .output()
                    .unwrap();
                if r.status.success() {
                    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
                    answered.lock().unwrap().push(v["cti"].as_str().unwrap().to_owned());
                }
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while answered.lock().unwrap().len() < 5 {
        assert!(std::time::Instant::now() < deadline, "the stream made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    fx.svc.kill9();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    stream.join().unwrap();
    fx.svc.restart();

    // The log verifies, and every token the client received has its entry (proven by inclusion).
    let r = fx.admin(&["audit", "verify"]);
    assert_eq!(r.code, 0, "{r:?}");
    let received = answered.lock().unwrap().clone();
    assert!(received.len() >= 5);
    for cti in &received {
        let r = fx.admin(&["audit", "prove", cti]);
        assert_eq!(r.code, 0, "token {cti} has no provable audit entry: {r:?}");
    }

    // No nonce issued before the crash can be used after it.
    let c = client(&fx.svc, &fx.a.cred);
    let mut tpm = TssTpm::open(TpmOptions {
        tcti: fx.a.tpm.tcti(),
        state_dir: fx.a.tpm.host_state_dir(),
        ek_alg: KeyAlg::Rsa,
        ak_alg: KeyAlg::Rsa,
    })
    .unwrap();
    for ch in early {
        let req = common::request_for(ch, &mut tpm);
        match c.post::<_, TokenResponse>("/v1/tokens", &req) {
            Err(ClientError::Denied(p)) => assert_eq!(p.code, "nonce_unknown", "{p:?}"),
            other => panic!("a pre-crash nonce was accepted after the restart: {other:?}"),
        }
    }
}

/// DESIGN §15 (issue 13): with `--offline-grace D`, a gateway keeps the signed revocation feed while the
/// service answers; with the service down it runs a token only on a feed younger than D that revokes
/// nothing of it, never a single-use token, and without a grace it refuses as before. Nothing offline is
/// recorded at the service.
#[test]
fn offline_grace_runs_on_a_fresh_kept_feed_and_refuses_stale_revoked_and_single_use() {
    let mut fx = Fx::new("");
    let ok = fx.token(&fx.a, "ok", "deploy/web/*", &[]);
    let revoked = fx.token(&fx.a, "revoked", "deploy/web/*", &[]);
    let r = fx.admin(&["revoke", "token", &fx.cti(&revoked), "--reason", "offline grace test"]);
    assert_eq!(r.code, 0, "{r:?}");
    fx.apply_policy("single_use = true\n");
    let once = fx.token(&fx.a, "once", "deploy/web/*", &[]);
    let grace = ["--offline-grace", "10m"];

    // Online, with the grace: it runs, recorded, and the feed (with the revocation) is kept on the host.
    let (r, marker) = fx.exec_with(&fx.a, &ok, "deploy/web/api", "gw-1", &grace, "online");
    assert_eq!((r.code, ran(&marker)), (7, 1), "{r:?}");
    assert_eq!(fx.exec_starts(), 1);

    fx.svc.stop();
    // Without a grace: refused as before.
    let denied = fx.exec_with(&fx.a, &ok, "deploy/web/api", "gw-1", &[], "no-grace");
    fx.assert_exec_denied(denied, "verifier_unavailable");
    // With it: a fresh feed that revokes nothing of the token lets it run, with a warning.
    let (r, marker) = fx.exec_with(&fx.a, &ok, "deploy/web/api", "gw-1", &grace, "offline");
    assert_eq!((r.code, ran(&marker)), (7, 1), "{r:?}");
    assert!(r.stderr.contains("offline grace") && r.stderr.contains("not recorded"), "{r:?}");
    // A token the kept feed revokes, a single-use token, and a feed older than the grace: refused.
    let denied = fx.exec_with(&fx.a, &revoked, "deploy/web/api", "gw-1", &grace, "offline-revoked");
    fx.assert_exec_denied(denied, "revoked");
    let denied = fx.exec_with(&fx.a, &once, "deploy/web/api", "gw-1", &grace, "offline-once");
    fx.assert_exec_denied(denied, "verifier_unavailable");
    std::thread::sleep(Duration::from_secs(2));
    let denied = fx.exec_with(&fx.a, &ok, "deploy/web/api", "gw-1", &["--offline-grace", "1s"], "stale");
    fx.assert_exec_denied(denied, "verifier_unavailable");

    // Back online: the single-use token is still unspent, and only the online run was recorded.
    fx.svc.restart();
    assert_eq!(fx.exec_starts(), 1, "offline runs are not recorded at the service");
    let (r, marker) = fx.exec_with(&fx.a, &once, "deploy/web/api", "gw-1", &grace, "once-online");
    assert_eq!((r.code, ran(&marker)), (7, 1), "{r:?}");
    fx.assert_audit_verifies();
}
