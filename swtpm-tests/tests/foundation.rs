//! Issue "Foundation" against real swtpm instances: quotes by RSA and ECC AKs, each tamper, pcr_extend,
//! 500 quotes without a resource manager, tpm2-tools interoperability both ways, CLI exit codes.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;

use runtrust::tpm::{KeyAlg, Quote, Tpm, TpmError, TpmOptions, TssTpm};
use runtrust_attestation::ak::check_ak;
use runtrust_attestation::quote::QuoteError;
use runtrust_attestation::signing::SignatureError;
use runtrust_attestation::tpm2::{PcrBank, PcrSelection};
use runtrust_attestation::{verify_quote, DenialCode, HashAlg, PcrValues, Public, QuoteEvidence, QuoteOptions};
use swtpm_tests::{check_tools, SwTpm};

fn open(tpm: &SwTpm, ek: KeyAlg, ak: KeyAlg) -> TssTpm {
    TssTpm::open(TpmOptions { tcti: tpm.tcti(), state_dir: tpm.host_state_dir(), ek_alg: ek, ak_alg: ak })
        .expect("open swtpm")
}

fn sel(bank: HashAlg, pcrs: impl IntoIterator<Item = u8>) -> PcrSelection {
    PcrSelection::new(vec![PcrBank::new(bank, pcrs).unwrap()]).unwrap()
}

fn nonce(tag: u8) -> Vec<u8> {
    (0..32).map(|i| i ^ tag).collect()
}

fn verify(ak: &Public, q: &Quote, nonce: &[u8]) -> Result<(), QuoteError> {
    let ev = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    verify_quote(ak, &ev, nonce, &QuoteOptions::default()).map(|_| ())
}

fn round_trip(ek: KeyAlg, ak_alg: KeyAlg) {
    let sw = SwTpm::start();
    let mut tpm = open(&sw, ek, ak_alg);
    let ak = tpm.ak_public().unwrap();
    check_ak(&ak, false).unwrap();
    tpm.pcr_extend(HashAlg::Sha256, 16, &HashAlg::Sha256.digest(b"round trip")).unwrap();
    let selection = sel(HashAlg::Sha256, [0, 1, 2, 7, 16]);
    let q = tpm.quote(&nonce(1), &selection).unwrap();
    verify(&ak, &q, &nonce(1)).unwrap();
    assert_eq!(q.pcrs.len(), 5);
    assert_ne!(q.pcrs.get(HashAlg::Sha256, 16).unwrap(), &[0u8; 32], "PCR 16 was extended");
}

#[test]
fn quote_round_trip_rsa_ak() {
    round_trip(KeyAlg::Rsa, KeyAlg::Rsa);
}

#[test]
fn quote_round_trip_ecc_ak() {
    round_trip(KeyAlg::Ecc, KeyAlg::Ecc);
}

#[test]
fn quote_round_trip_ecc_p384_ek_and_ak() {
    round_trip(KeyAlg::Ecc384, KeyAlg::Ecc384);
}

#[test]
fn multibank_quote() {
    let sw = SwTpm::start();
    let mut tpm = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa);
    let ak = tpm.ak_public().unwrap();
    let selection = PcrSelection::new(vec![
        PcrBank::new(HashAlg::Sha1, 0..=9).unwrap(),
        PcrBank::new(HashAlg::Sha256, 0..=23).unwrap(),
    ])
    .unwrap();
    let q = tpm.quote(&nonce(2), &selection).unwrap();
    assert_eq!(q.pcrs.len(), 34, "more than 8 PCRs: TPM2_PCR_Read needed several calls");
    verify(&ak, &q, &nonce(2)).unwrap();
}

#[test]
fn inactive_bank_is_a_clear_error() {
    let sw = SwTpm::builder().banks("sha256").start();
    let mut tpm = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa);
    let err = tpm.quote(&nonce(3), &sel(HashAlg::Sha1, 0..=7)).unwrap_err();
    assert!(matches!(err, TpmError::BankNotActive { bank: HashAlg::Sha1, .. }), "{err}");
    let err = tpm.pcr_read(&sel(HashAlg::Sha384, [0])).unwrap_err();
    assert!(matches!(err, TpmError::BankNotActive { .. }), "{err}");
}

