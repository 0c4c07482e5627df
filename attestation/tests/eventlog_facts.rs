//! Measured-boot facts: from the real logs (`shared/testdata/eventlogs`, values looked up in the data), from
//! built logs, and from malformed UEFI variable data.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use runtrust_attestation::eventlog::builder::{sha256_list, signature_list, variable_data, LogBuilder};
use runtrust_attestation::eventlog::event_type::*;
use runtrust_attestation::eventlog::facts::*;
use runtrust_attestation::eventlog::{self, describe::describe, EventLog, FactsError, VerifyError};
use runtrust_attestation::{HashAlg, PcrValues};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/eventlogs")
}

fn log(name: &str) -> EventLog {
    eventlog::parse(&std::fs::read(dir().join(format!("{name}.bin"))).unwrap()).unwrap()
}

fn expected(name: &str) -> PcrValues {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.json"))).unwrap()).unwrap();
    serde_json::from_value(json["banks"].clone()).unwrap()
}

/// The quoted values of `pcrs` in sha256 only.
fn sha256_only(values: &PcrValues, pcrs: &[u8]) -> PcrValues {
    let mut out = PcrValues::new();
    for (bank, pcr, v) in values.iter() {
        if bank == HashAlg::Sha256 && pcrs.contains(&pcr) {
            out.insert(bank, pcr, v.to_vec()).unwrap();
        }
    }
    out
}

/// (log, SecureBoot, boot application sha256 prefixes, db entries, dbx entries, kernel command line start)
type Case = (&'static str, Option<bool>, &'static [&'static str], usize, usize, Option<&'static str>);

const ALL: [u8; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn real_logs_facts() {
    // (log, SecureBoot, boot application sha256 prefixes, db entries, dbx entries, kernel command line start)
    let cases: [Case; 5] = [
        ("arch-linux-workstation", Some(false), &["d51e9d20", "7b50cf89"], 12, 77, None),
        ("cos-85-amd-sev", Some(true), &["dba8d69f", "f7bad83f", "6f6afb3c"], 1, 4, Some("/syslinux/vmlinuz.A init=")),
        ("glinux-alex", Some(false), &["0e83d576"], 4, 77, None),
        (
            "rhel8-uefi",
            Some(true),
            &["40d6cae0", "e8a268c4", "e4c0382f"],
            2,
            186,
            Some("(hd0,gpt2)/boot/vmlinuz-4.18.0"),
        ),
        (
            "ubuntu-2104-no-dbx",
            Some(false),
            &["d99c93fc", "b0a836fe"],
            2,
            0,
            Some("/boot/vmlinuz-5.11.0-1008-gcp root="),
        ),
    ];
    for (name, secure_boot, apps, db, dbx, cmdline) in cases {
        let log = log(name);
        let quoted = sha256_only(&expected(name), &ALL);
        let verified = log.verify(&quoted).unwrap_or_else(|e| panic!("{name}: {e}"));
        let f = verified.facts().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.secure_boot, secure_boot, "{name}");
        let found: Vec<String> =
            f.boot_apps.iter().map(|a| hex::encode(a.digest(HashAlg::Sha256).unwrap())[..8].to_owned()).collect();
        assert_eq!(found, apps, "{name}");
        // Only the quoted bank is trusted.
        assert!(f.boot_apps.iter().all(|a| a.digest(HashAlg::Sha1).is_none()), "{name}");
        assert_eq!((f.db.len(), f.dbx.len()), (db, dbx), "{name}");
        assert!(f.pk.measured && f.kek.measured && f.db.measured && f.dbx.measured, "{name}");
        assert_eq!((f.pk.len(), f.debug_mode), (1, false), "{name}");
        assert_eq!(f.kernel_cmdlines.first().map(|c| c.text.starts_with(cmdline.unwrap_or(""))), cmdline.map(|_| true));
        // A separator in each of PCRs 0-7, all 0.
        let mut seps: Vec<u8> = f.separators.iter().map(|s| s.pcr).collect();
        seps.sort_unstable();
        assert_eq!(seps, [0, 1, 2, 3, 4, 5, 6, 7], "{name}");
        assert!(f.separators.iter().all(|s| s.data == [0; 4]));
        // Unverified extraction agrees, with every bank.
        let u = eventlog::unverified_facts(&log).unwrap();
        assert_eq!(u.secure_boot, f.secure_boot);
        assert!(u.boot_apps.iter().all(|a| a.digest(HashAlg::Sha1).is_some()));
    }
    let rhel = eventlog::unverified_facts(&log("rhel8-uefi")).unwrap();
    let paths: Vec<Option<&str>> = rhel.boot_apps.iter().map(|a| a.path.as_deref()).collect();
    assert_eq!(paths, [Some("\\EFI\\redhat\\shimx64.efi"), Some("\\EFI\\redhat\\grubx64.efi"), None]);
    assert!(rhel.kernel_cmdlines[0].text.ends_with("console=ttyS0,38400n8"));
    // The db's Microsoft UEFI CA 2011 certificate, by its SHA-256 fingerprint (in rhel, ubuntu and arch).
    let msft = "48e99b991f57fc52f76149599bff0a58c47154229b9f8d603ac40d3500248507";
    assert!(rhel.db.entry_ids().iter().any(|id| hex::encode(id) == msft));
    // A dbx EFI_CERT_SHA256 entry is the image hash itself.
    let arch = eventlog::unverified_facts(&log("arch-linux-workstation")).unwrap();
    assert_eq!(
        hex::encode(&arch.dbx.entry_ids()[0]),
        "80b4d96931bf0d02fd91a61e19d14f1da452e66db2408ca8604d411f92659f0a"
    );
    assert!(arch.dbx.lists.iter().all(|l| l.signature_type == EFI_CERT_SHA256_GUID));
    assert_eq!(arch.dbx.lists[0].signatures[0].data.len(), 32);
}

#[test]
fn facts_come_only_from_quoted_pcrs() {
    let name = "ubuntu-2104-no-dbx";
    let log = log(name);
    // PCR 8 not quoted: no kernel command line; PCR 4 not quoted: no boot applications.
    let f = log.verify(&sha256_only(&expected(name), &[0, 7])).unwrap().facts().unwrap();
    assert!(f.kernel_cmdlines.is_empty() && f.boot_apps.is_empty());
    assert_eq!(f.secure_boot, Some(false));
    assert_eq!(f.pcrs.iter().copied().collect::<Vec<_>>(), [0, 7]);
    // Not even a VerifiedLog when a quoted PCR disagrees.
    let mut wrong = sha256_only(&expected(name), &[7]);
    wrong.insert(HashAlg::Sha256, 4, vec![0; 32]).unwrap();
    assert!(matches!(log.verify(&wrong), Err(VerifyError::Replay(_))));
}

fn sb_db() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let owner = Guid::new(0x7761_8d1f, 0x1234, 0x5678, [1, 2, 3, 4, 5, 6, 7, 8]);
    let pk = signature_list(EFI_CERT_X509_GUID, owner, &[b"platform key certificate"]);
    let kek = signature_list(EFI_CERT_X509_GUID, owner, &[b"kek certificate"]);
    let db = signature_list(EFI_CERT_X509_GUID, owner, &[b"db certificate 1", b"db certificate 2"]);
    let dbx = [sha256_list(owner, &[[0xAA; 32], [0xBB; 32]]), sha256_list(owner, &[[0xCC; 32]])].concat();
    (pk, kek, db, dbx)
}

