//! Issue "Enrollment" end to end: `runtrust init` → `serve` → `enroll` against real swtpm TPMs, each
//! denial with nothing stored, and a kill -9 of the service in the middle of enrollments.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtrust::api::{ActivationAnswer, EnrollChallenge, EnrollRequest, QuoteEvidence};
use runtrust::client::{Client, ClientError, ClientOptions};
use runtrust::tpm::{KeyAlg, Tpm, TpmOptions, TssTpm};
use runtrust_attestation::PcrSelection;
use swtpm_tests::{Service, SwTpm};

fn anchors(tpms: &[&SwTpm]) -> Vec<std::path::PathBuf> {
    tpms.iter().flat_map(|t| [t.ca_root(), t.ca_intermediate()]).collect()
}

fn tss(tpm: &SwTpm, ek: KeyAlg, ak: KeyAlg) -> TssTpm {
    TssTpm::open(TpmOptions { tcti: tpm.tcti(), state_dir: tpm.host_state_dir(), ek_alg: ek, ak_alg: ak }).unwrap()
}

fn client(svc: &Service, credential: &Path) -> Client {
    Client::new(&ClientOptions {
        server: Some(svc.url().to_owned()),
        server_ca: Some(svc.ca()),
        credential: Some(credential.to_owned()),
    })
    .unwrap()
}

fn request(tpm: &mut TssTpm) -> EnrollRequest {
    EnrollRequest {
        ek_certificate: tpm.ek_certificate().unwrap(),
        ek_intermediates: vec![],
        ek_public: tpm.ek_public().unwrap().to_tpm2b(),
        ak_public: tpm.ak_public().unwrap().to_tpm2b(),
        tags: vec![],
    }
}

