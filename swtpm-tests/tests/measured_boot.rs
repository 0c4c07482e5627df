//! Issue "Measured boot" end to end on swtpm: the test event-log writer extends the TPM's PCRs and writes
//! the log; a policy captured with `--event-log` holds measured-boot rules. Matching log → token; edited
//! log → event_log_mismatch; secure boot off under a policy requiring it → policy_mismatch naming the rule;
//! no log → denied. Every denial: exit 3, no token file, the code in the audit log.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use runtrust::api::ChallengeResponse;
use runtrust::client::{Client, ClientError, ClientOptions};
use runtrust::tpm::{KeyAlg, TpmOptions, TssTpm};
use runtrust_attestation::eventlog::builder::{sha256_list, signature_list, LogBuilder};
use runtrust_attestation::eventlog::facts::{Guid, EFI_CERT_X509_GUID};
use runtrust_attestation::HashAlg;
use swtpm_tests::{eventlog, Run, Service, SwTpm};

const CMDLINE: &str = "/vmlinuz-6.1 root=/dev/vda1 ro quiet";

/// A boot with secure boot `on`: CRTM, PK/KEK/db/dbx, separators, shim and grub, a kernel command line.
fn firmware(secure_boot: bool) -> LogBuilder {
    let owner = Guid::new(0x7761_8d1f, 0x1234, 0x5678, [1, 2, 3, 4, 5, 6, 7, 8]);
    let mut b = LogBuilder::new(&[HashAlg::Sha1, HashAlg::Sha256]);
    b.s_crtm_version("runtrust swtpm firmware 1.0").secure_boot(secure_boot).secure_boot_dbs(
        &signature_list(EFI_CERT_X509_GUID, owner, &[b"PK certificate"]),
        &signature_list(EFI_CERT_X509_GUID, owner, &[b"KEK certificate"]),
        &signature_list(EFI_CERT_X509_GUID, owner, &[b"db certificate"]),
        &sha256_list(owner, &[[0xDB; 32]]),
    );
    b.separators(0..8)
        .boot_app(b"shim 15.8", "\\EFI\\BOOT\\BOOTX64.EFI")
        .boot_app(b"grub 2.12", "\\EFI\\debian\\grubx64.efi")
        .kernel_cmdline(CMDLINE);
    b
}

