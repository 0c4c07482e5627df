//! TCG event log parsing and replay against real logs (`shared/testdata/eventlogs`, read in place) and
//! against hand-built and corrupted logs.

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use runtrust_attestation::eventlog::{self, event_type::*, EventLog, EventLogError, MismatchKind};
use runtrust_attestation::{DenialCode, HashAlg, PcrValues};

const LOGS: [&str; 5] = ["arch-linux-workstation", "cos-85-amd-sev", "glinux-alex", "rhel8-uefi", "ubuntu-2104-no-dbx"];
const SHA1: u16 = 0x0004;
const SHA256: u16 = 0x000B;
const SHA384: u16 = 0x000C;
const SM3_256: u16 = 0x0012;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/eventlogs")
}

fn log_bytes(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.bin"))).unwrap()
}

fn expected(name: &str) -> PcrValues {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.json"))).unwrap()).unwrap();
    serde_json::from_value(json["banks"].clone()).unwrap()
}

// ---- hand-built logs -------------------------------------------------------------------------------

fn legacy_event(pcr: u32, event_type: u32, digest: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&event_type.to_le_bytes());
    out.extend_from_slice(digest);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The Spec ID event (a legacy-format EV_NO_ACTION) with the given (algorithmId, digestSize) table.
fn spec_id_event(algs: &[(u16, u16)]) -> Vec<u8> {
    let mut data = b"Spec ID Event03\0".to_vec();
    data.extend_from_slice(&0u32.to_le_bytes()); // platformClass
    data.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintnSize
    data.extend_from_slice(&(algs.len() as u32).to_le_bytes());
    for &(id, size) in algs {
        data.extend_from_slice(&id.to_le_bytes());
        data.extend_from_slice(&size.to_le_bytes());
    }
    data.push(0); // vendorInfoSize
    legacy_event(0, EV_NO_ACTION, &[0; 20], &data)
}

fn event2(pcr: u32, event_type: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&event_type.to_le_bytes());
    out.extend_from_slice(&(digests.len() as u32).to_le_bytes());
    for (id, d) in digests {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(d);
    }
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// SHA-1 and SHA-256 digests of `data`.
fn both(data: &[u8]) -> Vec<(u16, Vec<u8>)> {
    vec![(SHA1, HashAlg::Sha1.digest(data)), (SHA256, HashAlg::Sha256.digest(data))]
}

fn extend(bank: HashAlg, pcr: &[u8], digest: &[u8]) -> Vec<u8> {
    bank.digest(&[pcr, digest].concat())
}

// ---- real logs -------------------------------------------------------------------------------------

