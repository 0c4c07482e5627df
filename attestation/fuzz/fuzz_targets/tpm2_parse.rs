//! The TPM 2.0 structure parsers on arbitrary bytes (TPM 2.0 Part 2: TPMS_ATTEST, TPMT_SIGNATURE,
//! TPM2B_PUBLIC/TPMT_PUBLIC, TPML_PCR_SELECTION, and the tpm2-tools selection text): nothing may panic or
//! allocate unboundedly, and what parses re-encodes to what it was parsed from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtrust_attestation::{Attest, HashAlg, PcrSelection, Public, Signature};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Ok(a) = Attest::parse_quote(bytes) {
                // The signed selection prints as tpm2-tools text that parses back to itself. An empty
                // selection (a quote over no PCR, which Part 3 §18.4 allows and runtrust never asks for)
                // has no text form.
                if !a.quote.pcr_select.is_empty() {
                    let text = a.quote.pcr_select.to_string();
                    assert_eq!(text.parse::<PcrSelection>().ok().as_ref(), Some(&a.quote.pcr_select));
                }
            }
        }
        1 => {
            let _ = Signature::parse(bytes);
        }
        2 => {
            if let Ok(p) = Public::from_tpm2b(bytes) {
                assert_eq!(p.to_tpm2b(), bytes, "TPM2B_PUBLIC re-encodes to its bytes");
                let _ = p.name();
            }
        }
        3 => {
            if let Ok(p) = Public::from_tpmt(bytes) {
                assert_eq!(p.tpmt_bytes(), bytes);
            }
            let _ = PcrSelection::from_bytes(bytes);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                if let Ok(s) = PcrSelection::parse_spec(HashAlg::Sha256, text) {
                    assert_eq!(s.to_string().parse::<PcrSelection>().ok(), Some(s));
                }
            }
        }
    }
});
