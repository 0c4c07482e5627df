//! RFC 9162 vectors, exhaustive proof checks over small trees, tampering, and checkpoints.

use ring::rand::SystemRandom;
use runtrust_attestation::DenialCode;

use super::merkle::{consistency_proof_len, inclusion_proof_len};
use super::*;
use crate::token::{IssuerKey, KeySet, SigningAlg, TokenError};

/// The reference tree of the certificate-transparency test suites (RFC 6962 / RFC 9162 hashing).
fn ct_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        (0x60..0x70).collect(),
    ]
}

fn ct_log() -> MerkleLog {
    MerkleLog::from_leaves(&ct_leaves().iter().map(|l| leaf_hash(l)).collect::<Vec<_>>())
}

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hs(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

/// `n` distinct leaf hashes.
fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
}

// Every expected value below was computed independently with Python's hashlib (a direct transcription of
// RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1) and agrees with the CT reference test data.
const CT_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn empty_tree_root_is_sha256_of_nothing() {
    let empty = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(empty_root(), empty);
    assert_eq!(MerkleLog::new().root(), empty);
    assert_eq!(root_from_leaves(&[]), empty);
    assert_eq!(MerkleLog::new().root_at(0).unwrap(), empty);
}

#[test]
fn ct_vector_roots() {
    let log = ct_log();
    let all: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
    for (i, want) in CT_ROOTS.iter().enumerate() {
        let size = i as u64 + 1;
        assert_eq!(log.root_at(size).unwrap(), h(want), "size {size}");
        assert_eq!(root_from_leaves(&all[..=i]), h(want), "size {size}");
        assert_eq!(MerkleLog::from_leaves(&all[..=i]).root(), h(want), "size {size}");
    }
    assert_eq!(log.root(), h(CT_ROOTS[7]));
}