fn built(secure_boot: bool, debug: bool) -> LogBuilder {
    let (pk, kek, db, dbx) = sb_db();
    let mut b = LogBuilder::new(&[HashAlg::Sha1, HashAlg::Sha256]);
    b.s_crtm_version("runtrust test firmware").secure_boot(secure_boot).secure_boot_dbs(&pk, &kek, &db, &dbx);
    if debug {
        b.debug_mode();
    }
    b.separators(0..8)
        .boot_app(b"shim image", "\\EFI\\BOOT\\BOOTX64.EFI")
        .boot_app(b"grub image", "\\EFI\\x\\grubx64.efi");
    b.kernel_cmdline("/vmlinuz root=/dev/sda1 ro quiet");
    b
}

/// The PCR values a TPM holds after extending `b`'s events.
fn pcrs_of(b: &LogBuilder) -> PcrValues {
    let log = eventlog::parse(b.bytes()).unwrap();
    let mut quoted = PcrValues::new();
    let replayed = log.replay();
    for pcr in ALL {
        quoted.insert(HashAlg::Sha256, pcr, replayed.value(HashAlg::Sha256, pcr).unwrap()).unwrap();
    }
    // Independently: fold the builder's extends.
    for pcr in ALL {
        let mut v = vec![0u8; 32];
        for e in b.extends().iter().filter(|e| e.pcr == pcr) {
            v = HashAlg::Sha256.digest(&[&v[..], &e.digests[1].1].concat());
        }
        assert_eq!(quoted.get(HashAlg::Sha256, pcr), Some(&v[..]));
    }
    quoted
}