#[test]
fn real_logs_replay_to_their_quoted_pcrs() {
    for name in LOGS {
        let log = eventlog::parse(&log_bytes(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = expected(name);
        assert!(!expected.is_empty());
        let replayed = log.replay();
        for (bank, pcr, value) in expected.iter() {
            assert_eq!(
                replayed.value(bank, pcr).map(hex::encode),
                Some(hex::encode(value)),
                "{name}: {bank} PCR {pcr}"
            );
        }
        log.check_against(&expected).unwrap_or_else(|e| panic!("{name}: {e}"));
        let spec = log.spec.as_ref().expect("all real logs are crypto-agile");
        assert!(log.banks().contains(&HashAlg::Sha256));
        assert_eq!(log.events[0].event_type, EV_NO_ACTION);
        assert!(spec.algorithms.iter().any(|a| a.alg_id == SHA1));
    }
}

/// A record logged to no PCR, as Windows logs end with (the "Windows AIK" record): EV_NO_ACTION with pcrIndex
/// 0xFFFFFFFF, in the TCG_PCR_EVENT2 format with a zero digest in each of the log's algorithms.
fn no_pcr_record(log: &EventLog, data: &[u8]) -> Vec<u8> {
    let spec = log.spec.as_ref().unwrap();
    let digests: Vec<(u16, Vec<u8>)> =
        spec.algorithms.iter().map(|a| (a.alg_id, vec![0; usize::from(a.digest_size)])).collect();
    event2(eventlog::NO_PCR, EV_NO_ACTION, &digests, data)
}

#[test]
fn real_logs_with_a_no_pcr_record_parse_and_replay_the_same() {
    let data = "Windows AIK\0".encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
    for name in LOGS {
        let bytes = log_bytes(name);
        let log = eventlog::parse(&bytes).unwrap();
        let with = [bytes.clone(), no_pcr_record(&log, &data)].concat();
        let parsed = eventlog::parse(&with).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.events.len(), log.events.len() + 1, "{name}");
        assert_eq!(parsed.events[..log.events.len()], log.events[..], "{name}");
        // Kept as an event, for display; extends nothing.
        let last = parsed.events.last().unwrap();
        assert_eq!((last.index, last.offset), (log.events.len(), bytes.len()), "{name}");
        assert_eq!((last.pcr, last.pcr_index(), last.event_type), (0xFFFF_FFFF, None, EV_NO_ACTION));
        assert!(!last.is_extended());
        assert_eq!(last.type_name(), Some("EV_NO_ACTION"));
        assert_eq!(eventlog::describe::describe(last), "\"Windows AIK\"");
        assert_eq!(parsed.replay(), log.replay(), "{name}");
        parsed.check_against(&expected(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        parsed.verify_data_digests().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(eventlog::unverified_facts(&parsed), eventlog::unverified_facts(&log), "{name}");
        // In the middle of the log too, and with nonzero digests: still not extended (PFP §9.4.5).
        let mut record = no_pcr_record(&log, b"x");
        let n = record.len();
        record[n - 6] = 0xAA;
        let at = log.events[3].offset;
        let middle = [&bytes[..at], &record, &bytes[at..]].concat();
        let parsed = eventlog::parse(&middle).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.events[3].pcr_index(), None);
        parsed.check_against(&expected(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn only_no_action_records_may_be_logged_to_no_pcr() {
    let spec = spec_id_event(&[(SHA1, 20), (SHA256, 32)]);
    let at = spec.len();
    let ok = [spec.clone(), event2(0xFFFF_FFFF, EV_NO_ACTION, &both(b"aik"), b"aik")].concat();
    assert_eq!(eventlog::parse(&ok).unwrap().events[1].pcr_index(), None);
    // Another type at 0xFFFFFFFF, or EV_NO_ACTION at another index beyond 31.
    for (pcr, event_type) in [(0xFFFF_FFFF, EV_SEPARATOR), (0xFFFF_FFFF, EV_EVENT_TAG), (0xFFFF_FFFE, EV_NO_ACTION)] {
        let bad = [spec.clone(), event2(pcr, event_type, &both(b"aik"), b"aik")].concat();
        assert_eq!(
            eventlog::parse(&bad).unwrap_err(),
            EventLogError::InvalidValue { field: "TCG_PCR_EVENT2.pcrIndex", offset: at, value: pcr.into() }
        );
    }
    // A StartupLocality record must be logged to PCR 0, not to no PCR.
    let bad = [spec.clone(), event2(0xFFFF_FFFF, EV_NO_ACTION, &both(&[]), b"StartupLocality\0\x03")].concat();
    assert!(matches!(eventlog::parse(&bad), Err(EventLogError::Invalid { field: "StartupLocality", .. })));
    // The Spec ID event itself must be logged to PCR 0.
    let mut bad = spec.clone();
    bad[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        eventlog::parse(&bad),
        Err(EventLogError::InvalidValue { field: "TCG_PCR_EVENT.pcrIndex", offset: 0, .. })
    ));
    // SHA-1 (legacy) logs too.
    let sep = HashAlg::Sha1.digest(&[0; 4]);
    let legacy = [legacy_event(0, EV_SEPARATOR, &sep, &[0; 4]), legacy_event(u32::MAX, EV_NO_ACTION, &[0; 20], b"aik")];
    let log = eventlog::parse(&legacy.concat()).unwrap();
    assert_eq!(log.events[1].pcr_index(), None);
    assert_eq!(log.replay().value(HashAlg::Sha1, 0).unwrap(), extend(HashAlg::Sha1, &[0; 20], &sep));
    let bad = [legacy_event(0, EV_SEPARATOR, &sep, &[0; 4]), legacy_event(u32::MAX, EV_IPL, &[0; 20], b"aik")];
    assert!(matches!(
        eventlog::parse(&bad.concat()),
        Err(EventLogError::InvalidValue { field: "TCG_PCR_EVENT.pcrIndex", offset: 36, .. })
    ));
}

#[test]
fn startup_locality_quirk_sets_pcr0_initial_value() {
    let log = eventlog::parse(&log_bytes("glinux-alex")).unwrap();
    assert_eq!(log.startup_locality(), Some(3));
    for name in LOGS.iter().filter(|&&n| n != "glinux-alex") {
        assert_eq!(eventlog::parse(&log_bytes(name)).unwrap().startup_locality(), None, "{name}");
    }
    // Ignoring the locality gives the wrong PCR 0: drop the StartupLocality event from a copy.
    let bytes = log_bytes("glinux-alex");
    let ev = log.events.iter().find(|e| e.startup_locality().is_some()).unwrap();
    let next = log.events[ev.index + 1].offset;
    let without: Vec<u8> = [&bytes[..ev.offset], &bytes[next..]].concat();
    let err = eventlog::parse(&without).unwrap().check_against(&expected("glinux-alex")).unwrap_err();
    assert!(err.mismatches.iter().all(|m| m.pcr == 0), "{err}");
    assert_eq!(err.mismatches.len(), 2, "both banks of PCR 0: {err}");
}

#[test]
fn real_logs_data_digests_hold_for_enforced_types() {
    for name in LOGS {
        let log = eventlog::parse(&log_bytes(name)).unwrap();
        log.verify_data_digests().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn relabelled_event_is_caught_by_data_digest_check() {
    let mut bytes = log_bytes("rhel8-uefi");
    let log = eventlog::parse(&bytes).unwrap();
    // Relabel a measured boot application as an EV_SEPARATOR: the PCRs still replay (the type is not
    // extended), but the data no longer hashes to the digest.
    let app = log.events.iter().find(|e| e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION).unwrap();
    bytes[app.offset + 4..app.offset + 8].copy_from_slice(&EV_SEPARATOR.to_le_bytes());
    let forged = eventlog::parse(&bytes).unwrap();
    forged.check_against(&expected("rhel8-uefi")).unwrap();
    let err = forged.verify_data_digests().unwrap_err();
    assert_eq!(err.code(), DenialCode::EventLogMismatch);
    let eventlog::DataDigestError::Mismatch { index, offset, type_name, .. } = err;
    assert_eq!((index, offset, type_name), (app.index, app.offset, "EV_SEPARATOR"));
}

#[test]
fn changed_digest_is_reported_on_its_pcr_and_bank() {
    let name = "arch-linux-workstation";
    let mut bytes = log_bytes(name);
    let log = eventlog::parse(&bytes).unwrap();
    // The first event extending PCR 4; crypto-agile layout: pcr, type, count, (sha1 id, 20), (sha256 id, 32).
    let target = log.events.iter().find(|e| e.pcr == 4 && e.is_extended()).unwrap();
    let sha256_digest_at = target.offset + 12 + 2 + 20 + 2;
    bytes[sha256_digest_at] ^= 0x01;
    let changed = eventlog::parse(&bytes).unwrap();
    let err = changed.check_against(&expected(name)).unwrap_err();
    assert_eq!(err.code(), DenialCode::EventLogMismatch);
    assert_eq!(err.mismatches.len(), 1, "{err}");
    let m = &err.mismatches[0];
    assert_eq!((m.bank, m.pcr), (HashAlg::Sha256, 4));
    let last_pcr4 = log.events.iter().rev().find(|e| e.pcr == 4 && e.is_extended()).map(|e| e.index);
    assert_eq!(m.kind, MismatchKind::Diverged { last_event: last_pcr4 });
    assert_eq!(m.quoted, expected(name).get(HashAlg::Sha256, 4).unwrap());
    assert!(err.to_string().contains("sha256 PCR 4"), "{err}");
}

#[test]
fn appended_event_is_reported_after_the_last_agreeing_event() {
    let name = "arch-linux-workstation";
    let log = eventlog::parse(&log_bytes(name)).unwrap();
    let last_pcr8 = log.events.iter().rev().find(|e| e.pcr == 8 && e.is_extended()).map(|e| e.index);
    assert!(last_pcr8.is_some());
    let mut bytes = log_bytes(name);
    bytes.extend(event2(8, EV_IPL, &both(b"extra"), b"extra"));
    let longer = eventlog::parse(&bytes).unwrap();
    assert_eq!(longer.events.len(), log.events.len() + 1);
    let err = longer.check_against(&expected(name)).unwrap_err();
    let found: Vec<_> = err.mismatches.iter().map(|m| (m.bank, m.pcr, m.kind.clone())).collect();
    let kind = MismatchKind::ExtraEvents { last_agreeing_event: last_pcr8 };
    assert_eq!(found, vec![(HashAlg::Sha1, 8, kind.clone()), (HashAlg::Sha256, 8, kind)]);

    // A PCR the log does not touch and a bank it does not carry.
    let mut quoted = PcrValues::new();
    quoted.insert(HashAlg::Sha256, 16, vec![0; 32]).unwrap();
    log.check_against(&quoted).unwrap();
    quoted.insert(HashAlg::Sha256, 17, vec![1; 32]).unwrap();
    quoted.insert(HashAlg::Sha384, 0, vec![0; 48]).unwrap();
    let err = log.check_against(&quoted).unwrap_err();
    let kinds: Vec<_> = err.mismatches.iter().map(|m| (m.bank, m.pcr, m.kind.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (HashAlg::Sha256, 17, MismatchKind::Diverged { last_event: None }),
            (HashAlg::Sha384, 0, MismatchKind::BankMissing),
        ]
    );
}

// ---- malformed input -------------------------------------------------------------------------------

/// Event boundaries of a real log.
fn boundaries(log: &EventLog, len: usize) -> Vec<usize> {
    log.events.iter().map(|e| e.offset).skip(1).chain([len]).collect()
}

#[test]
fn truncation_at_every_offset_errors_or_parses_a_prefix() {
    for name in ["arch-linux-workstation", "glinux-alex"] {
        let bytes = log_bytes(name);
        let full = eventlog::parse(&bytes).unwrap();
        let ends = boundaries(&full, bytes.len());
        for len in 0..bytes.len() {
            match eventlog::parse(&bytes[..len]) {
                Ok(log) => {
                    assert!(ends.contains(&len), "{name}: parsed although cut mid-event at {len}");
                    assert_eq!(log.events[..], full.events[..log.events.len()]);
                    log.replay();
                }
                Err(e) => {
                    assert!(!ends.contains(&len), "{name}: cut at event boundary {len}: {e}");
                    assert!(e.offset() <= len, "{name} at {len}: {e}");
                    assert_eq!(e.code(), DenialCode::EventLogMismatch);
                }
            }
        }
    }
}

fn truncated_field(bytes: &[u8], len: usize) -> (&'static str, usize) {
    match eventlog::parse(&bytes[..len]) {
        Err(EventLogError::Truncated { field, offset, .. }) => (field, offset),
        other => panic!("cut at {len}: {other:?}"),
    }
}

#[test]
fn truncation_names_the_field_and_offset() {
    let bytes = log_bytes("arch-linux-workstation");
    assert_eq!(eventlog::parse(&[]), Err(EventLogError::Empty));
    // The Spec ID event, legacy format.
    assert_eq!(truncated_field(&bytes, 2), ("TCG_PCR_EVENT.pcrIndex", 0));
    assert_eq!(truncated_field(&bytes, 5), ("TCG_PCR_EVENT.eventType", 4));
    assert_eq!(truncated_field(&bytes, 27), ("TCG_PCR_EVENT.digest", 8));
    assert_eq!(truncated_field(&bytes, 29), ("TCG_PCR_EVENT.eventSize", 28));
    assert_eq!(truncated_field(&bytes, 40), ("TCG_PCR_EVENT.event", 32));
    // The first TCG_PCR_EVENT2 (SHA-1 and SHA-256).
    let log = eventlog::parse(&bytes).unwrap();
    let e = &log.events[1];
    let at = e.offset;
    assert_eq!(truncated_field(&bytes, at + 1), ("TCG_PCR_EVENT2.pcrIndex", at));
    assert_eq!(truncated_field(&bytes, at + 7), ("TCG_PCR_EVENT2.eventType", at + 4));
    assert_eq!(truncated_field(&bytes, at + 9), ("TCG_PCR_EVENT2.digests.count", at + 8));
    assert_eq!(truncated_field(&bytes, at + 13), ("TPMT_HA.hashAlg", at + 12));
    assert_eq!(truncated_field(&bytes, at + 20), ("TPMT_HA.digest", at + 14));
    assert_eq!(truncated_field(&bytes, at + 35), ("TPMT_HA.hashAlg", at + 34));
    assert_eq!(truncated_field(&bytes, at + 60), ("TPMT_HA.digest", at + 36));
    assert_eq!(truncated_field(&bytes, at + 70), ("TCG_PCR_EVENT2.eventSize", at + 68));
    if !e.data.is_empty() {
        assert_eq!(truncated_field(&bytes, at + 72 + e.data.len() - 1), ("TCG_PCR_EVENT2.event", at + 72));
    }
    // Inside the Spec ID structure itself: shorten the first event's eventSize to cut the table.
    let mut cut = bytes.clone();
    cut[28..32].copy_from_slice(&30u32.to_le_bytes());
    let cut = &cut[..32 + 30];
    assert!(matches!(
        eventlog::parse(cut),
        Err(EventLogError::Truncated { field: "TCG_EfiSpecIdEventAlgorithmSize.digestSize", offset: 62, .. })
    ));
}

#[test]
fn absurd_sizes_are_rejected() {
    let spec = spec_id_event(&[(SHA1, 20), (SHA256, 32)]);
    let ok = [spec.clone(), event2(0, EV_SEPARATOR, &both(&[0; 4]), &[0; 4])].concat();
    eventlog::parse(&ok).unwrap();
    let at = spec.len();

    // eventSize 0xFFFFFFFF.
    let mut bad = ok.clone();
    bad[at + 68..at + 72].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = eventlog::parse(&bad).unwrap_err();
    let expected_err = EventLogError::Oversized {
        field: "TCG_PCR_EVENT2.eventSize",
        offset: at + 68,
        size: 0xFFFF_FFFF,
        max: eventlog::MAX_EVENT_DATA as u64,
    };
    assert_eq!(err, expected_err);
    // eventSize within bounds but beyond the end of the log.
    bad[at + 68..at + 72].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(eventlog::parse(&bad), Err(EventLogError::Truncated { field: "TCG_PCR_EVENT2.event", .. })));
    // Legacy eventSize 0xFFFFFFFF.
    let mut bad = ok.clone();
    bad[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(eventlog::parse(&bad), Err(EventLogError::Oversized { offset: 28, .. })));
    // A huge digest count.
    let mut bad = ok.clone();
    bad[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    assert!(matches!(
        eventlog::parse(&bad),
        Err(EventLogError::InvalidValue { field: "TCG_PCR_EVENT2.digests.count", .. })
    ));
    // An algorithm not in the table, and one listed twice.
    let bad = [spec.clone(), event2(0, EV_SEPARATOR, &[(SHA1, vec![0; 20]), (SHA384, vec![0; 48])], &[])].concat();
    assert!(matches!(
        eventlog::parse(&bad),
        Err(EventLogError::InvalidValue { field: "TPMT_HA.hashAlg", value: 0x0C, offset, .. }) if offset == at + 34
    ));
    let bad = [spec.clone(), event2(0, EV_SEPARATOR, &[(SHA1, vec![0; 20]), (SHA1, vec![0; 20])], &[])].concat();
    assert!(matches!(eventlog::parse(&bad), Err(EventLogError::Invalid { field: "TPMT_HA.hashAlg", .. })));
    // PCR index beyond 31.
    let bad = [spec.clone(), event2(32, EV_SEPARATOR, &both(&[]), &[])].concat();
    assert!(matches!(
        eventlog::parse(&bad),
        Err(EventLogError::InvalidValue { field: "TCG_PCR_EVENT2.pcrIndex", value: 32, .. })
    ));

    // Spec ID tables: 1000 algorithms, none, digest size 0, > 64, wrong for the algorithm, duplicates.
    let table: Vec<(u16, u16)> = (0..1000).map(|i| (0x100 + i, 32)).collect();
    assert!(matches!(
        eventlog::parse(&spec_id_event(&table)),
        Err(EventLogError::Oversized { field: "TCG_EfiSpecIdEvent.numberOfAlgorithms", size: 1000, offset: 56, .. })
    ));
    assert!(matches!(eventlog::parse(&spec_id_event(&[])), Err(EventLogError::Invalid { offset: 56, .. })));
    let digest_size = "TCG_EfiSpecIdEventAlgorithmSize.digestSize";
    assert!(matches!(
        eventlog::parse(&spec_id_event(&[(SHA1, 20), (SM3_256, 0)])),
        Err(EventLogError::Invalid { field, offset: 66, .. }) if field == digest_size
    ));
    assert!(matches!(
        eventlog::parse(&spec_id_event(&[(SM3_256, 65)])),
        Err(EventLogError::Oversized { field, size: 65, .. }) if field == digest_size
    ));
    assert!(matches!(
        eventlog::parse(&spec_id_event(&[(SHA256, 20)])),
        Err(EventLogError::Invalid { field, .. }) if field == digest_size
    ));
    assert!(eventlog::parse(&spec_id_event(&[(SHA1, 20), (SHA1, 20)])).is_err());
    // A Spec ID event whose digest is not zero.
    let mut bad = spec.clone();
    bad[8] = 1;
    assert!(matches!(eventlog::parse(&bad), Err(EventLogError::Invalid { field: "TCG_PCR_EVENT.digest", .. })));
    // Trailing bytes after vendorInfo.
    let mut bad = spec.clone();
    let size = u32::from_le_bytes(bad[28..32].try_into().unwrap()) + 1;
    bad[28..32].copy_from_slice(&size.to_le_bytes());
    bad.push(0);
    assert!(matches!(eventlog::parse(&bad), Err(EventLogError::Invalid { field: "TCG_EfiSpecIdEvent", .. })));
}

#[test]
fn unknown_algorithms_are_parsed_by_size_and_skipped() {
    let spec = spec_id_event(&[(SHA1, 20), (SM3_256, 32), (SHA256, 32)]);
    let data = b"hello";
    let digests =
        vec![(SHA1, HashAlg::Sha1.digest(data)), (SM3_256, vec![7; 32]), (SHA256, HashAlg::Sha256.digest(data))];
    let bytes = [spec, event2(5, EV_EFI_ACTION, &digests, data)].concat();
    let log = eventlog::parse(&bytes).unwrap();
    assert_eq!(log.banks(), vec![HashAlg::Sha1, HashAlg::Sha256]);
    assert_eq!(log.events[1].digests.len(), 3);
    assert_eq!(log.events[1].data, data);
    let replayed = log.replay();
    assert_eq!(replayed.value(HashAlg::Sha256, 5).unwrap(), extend(HashAlg::Sha256, &[0; 32], &digests[2].1));
    assert_eq!(replayed.pcrs.len(), 2);
    log.verify_data_digests().unwrap();
}

#[test]
fn startup_locality_in_a_hand_built_log() {
    let mut locality = b"StartupLocality\0".to_vec();
    locality.push(3);
    let zero = vec![(SHA1, vec![0; 20]), (SHA256, vec![0; 32])];
    let spec = spec_id_event(&[(SHA1, 20), (SHA256, 32)]);
    let crtm = both(b"crtm");
    let bytes = [spec.clone(), event2(0, EV_NO_ACTION, &zero, &locality), event2(0, EV_S_CRTM_VERSION, &crtm, b"crtm")]
        .concat();
    let log = eventlog::parse(&bytes).unwrap();
    assert_eq!(log.startup_locality(), Some(3));
    let mut initial = vec![0u8; 32];
    initial[31] = 3;
    assert_eq!(log.replay().value(HashAlg::Sha256, 0).unwrap(), extend(HashAlg::Sha256, &initial, &crtm[1].1));

    // Malformed StartupLocality events.
    let mut bad_locality = locality.clone();
    bad_locality[16] = 2;
    for (pcr, data) in [(0, bad_locality), (1, locality.clone()), (0, [&locality[..], &[0]].concat())] {
        let bytes = [spec.clone(), event2(pcr, EV_NO_ACTION, &zero, &data)].concat();
        assert!(matches!(eventlog::parse(&bytes), Err(EventLogError::Invalid { field: "StartupLocality", .. })));
    }
    // After PCR 0 was extended, or twice.
    let late = [spec.clone(), event2(0, EV_S_CRTM_VERSION, &crtm, b"crtm"), event2(0, EV_NO_ACTION, &zero, &locality)]
        .concat();
    assert!(eventlog::parse(&late).is_err());
    let twice = [spec, event2(0, EV_NO_ACTION, &zero, &locality), event2(0, EV_NO_ACTION, &zero, &locality)].concat();
    assert!(eventlog::parse(&twice).is_err());
}

#[test]
fn sha1_legacy_log() {
    let sep = HashAlg::Sha1.digest(&[0; 4]);
    let crtm = HashAlg::Sha1.digest(b"v1.0");
    let bytes = [
        legacy_event(0, EV_S_CRTM_VERSION, &crtm, b"v1.0"),
        legacy_event(0, EV_SEPARATOR, &sep, &[0; 4]),
        legacy_event(4, EV_IPL, &[0xAA; 20], b"boot loader"),
        legacy_event(4, EV_NO_ACTION, &[0xBB; 20], b"not extended"),
        legacy_event(4, EV_SEPARATOR, &sep, &[0; 4]),
    ]
    .concat();
    let log = eventlog::parse(&bytes).unwrap();
    assert!(log.spec.is_none());
    assert_eq!(log.banks(), vec![HashAlg::Sha1]);
    assert_eq!(log.events.len(), 5);
    assert_eq!(log.events[2].offset, 2 * (32 + 4));
    assert_eq!(log.events[2].data, b"boot loader");

    let pcr0 = extend(HashAlg::Sha1, &extend(HashAlg::Sha1, &[0; 20], &crtm), &sep);
    let pcr4 = extend(HashAlg::Sha1, &extend(HashAlg::Sha1, &[0; 20], &[0xAA; 20]), &sep);
    // Known values, computed independently: SHA1(0^20 || SHA1("v1.0")) etc.
    assert_eq!(hex::encode(HashAlg::Sha1.digest(&[0; 4])), "9069ca78e7450a285173431b3e52c5c25299e473");
    let replayed = log.replay();
    assert_eq!(replayed.value(HashAlg::Sha1, 0).unwrap(), pcr0);
    assert_eq!(replayed.value(HashAlg::Sha1, 4).unwrap(), pcr4);
    assert_eq!(replayed.value(HashAlg::Sha1, 7).unwrap(), vec![0; 20]);
    assert_eq!(replayed.value(HashAlg::Sha256, 0), None);
    log.verify_data_digests().unwrap();

    let mut quoted = PcrValues::new();
    quoted.insert(HashAlg::Sha1, 0, pcr0).unwrap();
    quoted.insert(HashAlg::Sha1, 4, extend(HashAlg::Sha1, &[0; 20], &[0xAA; 20])).unwrap();
    let err = log.check_against(&quoted).unwrap_err();
    assert_eq!(err.mismatches.len(), 1);
    assert_eq!(
        (err.mismatches[0].pcr, &err.mismatches[0].kind),
        (4, &MismatchKind::ExtraEvents { last_agreeing_event: Some(2) })
    );

    // A legacy log cut inside an event, and with a lying separator.
    assert!(matches!(
        eventlog::parse(&bytes[..38]),
        Err(EventLogError::Truncated { field: "TCG_PCR_EVENT.pcrIndex", offset: 36, .. })
    ));
    let forged = [legacy_event(0, EV_SEPARATOR, &[0xCC; 20], &[0; 4])].concat();
    assert!(eventlog::parse(&forged).unwrap().verify_data_digests().is_err());
}

// ---- fuzz-style robustness (stable Rust stand-in for attestation/fuzz) -----------------------------

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random mutation: flip bytes, write interesting u32s, cut, splice or duplicate ranges.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = [0u32, 1, 3, 0x20, 0x40, 0xFF, 0xFFFF, 0x8000_0000, u32::MAX][rng.below(9)];
                input[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            2 => input.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let (a, b) = (a.min(b), a.max(b));
                let chunk = input[a..b].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            4 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                input.drain(a.min(b)..a.max(b));
            }
            _ => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
        }
    }
}

/// What the fuzz target does.
fn exercise(bytes: &[u8], quoted: &PcrValues) {
    if let Ok(log) = eventlog::parse(bytes) {
        let _ = log.replay();
        let _ = log.check_against(quoted);
        let _ = log.verify_data_digests();
    }
}

fn fuzz(iterations: u64, seed: u64) {
    let corpus: Vec<(Vec<u8>, PcrValues)> = LOGS.iter().map(|n| (log_bytes(n), expected(n))).collect();
    let mut rng = Rng(seed);
    for _ in 0..iterations {
        let (base, quoted) = &corpus[rng.below(corpus.len())];
        let mut input = base.clone();
        mutate(&mut rng, &mut input);
        exercise(&input, quoted);
    }
}

#[test]
fn random_mutations_of_real_logs_never_panic() {
    fuzz(2_000, 0x5EED_0001);
}

/// The long run: `cargo test --release -p runtrust-attestation --test eventlog -- --ignored`.
/// RUNTRUST_FUZZ_ITERATIONS overrides the iteration count.
#[test]
#[ignore]
fn random_mutations_long_run() {
    let n = std::env::var("RUNTRUST_FUZZ_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    fuzz(n, 0x5EED_0002);
}

#[test]
fn legacy_log_truncation_at_every_offset() {
    let sep = HashAlg::Sha1.digest(&[0; 4]);
    let bytes = [
        legacy_event(0, EV_S_CRTM_VERSION, &HashAlg::Sha1.digest(b"v1"), b"v1"),
        legacy_event(7, EV_SEPARATOR, &sep, &[0; 4]),
        legacy_event(4, EV_IPL, &[0xAA; 20], b""),
    ]
    .concat();
    let ends = [32 + 2, 32 + 2 + 32 + 4, bytes.len()];
    let fields =
        ["TCG_PCR_EVENT.pcrIndex", "TCG_PCR_EVENT.eventType", "TCG_PCR_EVENT.digest", "TCG_PCR_EVENT.eventSize"];
    for len in 1..bytes.len() {
        match eventlog::parse(&bytes[..len]) {
            Ok(log) => assert!(ends.contains(&len) && log.spec.is_none(), "parsed although cut at {len}"),
            Err(EventLogError::Truncated { field, offset, needed }) => {
                assert!(!ends.contains(&len));
                assert!(offset <= len && needed > 0, "cut at {len}: {field} at {offset} +{needed}");
                assert!(fields.contains(&field) || field == "TCG_PCR_EVENT.event", "{field}");
            }
            Err(e) => panic!("cut at {len}: {e}"),
        }
    }
}
