//! Offline verification (`runtrust audit verify`): RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
//! (consistency), taking nothing from the log but the proof. Each proof's length is checked first against
//! the length its sizes call for, so a malformed proof is told apart from a wrong one.

use super::merkle::{consistency_proof_len, inclusion_proof_len, node_hash, root_from_leaves, Hash};
use super::AuditError;

/// RFC 9162 §2.1.3.2: checks that `leaf` is entry `index` of the tree of `size` leaves whose root is
/// `root`, by `proof` (PATH, the sibling nearest the leaf first).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), AuditError> {
    // Step 1: the index must be in the tree.
    if index >= size {
        return Err(AuditError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(AuditError::BadProofLength { expected, actual: proof.len() });
    }
    // Steps 2–5 (the same walk as a nonce batch's proofs).
    match runtrust_attestation::batch::root_from_path(leaf, index, size, proof) {
        Some(r) if r == *root => Ok(()),
        _ => Err(AuditError::InclusionMismatch { index, size }),
    }
}

/// RFC 9162 §2.1.4.2: checks that the tree of `new_size` leaves with root `new_root` extends the tree of
/// `old_size` leaves with root `old_root`, by `proof` (PROOF(old_size, D[new_size])).
///
/// Equal sizes need an empty proof and equal roots. RFC 9162 leaves size 0 undefined; every tree extends
/// the empty one, so an old size of 0 needs an empty proof and the empty-tree root (as in
/// transparency-dev/merkle, plus the root check).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if old_size > new_size {
        return Err(AuditError::SizeOutOfRange { size: old_size, limit: new_size });
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(AuditError::BadProofLength { expected, actual: proof.len() });
    }
    let mismatch = AuditError::ConsistencyMismatch { old_size, new_size };
    if old_size == new_size {
        return if old_root == new_root { Ok(()) } else { Err(mismatch) };
    }
    if old_size == 0 {
        return if *old_root == root_from_leaves(&[]) { Ok(()) } else { Err(mismatch) };
    }
    // Step 1: an old tree that is a full subtree is its own first node.
    let path: Vec<&Hash> = if old_size.is_power_of_two() {
        std::iter::once(old_root).chain(proof).collect()
    } else {
        proof.iter().collect()
    };
    let Some((first, rest)) = path.split_first() else { return Err(mismatch) };
    // Step 2.
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    // Step 3.
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 4.
    let (mut fr, mut sr) = (**first, **first);
    // Step 5.
    for c in rest {
        if s_n == 0 {
            return Err(mismatch);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 6.
    if fr == *old_root && sr == *new_root && s_n == 0 {
        Ok(())
    } else {
        Err(mismatch)
    }
}

/// Recomputes the root from all the leaf hashes and compares it with the one a checkpoint commits to.
pub fn verify_root(leaves: &[Hash], root: &Hash) -> Result<(), AuditError> {
    if root_from_leaves(leaves) == *root {
        Ok(())
    } else {
        Err(AuditError::RootMismatch { size: leaves.len() as u64 })
    }
}

/// What [`verify_log`] established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogVerification {
    /// Entries read (may exceed the checkpoint's size: the log grew after it was signed).
    pub entries: u64,
    /// The checkpoint's size, whose root the first entries reproduce.
    pub verified_size: u64,
    /// The size of the earlier checkpoint shown consistent, if one was given.
    pub consistent_from: Option<u64>,
}

/// Recomputes the tree from a whole log (entries from index 0, in order, none missing) and checks it against
/// a checkpoint, and, when given, an earlier checkpoint: its root must be the root of the log's prefix
/// (RFC 9162 §2.1.4: the log only grew). With `exact`, the log must hold exactly the checkpoint's entries
/// (an export: an entry the checkpoint does not cover would pass unverified); without, entries appended
/// after the checkpoint was signed are allowed (a live log). Signatures are the caller's to check.
pub fn verify_log(
    entries: impl IntoIterator<Item = (u64, crate::audit::AuditEntry)>,
    checkpoint: &super::Checkpoint,
    earlier: Option<&super::Checkpoint>,
    exact: bool,
) -> Result<LogVerification, AuditError> {
    let mut log = super::MerkleLog::new();
    for (index, entry) in entries {
        if index != log.size() {
            return Err(AuditError::ExportOrder { expected: log.size(), found: index });
        }
        log.push(super::leaf_hash(&super::canonical_entry(&entry, index)));
    }
    if checkpoint.tree_size > log.size() {
        return Err(AuditError::SizeOutOfRange { size: checkpoint.tree_size, limit: log.size() });
    }
    if exact && log.size() != checkpoint.tree_size {
        return Err(AuditError::NotCovered { entries: log.size(), size: checkpoint.tree_size });
    }
    if log.root_at(checkpoint.tree_size)? != checkpoint.root {
        return Err(AuditError::RootMismatch { size: checkpoint.tree_size });
    }
    let consistent_from = match earlier {
        None => None,
        Some(old) => {
            if old.tree_size > checkpoint.tree_size {
                return Err(AuditError::SizeOutOfRange { size: old.tree_size, limit: checkpoint.tree_size });
            }
            // With every entry at hand, consistency is direct: the prefix's root is the earlier root.
            if log.root_at(old.tree_size)? != old.root {
                return Err(AuditError::ConsistencyMismatch {
                    old_size: old.tree_size,
                    new_size: checkpoint.tree_size,
                });
            }
            Some(old.tree_size)
        }
    };
    Ok(LogVerification { entries: log.size(), verified_size: checkpoint.tree_size, consistent_from })
}