#[test]
fn built_log_facts() {
    let b = built(true, false);
    let log = eventlog::parse(b.bytes()).unwrap();
    let f = log.verify(&pcrs_of(&b)).unwrap().facts().unwrap();
    assert_eq!(f.secure_boot, Some(true));
    assert_eq!((f.pk.len(), f.kek.len(), f.db.len(), f.dbx.len()), (1, 1, 2, 3));
    assert_eq!(f.dbx.entry_ids(), [vec![0xAA; 32], vec![0xBB; 32], vec![0xCC; 32]]);
    assert_eq!(f.db.entry_ids()[0], HashAlg::Sha256.digest(b"db certificate 1"));
    assert_eq!(f.boot_apps.len(), 2);
    assert_eq!(f.boot_apps[1].digest(HashAlg::Sha256), Some(&HashAlg::Sha256.digest(b"grub image")[..]));
    assert_eq!(f.boot_apps[0].path.as_deref(), Some("\\EFI\\BOOT\\BOOTX64.EFI"));
    assert_eq!(f.kernel_cmdlines[0].text, "/vmlinuz root=/dev/sda1 ro quiet");
    assert!(!f.debug_mode);
    assert_eq!(b.extends().len(), log.events.len() - 1);
    assert!(describe(&log.events[1]).contains("runtrust test firmware"));
    assert!(describe(&log.events[2]).ends_with("SecureBoot = 01"));
    assert!(describe(&log.events[6]).ends_with("dbx 2 signature list(s), 3 entries"));

    let off = built(false, true);
    let f = eventlog::parse(off.bytes()).unwrap().verify(&pcrs_of(&off)).unwrap().facts().unwrap();
    assert_eq!((f.secure_boot, f.debug_mode), (Some(false), true));
}

#[test]
fn relabelled_events_do_not_hide() {
    // The debug-mode marker relabelled as EV_POST_CODE (not data-bound, so it still verifies): still found by
    // its digest. A boot application relabelled as EV_POST_CODE: still a boot application.
    let mut b = LogBuilder::new(&[HashAlg::Sha256]);
    b.event_measuring(7, EV_POST_CODE, UEFI_DEBUG_MODE, b"nothing to see")
        .event_measuring(4, EV_POST_CODE, b"evil image", b"")
        .separators(0..8);
    let log = eventlog::parse(b.bytes()).unwrap();
    let quoted = sha256_only(&log.replay().pcrs, &ALL);
    let f = log.verify(&quoted).unwrap().facts().unwrap();
    assert!(f.debug_mode);
    assert_eq!(f.boot_apps.len(), 1);
    assert_eq!(f.boot_apps[0].event_type, EV_POST_CODE);
    // A SecureBoot variable whose digest is not H(data) never becomes a fact.
    let mut b = LogBuilder::new(&[HashAlg::Sha256]);
    let data = variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", &[1]);
    let fake = variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", &[0]);
    b.event_measuring(7, EV_EFI_VARIABLE_DRIVER_CONFIG, &fake, &data);
    let log = eventlog::parse(b.bytes()).unwrap();
    let quoted = sha256_only(&log.replay().pcrs, &[7]);
    assert!(matches!(log.verify(&quoted), Err(VerifyError::DataDigest(_))));
}

#[test]
fn kernel_cmdline_must_hash_to_its_digest() {
    let mut b = LogBuilder::new(&[HashAlg::Sha1, HashAlg::Sha256]);
    b.event_measuring(8, EV_IPL, b"/vmlinuz init=/bin/sh", b"kernel_cmdline: /vmlinuz ro\0");
    let log = eventlog::parse(b.bytes()).unwrap();
    let err = eventlog::unverified_facts(&log).unwrap_err();
    assert!(matches!(err, FactsError::UnboundCommandLine { index: 1, bank: HashAlg::Sha1, .. }), "{err}");
    assert_eq!(err.code(), runtrust_attestation::DenialCode::EventLogMismatch);
    // grub_cmd variants: `linux` arguments are a command line, other commands are not; NUL in or out.
    let mut b = LogBuilder::new(&[HashAlg::Sha256]);
    b.event_measuring(8, EV_IPL, b"linux /vmlinuz a=1", b"grub_cmd: linux /vmlinuz a=1\0")
        .event_measuring(8, EV_IPL, b"linuxefi /vmlinuz b=2\0", b"grub_cmd linuxefi /vmlinuz b=2\0")
        .event_measuring(8, EV_IPL, b"set x=1", b"grub_cmd: set x=1\0");
    let f = eventlog::unverified_facts(&eventlog::parse(b.bytes()).unwrap()).unwrap();
    let texts: Vec<&str> = f.kernel_cmdlines.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["/vmlinuz a=1", "/vmlinuz b=2"]);
}

