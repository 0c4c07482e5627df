//! Issue 12 on real swtpm TPMs: the host TPM (the EK persisted at its TCG handle is used and never
//! recreated, one that is not the EK is left alone, the EK is created at most once per process, the AK is
//! loaded once, transient answers are retried), the EK chain in NV sent at enrollment, and the slow-TPM proxy
//! that counts, delays and answers commands.
//!
//! swtpm_setup persists the EKs it certifies (RSA 2048 at 0x81010001, ECC P-384 at 0x81010016), as a
//! provisioned machine may; tests that need the other case evict them first.

// A failed assumption here is a failed test (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtrust::tpm::{retry_policy, KeyAlg, Tpm, TpmError, TpmOptions, TssTpm};
use runtrust_attestation::PcrSelection;
use swtpm_tests::proxy::{cc, rc};
use swtpm_tests::{Service, SwTpm};

fn tss_via(tpm: &SwTpm, tcti: &str, ek: KeyAlg) -> TssTpm {
    let opts = TpmOptions { tcti: tcti.to_owned(), state_dir: tpm.host_state_dir(), ek_alg: ek, ak_alg: KeyAlg::Rsa };
    TssTpm::open(opts).unwrap()
}

/// `runtrust tpm quote` through `tcti`, its output in a scratch directory.
fn cli_quote(t: &SwTpm, tcti: &str) -> swtpm_tests::Run {
    let out = t.scratch("quote").display().to_string();
    t.runtrust_via(tcti, &["tpm", "quote", "--nonce", "0badcafe", "--out", &out])
}

fn sel() -> PcrSelection {
    "sha256:0,1,2,3,4,5,6,7".parse().unwrap()
}

fn persistent_handles(tpm: &SwTpm) -> String {
    String::from_utf8(tpm.tpm2("tpm2_getcap", &["handles-persistent"], &tpm.scratch("getcap"))).unwrap()
}

fn evict(tpm: &SwTpm, handle: &str) {
    tpm.tpm2("tpm2_evictcontrol", &["-C", "o", "-c", handle], &tpm.scratch("evict"));
    assert!(!persistent_handles(tpm).contains(&handle[2..]), "{handle} still persisted");
}

/// The TPM2B_PUBLIC of the EK created from the TCG template by tpm2-tools (transient, not persisted). Flushes
/// every transient object: call it while no `TssTpm` holds one.
fn template_ek(tpm: &SwTpm, alg: &str) -> Vec<u8> {
    let dir = tpm.scratch(&format!("createek-{alg}"));
    tpm.tpm2("tpm2_createek", &["-G", alg, "-c", "ek.ctx", "-u", "ek.pub"], &dir);
    tpm.tpm2("tpm2_flushcontext", &["-t"], &dir);
    std::fs::read(dir.join("ek.pub")).unwrap()
}

#[test]
fn persisted_ek_is_used_and_never_recreated_and_the_ak_is_loaded_once() {
    let t = SwTpm::start();
    assert!(persistent_handles(&t).contains("0x81010001"), "swtpm_setup persists the RSA EK");
    let (template_rsa, template_p384) = (template_ek(&t, "rsa"), template_ek(&t, "ecc384"));
    let proxy = t.proxy();
    let mut a = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    assert_eq!(a.info().unwrap().ek_persistent_handle.as_deref(), Some("0x81010001"));
    let ek = a.ek_public().unwrap();
    a.ak_public().unwrap();
    for nonce in [[1u8; 32], [2u8; 32], [3u8; 32]] {
        a.quote(&nonce, &sel()).unwrap();
    }
    drop(a);
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0, "{:x?}", proxy.counts());
    assert_eq!(proxy.succeeded(cc::CREATE), 1, "the AK is created once");
    assert_eq!(proxy.succeeded(cc::LOAD), 1, "and loaded once for three quotes");
    assert_eq!(proxy.succeeded(cc::QUOTE), 3, "{:x?}", proxy.log());

    // The persisted EK is the template's EK: the same public area, so the same host id as before.
    assert_eq!(ek.to_tpm2b(), template_rsa);

    // Another process: the stored AK is loaded under the persisted EK; still nothing created.
    let r = cli_quote(&t, &proxy.tcti());
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0);
    assert_eq!(proxy.succeeded(cc::LOAD), 2);

    // The P-384 EK persisted at 0x81010016 likewise.
    let mut b = tss_via(&t, &proxy.tcti(), KeyAlg::Ecc384);
    assert_eq!(b.info().unwrap().ek_persistent_handle.as_deref(), Some("0x81010016"));
    assert_eq!(b.ek_public().unwrap().to_tpm2b(), template_p384);
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0);
}

