//! The CLI contract (docs/design.md §9) where no TPM is needed: help, usage errors, offline quote verification.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn runtrust(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_runtrust"))
        .args(args)
        .env_remove("RUNTRUST_TCTI")
        .output()
        .expect("run runtrust");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn vector(name: &str, file: &str) -> String {
    format!("{}/attestation/tests/vectors/{name}/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn nonce(name: &str) -> String {
    std::fs::read_to_string(vector(name, "nonce.hex")).unwrap().trim().to_owned()
}

fn verify(name: &str, extra: &[&str], pcrs: &str) -> (i32, String, String) {
    let (ak, attest, sig, pcrs) =
        (vector(name, "ak.pub"), vector(name, "attest"), vector(name, "signature"), vector(name, pcrs));
    let n = nonce(name);
    let mut args =
        vec!["quote", "verify", "--ak-public", &ak, "--attest", &attest, "--signature", &sig, "--pcrs", &pcrs];
    args.extend_from_slice(extra);
    if !extra.contains(&"--nonce") {
        args.extend_from_slice(&["--nonce", &n]);
    }
    runtrust(&args)
}

#[test]
fn help_teaches_exit_codes_and_examples() {
    let (code, out, _) = runtrust(&["--help"]);
    assert_eq!(code, 0);
    for want in ["Exit codes", "3 denied", "4 unavailable", "runtrust tpm quote"] {
        assert!(out.contains(want), "--help lacks {want:?}:\n{out}");
    }
    let (code, out, _) = runtrust(&["quote", "verify", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("tpm2_quote"), "{out}");
    let (code, out, _) = runtrust(&["tpm", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("quote") && out.contains("pcrs") && out.contains("info"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(runtrust(&[]).0, 2);
    assert_eq!(runtrust(&["quote", "verify"]).0, 2);
    assert_eq!(runtrust(&["tpm", "quote", "--nonce", "xyz", "--out", "d"]).0, 2);
}

#[test]
fn real_vectors_verify_offline_in_both_pcr_formats() {
    for name in ["rsa", "rsapss", "ecc", "ecc384", "rsa-multibank"] {
        let (code, out, err) = verify(name, &[], "pcrs.json");
        assert_eq!(code, 0, "{name}: {out}{err}");
    }
    for name in ["rsa", "ecc", "rsa-multibank"] {
        let (code, out, err) = verify(name, &["--json"], "pcrs.bin");
        assert_eq!(code, 0, "{name}: {out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["valid"], true);
        assert_eq!(v["pcrs_verified"], true);
    }
}

#[test]
fn denials_exit_3_with_the_code_on_stderr() {
    let wrong = "00".repeat(32);
    let (code, out, err) = verify("ecc", &["--json", "--nonce", &wrong], "pcrs.json");
    assert_eq!(code, 3);
    assert!(err.contains("nonce_mismatch"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["code"], "nonce_mismatch");

    // PCR values for another selection (the multibank vector's) against a sha256:0-7 quote.
    let (code, _, err) = verify("rsa", &[], "../rsa-multibank/pcrs.json");
    assert_eq!(code, 3);
    assert!(err.contains("pcr_mismatch"), "{err}");

    // A garbage AK is ak_invalid; a missing file is an error (1), not a denial.
    let (code, _, err) = runtrust(&[
        "quote",
        "verify",
        "--ak-public",
        &vector("rsa", "attest"),
        "--attest",
        &vector("rsa", "attest"),
        "--signature",
        &vector("rsa", "signature"),
        "--nonce",
        &nonce("rsa"),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("ak_invalid"), "{err}");
    let (code, _, err) = runtrust(&[
        "quote",
        "verify",
        "--ak-public",
        "/nonexistent",
        "--attest",
        "a",
        "--signature",
        "s",
        "--nonce",
        "00",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent"), "{err}");
}

fn eventlog_file(name: &str) -> String {
    format!("{}/../shared/testdata/eventlogs/{name}", env!("CARGO_MANIFEST_DIR"))
}

const EVENTLOGS: [&str; 5] =
    ["arch-linux-workstation", "cos-85-amd-sev", "glinux-alex", "rhel8-uefi", "ubuntu-2104-no-dbx"];

#[test]
fn eventlog_replay_json_is_the_real_pcr_values() {
    for name in EVENTLOGS {
        let (code, out, err) = runtrust(&["eventlog", "replay", "--json", &eventlog_file(&format!("{name}.bin"))]);
        assert_eq!(code, 0, "{name}: {err}");
        let replayed: serde_json::Value = serde_json::from_str(&out).unwrap();
        let truth: serde_json::Value =
            serde_json::from_slice(&std::fs::read(eventlog_file(&format!("{name}.json"))).unwrap()).unwrap();
        // Exactly the PCRs the machine's TPM held, in every bank the JSON lists (and no other PCR).
        for (bank, pcrs) in truth["banks"].as_object().unwrap() {
            assert_eq!(&replayed[bank], pcrs, "{name} {bank}");
        }
    }
    let (code, out, _) = runtrust(&["eventlog", "replay", &eventlog_file("glinux-alex.bin")]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("sha256   0: ")), "{out}");
}

#[test]
fn eventlog_show_decodes_events_and_facts() {
    let (code, out, err) = runtrust(&["eventlog", "show", "--json", &eventlog_file("rhel8-uefi.bin")]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "crypto-agile");
    assert_eq!(v["events"][3]["type_name"], "EV_EFI_VARIABLE_DRIVER_CONFIG");
    assert!(v["events"][3]["data"].as_str().unwrap().ends_with("SecureBoot = 01"));
    assert_eq!(v["facts"]["secure_boot"], true);
    assert_eq!(v["facts"]["boot_apps"][0]["path"], "\\EFI\\redhat\\shimx64.efi");
    assert_eq!(v["verified"], false);
    let (code, out, _) = runtrust(&["eventlog", "show", &eventlog_file("cos-85-amd-sev.bin")]);
    assert_eq!(code, 0);
    assert!(out.contains("secure boot: on") && out.contains("GCE Virtual Firmware v1"), "{out}");
}

#[test]
fn eventlog_bad_file_names_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.bin");
    let bytes = std::fs::read(eventlog_file("rhel8-uefi.bin")).unwrap();
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let (code, out, err) = runtrust(&["eventlog", "replay", "--json", cut.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    // With --json the failure is also one JSON object on stdout (docs/design.md §9), never a partial replay.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"], "error", "{out}");
    assert!(v["detail"].as_str().unwrap().contains("truncated at byte 87"), "{out}");
    assert!(v.get("sha256").is_none(), "{out}");
    assert!(err.contains("TPMT_HA.digest: truncated at byte 87"), "{err}");
    let (code, _, err) = runtrust(&["eventlog", "show", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("missing"), "{err}");
}
