//! Batched quotes (docs/design.md §14) against real swtpm quotes whose qualifyingData is a nonce-batch root
//! (tests/vectors/batch, captured by tests/vectors/capture-batch.sh).

// A failed assumption here is a failed test or benchmark (workspace lints in Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use runtrust_attestation::batch::{BatchError, NonceBatch};
use runtrust_attestation::quote::QuoteError;
use runtrust_attestation::{verify_quote, Attest, DenialCode, PcrValues, Public, QuoteEvidence, QuoteOptions};

fn read(f: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/batch").join(f);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn hex_lines(f: &str) -> Vec<Vec<u8>> {
    String::from_utf8(read(f)).unwrap().lines().map(|l| hex::decode(l.trim()).unwrap()).collect()
}

struct Batch {
    ak: Public,
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: PcrValues,
    nonces: Vec<Vec<u8>>,
}

fn load() -> Batch {
    Batch {
        ak: Public::from_tpm2b(&read("ak.pub")).unwrap(),
        attest: read("attest"),
        signature: read("signature"),
        pcrs: serde_json::from_slice(&read("pcrs.json")).unwrap(),
        nonces: hex_lines("nonces.hex"),
    }
}

impl Batch {
    fn verify(
        &self,
        nonce: &[u8],
        batch: Option<&runtrust_attestation::batch::InclusionProof>,
    ) -> Result<(), QuoteError> {
        let ev = QuoteEvidence { attest: &self.attest, signature: &self.signature, pcrs: &self.pcrs };
        let options = QuoteOptions { nonce_batch: batch, ..Default::default() };
        verify_quote(&self.ak, &ev, nonce, &options).map(|_| ())
    }
}

#[test]
fn the_quote_carries_the_root_computed_here() {
    let b = load();
    let batch = NonceBatch::new(&b.nonces).unwrap();
    let extra = Attest::parse_quote(&b.attest).unwrap().extra_data;
    assert_eq!(extra, batch.root().to_vec());
    assert_eq!(hex_lines("root.hex"), vec![batch.root().to_vec()], "capture-batch.sh computed the same root");
}

#[test]
fn every_nonce_of_the_batch_verifies_with_its_proof() {
    let b = load();
    let batch = NonceBatch::new(&b.nonces).unwrap();
    for (i, nonce) in b.nonces.iter().enumerate() {
        b.verify(nonce, Some(&batch.proof(i).unwrap())).unwrap_or_else(|e| panic!("nonce {i}: {e}"));
    }
}

#[test]
fn a_proof_that_does_not_hold_is_nonce_mismatch() {
    let b = load();
    let batch = NonceBatch::new(&b.nonces).unwrap();
    // Tampered proof.
    let mut tampered = batch.proof(1).unwrap();
    tampered.path[0][31] ^= 0x80;
    let e = b.verify(&b.nonces[1], Some(&tampered)).unwrap_err();
    assert_eq!(e, QuoteError::Batch(BatchError::RootMismatch));
    assert_eq!(e.code(), DenialCode::NonceMismatch);
    // A nonce from another batch, with its own (valid) proof there.
    let other: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8 + 1; 32]).collect();
    let other_batch = NonceBatch::new(&other).unwrap();
    let e = b.verify(&other[1], Some(&other_batch.proof(1).unwrap())).unwrap_err();
    assert_eq!(e.code(), DenialCode::NonceMismatch);
    // A proof of another place in this batch.
    let e = b.verify(&b.nonces[1], Some(&batch.proof(2).unwrap())).unwrap_err();
    assert_eq!(e.code(), DenialCode::NonceMismatch);
    // Without a proof the nonce itself must be extraData: a batched quote is no single-nonce quote.
    assert_eq!(b.verify(&b.nonces[0], None), Err(QuoteError::NonceMismatch));
    // Nor does the root pass as a nonce with a proof of a batch of one.
    let root = batch.root();
    let one = NonceBatch::new(&[root]).unwrap();
    assert_eq!(b.verify(&root, Some(&one.proof(0).unwrap())).unwrap_err().code(), DenialCode::NonceMismatch);
}

#[test]
fn the_duplicate_vector_breaks_the_batch_rule() {
    let b = load();
    let dup = [b.nonces[0].clone(), b.nonces[1].clone(), b.nonces[0].clone()];
    // The batch builder refuses it; the quote exists only because capture-batch.sh built the root by hand.
    assert_eq!(NonceBatch::new(&dup), Err(BatchError::DuplicateNonce { index: 2, first: 0 }));
    let extra = Attest::parse_quote(&read("attest-dup")).unwrap().extra_data;
    assert_eq!(vec![extra], hex_lines("root-dup.hex"));
}