#[test]
fn ct_vector_inclusion_proofs() {
    let log = ct_log();
    let cases: [(u64, u64, Vec<Hash>); 4] = [
        (0, 1, vec![]),
        (
            5,
            8,
            hs(&[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (2, 3, hs(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"])),
        (
            7,
            8,
            hs(&[
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
    ];
    for (index, size, want) in cases {
        assert_eq!(log.inclusion_proof(index, size).unwrap(), want, "{index} in {size}");
        let leaf = log.leaf(index).unwrap();
        verify_inclusion(&leaf, index, size, &want, &log.root_at(size).unwrap()).unwrap();
    }
}

#[test]
fn ct_vector_consistency_proofs() {
    let log = ct_log();
    let cases: [(u64, u64, Vec<Hash>); 5] = [
        (
            1,
            8,
            hs(&[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ]),
        ),
        (
            6,
            8,
            hs(&[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ]),
        ),
        (
            2,
            5,
            hs(&[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ]),
        ),
        (
            3,
            7,
            hs(&[
                "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
                "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
            ]),
        ),
        (4, 8, hs(&["6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"])),
    ];
    for (old, new, want) in cases {
        assert_eq!(log.consistency_proof(old, new).unwrap(), want, "{old} → {new}");
        verify_consistency(old, new, &log.root_at(old).unwrap(), &log.root_at(new).unwrap(), &want).unwrap();
    }
}

#[test]
fn every_inclusion_proof_verifies_up_to_64() {
    let all = leaves(64);
    let log = MerkleLog::from_leaves(&all);
    for size in 1..=64u64 {
        let root = log.root_at(size).unwrap();
        assert_eq!(root, root_from_leaves(&all[..size as usize]));
        for index in 0..size {
            let proof = log.inclusion_proof(index, size).unwrap();
            assert_eq!(proof.len(), inclusion_proof_len(index, size));
            verify_inclusion(&all[index as usize], index, size, &proof, &root).unwrap();
            // The wrong leaf, the wrong index, the wrong root: all refused.
            let other = all[((index + 1) % 64) as usize];
            assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
            if size > 1 {
                let wrong = (index + 1) % size;
                assert!(verify_inclusion(&all[index as usize], wrong, size, &proof, &root).is_err(), "{index}/{size}");
            }
            assert!(verify_inclusion(&all[index as usize], index, size, &proof, &leaf_hash(b"x")).is_err());
            // Each proof hash matters.
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][0] ^= 1;
                let err = verify_inclusion(&all[index as usize], index, size, &bad, &root).unwrap_err();
                assert_eq!(err, AuditError::InclusionMismatch { index, size });
            }
        }
    }
}

#[test]
fn every_consistency_proof_verifies_up_to_64() {
    let all = leaves(64);
    let log = MerkleLog::from_leaves(&all);
    for new in 0..=64u64 {
        let new_root = log.root_at(new).unwrap();
        for old in 0..=new {
            let old_root = log.root_at(old).unwrap();
            let proof = log.consistency_proof(old, new).unwrap();
            assert_eq!(proof.len(), consistency_proof_len(old, new), "{old} → {new}");
            verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
            // A root of a different tree on either side is refused.
            let other = leaf_hash(b"not a root");
            if old > 0 || new > 0 {
                assert!(verify_consistency(old, new, &other, &new_root, &proof).is_err(), "{old} → {new}");
            }
            // (Every tree extends the empty one: from size 0 there is nothing about the new root to prove.)
            if old > 0 {
                assert!(verify_consistency(old, new, &old_root, &other, &proof).is_err(), "{old} → {new}");
            }
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i][31] ^= 0x80;
                let err = verify_consistency(old, new, &old_root, &new_root, &bad).unwrap_err();
                assert_eq!(err, AuditError::ConsistencyMismatch { old_size: old, new_size: new });
            }
        }
    }
}

#[test]
fn proof_lengths_and_ranges_are_checked() {
    let all = leaves(10);
    let log = MerkleLog::from_leaves(&all);
    let root = log.root();
    let proof = log.inclusion_proof(3, 10).unwrap();
    let mut long = proof.clone();
    long.push(root);
    assert_eq!(
        verify_inclusion(&all[3], 3, 10, &long, &root),
        Err(AuditError::BadProofLength { expected: proof.len(), actual: proof.len() + 1 })
    );
    assert!(matches!(verify_inclusion(&all[3], 3, 10, &proof[1..], &root), Err(AuditError::BadProofLength { .. })));
    assert_eq!(
        verify_inclusion(&all[3], 10, 10, &proof, &root),
        Err(AuditError::IndexOutOfRange { index: 10, size: 10 })
    );
    assert!(matches!(verify_inclusion(&all[0], 0, 0, &[], &root), Err(AuditError::IndexOutOfRange { .. })));

    let cons = log.consistency_proof(3, 10).unwrap();
    let old_root = log.root_at(3).unwrap();
    assert!(matches!(verify_consistency(3, 10, &old_root, &root, &cons[1..]), Err(AuditError::BadProofLength { .. })));
    assert!(matches!(verify_consistency(10, 3, &root, &old_root, &cons), Err(AuditError::SizeOutOfRange { .. })));
    assert!(matches!(verify_consistency(10, 10, &root, &root, &cons), Err(AuditError::BadProofLength { .. })));
    assert!(matches!(verify_consistency(0, 10, &empty_root(), &root, &cons), Err(AuditError::BadProofLength { .. })));
    assert_eq!(verify_consistency(0, 10, &empty_root(), &root, &[]), Ok(()));

    assert_eq!(log.root_at(11), Err(AuditError::SizeOutOfRange { size: 11, limit: 10 }));
    assert_eq!(log.inclusion_proof(0, 11), Err(AuditError::SizeOutOfRange { size: 11, limit: 10 }));
    assert_eq!(log.inclusion_proof(5, 5), Err(AuditError::IndexOutOfRange { index: 5, size: 5 }));
    assert_eq!(log.consistency_proof(3, 11), Err(AuditError::SizeOutOfRange { size: 11, limit: 10 }));
    assert_eq!(log.consistency_proof(4, 3), Err(AuditError::SizeOutOfRange { size: 4, limit: 3 }));
    assert_eq!(log.leaf(10), None);
    assert_eq!(log.leaf(u64::MAX), None);
}

#[test]
fn tampering_with_the_entries_changes_the_root() {
    for size in 1..=64u64 {
        let all = leaves(size);
        let root = root_from_leaves(&all);
        verify_root(&all, &root).unwrap();
        let n = size as usize;
        // A flipped byte in any entry.
        for i in 0..n {
            let mut entry = format!("entry {i}").into_bytes();
            entry[0] ^= 1;
            let mut t = all.clone();
            t[i] = leaf_hash(&entry);
            assert_eq!(verify_root(&t, &root), Err(AuditError::RootMismatch { size }));
            // And the untouched inclusion proof no longer verifies the altered entry.
            let proof = MerkleLog::from_leaves(&all).inclusion_proof(i as u64, size).unwrap();
            assert!(verify_inclusion(&t[i], i as u64, size, &proof, &root).is_err());
        }
        // A dropped entry (the tree is then one smaller: no consistency proof reaches the old root).
        for i in 0..n {
            let mut t = all.clone();
            t.remove(i);
            assert!(verify_root(&t, &root).is_err());
        }
        // Two entries swapped.
        for i in 0..n {
            for j in i + 1..n {
                let mut t = all.clone();
                t.swap(i, j);
                assert!(verify_root(&t, &root).is_err(), "swap {i} {j} of {size}");
            }
        }
    }
}

#[test]
fn rewriting_history_breaks_consistency() {
    let all = leaves(20);
    let log = MerkleLog::from_leaves(&all);
    let old_root = log.root_at(7).unwrap();
    // A log that rewrote entry 3 and then grew: its proofs cannot reach the saved root.
    let mut forged = all.clone();
    forged[3] = leaf_hash(b"rewritten");
    let forged = MerkleLog::from_leaves(&forged);
    let proof = forged.consistency_proof(7, 20).unwrap();
    assert_eq!(
        verify_consistency(7, 20, &old_root, &forged.root(), &proof),
        Err(AuditError::ConsistencyMismatch { old_size: 7, new_size: 20 })
    );
}

#[test]
fn incremental_roots_match_recomputation() {
    let all = leaves(300);
    let mut log = MerkleLog::new();
    for (i, leaf) in all.iter().enumerate() {
        assert_eq!(log.push(*leaf), i as u64);
        assert_eq!(log.size(), i as u64 + 1);
        assert_eq!(log.root(), root_from_leaves(&all[..=i]));
    }
    // And a few proofs far from the small cases.
    for (old, new) in [(1, 300), (128, 300), (255, 256), (257, 299), (299, 300)] {
        let p = log.consistency_proof(old, new).unwrap();
        verify_consistency(old, new, &log.root_at(old).unwrap(), &log.root_at(new).unwrap(), &p).unwrap();
    }
}

#[test]
fn entries_hash_through_canonical_bytes() {
    let entry = crate::audit::AuditEntry {
        time: 1,
        event: "policy.apply".into(),
        principal: None,
        host_id: None,
        code: None,
        detail: "d".into(),
        cti: None,
        diagnostics: serde_json::Value::Null,
    };
    let mut log = MerkleLog::new();
    let h0 = leaf_hash(&canonical_entry(&entry, 0));
    log.push(h0);
    log.push(leaf_hash(&canonical_entry(&entry, 1)));
    // The same entry at two positions: two different leaves.
    assert_ne!(log.leaf(0), log.leaf(1));
    // Swapping them therefore changes the root even though the entries are equal.
    assert_ne!(root_from_leaves(&[log.leaf(1).unwrap(), h0]), log.root());
}

fn issuer(alg: SigningAlg) -> IssuerKey {
    IssuerKey::generate(alg, &SystemRandom::new()).unwrap().0
}

fn checkpoint() -> Checkpoint {
    Checkpoint { origin: "runtrust.example/audit".into(), tree_size: 8, root: h(CT_ROOTS[7]), time: 1_700_000_000 }
}

#[test]
fn checkpoint_body_is_the_documented_text() {
    assert_eq!(
        checkpoint().body(),
        "runtrust.example/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\ntime 1700000000\n"
    );
    assert_eq!(Checkpoint::from_body(&checkpoint().body()).unwrap(), checkpoint());
}

#[test]
fn checkpoint_sign_verify_round_trip() {
    let rng = SystemRandom::new();
    for alg in [SigningAlg::EdDsa, SigningAlg::Es256] {
        let key = issuer(alg);
        let keys = KeySet::from(key.public());
        let signed = checkpoint().sign(&key, &rng).unwrap();
        let text = signed.to_text();
        assert!(text.starts_with(&(checkpoint().body() + "\n\u{2014} runtrust.example/audit ")), "{text}");
        assert!(text.ends_with('\n'));
        let parsed = SignedCheckpoint::from_text(&text).unwrap();
        assert_eq!(parsed, signed);
        assert_eq!(parsed.verify(&keys).unwrap(), vec![key.kid()]);
        // Another issuer's key set knows no signer.
        let stranger = KeySet::from(issuer(alg).public());
        assert!(matches!(parsed.verify(&stranger), Err(AuditError::BadSignature(_))));
    }
}

#[test]
fn tampered_checkpoints_do_not_verify() {
    let rng = SystemRandom::new();
    let key = issuer(SigningAlg::EdDsa);
    let keys = KeySet::from(key.public());
    let signed = checkpoint().sign(&key, &rng).unwrap();

    // Any field changed after signing.
    let mut t = signed.clone();
    t.checkpoint.tree_size = 9;
    assert!(matches!(t.verify(&keys), Err(AuditError::BadSignature(_))));
    let mut t = signed.clone();
    t.checkpoint.root[0] ^= 1;
    assert!(matches!(t.verify(&keys), Err(AuditError::BadSignature(_))));
    let mut t = signed.clone();
    t.checkpoint.time += 1;
    assert_eq!(t.verify(&keys).unwrap_err().code(), DenialCode::SignatureInvalid);
    let mut t = signed.clone();
    t.checkpoint.origin = "other".into();
    assert!(t.verify(&keys).is_err());

    // The same in the text: still parses, no longer verifies.
    let text = signed.to_text().replacen("\n8\n", "\n9\n", 1);
    assert!(SignedCheckpoint::from_text(&text).unwrap().verify(&keys).is_err());

    // A corrupted signature.
    let mut t = signed.clone();
    let last = t.signatures[0].cose.len() - 1;
    t.signatures[0].cose[last] ^= 1;
    assert!(matches!(t.verify(&keys), Err(AuditError::BadSignature(_))));

    // No signatures at all.
    let mut t = signed.clone();
    t.signatures.clear();
    assert!(matches!(t.verify(&keys), Err(AuditError::BadSignature(_))));

    // A line by an unknown key is ignored, a good one still counts; a bad one by a known key fails all.
    let other = checkpoint().sign(&issuer(SigningAlg::Es256), &rng).unwrap();
    let mut t = signed.clone();
    t.signatures.insert(0, other.signatures[0].clone());
    assert_eq!(t.verify(&keys).unwrap(), vec![key.kid()]);
    let mut t = signed.clone();
    let mut bad = signed.signatures[0].clone();
    let last = bad.cose.len() - 1;
    bad.cose[last] ^= 0x40;
    t.signatures.push(bad);
    assert!(t.verify(&keys).is_err());
}

#[test]
fn checkpoint_text_is_parsed_strictly() {
    let rng = SystemRandom::new();
    let signed = checkpoint().sign(&issuer(SigningAlg::EdDsa), &rng).unwrap();
    let good = signed.to_text();
    let sig_line = good.split('\n').nth(5).unwrap().to_owned();
    let body = checkpoint().body();
    let bad = |text: String| {
        let err = SignedCheckpoint::from_text(&text).unwrap_err();
        assert!(matches!(err, AuditError::CheckpointFormat(_)), "{text:?}: {err:?}");
        assert_eq!(err.code(), DenialCode::SignatureInvalid);
    };
    bad(good.replace('\n', "\r\n"));
    bad(good.trim_end().to_owned());
    bad(body.clone());
    bad(format!("{body}\n"));
    bad(format!("{body}\n\n{sig_line}\n"));
    bad(format!("{body}\n{sig_line}\n\n"));
    bad(format!("{body}\n{sig_line} \n"));
    bad(format!("{body}\n{}\n", sig_line.replacen('\u{2014}', "-", 1)));
    bad(format!("{body}\n{}\n", sig_line.replacen(" runtrust.example/audit ", " ", 1)));
    bad(format!("{body}\n{}\n", sig_line.replacen(" runtrust.example/audit ", " a b ", 1)));
    bad(format!("{body}\n{}!\n", sig_line));
    bad(format!("{body}\n{}\n", (0..=MAX_SIGNATURES).map(|_| sig_line.clone()).collect::<Vec<_>>().join("\n")));
    bad(good.replacen("\n8\n", "\n08\n", 1));
    bad(good.replacen("\n8\n", "\n+8\n", 1));
    bad(good.replacen("\n8\n", "\n\n", 1));
    bad(good.replacen("\n8\n", "\n18446744073709551616\n", 1));
    bad(good.replacen("time 1700000000", "time  1700000000", 1));
    bad(good.replacen("time 1700000000", "1700000000", 1));
    bad(good.replacen("time 1700000000\n", "time 1700000000\nextra\n", 1));
    bad(good.replacen(
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg",
        1,
    ));
    bad(good.replacen(
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=",
        1,
    ));
    bad(good.replacen(
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=",
        1,
    ));
    bad(good.replacen("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=", "AAAA", 1));
    bad(good.replacen("runtrust.example/audit\n", "runtrust example\n", 1));
    bad(good.replacen("runtrust.example/audit\n", "\n", 1));
    bad(format!("{}{good}", "x".repeat(MAX_CHECKPOINT_BYTES)));

    // Up to MAX_SIGNATURES lines are fine.
    let many = format!("{body}\n{}\n", (0..MAX_SIGNATURES).map(|_| sig_line.clone()).collect::<Vec<_>>().join("\n"));
    assert_eq!(SignedCheckpoint::from_text(&many).unwrap().signatures.len(), MAX_SIGNATURES);
}

#[test]
fn signing_refuses_an_origin_it_could_not_parse_back() {
    let rng = SystemRandom::new();
    let key = issuer(SigningAlg::EdDsa);
    for origin in ["", "has space", "new\nline", &"x".repeat(MAX_NAME_LEN + 1)] {
        let c = Checkpoint { origin: origin.into(), ..checkpoint() };
        assert!(matches!(c.sign(&key, &rng), Err(AuditError::CheckpointFormat(_))), "{origin:?}");
    }
}

#[test]
fn error_codes() {
    assert_eq!(AuditError::RootMismatch { size: 1 }.code(), DenialCode::SignatureInvalid);
    assert_eq!(AuditError::InclusionMismatch { index: 0, size: 1 }.code(), DenialCode::SignatureInvalid);
    assert_eq!(AuditError::Signing(TokenError::Crypto("x")).code(), DenialCode::InternalError);
}

/// Scale check (docs/design.md: ~10^6 entries): `cargo test --lib audit -- --ignored`.
#[test]
#[ignore = "slow in debug builds"]
fn a_million_leaves() {
    let mut log = MerkleLog::new();
    let mut frontier_check = Vec::with_capacity(1_000_000);
    for i in 0..1_000_000u64 {
        let leaf = leaf_hash(&i.to_be_bytes());
        frontier_check.push(leaf);
        log.push(leaf);
    }
    let root = log.root();
    assert_eq!(root, root_from_leaves(&frontier_check));
    for index in [0, 1, 524_287, 524_288, 999_999] {
        let proof = log.inclusion_proof(index, 1_000_000).unwrap();
        verify_inclusion(&frontier_check[index as usize], index, 1_000_000, &proof, &root).unwrap();
    }
    for old in [1, 999, 524_288, 999_999] {
        let proof = log.consistency_proof(old, 1_000_000).unwrap();
        verify_consistency(old, 1_000_000, &log.root_at(old).unwrap(), &root, &proof).unwrap();
    }
}

fn log_entries(n: u64) -> Vec<(u64, crate::audit::AuditEntry)> {
    (0..n).map(|i| (i, crate::audit::AuditEntry::new(0, "token.issue", format!("entry {i}")))).collect()
}

fn checkpoint_of(entries: &[(u64, crate::audit::AuditEntry)], size: u64) -> Checkpoint {
    let mut log = MerkleLog::new();
    for (i, e) in entries.iter().take(usize::try_from(size).unwrap()) {
        log.push(leaf_hash(&canonical_entry(e, *i)));
    }
    Checkpoint { origin: "t".into(), tree_size: size, root: log.root(), time: 0 }
}

#[test]
fn verify_log_checks_order_coverage_and_consistency() {
    let entries = log_entries(12);
    let cp = checkpoint_of(&entries, 12);
    let early = checkpoint_of(&entries, 5);
    let ok = verify_log(entries.clone(), &cp, Some(&early), true).unwrap();
    assert_eq!((ok.entries, ok.verified_size, ok.consistent_from), (12, 12, Some(5)));

    // A live log may have grown past the checkpoint; an export must match it exactly.
    assert!(verify_log(entries.clone(), &early, None, false).is_ok());
    assert!(matches!(verify_log(entries.clone(), &early, None, true), Err(AuditError::NotCovered { .. })));

    let mut swapped = entries.clone();
    swapped.swap(3, 4);
    assert!(matches!(verify_log(swapped, &cp, None, true), Err(AuditError::ExportOrder { .. })));
    let mut dropped = entries.clone();
    dropped.remove(7);
    assert!(matches!(verify_log(dropped, &cp, None, true), Err(AuditError::ExportOrder { .. })));
    let mut changed = entries.clone();
    changed[2].1.detail.push('!');
    assert!(matches!(verify_log(changed.clone(), &cp, None, true), Err(AuditError::RootMismatch { .. })));
    // A change after the earlier checkpoint but inside the later one: the later root catches it.
    changed[2].1.detail.pop();
    changed[9].1.detail.push('!');
    assert!(verify_log(changed, &cp, Some(&early), true).is_err());
    // An earlier checkpoint whose root the prefix does not reproduce.
    let forged = Checkpoint { root: [7; 32], ..early };
    assert!(verify_log(entries.clone(), &cp, Some(&forged), true).is_err());
    let bigger = checkpoint_of(&entries, 12);
    assert!(verify_log(entries[..10].to_vec(), &bigger, None, false).is_err(), "fewer entries than the checkpoint");
}
