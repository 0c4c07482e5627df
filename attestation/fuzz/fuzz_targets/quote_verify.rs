//! Quote verification (docs/design.md §4) on arbitrary TPMS_ATTEST / TPMT_SIGNATURE bytes against the real
//! swtpm AKs of tests/vectors (RSA-2048 RSASSA, ECC P-256 ECDSA): nothing may panic, and nothing but the
//! recorded quotes verifies.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runtrust_attestation::{verify_quote, PcrValues, Public, QuoteEvidence, QuoteOptions};

struct Vector {
    ak: Public,
    nonce: Vec<u8>,
    pcrs: PcrValues,
}

fn vectors() -> &'static [Vector] {
    static V: OnceLock<Vec<Vector>> = OnceLock::new();
    V.get_or_init(|| {
        ["rsa", "ecc"]
            .iter()
            .map(|kind| {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors").join(kind);
                let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
                let nonce = hex::decode(String::from_utf8(read("nonce.hex")).unwrap().trim()).unwrap();
                Vector {
                    ak: Public::from_tpm2b(&read("ak.pub")).unwrap(),
                    nonce,
                    pcrs: serde_json::from_slice(&read("pcrs.json")).unwrap(),
                }
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    // [split: u16 BE][attest ‖ signature]
    let Some((head, rest)) = data.split_first_chunk::<2>() else { return };
    let split = usize::from(u16::from_be_bytes(*head)).min(rest.len());
    let (attest, signature) = rest.split_at(split);
    for v in vectors() {
        let evidence = QuoteEvidence { attest, signature, pcrs: &v.pcrs };
        let _ = verify_quote(&v.ak, &evidence, &v.nonce, &QuoteOptions::default());
        let _ = verify_quote(&v.ak, &evidence, &[], &QuoteOptions { allow_sha1: true, ..Default::default() });
    }
});
