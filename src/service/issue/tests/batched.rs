//! Stage 4 with batched quotes (docs/design.md §14): real swtpm quotes whose extraData is the root of a
//! nonce batch (`attestation/tests/vectors/batch`). A request is allowed when its proof leads from its own
//! nonce to that root; a tampered proof, a nonce from another batch and a proof for another leaf are
//! `nonce_mismatch`; a nonce that a (rule-breaking) batch holds twice is spent by its first use.

use runtrust_attestation::batch::{InclusionProof, NonceBatch};
use runtrust_attestation::{Attest, ClockInfo};

use super::*;
use crate::api::BatchProof;

fn nonces() -> Vec<Nonce> {
    let text = String::from_utf8(vector_in("batch", "nonces.hex")).unwrap();
    text.lines().map(|l| l.trim().parse().unwrap()).collect()
}

fn batch_of(nonces: &[Nonce]) -> NonceBatch {
    NonceBatch::new(&nonces.iter().map(|n| n.as_bytes().to_vec()).collect::<Vec<_>>()).unwrap()
}

fn quote_clock(attest: &str) -> ClockInfo {
    Attest::parse_quote(&vector_in("batch", attest)).unwrap().clock_info
}

impl Fixture {
    fn batched() -> Self {
        Self::with_vectors("batch", &[policy("web", "")])
    }

    /// A challenge for `nonce`, issued when the host's last clock was `host_clock`.
    fn challenge_for(&self, nonce: Nonce, host_clock: Option<ClockInfo>) {
        let c = Challenge {
            nonce,
            host_id: self.host.host_id.clone(),
            principal_id: self.caller.0.id.clone(),
            selection: "sha256:0,1,2,3,4,5,6,7".parse().unwrap(),
            expires_at: T0 + 60,
            host_clock,
        };
        let uncapped = crate::store::Cap { max: usize::MAX, now: T0 };
        let stored = self.store.put_challenge(&c, &AuditEntry::new(T0, "challenge.issue", ""), uncapped).unwrap();
        assert_eq!(stored, crate::store::Admission::Stored);
    }

    /// A request for `nonce` with the batch quote `attest` (`attest` or `attest-dup`) and `proof`.
    fn batched_request(&self, nonce: Nonce, attest: &str, proof: Option<&InclusionProof>) -> TokenRequest {
        let signature = attest.replace("attest", "signature");
        let mut req = TokenRequest { nonce: nonce.to_string(), ..self.request() };
        req.quote.attest = vector_in("batch", attest);
        req.quote.signature = vector_in("batch", &signature);
        req.quote.batch = proof.map(BatchProof::from);
        req
    }
}

#[test]
fn every_nonce_of_a_batch_gets_its_token() {
    let f = Fixture::batched();
    let nonces = nonces();
    let batch = batch_of(&nonces);
    let exp = Expectations::new(i64::try_from(T0 + 1).unwrap(), "test");
    for n in &nonces[1..] {
        f.challenge_for(*n, None);
    }
    let mut ctis = Vec::new();
    for (i, n) in nonces.iter().enumerate() {
        let issued = f.run(f.batched_request(*n, "attest", batch.proof(i).as_ref())).unwrap();
        let claims = verify(&issued.token, &f.keys(), &exp).unwrap();
        assert_eq!(claims.eat_nonce, n.as_bytes(), "each token carries its own nonce");
        ctis.push(issued.cti);
    }
    ctis.dedup();
    assert_eq!(ctis.len(), 3, "three tokens from one quote");
}

#[test]
fn a_tampered_proof_is_nonce_mismatch() {
    let f = Fixture::batched();
    let nonces = nonces();
    let mut proof = batch_of(&nonces).proof(0).unwrap();
    proof.path[1][0] ^= 1;
    let d = f.denied(f.batched_request(nonces[0], "attest", Some(&proof)), "nonce_mismatch");
    assert!(d.detail.contains("inclusion proof does not lead"), "{}", d.detail);
}

#[test]
fn a_nonce_from_another_batch_is_nonce_mismatch() {
    let f = Fixture::batched();
    // A fresh challenge, answered with this quote and a proof from a batch that did hold the nonce.
    let other: Nonce = "77".repeat(32).parse().unwrap();
    f.challenge_for(other, None);
    let their_batch = batch_of(&[nonces()[1], other]);
    f.denied(f.batched_request(other, "attest", their_batch.proof(1).as_ref()), "nonce_mismatch");
}

