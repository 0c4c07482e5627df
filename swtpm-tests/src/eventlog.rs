//! A test event-log writer: swtpm has no firmware and so no TCG event log. [`boot`] extends a swtpm's PCRs
//! with the events of a [`LogBuilder`] (tpm2_pcrextend, raw digests, every bank the log carries) and writes
//! the matching crypto-agile log, as firmware would have.

use std::path::Path;

use runtrust_attestation::eventlog::builder::LogBuilder;

use crate::SwTpm;

/// Extends `tpm` with every event of `log` (its banks must be active on the swtpm: sha1 and sha256 by
/// default) and writes the binary log to `out`.
pub fn boot(tpm: &SwTpm, log: &LogBuilder, out: &Path) {
    let cwd = tpm.scratch("eventlog");
    for e in log.extends() {
        let digests: Vec<String> = e.digests.iter().map(|(bank, d)| format!("{bank}={}", hex(d))).collect();
        tpm.tpm2("tpm2_pcrextend", &[&format!("{}:{}", e.pcr, digests.join(","))], &cwd);
    }
    std::fs::write(out, log.bytes()).expect("write the event log");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