/// A one-event log holding `data` as a PCR 7 EV_EFI_VARIABLE_DRIVER_CONFIG.
fn variable_log(data: &[u8]) -> EventLog {
    let mut b = LogBuilder::new(&[HashAlg::Sha256]);
    b.event(7, EV_EFI_VARIABLE_DRIVER_CONFIG, data);
    eventlog::parse(b.bytes()).unwrap()
}

#[test]
fn variable_data_truncated_at_every_offset() {
    let (_, _, db, _) = sb_db();
    for (guid, name, value) in
        [(EFI_IMAGE_SECURITY_DATABASE_GUID, "db", db.clone()), (EFI_GLOBAL_VARIABLE, "SecureBoot", vec![1])]
    {
        let full = variable_data(guid, name, &value);
        eventlog::unverified_facts(&variable_log(&full)).unwrap();
        for len in 0..full.len() {
            match eventlog::unverified_facts(&variable_log(&full[..len])) {
                Err(FactsError::Truncated { at, .. }) | Err(FactsError::Invalid { at, .. }) => {
                    assert!(at <= len, "{name} cut at {len}: error at {at}")
                }
                other => panic!("{name} cut at {len}: {other:?}"),
            }
        }
    }
    // Cutting inside the signature lists while keeping the lengths consistent.
    let name_len = 2 * 2 + 32;
    for len in 1..db.len() {
        let full = variable_data(EFI_IMAGE_SECURITY_DATABASE_GUID, "db", &db[..len]);
        let err = eventlog::unverified_facts(&variable_log(&full)).unwrap_err();
        assert!(err.to_string().contains("EFI_SIGNATURE"), "cut at {len}: {err}");
        if let FactsError::Truncated { at, .. } | FactsError::Invalid { at, .. } = err {
            assert!(at >= name_len && at <= full.len(), "cut at {len}: at {at}");
        }
    }
}

#[test]
fn variable_data_absurd_sizes() {
    let sb = variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", &[1]);
    let check = |data: &[u8], field: &str| {
        let err = eventlog::unverified_facts(&variable_log(data)).unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    };
    let mut bad = sb.clone();
    bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    check(&bad, "UnicodeNameLength");
    let mut bad = sb.clone();
    bad[24..32].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    check(&bad, "VariableDataLength");
    check(&[sb.clone(), vec![0]].concat(), "trailing bytes");
    check(&variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", &[2]), "neither 0 nor 1");
    check(&variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", &[1, 0]), "neither 0 nor 1");

    let owner = Guid([9; 16]);
    let list = sha256_list(owner, &[[1; 32]]);
    let db = |l: &[u8]| variable_data(EFI_IMAGE_SECURITY_DATABASE_GUID, "dbx", l);
    for (at, value, field) in [
        (16, u32::MAX, "SignatureListSize"),
        (16, 27, "SignatureHeaderSize"),
        (20, u32::MAX, "SignatureHeaderSize"),
        (24, 0, "SignatureSize"),
        (24, 16, "SignatureSize"),
        (24, u32::MAX, "SignatureSize"),
        (24, 47, "SignatureSize"),
    ] {
        let mut bad = list.clone();
        bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
        check(&db(&bad), field);
    }
    // An X.509 list whose SignatureSize does not divide the list.
    let mut bad = signature_list(EFI_CERT_X509_GUID, owner, &[b"abc", b"def"]);
    bad[24..28].copy_from_slice(&20u32.to_le_bytes());
    check(&db(&bad), "does not divide");
    // More than MAX_SIGNATURES entries.
    let many: Vec<[u8; 32]> = (0..=MAX_SIGNATURES).map(|i| [(i % 251) as u8; 32]).collect();
    check(&db(&sha256_list(owner, &many)), "too many signatures");
}

#[test]
fn image_path_is_best_effort() {
    assert_eq!(image_path(&[]), None);
    assert_eq!(image_path(&[0xFF; 40]), None);
    let data = runtrust_attestation::eventlog::builder::image_load_event("\\EFI\\a.efi");
    assert_eq!(image_path(&data).as_deref(), Some("\\EFI\\a.efi"));
    for len in 0..data.len() {
        let _ = image_path(&data[..len]);
    }
}