#[test]
fn a_proof_for_another_leaf_or_none_at_all_is_nonce_mismatch() {
    let f = Fixture::batched();
    let nonces = nonces();
    f.challenge_for(nonces[1], None);
    let batch = batch_of(&nonces);
    f.denied(f.batched_request(nonces[0], "attest", batch.proof(1).as_ref()), "nonce_mismatch");
    // Without its proof a batch quote is no single-nonce quote: extraData is not the nonce.
    f.denied(f.batched_request(nonces[1], "attest", None), "nonce_mismatch");
}

#[test]
fn a_malformed_proof_is_nonce_mismatch() {
    let f = Fixture::batched();
    let nonces = nonces();
    for n in &nonces[1..] {
        f.challenge_for(*n, None);
    }
    let good = BatchProof::from(&batch_of(&nonces).proof(0).unwrap());
    let short_hash = BatchProof { path: vec![vec![0; 31], good.path[1].clone()], ..good.clone() };
    let oversized = BatchProof { size: 65, ..good.clone() };
    let out_of_range = BatchProof { index: 3, ..good };
    for (n, bad) in nonces.iter().zip([short_hash, oversized, out_of_range]) {
        let mut req = f.batched_request(*n, "attest", None);
        req.quote.batch = Some(bad);
        f.denied(req, "nonce_mismatch");
    }
}

#[test]
fn a_nonce_held_twice_is_spent_by_its_first_use() {
    // attest-dup quotes (n0, n1, n0), a batch the agent never makes: both proofs of n0 hold, but the
    // nonce is single-use.
    let f = Fixture::batched();
    let n = nonces();
    let leaves = [n[0], n[1], n[0]].map(|x| x.as_bytes().to_vec());
    // NonceBatch refuses duplicates, so the proofs are built by hand: PATH(0, D[3]) and PATH(2, D[3]).
    let leaf = |x: &[u8]| runtrust_attestation::batch::leaf_hash(x);
    let node = |a, b| runtrust_attestation::batch::node_hash(&a, &b);
    let first = InclusionProof { index: 0, size: 3, path: vec![leaf(&leaves[1]), leaf(&leaves[2])] };
    let second = InclusionProof { index: 2, size: 3, path: vec![node(leaf(&leaves[0]), leaf(&leaves[1]))] };
    f.run(f.batched_request(n[0], "attest-dup", Some(&first))).unwrap();
    f.denied(f.batched_request(n[0], "attest-dup", Some(&second)), "nonce_replayed");
}

#[test]
fn batches_appraised_out_of_order_keep_their_challenge_baseline() {
    // Two batches of one host: `attest-dup` was quoted after `attest`. Its request is appraised first and
    // moves the host's last clock past `attest`'s; `attest` is still fresh for challenges issued before.
    let f = Fixture::batched();
    let n = nonces();
    let (earlier, later) = (quote_clock("attest"), quote_clock("attest-dup"));
    assert!(later.clock > earlier.clock && later.reset_count == earlier.reset_count, "capture order");
    let baseline = f.store.host(&f.host.host_id).unwrap().unwrap().last_clock;
    f.challenge_for(n[1], Some(baseline));
    let dup_first = InclusionProof {
        index: 0,
        size: 3,
        path: vec![
            runtrust_attestation::batch::leaf_hash(n[1].as_bytes()),
            runtrust_attestation::batch::leaf_hash(n[0].as_bytes()),
        ],
    };
    f.run(f.batched_request(n[0], "attest-dup", Some(&dup_first))).unwrap();
    assert_eq!(f.store.host(&f.host.host_id).unwrap().unwrap().last_clock, later);
    let batch = batch_of(&n);
    f.run(f.batched_request(n[1], "attest", batch.proof(1).as_ref())).unwrap();
    assert_eq!(f.store.host(&f.host.host_id).unwrap().unwrap().last_clock, later, "the latest clock is kept");
    // A challenge issued after the later quote was accepted cannot be answered with the earlier one.
    f.challenge_for(n[2], Some(later));
    f.denied(f.batched_request(n[2], "attest", batch.proof(2).as_ref()), "clock_regressed");
}