#[test]
fn each_tamper_fails_with_its_own_error() {
    let sw = SwTpm::start();
    let mut tpm = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa);
    let ak = tpm.ak_public().unwrap();
    let n = nonce(4);
    let q = tpm.quote(&n, &sel(HashAlg::Sha256, 0..=7)).unwrap();
    verify(&ak, &q, &n).unwrap();

    // nonce
    assert_eq!(verify(&ak, &q, &nonce(5)), Err(QuoteError::NonceMismatch));

    // a PCR value
    let mut t = q.clone();
    t.pcrs.insert(HashAlg::Sha256, 3, vec![0x33; 32]).unwrap();
    assert!(matches!(verify(&ak, &t, &n), Err(QuoteError::PcrDigestMismatch { .. })));

    // PCR relabel: the same values claimed for PCRs 8-15
    let mut relabelled = PcrValues::new();
    for (b, i, v) in q.pcrs.iter() {
        relabelled.insert(b, i + 8, v.to_vec()).unwrap();
    }
    let t = Quote { pcrs: relabelled, ..q.clone() };
    assert!(matches!(verify(&ak, &t, &n), Err(QuoteError::PcrSelectionMismatch { .. })));

    // a signature byte
    let mut t = q.clone();
    let last = t.signature.len() - 1;
    t.signature[last] ^= 1;
    assert!(matches!(verify(&ak, &t, &n), Err(QuoteError::Signature(SignatureError::Invalid(_)))));

    // an attest byte (the clock)
    let mut t = q.clone();
    let clock_at = t.attest.len() - (2 + 32) - 10 - 8 - 17; // pcrDigest, pcrSelect, firmwareVersion, clockInfo
    t.attest[clock_at] ^= 1;
    assert!(matches!(verify(&ak, &t, &n), Err(QuoteError::Signature(SignatureError::Invalid(_)))));

    // selection: a verifier that asked for PCRs 0-6 gets 0-7
    let asked = sel(HashAlg::Sha256, 0..=6);
    let ev = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
    let opts = QuoteOptions { expected_selection: Some(&asked), ..Default::default() };
    assert!(matches!(verify_quote(&ak, &ev, &n, &opts), Err(QuoteError::SelectionNotRequested { .. })));

    // a quote by another TPM's AK
    let other = SwTpm::start();
    let other_ak = open(&other, KeyAlg::Rsa, KeyAlg::Rsa).ak_public().unwrap();
    assert_eq!(verify(&other_ak, &q, &n).unwrap_err().code(), DenialCode::SignatureInvalid);
}

#[test]
fn pcr_extend_changes_the_digest_and_old_expectation_fails() {
    let sw = SwTpm::start();
    let mut tpm = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa);
    let ak = tpm.ak_public().unwrap();
    let selection = sel(HashAlg::Sha256, [0, 16]);
    let before = tpm.quote(&nonce(6), &selection).unwrap();
    tpm.pcr_extend(HashAlg::Sha256, 16, &[0xab; 32]).unwrap();
    let after = tpm.quote(&nonce(7), &selection).unwrap();
    verify(&ak, &after, &nonce(7)).unwrap();
    assert_ne!(before.pcrs, after.pcrs);
    // The new quote with the old (golden) values: the digest no longer matches.
    let stale = Quote { pcrs: before.pcrs.clone(), ..after.clone() };
    let err = verify(&ak, &stale, &nonce(7)).unwrap_err();
    assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{err}");
    assert_eq!(err.code(), DenialCode::PcrMismatch);
    // Independent check of the extend: new = H(old ‖ digest).
    let old = before.pcrs.get(HashAlg::Sha256, 16).unwrap();
    let expect = HashAlg::Sha256.digest(&[old, &[0xab; 32][..]].concat());
    assert_eq!(after.pcrs.get(HashAlg::Sha256, 16).unwrap(), expect.as_slice());
}