#[test]
fn without_a_persisted_ek_it_is_created_once_per_process_until_persist_ek() {
    let t = SwTpm::start();
    evict(&t, "0x81010001");
    let proxy = t.proxy();
    let mut a = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    assert_eq!(a.info().unwrap().ek_persistent_handle, None);
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0, "tpm info creates nothing");
    let ek = a.ek_public().unwrap();
    a.ek_certificate().unwrap().expect("swtpm has an RSA EK certificate");
    a.ak_public().unwrap();
    a.quote(&[1; 20], &sel()).unwrap();
    a.quote(&[2; 20], &sel()).unwrap();
    drop(a);
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 1, "{:x?}", proxy.counts());

    for _ in 0..2 {
        let r = cli_quote(&t, &proxy.tcti());
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 3, "once per process");

    let r = t.runtrust_via(&proxy.tcti(), &["tpm", "persist-ek"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("persisted the EK at 0x81010001"), "{r:?}");
    assert!(persistent_handles(&t).contains("0x81010001"));
    let r = t.runtrust_via(&proxy.tcti(), &["--json", "tpm", "persist-ek"]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!((j["handle"].as_str(), j["persisted"].as_bool()), (Some("0x81010001"), Some(false)), "{j}");

    proxy.reset_counts();
    let r = cli_quote(&t, &proxy.tcti());
    assert_eq!(r.code, 0, "{r:?}");
    let r = t.runtrust_via(&proxy.tcti(), &["--json", "tpm", "info"]);
    let info: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(info["ek_persistent_handle"], "0x81010001", "{info}");
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0, "{:x?}", proxy.counts());
    let mut b = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    assert_eq!(b.ek_public().unwrap(), ek, "the persisted EK is the one created before");
}

/// An RSA 2048 storage key of the owner hierarchy persisted at `handle`: RSA like the EK, not the EK.
fn persist_impostor(t: &SwTpm, handle: &str) {
    let dir = t.scratch("impostor");
    t.tpm2("tpm2_createprimary", &["-C", "o", "-G", "rsa2048", "-c", "primary.ctx"], &dir);
    t.tpm2("tpm2_evictcontrol", &["-C", "o", "-c", "primary.ctx", handle], &dir);
    t.tpm2("tpm2_flushcontext", &["-t"], &dir);
}

#[test]
fn a_persisted_object_that_is_not_the_ek_is_not_used() {
    let t = SwTpm::start();
    evict(&t, "0x81010001");
    persist_impostor(&t, "0x81010001");
    let template = template_ek(&t, "rsa");
    let proxy = t.proxy();
    let mut a = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    assert_eq!(a.info().unwrap().ek_persistent_handle, None);
    assert_eq!(a.ek_public().unwrap().to_tpm2b(), template, "the EK from the template");
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 1);
    a.quote(&[7; 32], &sel()).unwrap();
    drop(a);

    // persist-ek leaves the other object alone and says so.
    let r = t.runtrust_via(&proxy.tcti(), &["tpm", "persist-ek"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("0x81010001 holds an object that is not this TPM's EK"), "{r:?}");
    assert!(r.stderr.contains("not the EK certificate's key"), "{r:?}");
    assert!(persistent_handles(&t).contains("0x81010001"));
}

