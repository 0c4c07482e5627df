//! docs/design.md §15 end to end: three `runtrust serve` replicas on one PostgreSQL database keep the
//! guarantees of one process, `kill -9` of one of them during a token stream loses nothing it answered, and
//! `runtrust store migrate` moves an embedded store there with the same audit root. Needs PostgreSQL (scripts/test.sh starts a throwaway cluster); without it these tests fail.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use runtrust::api::{TokenRequest, TokenResponse};
use runtrust::client::{Client, ClientError, ClientOptions};
use runtrust::tpm::{KeyAlg, TpmOptions, TssTpm};
use swtpm_tests::{fresh_database, Run, Service, SwTpm};

const PCR16: &str = "golden app v1";

fn anchors(t: &SwTpm) -> Vec<PathBuf> {
    vec![t.ca_root(), t.ca_intermediate()]
}

/// Enrolls `tpm` through `svc` (tag env=test) and extends PCR 16; returns the attester credential.
fn enroll(svc: &Service, tpm: &SwTpm) -> PathBuf {
    let cred = svc.add_attester("web-01", &["env=test"]);
    let r = svc.client(Some(tpm), Some(&cred), &["enroll", "--tag", "env=test"]);
    assert_eq!(r.code, 0, "enroll: {r:?}");
    let r = svc.client(Some(tpm), Some(&cred), &["tpm", "extend", "--pcr", "16", "--data", PCR16]);
    assert_eq!(r.code, 0, "{r:?}");
    cred
}

/// Captures policy "web" on the host (through `capture_via`) and applies it through `apply_via`.
fn apply_policy(capture_via: &Service, apply_via: &Service, tpm: &SwTpm, cred: &Path, dir: &Path, rules: &str) {
    let r = capture_via.client(
        Some(tpm),
        Some(cred),
        &["policy", "capture", "--id", "web", "--pcrs", "0-7,16", "--tag", "env=test", "--scope", "deploy/web/*"],
    );
    assert_eq!(r.code, 0, "capture: {r:?}");
    let text = r.stdout.split("[token]").next().unwrap().to_owned() + "[token]\nmax_ttl = \"10m\"\n" + rules;
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, text).unwrap();
    let r = admin(apply_via, &["policy", "apply", policy.to_str().unwrap()]);
    assert_eq!(r.code, 0, "apply: {r:?}");
}

fn admin(svc: &Service, args: &[&str]) -> Run {
    svc.client(None, Some(&svc.admin_credential()), args)
}

fn token(svc: &Service, tpm: &SwTpm, cred: &Path, out: &Path) {
    let args = ["token", "request", "--scope", "deploy/web/*", "--audience", "gw-1", "--out", out.to_str().unwrap()];
    let r = svc.client(Some(tpm), Some(cred), &args);
    assert_eq!(r.code, 0, "token request: {r:?}");
}

/// `runtrust exec` through `svc` of a command that appends a line to `marker` and exits 7.
fn exec(svc: &Service, tpm: &SwTpm, cred: &Path, token: &Path, marker: &Path) -> Run {
    let script = format!("echo ran >> '{}'; exit 7", marker.display());
    let args = ["exec", "--token", token.to_str().unwrap(), "--scope", "deploy/web/api", "--audience", "gw-1", "--"];
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["sh", "-c", &script]);
    svc.client(Some(tpm), Some(cred), &all)
}

fn ran(marker: &Path) -> usize {
    std::fs::read_to_string(marker).map(|s| s.lines().count()).unwrap_or(0)
}