#[test]
fn five_hundred_quotes_without_a_resource_manager() {
    let sw = SwTpm::start();
    let selection = sel(HashAlg::Sha256, 0..=7);
    let mut tpm = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa);
    let ak = tpm.ak_public().unwrap();
    for i in 0..500u32 {
        let n = HashAlg::Sha256.digest(&i.to_be_bytes());
        let q = tpm.quote(&n, &selection).unwrap_or_else(|e| panic!("quote {i}: {e}"));
        verify(&ak, &q, &n).unwrap_or_else(|e| panic!("quote {i}: {e}"));
    }
    drop(tpm);
    // Opening again and again: the EK and AK of each TssTpm are flushed on drop (swtpm holds 3 objects).
    for i in 0..10u32 {
        let mut tpm = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa);
        let n = HashAlg::Sha256.digest(&[i as u8]);
        let q = tpm.quote(&n, &selection).unwrap_or_else(|e| panic!("reopen {i}: {e}"));
        verify(&ak, &q, &n).unwrap();
    }
}

#[test]
fn ak_is_kept_in_the_state_dir_and_bound_to_its_tpm() {
    let sw = SwTpm::start();
    let first = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa).ak_public().unwrap();
    let again = open(&sw, KeyAlg::Rsa, KeyAlg::Rsa).ak_public().unwrap();
    assert_eq!(first.name(), again.name(), "the AK is reloaded, not recreated");
    for f in ["pub", "priv", "ekname"] {
        let p = sw.host_state_dir().join(format!("ak-rsa-under-rsa-ek.{f}"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
    // The same state dir against another TPM: refused, not silently replaced.
    let other = SwTpm::start();
    let opts =
        TpmOptions { tcti: other.tcti(), state_dir: sw.host_state_dir(), ek_alg: KeyAlg::Rsa, ak_alg: KeyAlg::Rsa };
    let err = TssTpm::open(opts).unwrap().ak_public().unwrap_err();
    assert!(matches!(err, TpmError::ForeignAk { .. }), "{err}");
}

#[test]
fn ek_certificate_and_public_match() {
    let sw = SwTpm::start();
    for alg in [KeyAlg::Rsa, KeyAlg::Ecc384] {
        let mut tpm = open(&sw, alg, KeyAlg::Rsa);
        let cert = tpm.ek_certificate().unwrap().expect("swtpm_setup --create-ek-cert wrote one");
        let ek = tpm.ek_public().unwrap();
        // The key inside the certificate is the EK the template produced.
        let key_bytes = match &ek.key {
            runtrust_attestation::tpm2::PublicKey::Rsa { modulus, .. } => modulus.clone(),
            runtrust_attestation::tpm2::PublicKey::Ecc { x, .. } => x.clone(),
        };
        assert!(cert.windows(key_bytes.len()).any(|w| w == key_bytes), "{alg:?}: EK key not in the certificate");
        let dir = sw.scratch(alg.name());
        let nv = if alg == KeyAlg::Rsa { "0x1c00002" } else { "0x1c00016" };
        let from_tools = sw.tpm2("tpm2_nvread", &[nv], &dir);
        assert_eq!(cert, from_tools, "{alg:?}");
    }
    // No ECC P-256 certificate on swtpm: absent, not an error.
    assert_eq!(open(&sw, KeyAlg::Ecc, KeyAlg::Rsa).ek_certificate().unwrap(), None);
}

#[test]
fn tpm2_tools_quote_verifies_with_runtrust_and_tampers_exit_3() {
    let sw = SwTpm::start();
    let d = sw.scratch("tools");
    let dir = d.to_str().unwrap();
    sw.tpm2("tpm2_createek", &["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"], &d);
    sw.tpm2(
        "tpm2_createak",
        &["-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256", "-s", "rsassa", "-u", "ak.pub"],
        &d,
    );
    sw.tpm2("tpm2_flushcontext", &["-t"], &d);
    let n = hex::encode(nonce(8));
    sw.tpm2(
        "tpm2_quote",
        &[
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,4,5,6,7",
            "-q",
            &n,
            "-m",
            "attest",
            "-s",
            "signature",
            "-o",
            "pcrs.bin",
        ],
        &d,
    );
    let verify_args = |nonce: &str, sig: &str, pcrs: &str| {
        vec![
            "quote".to_owned(),
            "verify".into(),
            "--ak-public".into(),
            format!("{dir}/ak.pub"),
            "--attest".into(),
            format!("{dir}/attest"),
            "--signature".into(),
            format!("{dir}/{sig}"),
            "--nonce".into(),
            nonce.into(),
            "--pcrs".into(),
            format!("{dir}/{pcrs}"),
        ]
    };
    let run = |args: Vec<String>| sw.runtrust(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let ok = run(verify_args(&n, "signature", "pcrs.bin"));
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("quote valid"));

    let wrong_nonce = hex::encode(nonce(9));
    let r = run(verify_args(&wrong_nonce, "signature", "pcrs.bin"));
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("nonce_mismatch"), "{r:?}");

    let mut sig = fs::read(d.join("signature")).unwrap();
    sig[100] ^= 1;
    fs::write(d.join("sig.bad"), sig).unwrap();
    let r = run(verify_args(&n, "sig.bad", "pcrs.bin"));
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("signature_invalid"), "{r:?}");

    // Relabel PCRs 0-7 as 8-15 in the tpm2-tools file: tpm2_checkquote 5.4 accepts this, runtrust must not.
    let mut pcrs = fs::read(d.join("pcrs.bin")).unwrap();
    pcrs[7] = 0x00;
    pcrs[8] = 0xff;
    fs::write(d.join("pcrs.relabelled"), pcrs).unwrap();
    let r = run(verify_args(&n, "signature", "pcrs.relabelled"));
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("pcr_mismatch"), "{r:?}");

    let mut args = verify_args(&wrong_nonce, "signature", "pcrs.bin");
    args.insert(0, "--json".into());
    let r = run(args);
    assert_eq!(r.code, 3);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["code"], "nonce_mismatch");
}