fn denied(r: Result<impl std::fmt::Debug, ClientError>) -> runtrust::api::Problem {
    match r {
        Err(ClientError::Denied(p)) => *p,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn enroll_rsa_and_ecc_ek_tpms() {
    let (a, b) = (SwTpm::start(), SwTpm::start());
    let svc = Service::start(&anchors(&[&a, &b]));
    let cred_a = svc.add_attester("host-a", &["role=web", "dc=1", "spare"]);
    let cred_b = svc.add_principal("host-b", "attester");

    let r = svc.client(Some(&a), Some(&cred_a), &["enroll", "--tag", "role=web", "--tag", "dc=1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let host_a = r.stdout.trim().to_owned();
    assert!(host_a.starts_with("sha256:") && host_a.len() == 71, "{host_a}");

    // swtpm certifies an ECC P-384 EK (NV 0x01c00016).
    let r = svc.client(Some(&b), Some(&cred_b), &["--ek-alg", "ecc384", "--ak-alg", "ecc", "--json", "enroll"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["new"], true);
    let host_b = v["host_id"].as_str().unwrap().to_owned();

    let hosts = svc.hosts();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    let ha = hosts.iter().find(|h| h["host_id"] == host_a.as_str()).expect("host a listed");
    assert_eq!(ha["tags"], serde_json::json!(["role=web", "dc=1"]));
    assert!(ha["ek_certificate_sha256"].is_string());
    assert!(hosts.iter().any(|h| h["host_id"] == host_b.as_str()));

    // Re-enrolling the same TPM is idempotent, and keeps the tags it has (docs/design.md §5).
    let r = svc.client(Some(&a), Some(&cred_a), &["--json", "enroll"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((v["host_id"].as_str(), v["new"].as_bool()), (Some(host_a.as_str()), Some(false)));
    assert_eq!(v["tags"], serde_json::json!(["role=web", "dc=1"]));
    assert_eq!(svc.hosts().len(), 2);

    // A different TPM under host a's identity (its credential) is refused.
    let r = svc.client(Some(&b), Some(&cred_a), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("runtime_identity_mismatch"), "{r:?}");
    assert_eq!(svc.hosts().len(), 2);

    // The inventory is admin's (and auditor's), not a host's.
    let r = svc.client(None, Some(&cred_a), &["hosts", "list"]);
    assert_eq!(r.code, 3, "{r:?}");
    let auditor = svc.add_principal("audit", "auditor");
    assert_eq!(svc.client(None, Some(&auditor), &["hosts", "list"]).code, 0);
}

#[test]
fn ek_chain_not_anchored_is_ek_untrusted() {
    let (anchored, stranger) = (SwTpm::start(), SwTpm::start());
    let svc = Service::start(&anchors(&[&anchored]));
    let cred = svc.add_principal("h", "attester");
    let r = svc.client(Some(&stranger), Some(&cred), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("ek_untrusted"), "{r:?}");
    assert!(r.stderr.contains("swtpm-localca"), "the detail names what failed: {r:?}");
    assert!(svc.hosts().is_empty());

    // Root only, without the intermediate: the host can send it.
    let svc = Service::start(&[stranger.ca_root()]);
    let cred = svc.add_principal("h", "attester");
    let r = svc.client(Some(&stranger), Some(&cred), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(svc.hosts().is_empty());
    let inter = stranger.ca_intermediate();
    let r = svc.client(Some(&stranger), Some(&cred), &["enroll", "--ek-intermediates", inter.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn wrong_activation_answer_is_activation_failed() {
    let tpm = SwTpm::start();
    let svc = Service::start(&anchors(&[&tpm]));
    let cred = svc.add_principal("h", "attester");
    let c = client(&svc, &cred);
    let mut t = tss(&tpm, KeyAlg::Rsa, KeyAlg::Rsa);
    let challenge: EnrollChallenge = c.post("/v1/enroll", &request(&mut t)).unwrap();
    let mut secret = t.activate_credential(&challenge.credential_blob, &challenge.encrypted_secret).unwrap();
    secret[0] ^= 1;
    let selection: PcrSelection = challenge.pcr_selection.parse().unwrap();
    let q = t.quote(&hex::decode(&challenge.nonce).unwrap(), &selection).unwrap();
    let answer = ActivationAnswer {
        secret: secret.clone(),
        quote: QuoteEvidence { attest: q.attest, signature: q.signature, pcrs: q.pcrs, batch: None },
    };
    let path = format!("/v1/enroll/{}", challenge.enrollment_id);
    let p = denied(c.post::<_, serde_json::Value>(&path, &answer));
    assert_eq!((p.code.as_str(), p.status), ("activation_failed", 403), "{p:?}");
    assert!(svc.hosts().is_empty());
    // The challenge was consumed: even the right secret is too late now.
    secret[0] ^= 1;
    let answer = ActivationAnswer { secret, ..answer };
    let p = denied(c.post::<_, serde_json::Value>(&path, &answer));
    assert_eq!(p.code, "nonce_unknown", "{p:?}");
    assert!(svc.hosts().is_empty());

    // A credential made for another TPM's EK cannot be activated here at all.
    let other = SwTpm::start();
    let mut o = tss(&other, KeyAlg::Rsa, KeyAlg::Rsa);
    let svc2 = Service::start(&anchors(&[&other]));
    let c2 = client(&svc2, &svc2.add_principal("o", "attester"));
    let ch: EnrollChallenge = c2.post("/v1/enroll", &request(&mut o)).unwrap();
    assert!(t.activate_credential(&ch.credential_blob, &ch.encrypted_secret).is_err());
}

#[test]
fn ak_that_is_not_a_restricted_signing_key_is_ak_invalid() {
    let tpm = SwTpm::start();
    let svc = Service::start(&anchors(&[&tpm]));
    let c = client(&svc, &svc.add_principal("h", "attester"));
    let mut t = tss(&tpm, KeyAlg::Rsa, KeyAlg::Rsa);
    let genuine = request(&mut t);

    // The same AK with `restricted` (TPMA_OBJECT bit 16) cleared; TPMA_OBJECT is the big-endian u32 after
    // the TPM2B size, type and nameAlg, so bit 16 is bit 0 of byte 7.
    let mut unrestricted = genuine.clone();
    assert_eq!(unrestricted.ak_public[7] & 0x01, 0x01);
    unrestricted.ak_public[7] &= !0x01;
    let p = denied(c.post::<_, EnrollChallenge>("/v1/enroll", &unrestricted));
    assert_eq!(p.code, "ak_invalid", "{p:?}");
    assert!(p.detail.contains("restricted"), "{p:?}");

    // The EK (a decryption key) offered as the AK.
    let ek_as_ak = EnrollRequest { ak_public: genuine.ek_public.clone(), ..genuine.clone() };
    let p = denied(c.post::<_, EnrollChallenge>("/v1/enroll", &ek_as_ak));
    assert_eq!(p.code, "ak_invalid", "{p:?}");
    assert!(svc.hosts().is_empty());
}

#[test]
fn no_credential_and_wrong_role_are_refused() {
    let tpm = SwTpm::start();
    let svc = Service::start(&anchors(&[&tpm]));
    let r = svc.client(Some(&tpm), None, &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("authorization_missing"), "{r:?}");

    let gateway = svc.add_principal("gw", "gateway");
    let r = svc.client(Some(&tpm), Some(&gateway), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("authorization_missing") && r.stderr.contains("gateway"), "{r:?}");
    let mut t = tss(&tpm, KeyAlg::Rsa, KeyAlg::Rsa);
    let p = denied(client(&svc, &gateway).post::<_, EnrollChallenge>("/v1/enroll", &request(&mut t)));
    assert_eq!(p.status, 403, "{p:?}");
    let anonymous =
        Client::new(&ClientOptions { server: Some(svc.url().to_owned()), server_ca: Some(svc.ca()), credential: None })
            .unwrap();
    let p = denied(anonymous.post::<_, EnrollChallenge>("/v1/enroll", &request(&mut t)));
    assert_eq!((p.status, p.code.as_str()), (401, "authorization_missing"));
    assert!(svc.hosts().is_empty());
    drop(t); // swtpm has no resource manager: free the EK and AK slots for the CLI below

    // A removed principal's credential stops working at once.
    let host = svc.add_principal("gone", "attester");
    let r = svc.client(None, Some(&svc.admin_credential()), &["principal", "remove", "gone"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = svc.client(Some(&tpm), Some(&host), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(svc.hosts().is_empty());
}

#[test]
fn service_unreachable_exits_4_and_init_protects_its_data() {
    let tpm = SwTpm::start();
    let mut svc = Service::start(&anchors(&[&tpm]));
    let cred = svc.add_principal("h", "attester");
    assert_eq!(svc.stop().code(), Some(0), "SIGTERM stops serve cleanly");
    let r = svc.client(Some(&tpm), Some(&cred), &["enroll"]);
    assert_eq!(r.code, 4, "{r:?}");

    let d = svc.data_dir();
    for (f, mode) in [("admin.credential", 0o600), ("keys/issuer-1.pk8", 0o600), ("tls/server.key", 0o600)] {
        let m = std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{f}");
    }
    let r = svc.client(None, None, &["init", "--data-dir", d.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--force"), "{r:?}");
}

#[test]
fn kill_9_during_enrollments_loses_no_answered_host() {
    let tpms: Vec<SwTpm> = (0..4).map(|_| SwTpm::start()).collect();
    let refs: Vec<&SwTpm> = tpms.iter().collect();
    let mut svc = Service::start(&anchors(&refs));
    let creds: Vec<_> = (0..tpms.len()).map(|i| svc.add_principal(&format!("h{i}"), "attester")).collect();
    let (url, ca) = (svc.url().to_owned(), svc.ca());
    let stop = Arc::new(AtomicBool::new(false));
    // Answers per host so far: the kill comes once every host has been answered a few times, while all of
    // them are still enrolling (load decides how long that takes, not a fixed delay).
    let answered: Arc<Vec<std::sync::atomic::AtomicU32>> =
        Arc::new((0..tpms.len()).map(|_| Default::default()).collect());

    // Each host re-enrolls in a loop and counts the enrollments the service confirmed. (A re-enrollment
    // cannot change tags any more, docs/design.md §5: each confirmed one is counted by its audit entry.)
    let acked: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = tpms
            .iter()
            .zip(&creds)
            .enumerate()
            .map(|(i, (tpm, cred))| {
                let (stop, url, ca, answered) = (stop.clone(), url.clone(), ca.clone(), answered.clone());
                s.spawn(move || {
                    let c = Client::new(&ClientOptions {
                        server: Some(url),
                        server_ca: Some(ca),
                        credential: Some(cred.clone()),
                    })
                    .unwrap();
                    let mut t = tss(tpm, KeyAlg::Rsa, KeyAlg::Rsa);
                    let mut last = None;
                    let mut confirmed = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        match runtrust::client::enroll::enroll(&c, &mut t, &[], vec![]) {
                            Ok(e) => {
                                confirmed += 1;
                                last = Some((e.host_id, confirmed));
                                answered[i].fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => break, // the service died under us
                        }
                    }
                    last
                })
            })
            .collect();
        let start = Instant::now();
        while answered.iter().any(|a| a.load(Ordering::SeqCst) < 3) {
            assert!(start.elapsed() < Duration::from_secs(300), "hosts were not answered within 300 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        svc.kill9();
        stop.store(true, Ordering::SeqCst);
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    svc.restart();
    let hosts = svc.hosts();
    let audit = svc.audit();
    let mut confirmed = 0;
    for (host_id, n) in acked.into_iter().flatten() {
        assert!(hosts.iter().any(|h| h["host_id"] == host_id.as_str()), "{host_id} lost");
        let stored = audit.iter().filter(|e| e["event"] == "enroll.allow" && e["host_id"] == host_id.as_str()).count();
        assert!(stored >= n, "{host_id}: {n} enrollments were answered, {stored} are in the log");
        confirmed += 1;
    }
    assert_eq!(confirmed, tpms.len(), "every host was answered before the kill");
}

#[test]
fn oversized_bodies_and_unknown_routes_are_problems() {
    let svc = Service::start(&[]);
    let admin = client(&svc, &svc.admin_credential());
    let huge = serde_json::json!({ "name": "x".repeat(2 << 20), "role": "admin" });
    let p = denied(admin.post::<_, serde_json::Value>("/v1/principals", &huge));
    assert_eq!((p.status, p.code.as_str()), (413, "bad_request"), "{p:?}");
    let p = denied(admin.get::<serde_json::Value>("/v2/nothing"));
    assert_eq!((p.status, p.code.as_str()), (404, "not_found"), "{p:?}");
    let p = denied(
        admin.post::<_, serde_json::Value>("/v1/principals", &serde_json::json!({ "name": "a b", "role": "admin" })),
    );
    assert_eq!(p.status, 400, "{p:?}");
    // With no EK anchors configured, every EK certificate is refused, with the reason.
    let tpm = SwTpm::start();
    let r = svc.client(Some(&tpm), Some(&svc.add_principal("h", "attester")), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("no EK trust anchors"), "{r:?}");
}