struct Fixture {
    tpm: SwTpm,
    svc: Service,
    cred: PathBuf,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Fixture {
    /// An enrolled host booted with `firmware(secure_boot)`, under a policy captured from it with
    /// `--event-log` and then edited by `edit`.
    fn new(secure_boot: bool, edit: impl FnOnce(String) -> String) -> Self {
        let tpm = SwTpm::start();
        let svc = Service::start(&[tpm.ca_root(), tpm.ca_intermediate()]);
        let cred = svc.add_attester("web-01", &["env=test"]);
        let r = svc.client(Some(&tpm), Some(&cred), &["enroll", "--tag", "env=test"]);
        assert_eq!(r.code, 0, "enroll: {r:?}");
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("binary_bios_measurements");
        eventlog::boot(&tpm, &firmware(secure_boot), &log);
        let policy = dir.path().join("policy.toml");
        let args = [
            "policy",
            "capture",
            "--id",
            "mb",
            "--tag",
            "env=test",
            "--scope",
            "deploy/web/*",
            "--event-log",
            log.to_str().unwrap(),
            "--out",
            policy.to_str().unwrap(),
        ];
        let r = svc.client(Some(&tpm), Some(&cred), &args);
        assert_eq!(r.code, 0, "capture: {r:?}");
        let text = edit(std::fs::read_to_string(&policy).unwrap());
        std::fs::write(&policy, &text).unwrap();
        let r = svc.client(None, Some(&svc.admin_credential()), &["policy", "apply", policy.to_str().unwrap()]);
        assert_eq!(r.code, 0, "apply: {r:?}\n{text}");
        Fixture { tpm, svc, cred, dir, log }
    }

    fn request(&self, out: &Path, log: &Path) -> Run {
        let args = [
            "--json",
            "token",
            "request",
            "--scope",
            "deploy/web/api",
            "--audience",
            "gw-1",
            "--out",
            out.to_str().unwrap(),
            "--event-log",
            log.to_str().unwrap(),
        ];
        self.svc.client(Some(&self.tpm), Some(&self.cred), &args)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn issued(&self) -> usize {
        self.svc.audit().iter().filter(|e| e["event"] == "token.issue").count()
    }

    /// Refused with `code` (exit 3, on stderr and in the --json output), no token file, none issued, audited.
    fn assert_denied(&self, r: &Run, out: &Path, code: &str, issued_before: usize) -> serde_json::Value {
        assert_eq!(r.code, 3, "{r:?}");
        assert!(r.stderr.contains(code), "expected {code}: {r:?}");
        assert!(!out.exists(), "a token file was written for a denial");
        let audit = self.svc.audit();
        assert_eq!(audit.iter().filter(|e| e["event"] == "token.issue").count(), issued_before, "a token was issued");
        assert!(audit.iter().any(|e| e["event"] == "token.deny" && e["code"] == code), "no {code} in the audit log");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("--json denial");
        assert_eq!(v["code"], code);
        v
    }
}

#[test]
fn matching_log_gets_a_token_and_an_edited_log_does_not() {
    let f = Fixture::new(true, |t| t);
    let policy = std::fs::read_to_string(f.path("policy.toml")).unwrap();
    assert!(policy.contains("[measured_boot]\nrequire_secure_boot = true"), "{policy}");
    let shim = format!("sha256:{}", hex::encode(HashAlg::Sha256.digest(b"shim 15.8")));
    assert!(policy.contains(&format!("\"{shim}\",  # \\EFI\\BOOT\\BOOTX64.EFI")), "{policy}");
    assert!(policy.contains(&format!("kernel_cmdline_allow = [\"{CMDLINE}\"]")), "{policy}");

    // The challenge asks for the log and for sha256 PCRs 0-8 (8: the command line rule).
    let client = Client::new(&ClientOptions {
        server: Some(f.svc.url().to_owned()),
        server_ca: Some(f.svc.ca()),
        credential: Some(f.cred.clone()),
    })
    .unwrap();
    let ch: ChallengeResponse = client.post("/v1/challenge", &serde_json::json!({})).unwrap();
    assert!(ch.event_log);
    assert_eq!(ch.pcr_selection, "sha256:0,1,2,3,4,5,6,7,8");

    // (a) The matching log: a token.
    let out = f.path("ok.token");
    let r = f.request(&out, &f.log);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(out.exists());
    assert_eq!(f.issued(), 1);

    // (b1) One byte of the kernel command line changed after the fact ("ro" → "rw"): its digest no longer
    // hashes the text.
    let bytes = std::fs::read(&f.log).unwrap();
    let at = bytes.windows(CMDLINE.len()).position(|w| w == CMDLINE.as_bytes()).unwrap() + CMDLINE.find(" ro").unwrap();
    let mut edited = bytes.clone();
    edited[at + 2] = b'w';
    let edited_path = f.path("edited.bin");
    std::fs::write(&edited_path, &edited).unwrap();
    let out = f.path("edited.token");
    let v = f.assert_denied(&f.request(&out, &edited_path), &out, "event_log_mismatch", 1);
    assert!(v["detail"].as_str().unwrap().contains("kernel command line"), "{v}");

    // (b2) An event the TPM never measured appended (a boot application in PCR 4): the quoted PCR 4 is
    // reproduced up to the last real PCR 4 event, which the diagnostics name.
    let mut longer = firmware(true);
    longer.boot_app(b"evil", "\\EFI\\evil.efi");
    let longer_path = f.path("longer.bin");
    std::fs::write(&longer_path, longer.bytes()).unwrap();
    let last_pcr4 = runtrust_attestation::eventlog::parse(&bytes)
        .unwrap()
        .events
        .iter()
        .rev()
        .find(|e| e.pcr == 4)
        .map(|e| e.index)
        .unwrap();
    let out = f.path("longer.token");
    let v = f.assert_denied(&f.request(&out, &longer_path), &out, "event_log_mismatch", 1);
    let pcrs = v["diagnostics"]["pcrs"].as_array().unwrap();
    assert_eq!(pcrs.len(), 1, "{v}");
    assert_eq!((pcrs[0]["bank"].as_str(), pcrs[0]["pcr"].as_u64()), (Some("sha256"), Some(4)), "{v}");
    assert_eq!(pcrs[0]["kind"], "extra_events");
    assert_eq!(pcrs[0]["last_agreeing_event"], last_pcr4, "{v}");

    // (b3) A log that is not a log.
    let cut = f.path("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = f.path("cut.token");
    let v = f.assert_denied(&f.request(&out, &cut), &out, "event_log_mismatch", 1);
    assert!(v["diagnostics"]["offset"].is_u64(), "{v}");

    // (d) No log: the CLI says where it looked; a request without one is denied by the service.
    let out = f.path("none.token");
    let r = f.request(&out, &f.path("missing.bin"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("missing.bin") && r.stderr.contains("--event-log"), "{r:?}");
    let mut tss = TssTpm::open(TpmOptions {
        tcti: f.tpm.tcti(),
        state_dir: f.tpm.host_state_dir(),
        ek_alg: KeyAlg::Rsa,
        ak_alg: KeyAlg::Rsa,
    })
    .unwrap();
    let ch: ChallengeResponse = client.post("/v1/challenge", &serde_json::json!({})).unwrap();
    let request = common::request_for(ch, &mut tss);
    match client.post::<_, serde_json::Value>("/v1/tokens", &request) {
        Err(ClientError::Denied(p)) => {
            assert_eq!(p.code, "event_log_mismatch");
            assert!(p.detail.contains("requires the event log"), "{}", p.detail);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.issued(), 1);
}

#[test]
fn secure_boot_off_is_denied_naming_the_rule() {
    let f = Fixture::new(false, |t| t.replace("require_secure_boot = false", "require_secure_boot = true"));
    let out = f.path("t.token");
    let r = f.request(&out, &f.log);
    let v = f.assert_denied(&r, &out, "policy_mismatch", 0);
    assert!(r.stderr.contains("measured_boot.require_secure_boot"), "{r:?}");
    let failures = v["diagnostics"]["measured_boot"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{v}");
    assert_eq!(failures[0]["rule"], "require_secure_boot");
    assert_eq!(failures[0]["actual"], "SecureBoot = 0 (secure boot off)");
    assert!(failures[0]["expected"].as_str().unwrap().contains("SecureBoot = 1"));
}