#[test]
fn runtrust_quote_verifies_with_tpm2_checkquote() {
    let sw = SwTpm::start();
    let d = sw.scratch("out");
    let n = hex::encode(nonce(10));
    for ak in ["rsa", "ecc"] {
        let out = d.join(ak);
        let r = sw.runtrust(&[
            "--ak-alg",
            ak,
            "--ek-alg",
            ak,
            "tpm",
            "quote",
            "--nonce",
            &n,
            "--pcrs",
            "0-7",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        let o = out.to_str().unwrap();
        sw.tpm2(
            "tpm2_checkquote",
            &["-u", &format!("{o}/ak.pub"), "-m", &format!("{o}/attest"), "-s", &format!("{o}/signature"), "-q", &n],
            &d,
        );
        let r = sw.runtrust(&[
            "quote",
            "verify",
            "--ak-public",
            &format!("{o}/ak.pub"),
            "--attest",
            &format!("{o}/attest"),
            "--signature",
            &format!("{o}/signature"),
            "--nonce",
            &n,
            "--pcrs",
            &format!("{o}/pcrs.json"),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
    }
}

#[test]
fn cli_tpm_commands_and_unreachable_tpm() {
    let sw = SwTpm::start();
    let r = sw.runtrust(&["--json", "tpm", "info"]);
    assert_eq!(r.code, 0, "{r:?}");
    let info: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(info["manufacturer"], "IBM");
    assert!(info["pcr_banks"].as_array().unwrap().contains(&"sha256".into()));
    assert_eq!(info["ek_certificate_present"], true);

    let r = sw.runtrust(&["tpm", "extend", "--pcr", "16", "--data", "hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    let expect = HashAlg::Sha256.digest(&[[0u8; 32].as_slice(), &HashAlg::Sha256.digest(b"hello")].concat());
    assert!(r.stdout.contains(&hex::encode(&expect)), "{r:?}");
    let r = sw.runtrust(&["--json", "tpm", "pcrs", "--pcrs", "16"]);
    let v: PcrValues = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.get(HashAlg::Sha256, 16).unwrap(), expect.as_slice());

    // Usage errors exit 2; a TPM that is not there exits 4 with a hint.
    assert_eq!(sw.runtrust(&["tpm", "quote", "--nonce", "zz", "--out", "/tmp/x"]).code, 2);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = sw.runtrust(&["--tcti", &format!("swtpm:host=127.0.0.1,port={dead}"), "tpm", "info"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("scripts/swtpm.sh start"), "{r:?}");
}

#[test]
fn missing_swtpm_fails_with_an_install_hint() {
    let err = check_tools(&["swtpm", "swtpm_setup"], "/nonexistent").unwrap_err();
    assert!(err.contains("apt-get install swtpm swtpm-tools"), "{err}");
    assert!(check_tools(&["sh"], &std::env::var("PATH").unwrap()).is_ok());
}
