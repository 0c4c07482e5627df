//! Parse, replay, check and extract facts from arbitrary bytes as a TCG event log: nothing may panic, loop
//! or allocate unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtrust_attestation::eventlog::{self, describe::describe};
use runtrust_attestation::{HashAlg, PcrValues};

fuzz_target!(|data: &[u8]| {
    let Ok(log) = eventlog::parse(data) else { return };
    let replayed = log.replay();
    // Check against the log's own replay (must agree) and against a quote it cannot explain.
    assert!(log.check_against(&replayed.pcrs).is_ok());
    let mut other = PcrValues::new();
    for bank in HashAlg::ALL {
        let _ = other.insert(bank, 0, vec![0xA5; bank.digest_len()]);
    }
    let _ = log.check_against(&other);
    let _ = log.verify_data_digests();
    // Facts, unverified and (when the data-bound digests hold) verified against the log's own replay.
    let unverified = eventlog::unverified_facts(&log);
    if let Ok(verified) = log.verify(&replayed.pcrs) {
        let facts = verified.facts();
        // Every PCR of the log was "quoted": the same facts either way.
        if let (Ok(a), Ok(b)) = (&unverified, &facts) {
            assert_eq!(a.secure_boot, b.secure_boot);
            assert_eq!(a.boot_apps.len(), b.boot_apps.len());
        }
    }
    for event in &log.events {
        let _ = describe(event);
    }
});
