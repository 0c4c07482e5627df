//! Parse, replay and check arbitrary bytes as a TCG event log: nothing may panic, loop or allocate
//! unboundedly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtrust_attestation::eventlog;
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
});
