//! Issue "Attestation-gated execution tokens" end to end: a token for a host whose quote matches policy,
//! and every denial — with no token issued and the denial in the audit log.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use runtrust::api::TokenResponse;
use runtrust::client::{Client, ClientError, ClientOptions};
use runtrust::tpm::{KeyAlg, TpmOptions, TssTpm};
use swtpm_tests::{Run, Service, SwTpm};

/// A service with one enrolled host (tag env=test) and a policy captured from it.
struct Fixture {
    tpm: SwTpm,
    svc: Service,
    cred: PathBuf,
    dir: tempfile::TempDir,
}

fn anchors(t: &SwTpm) -> Vec<PathBuf> {
    vec![t.ca_root(), t.ca_intermediate()]
}

impl Fixture {
    fn new() -> Self {
        Self::with_config(|_| {})
    }

    fn with_config(edit: impl FnOnce(&mut String)) -> Self {
        let tpm = SwTpm::start();
        let svc = Service::start_configured(&anchors(&tpm), edit);
        let cred = svc.add_attester("web-01", &["env=test"]);
        let r = svc.client(Some(&tpm), Some(&cred), &["enroll", "--tag", "env=test"]);
        assert_eq!(r.code, 0, "enroll: {r:?}");
        let r = svc.client(Some(&tpm), Some(&cred), &["tpm", "extend", "--pcr", "16", "--data", "golden app v1"]);
        assert_eq!(r.code, 0, "{r:?}");
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.toml");
        let r = svc.client(
            Some(&tpm),
            Some(&cred),
            &[
                "policy",
                "capture",
                "--id",
                "web",
                "--pcrs",
                "0-7,16",
                "--tag",
                "env=test",
                "--scope",
                "deploy/web/*",
                "--out",
                policy.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "capture: {r:?}");
        let text = std::fs::read_to_string(&policy).unwrap().replace("max_ttl = \"15m\"", "max_ttl = \"10m\"");
        std::fs::write(&policy, text).unwrap();
        let r = svc.client(None, Some(&svc.admin_credential()), &["policy", "apply", policy.to_str().unwrap()]);
        assert_eq!(r.code, 0, "apply: {r:?}");
        Fixture { tpm, svc, cred, dir }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn request(&self, out: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["token", "request", "--audience", "gw-1", "--out", out.to_str().unwrap()];
        if !extra.contains(&"--scope") {
            args.extend(["--scope", "deploy/web/api"]);
        }
        args.extend_from_slice(extra);
        self.svc.client(Some(&self.tpm), Some(&self.cred), &args)
    }

    fn issued(&self) -> usize {
        self.svc.audit().iter().filter(|e| e["event"] == "token.issue").count()
    }

    /// The denial is refused with `code`, nothing was written, nothing was issued, and the audit log says so.
    fn assert_denied(&self, r: &Run, out: &Path, code: &str, issued_before: usize) {
        assert_eq!(r.code, 3, "{r:?}");
        assert!(r.stderr.contains(code), "expected {code}: {r:?}");
        assert!(!out.exists(), "a token file was written for a denial");
        let audit = self.svc.audit();
        assert_eq!(audit.iter().filter(|e| e["event"] == "token.issue").count(), issued_before, "a token was issued");
        assert!(audit.iter().any(|e| e["code"] == code), "no {code} in the audit log");
    }

    fn client(&self) -> Client {
        Client::new(&ClientOptions {
            server: Some(self.svc.url().to_owned()),
            server_ca: Some(self.svc.ca()),
            credential: Some(self.cred.clone()),
        })
        .unwrap()
    }

    fn tss(&self) -> TssTpm {
        TssTpm::open(TpmOptions {
            tcti: self.tpm.tcti(),
            state_dir: self.tpm.host_state_dir(),
            ek_alg: KeyAlg::Rsa,
            ak_alg: KeyAlg::Rsa,
        })
        .unwrap()
    }
}

fn denied<T: std::fmt::Debug>(r: Result<T, ClientError>) -> runtrust::api::Problem {
    match r {
        Err(ClientError::Denied(p)) => *p,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn token_for_a_matching_host_verifies_offline() {
    let f = Fixture::new();
    let out = f.out("t.cose");
    let r = f.request(&out, &["--ttl", "5m"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(out.exists());

    let r = f.svc.client(None, None, &["--json", "token", "inspect", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let claims: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(claims["scope"], "deploy/web/api");
    assert_eq!(claims["aud"], "gw-1");
    assert_eq!(claims["initiator"], "web-01");
    assert_eq!(claims["policy_id"], "web");
    assert!(claims["sub"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(claims["pcr_selection"], "sha256:0,1,2,3,4,5,6,7,16");

    // The policy hash in the token is the file's SHA-256.
    let policy = f.out("policy.toml");
    let r = f.svc.client(None, None, &["policy", "hash", policy.to_str().unwrap()]);
    assert_eq!(claims["policy_hash"], r.stdout.trim());

    let t = out.to_str().unwrap();
    let r = f.svc.client(None, None, &["token", "verify", t, "--audience", "gw-1", "--scope", "deploy/web/api"]);
    assert_eq!(r.code, 0, "{r:?}");

    // Exported keys verify it with the service gone.
    let keys = f.out("keys.cose");
    let r = f.svc.client(None, None, &["keys", "export", "--out", keys.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let pem = f.out("keys.pem");
    let r = f.svc.client(None, None, &["keys", "export", "--format", "pem", "--out", pem.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let Fixture { mut svc, .. } = f;
    svc.kill9();
    for k in [&keys, &pem] {
        // Keys from a file name no issuer: it is given (issue 11 finding 11).
        let args = ["token", "verify", t, "--keys", k.to_str().unwrap(), "--audience", "gw-1", "--issuer", "runtrust"];
        let r = svc.client(None, None, &args);
        assert_eq!(r.code, 0, "{r:?}");
    }
}

#[test]
fn cli_denials_issue_nothing_and_are_audited() {
    let f = Fixture::new();
    let n = f.issued();

    // no credential: refused, but (issue 11, finding 3) counted in /metrics, not written to the audit log
    let out = f.out("none.cose");
    let r = f.svc.client(
        Some(&f.tpm),
        None,
        &["token", "request", "--scope", "deploy/web/api", "--audience", "gw-1", "--out", out.to_str().unwrap()],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("authorization_missing"), "{r:?}");
    assert!(!out.exists(), "a token file was written for a denial");
    let audit = f.svc.audit();
    assert_eq!(audit.iter().filter(|e| e["event"] == "token.issue").count(), n, "a token was issued");
    assert!(!audit.iter().any(|e| e["code"] == "authorization_missing"), "a stranger's refusal was written");

    // a scope the policy does not grant
    let out = f.out("scope.cose");
    f.assert_denied(&f.request(&out, &["--scope", "deploy/db/x"]), &out, "scope_denied", n);

    // ttl over the policy's max
    let out = f.out("ttl.cose");
    f.assert_denied(&f.request(&out, &["--ttl", "1h"]), &out, "policy_mismatch", n);

    // a host that is not enrolled
    let stranger = f.svc.add_principal("stranger", "attester");
    let out = f.out("stranger.cose");
    let r = f.svc.client(
        Some(&f.tpm),
        Some(&stranger),
        &["token", "request", "--scope", "deploy/web/api", "--audience", "gw-1", "--out", out.to_str().unwrap()],
    );
    f.assert_denied(&r, &out, "host_unknown", n);

    // a quote from a different TPM than the enrolled one
    let other = SwTpm::start();
    let out = f.out("other.cose");
    let r = f.svc.client(
        Some(&other),
        Some(&f.cred),
        &["token", "request", "--scope", "deploy/web/api", "--audience", "gw-1", "--out", out.to_str().unwrap()],
    );
    f.assert_denied(&r, &out, "runtime_identity_mismatch", n);

    // still fine before the platform changes
    let ok = f.out("ok.cose");
    assert_eq!(f.request(&ok, &[]).code, 0);
    let n = n + 1;

    // PCR 16 extended after capture: pcr_mismatch with index, bank, acceptable and actual values
    let r = f.svc.client(Some(&f.tpm), Some(&f.cred), &["tpm", "extend", "--pcr", "16", "--data", "tampered"]);
    assert_eq!(r.code, 0);
    let out = f.out("pcr.cose");
    let r = f.request(&out, &[]);
    f.assert_denied(&r, &out, "pcr_mismatch", n);
    for field in ["\"index\": 16", "\"bank\": \"sha256\"", "\"acceptable\"", "\"actual\""] {
        assert!(r.stderr.contains(field), "diagnostics lack {field}: {}", r.stderr);
    }
}

#[test]
fn evidence_denials_issue_nothing_and_are_audited() {
    let f = Fixture::new();
    let n = f.issued();
    let c = f.client();
    let mut t = f.tss();

    // bad quote signature
    let mut req = common::raw_request(&c, &mut t);
    let last = req.quote.signature.len() - 1;
    req.quote.signature[last] ^= 1;
    let p = denied(c.post::<_, TokenResponse>("/v1/tokens", &req));
    assert_eq!(p.code, "signature_invalid", "{p:?}");

    // a nonce used twice: the first use succeeds, the second is a replay
    let req = common::raw_request(&c, &mut t);
    let issued: TokenResponse = c.post("/v1/tokens", &req).unwrap();
    assert!(!issued.token.is_empty());
    let p = denied(c.post::<_, TokenResponse>("/v1/tokens", &req));
    assert_eq!((p.code.as_str(), p.status), ("nonce_replayed", 409), "{p:?}");

    // a nonce that was never issued
    let mut req = common::raw_request(&c, &mut t);
    req.nonce = "ab".repeat(32);
    let p = denied(c.post::<_, TokenResponse>("/v1/tokens", &req));
    assert_eq!(p.code, "nonce_unknown", "{p:?}");

    let audit = f.svc.audit();
    assert_eq!(audit.iter().filter(|e| e["event"] == "token.issue").count(), n + 1, "only the first use issued");
    for code in ["signature_invalid", "nonce_replayed", "nonce_unknown"] {
        assert!(audit.iter().any(|e| e["event"] == "token.deny" && e["code"] == code), "{code} not audited");
    }
}

#[test]
fn expired_nonce_is_refused() {
    let f = Fixture::with_config(|cfg| *cfg = cfg.replace("challenge_ttl_secs = 60", "challenge_ttl_secs = 1"));
    let c = f.client();
    let mut t = f.tss();
    let req = common::raw_request(&c, &mut t);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let p = denied(c.post::<_, TokenResponse>("/v1/tokens", &req));
    assert_eq!(p.code, "nonce_expired", "{p:?}");
    assert!(f.svc.audit().iter().any(|e| e["code"] == "nonce_expired"));
    assert_eq!(f.issued(), 0);
}

#[test]
fn token_verify_rejects_expired_wrong_audience_and_forged_tokens() {
    let f = Fixture::new();
    // The audience, scope and signature checks on a token that stays valid however slow the machine is; the
    // expiry on a 1 s token of its own.
    let out = f.out("long.cose");
    assert_eq!(f.request(&out, &["--ttl", "10m"]).code, 0);
    let short = f.out("short.cose");
    assert_eq!(f.request(&short, &["--ttl", "1s"]).code, 0);
    let t = out.to_str().unwrap();
    let r = f.svc.client(None, None, &["token", "verify", t, "--audience", "gw-2"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("audience_mismatch"), "{r:?}");
    let r = f.svc.client(None, None, &["token", "verify", t, "--scope", "deploy/db"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("scope_denied"), "{r:?}");

    let mut forged = std::fs::read(&out).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let fp = f.out("forged.cose");
    std::fs::write(&fp, forged).unwrap();
    let r = f.svc.client(None, None, &["token", "verify", fp.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("signature_invalid"), "{r:?}");

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = f.svc.client(None, None, &["--json", "token", "verify", short.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("token_expired"), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["code"], "token_expired");
}

#[test]
fn key_rotation_keeps_old_tokens_valid() {
    let f = Fixture::new();
    let old = f.out("old.cose");
    assert_eq!(f.request(&old, &[]).code, 0);
    // Cache the key set in the state dir, then rotate.
    let state = f.out("gw-state");
    let verify = |p: &Path| {
        f.svc.client(None, None, &["--state-dir", state.to_str().unwrap(), "token", "verify", p.to_str().unwrap()])
    };
    assert_eq!(verify(&old).code, 0);
    let r = f.svc.client(None, Some(&f.svc.admin_credential()), &["keys", "rotate", "--alg", "es256"]);
    assert_eq!(r.code, 0, "{r:?}");
    let new = f.out("new.cose");
    assert_eq!(f.request(&new, &[]).code, 0);
    let kid = |p: &Path| {
        let r = f.svc.client(None, None, &["--json", "token", "inspect", p.to_str().unwrap()]);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&old), kid(&new), "new tokens use the new key");
    // The cached set lacks the new kid: verify refreshes it once.
    assert_eq!(verify(&new).code, 0);
    assert_eq!(verify(&old).code, 0, "old tokens verify until they expire");
    let r = f.svc.client(None, Some(&f.svc.admin_credential()), &["keys", "rotate"]);
    assert_eq!(r.code, 0);
    // After a restart the service still knows all three keys.
    let Fixture { mut svc, .. } = f;
    svc.kill9();
    svc.restart();
    let keys = state.join("fresh.cose");
    assert_eq!(svc.client(None, None, &["keys", "export", "--out", keys.to_str().unwrap()]).code, 0);
    let args = ["token", "verify", old.to_str().unwrap(), "--keys", keys.to_str().unwrap(), "--issuer", "runtrust"];
    let r = svc.client(None, None, &args);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn signed_policies_when_the_service_requires_them() {
    let tpm = SwTpm::start();
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("authority");
    // Key generation and signing are offline operations of the policy authority.
    let offline = |args: &[&str]| {
        let out = std::process::Command::new(swtpm_tests::runtrust_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    offline(&["policy", "keygen", "--out", prefix.to_str().unwrap()]);
    let public = prefix.with_extension("pem");
    let svc = Service::start_configured(&anchors(&tpm), |cfg| {
        let before = cfg.clone();
        *cfg = cfg
            .replace("require_signed = false", "require_signed = true")
            .replace("authority_keys = []", &format!("authority_keys = [{:?}]", public.display().to_string()));
        assert_ne!(*cfg, before);
    });
    let admin = svc.admin_credential();
    let policy = keys.path().join("p.toml");
    std::fs::write(&policy, format!(
        "id = \"signed\"\n[hosts]\ntags = [\"env=test\"]\n[pcrs.sha256]\n0 = [\"{}\"]\n[[grant]]\nprincipals = [\"*\"]\nscopes = [\"deploy/*\"]\n",
        "00".repeat(32)
    ))
    .unwrap();
    let p = policy.to_str().unwrap();

    let r = svc.client(None, Some(&admin), &["policy", "apply", p]);
    assert_eq!(r.code, 3, "unsigned: {r:?}");
    assert!(r.stderr.contains("policy_mismatch") && r.stderr.contains("unsigned"), "{r:?}");

    let sig = keys.path().join("p.sig");
    offline(&[
        "policy",
        "sign",
        p,
        "--key",
        prefix.with_extension("pk8").to_str().unwrap(),
        "--out",
        sig.to_str().unwrap(),
    ]);
    let r = svc.client(None, Some(&admin), &["--json", "policy", "apply", p, "--signature", sig.to_str().unwrap()]);
    assert_eq!(r.code, 0, "signed: {r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["signed_by"].is_string(), "{v}");

    // One changed byte and the old signature no longer covers it.
    let text = std::fs::read_to_string(&policy).unwrap().replace("deploy/*", "deploy/x");
    std::fs::write(&policy, text).unwrap();
    let r = svc.client(None, Some(&admin), &["policy", "apply", p, "--signature", sig.to_str().unwrap()]);
    assert_eq!(r.code, 3, "tampered: {r:?}");
    assert!(r.stderr.contains("signature_invalid"), "{r:?}");
    let r = svc.client(None, Some(&admin), &["--json", "policy", "list"]);
    let list: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "only the signed version was applied");
}
