use super::*;

fn sha(s: &str) -> Hash {
    sha256(&[s.as_bytes()])
}

/// sha256("runtrust batch nonce i"), i = 0..n.
fn nonces(n: usize) -> Vec<Hash> {
    (0..n).map(|i| sha(&format!("runtrust batch nonce {i}"))).collect()
}

fn h(hex_str: &str) -> Hash {
    Hash::try_from(hex::decode(hex_str).unwrap().as_slice()).unwrap()
}

/// Values computed independently (Python hashlib, RFC 9162 §2.1.1 recursion written out).
#[test]
fn known_answers() {
    let n = nonces(5);
    assert_eq!(leaf_hash(&n[0]), h("99d8fa0fe0cd63f2cdba76f9a27528e4c0876c3eae93c5552343875e6fbfbe3f"));
    let batch = NonceBatch::new(&n).unwrap();
    assert_eq!(batch.root(), h("ecbd919ad1b201cacd30e10741b9de09b9a23bf113aace3720001010b1749627"));
    // Leaf 4 of 5 sits alone on the right: its path is the root of the first four.
    let proof = batch.proof(4).unwrap();
    assert_eq!(proof.path, vec![h("1db20d57f334e50c1cac971e05f8defe11f9f9a78f617f171e8b3741f8662e1b")]);
}

#[test]
fn every_proof_of_every_size_verifies() {
    let all = nonces(MAX_BATCH);
    for size in 1..=MAX_BATCH {
        let batch = NonceBatch::new(&all[..size]).unwrap();
        let root = batch.root();
        for (i, nonce) in all[..size].iter().enumerate() {
            let proof = batch.proof(i).unwrap();
            assert_eq!((proof.index as usize, proof.size as usize), (i, size));
            assert_eq!(verify_inclusion(nonce, &proof, &root), Ok(()), "leaf {i} of {size}");
            // Each other nonce of the batch fails with this proof (unless it is the same leaf).
            let other = &all[(i + 1) % size];
            if size > 1 {
                assert_eq!(verify_inclusion(other, &proof, &root), Err(BatchError::RootMismatch));
            }
        }
        assert!(batch.proof(size).is_none());
    }
}

#[test]
fn a_batch_of_one_is_its_leaf() {
    let n = nonces(1);
    let batch = NonceBatch::new(&n).unwrap();
    assert_eq!(batch.root(), leaf_hash(&n[0]));
    assert!(batch.proof(0).unwrap().path.is_empty());
    // The leaf is domain-separated: the root is never the bare nonce.
    assert_ne!(batch.root(), n[0]);
}

#[test]
fn tampered_proofs_do_not_hold() {
    let n = nonces(7);
    let batch = NonceBatch::new(&n).unwrap();
    let root = batch.root();
    let good = batch.proof(2).unwrap();
    for k in 0..good.path.len() {
        let mut bad = good.clone();
        bad.path[k][0] ^= 1;
        assert_eq!(verify_inclusion(&n[2], &bad, &root), Err(BatchError::RootMismatch), "hash {k} flipped");
    }
    let mut moved = good.clone();
    moved.index = 3;
    assert_eq!(verify_inclusion(&n[2], &moved, &root), Err(BatchError::RootMismatch));
    // The root does not commit to the size as such (RFC 9162: it only shapes the path); a size that
    // changes the shape for this leaf breaks the proof.
    let mut resized = good.clone();
    resized.size = 3;
    assert!(matches!(verify_inclusion(&n[2], &resized, &root), Err(BatchError::ProofLength { .. })));
    let mut edge = batch.proof(6).unwrap();
    edge.size = 8;
    edge.path.insert(0, leaf_hash(&n[0]));
    assert_eq!(verify_inclusion(&n[6], &edge, &root), Err(BatchError::RootMismatch));
    let mut short = good.clone();
    short.path.pop();
    assert!(matches!(verify_inclusion(&n[2], &short, &root), Err(BatchError::ProofLength { expected: 3, .. })));
    let mut out = good.clone();
    out.index = 7;
    assert_eq!(verify_inclusion(&n[2], &out, &root), Err(BatchError::IndexOutOfRange { index: 7, size: 7 }));
    let mut huge = good;
    huge.size = 65;
    assert_eq!(verify_inclusion(&n[2], &huge, &root), Err(BatchError::Size(65)));
    // A wrong-length extraData never matches.
    assert_eq!(verify_inclusion(&n[2], &batch.proof(2).unwrap(), &root[..31]), Err(BatchError::RootMismatch));
}

#[test]
fn a_nonce_from_another_batch_does_not_hold() {
    let first = nonces(4);
    let second: Vec<Hash> = (0..4).map(|i| sha(&format!("another batch {i}"))).collect();
    let (a, b) = (NonceBatch::new(&first).unwrap(), NonceBatch::new(&second).unwrap());
    // Its own proof, the other batch's quote.
    assert_eq!(verify_inclusion(&second[1], &b.proof(1).unwrap(), &a.root()), Err(BatchError::RootMismatch));
    // This batch's proof at the same place, another nonce.
    assert_eq!(verify_inclusion(&second[1], &a.proof(1).unwrap(), &a.root()), Err(BatchError::RootMismatch));
}

#[test]
fn batches_are_bounded_and_distinct() {
    let none: [&[u8]; 0] = [];
    assert_eq!(NonceBatch::new(&none), Err(BatchError::Size(0)));
    assert_eq!(NonceBatch::new(&nonces(MAX_BATCH + 1)), Err(BatchError::Size(65)));
    let mut dup = nonces(5);
    dup[3] = dup[1];
    assert_eq!(NonceBatch::new(&dup), Err(BatchError::DuplicateNonce { index: 3, first: 1 }));
    assert_eq!(NonceBatch::new(&[&b""[..]]), Err(BatchError::BadNonce { index: 0, len: 0 }));
    assert_eq!(NonceBatch::new(&[vec![7u8; 65]]), Err(BatchError::BadNonce { index: 0, len: 65 }));
    assert!(NonceBatch::new(&[vec![7u8; 64], vec![1u8]]).is_ok(), "1 to 64 bytes");
    assert_eq!(BatchError::RootMismatch.code(), DenialCode::NonceMismatch);
}

#[test]
fn wire_parts_are_checked() {
    let ok = InclusionProof::from_parts(1, 3, &[vec![1; 32], vec![2; 32]]).unwrap();
    assert_eq!(ok.path, vec![[1u8; 32], [2u8; 32]]);
    assert_eq!(
        InclusionProof::from_parts(1, 3, &[vec![1; 32], vec![2; 31]]),
        Err(BatchError::ProofHash { position: 1, len: 31 })
    );
    let long = vec![vec![0u8; 32]; 7];
    assert!(matches!(InclusionProof::from_parts(0, 64, &long), Err(BatchError::ProofLength { actual: 7, .. })));
}