#[test]
fn without_an_ek_certificate_a_persisted_ek_must_have_the_template() {
    let t = SwTpm::start();
    t.tpm2("tpm2_nvundefine", &["-C", "p", "0x01c00002"], &t.scratch("nv"));
    // swtpm_setup's persisted EK is the template's: used.
    let proxy = t.proxy();
    let mut a = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    assert_eq!(a.ek_certificate().unwrap(), None);
    assert_eq!(a.info().unwrap().ek_persistent_handle.as_deref(), Some("0x81010001"));
    let ek = a.ek_public().unwrap();
    drop(a);
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0);

    // An RSA key with another template: not used, the EK is created.
    evict(&t, "0x81010001");
    persist_impostor(&t, "0x81010001");
    let mut b = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    assert_eq!(b.info().unwrap().ek_persistent_handle, None);
    assert_eq!(b.ek_public().unwrap(), ek);
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 1);
    drop(b);
    let r = t.runtrust_via(&proxy.tcti(), &["tpm", "persist-ek"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("not the TCG EK template's"), "{r:?}");
}

#[test]
fn enrollment_with_the_persisted_ek_creates_no_primary() {
    let t = SwTpm::start();
    let svc = Service::start(&[t.ca_root(), t.ca_intermediate()]);
    let cred = svc.add_principal("host", "attester");
    let proxy = t.proxy();
    let r = svc.command(Some(&t), Some(&cred), &["enroll"]).env("RUNTRUST_TCTI", proxy.tcti()).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(proxy.count(cc::CREATE_PRIMARY), 0, "{:x?}", proxy.counts());
    assert_eq!(proxy.succeeded(cc::ACTIVATE_CREDENTIAL), 1, "{:x?}", proxy.log());
    let host_id = String::from_utf8_lossy(&r.stdout).trim().to_owned();
    assert_eq!(svc.hosts()[0]["host_id"].as_str(), Some(host_id.as_str()));
}

#[test]
fn transient_answers_are_retried_with_bounded_backoff() {
    let t = SwTpm::start();
    let proxy = t.proxy();
    let mut a = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    proxy.inject(cc::READ_PUBLIC, rc::YIELDED, 2);
    proxy.inject(cc::LOAD, rc::TESTING, 3);
    a.ak_public().unwrap();
    // More TPM_RC_RETRY answers in a row than ESAPI resubmits on its own.
    proxy.inject(cc::QUOTE, rc::RETRY, 8);
    a.quote(&[9; 32], &sel()).unwrap();
    let log = proxy.log();
    let answered = |code, rc| log.iter().filter(|&&e| e == (code, rc)).count();
    assert_eq!((answered(cc::QUOTE, rc::RETRY) >= 8, answered(cc::QUOTE, 0)), (true, 1), "{log:x?}");
    assert_eq!((answered(cc::LOAD, rc::TESTING), answered(cc::LOAD, 0)), (3, 1), "{log:x?}");
    assert_eq!((answered(cc::READ_PUBLIC, rc::YIELDED), proxy.succeeded(cc::READ_PUBLIC) > 0), (2, true));

    // A TPM that never stops answering TPM_RC_RETRY: a bounded number of tries, then "busy".
    proxy.reset_counts();
    proxy.inject(cc::QUOTE, rc::RETRY, u32::MAX);
    let e = a.quote(&[10; 32], &sel()).unwrap_err();
    assert!(matches!(e, TpmError::Busy { code: "TPM_RC_RETRY", attempts: retry_policy::ATTEMPTS, .. }), "{e}");
    assert!(e.is_unavailable());
    let sent = proxy.count(cc::QUOTE);
    // Each of runtrust's tries is one ESAPI call, which resubmits on its own (ESYS_MAX_SUBMISSIONS is 5 in
    // tpm2-tss 3.2: 25 commands in all).
    assert!(
        sent >= u64::from(retry_policy::ATTEMPTS) && sent <= u64::from(retry_policy::ATTEMPTS) * 6,
        "{sent} TPM2_Quote commands"
    );
    let r = cli_quote(&t, &proxy.tcti());
    assert_eq!(r.code, 4, "a busy TPM is unavailable: {r:?}");
    assert!(r.stderr.contains("TPM_RC_RETRY"), "{r:?}");
}