fn cti(svc: &Service, token: &Path) -> String {
    let r = svc.client(None, None, &["--json", "token", "inspect", token.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()["cti"].as_str().unwrap().to_owned()
}

/// `audit verify --json` through `svc`: (tree size, root).
fn verified_root(svc: &Service) -> (u64, String) {
    let r = admin(svc, &["--json", "audit", "verify"]);
    assert_eq!(r.code, 0, "audit verify: {r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    (v["tree_size"].as_u64().unwrap(), v["root"].as_str().unwrap().to_owned())
}

fn client(svc: &Service, cred: &Path) -> Client {
    Client::new(&ClientOptions {
        server: Some(svc.url().to_owned()),
        server_ca: Some(svc.ca()),
        credential: Some(cred.to_path_buf()),
    })
    .unwrap()
}

/// The host's TPM, opened in this process (its AK from the host state dir).
fn open_tpm(tpm: &SwTpm) -> TssTpm {
    TssTpm::open(TpmOptions {
        tcti: tpm.tcti(),
        state_dir: tpm.host_state_dir(),
        ek_alg: KeyAlg::Rsa,
        ak_alg: KeyAlg::Rsa,
    })
    .unwrap()
}

/// A complete token request for a fresh challenge from `c`.
fn raw_request(c: &Client, tpm: &SwTpm) -> TokenRequest {
    common::raw_request(c, &mut open_tpm(tpm))
}

#[test]
fn three_replicas_keep_the_guarantees_of_one_process() {
    let db = fresh_database();
    let tpm = SwTpm::start();
    let a = Service::start_on(&anchors(&tpm), &db);
    let (b, c) = (a.replica(), a.replica());
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);

    // Enroll via A, apply the policy via C, a token via B, and it runs via A.
    let cred = enroll(&a, &tpm);
    apply_policy(&a, &c, &tpm, &cred, dir.path(), "");
    let t1 = path("t1");
    token(&b, &tpm, &cred, &t1);
    let r = exec(&a, &tpm, &cred, &t1, &path("m-before"));
    assert_eq!((r.code, ran(&path("m-before"))), (7, 1), "{r:?}");

    // Revoked via C: A refuses it at once (the check is in the start's transaction, not in a process).
    let r = admin(&c, &["revoke", "token", &cti(&c, &t1), "--reason", "leaked"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = exec(&a, &tpm, &cred, &t1, &path("m-after"));
    assert!(r.code == 125 && r.stderr.contains("revoked"), "{r:?}");
    assert_eq!(ran(&path("m-after")), 0, "the command never started");

    // The same nonce sent to A and B at once: one token.
    let (ca, cb) = (client(&a, &cred), client(&b, &cred));
    for round in 0..3 {
        let req = Arc::new(raw_request(&ca, &tpm));
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<Result<TokenResponse, ClientError>> = std::thread::scope(|s| {
            let handles: Vec<_> = [&ca, &cb]
                .into_iter()
                .map(|cl| {
                    let (req, barrier) = (req.clone(), barrier.clone());
                    s.spawn(move || {
                        barrier.wait();
                        cl.post::<_, TokenResponse>("/v1/tokens", req.as_ref())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let issued = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(issued, 1, "round {round}: one nonce, one token: {results:?}");
        let replayed = results.iter().any(|r| matches!(r, Err(ClientError::Denied(p)) if p.code == "nonce_replayed"));
        assert!(replayed, "round {round}: the other is a replay: {results:?}");
    }

    // Single-use (a policy version applied via B, in force on every replica): the gateway's start raced on
    // all three replicas at once is granted once; `exec` afterwards is refused.
    apply_policy(&b, &b, &tpm, &cred, dir.path(), "single_use = true\n");
    let once = path("once");
    token(&c, &tpm, &cred, &once);
    let gw = a.add_principal("gw-1", "gateway");
    let start = runtrust::api::ExecStartRequest {
        token: std::fs::read(&once).unwrap(),
        scope: "deploy/web/api".into(),
        audience: Some("gw-1".into()),
        argv_sha256: "00".repeat(32),
    };
    let gateways = [client(&a, &gw), client(&b, &gw), client(&c, &gw)];
    let barrier = Barrier::new(3);
    let starts: Vec<Result<runtrust::api::ExecStartResponse, ClientError>> = std::thread::scope(|s| {
        let handles: Vec<_> = gateways
            .iter()
            .map(|g| {
                let (start, barrier) = (&start, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    g.post(runtrust::api::routes::EXECUTIONS, start)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(starts.iter().filter(|r| r.is_ok()).count(), 1, "{starts:?}");
    let replays = starts.iter().filter(|r| matches!(r, Err(ClientError::Denied(p)) if p.code == "token_replayed"));
    assert_eq!(replays.count(), 2, "{starts:?}");
    let r = exec(&b, &tpm, &cred, &once, &path("m-once"));
    assert!(r.code == 125 && r.stderr.contains("token_replayed"), "{r:?}");
    assert_eq!(ran(&path("m-once")), 0);

    // One ordered log: every replica verifies it to the same root.
    let roots = [verified_root(&a), verified_root(&b), verified_root(&c)];
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
}

#[test]
fn store_migrate_keeps_the_audit_root_and_the_tokens() {
    let tpm = SwTpm::start();
    let mut svc = Service::start(&anchors(&tpm));
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let cred = enroll(&svc, &tpm);
    apply_policy(&svc, &svc, &tpm, &cred, dir.path(), "");
    let (live, revoked) = (path("live"), path("revoked"));
    token(&svc, &tpm, &cred, &live);
    token(&svc, &tpm, &cred, &revoked);
    let r = exec(&svc, &tpm, &cred, &live, &path("m1"));
    assert_eq!(r.code, 7, "{r:?}");
    let r = admin(&svc, &["revoke", "token", &cti(&svc, &revoked)]);
    assert_eq!(r.code, 0, "{r:?}");
    let before = verified_root(&svc);
    assert!(svc.stop().success());

    let db = fresh_database();
    let from = format!("sled:{}", svc.data_dir().join("store").display());
    let r = svc.client(None, None, &["--json", "store", "migrate", "--from", &from, "--to", &db]);
    assert_eq!(r.code, 0, "store migrate: {r:?}");
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["root_before"], report["root_after"], "{report}");
    assert_eq!(report["root_after"].as_str(), Some(before.1.as_str()), "the live log's root: {report}");
    assert_eq!(report["tokens"], 2);
    let r = svc.client(None, None, &["store", "migrate", "--from", &from, "--to", &db]);
    assert!(r.code == 1 && r.stderr.contains("not empty"), "a second copy is refused: {r:?}");

    // The service on PostgreSQL: the same log, the live token runs, the revoked one stays revoked.
    let cfg = svc.data_dir().join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("store = \"store\"", &format!("store = \"{db}\""));
    std::fs::write(&cfg, text).unwrap();
    svc.restart();
    assert_eq!(verified_root(&svc), before);
    let r = exec(&svc, &tpm, &cred, &live, &path("m2"));
    assert_eq!((r.code, ran(&path("m2"))), (7, 1), "{r:?}");
    let r = exec(&svc, &tpm, &cred, &revoked, &path("m3"));
    assert!(r.code == 125 && r.stderr.contains("revoked"), "{r:?}");
    token(&svc, &tpm, &cred, &path("new"));
}

/// DESIGN §15: `kill -9` of one replica in the middle of a token stream loses nothing it answered: every
/// token it issued is in the store as seen from the survivors, whose `audit verify` gives one root, and no
/// nonce that bought a token buys another.
#[test]
fn kill_9_of_a_replica_during_a_token_stream_loses_nothing_answered() {
    let db = fresh_database();
    let tpm = SwTpm::start();
    let a = Service::start_on(&anchors(&tpm), &db);
    let (mut b, c) = (a.replica(), a.replica());
    let dir = tempfile::tempdir().unwrap();
    let cred = enroll(&a, &tpm);
    apply_policy(&a, &a, &tpm, &cred, dir.path(), "");

    // The requests are made first (challenges from C, within the per-principal cap of 16 outstanding; quotes
    // by the TPM), so that the stream to B is fast.
    let mut t = open_tpm(&tpm);
    let cc = client(&c, &cred);
    let requests: Vec<TokenRequest> = (0..14).map(|_| common::raw_request(&cc, &mut t)).collect();
    drop(t);

    let cb = client(&b, &cred);
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<TokenResponse, ClientError>> = std::thread::scope(|s| {
        let stream = s.spawn(|| {
            requests
                .iter()
                .map(|req| {
                    let r = cb.post::<_, TokenResponse>("/v1/tokens", req);
                    if r.is_ok() {
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    r
                })
                .collect::<Vec<_>>()
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while answered.load(std::sync::atomic::Ordering::SeqCst) < 4 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        b.kill9();
        stream.join().unwrap()
    });
    let issued: Vec<&TokenResponse> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(issued.len() >= 4, "B answered tokens before it was killed: {results:?}");
    assert!(results.iter().any(|r| r.is_err()), "B was killed during the stream, not after it: {results:?}");
    eprintln!("replica B answered {} of {} token requests before kill -9", issued.len(), results.len());

    // Every answered token is in the store, as the survivors see it.
    for tok in &issued {
        let r = admin(&c, &["--json", "lineage", &tok.cti]);
        assert_eq!(r.code, 0, "token {} answered by B is lost: {r:?}", tok.cti);
    }
    // No nonce that bought a token buys another, via either survivor.
    let ca = client(&a, &cred);
    for (req, result) in requests.iter().zip(&results) {
        if result.is_ok() {
            for cl in [&ca, &cc] {
                let again = cl.post::<_, TokenResponse>("/v1/tokens", req);
                assert!(
                    matches!(&again, Err(ClientError::Denied(p)) if p.code == "nonce_replayed"),
                    "a spent nonce bought another token: {again:?}"
                );
            }
        }
    }
    // One ordered log, the same root through both survivors, holding every answered issuance.
    let (ra, rc) = (verified_root(&a), verified_root(&c));
    assert_eq!(ra, rc);
    let issues = a.audit().into_iter().filter(|e| e["event"] == "token.issue").count();
    assert!(issues >= issued.len(), "{issues} token.issue entries for {} answered tokens", issued.len());
}