#[test]
fn slow_tpm_delays_the_chosen_commands_one_at_a_time() {
    let t = SwTpm::start();
    let proxy = t.with_delays(&[(cc::QUOTE, Duration::from_millis(300))]);
    let mut a = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    a.ak_public().unwrap();
    let start = Instant::now();
    a.quote(&[1; 32], &sel()).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());

    // Like a chip, the proxy runs one command at a time: two quotes from two connections take twice as long.
    proxy.set_delay(cc::QUOTE, Duration::from_millis(400));
    let mut b = tss_via(&t, &proxy.tcti(), KeyAlg::Rsa);
    b.ak_public().unwrap();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| a.quote(&[2; 32], &sel()).unwrap());
        s.spawn(|| b.quote(&[3; 32], &sel()).unwrap());
    });
    assert!(start.elapsed() >= Duration::from_millis(800), "{:?}", start.elapsed());
    assert_eq!(proxy.succeeded(cc::QUOTE), 3, "{:x?}", proxy.log());
}

fn der(pem_file: &Path) -> Vec<u8> {
    let pem = std::fs::read(pem_file).unwrap_or_else(|e| panic!("{}: {e}", pem_file.display()));
    let (anchors, refused) = runtrust_attestation::ek::TrustAnchors::load_pem(&pem).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    anchors.der_certs()[0].clone()
}

fn vendor_ca(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/ek-ca").join(name);
    assert!(p.is_file(), "{} missing: the vendor EK CA test data (shared/testdata/ek-ca) is needed", p.display());
    p
}

/// Defines NV index `index` (owner-defined, readable with its empty authValue) of `size` bytes holding `data`.
fn nv_write(t: &SwTpm, index: &str, size: usize, data: &[u8]) {
    let dir = t.scratch(&format!("nv-{index}"));
    std::fs::write(dir.join("data"), data).unwrap();
    let size = size.to_string();
    let attrs = "ownerread|ownerwrite|authread|authwrite|no_da";
    t.tpm2("tpm2_nvdefine", &[index, "-C", "o", "-s", &size, "-a", attrs], &dir);
    t.tpm2("tpm2_nvwrite", &[index, "-C", "o", "-i", "data"], &dir);
}

#[test]
fn ek_chain_in_nv_is_sent_at_enrollment() {
    let t = SwTpm::start();
    // Only the root: the EK certificate's issuer (the local CA's intermediate) must come from the host.
    let svc = Service::start(&[t.ca_root()]);
    let cred = svc.add_principal("host", "attester");
    let r = svc.client(Some(&t), Some(&cred), &["enroll"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("ek_untrusted"), "{r:?}");

    // Intel PTT's layout: DER certificates back to back in 0x01c00100.., padded; a damaged index between.
    let (intel, local, stm) =
        (der(&vendor_ca("INTEL_I.pem")), der(&t.ca_intermediate()), der(&vendor_ca("STM_RSA_05I.pem")));
    let mut first = [intel.clone(), local.clone()].concat();
    first.resize(2048, 0xff);
    nv_write(&t, "0x01c00100", 2048, &first);
    nv_write(&t, "0x01c00101", 64, b"not a certificate, and not padding either: a damaged index.....");
    nv_write(&t, "0x01c00103", stm.len() + 100, &stm);
    let mut a = tss_via(&t, &t.tcti(), KeyAlg::Rsa);
    assert_eq!(a.ek_intermediates().unwrap(), vec![intel, local, stm]);
    drop(a);

    let r = svc.client(Some(&t), Some(&cred), &["enroll"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.trim().starts_with("sha256:"), "{r:?}");
}
