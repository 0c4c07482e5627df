//! Nonce batches (docs/design.md §14): one TPM2_Quote attests up to [`MAX_BATCH`] requests. Its
//! qualifyingData is the RFC 9162 §2.1.1 Merkle Tree Hash (SHA-256) over the leaves
//! `H(0x00 ‖ "runtrust nonce batch v1" ‖ nonce_i)`, in arrival order. Each requester gets an RFC 9162
//! §2.1.3.1 inclusion proof of its own nonce; a verifier recomputes the root from its nonce and the proof
//! (§2.1.3.2) and compares it with extraData in constant time. Freshness holds per requester: the root
//! cannot exist before every nonce in it was chosen.

use ring::digest::{Context, SHA256};

use crate::denial::DenialCode;

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// The most nonces one quote attests (docs/design.md §14).
pub const MAX_BATCH: usize = 64;
/// The longest nonce a batch takes (a TPM2B_DATA holds at most 64 bytes).
pub const MAX_NONCE: usize = 64;
/// The domain-separation tag after the leaf prefix, so a batch leaf is never any other hash input.
pub const LEAF_TAG: &[u8] = b"runtrust nonce batch v1";
/// RFC 9162 §2.1.1: leaf and interior-node hash inputs start with these bytes.
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Why a batch could not be formed, or why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a nonce batch holds 1 to {MAX_BATCH} nonces, not {0}")]
    Size(usize),
    #[error("nonce {index} is {len} bytes; a batch takes nonces of 1 to {MAX_NONCE} bytes")]
    BadNonce { index: usize, len: usize },
    #[error("nonce {index} repeats nonce {first}: a batch never holds the same nonce twice")]
    DuplicateNonce { index: usize, first: usize },
    #[error("the batch proof names leaf {index} of a batch of {size}, which does not exist")]
    IndexOutOfRange { index: u32, size: u32 },
    #[error("the batch proof has {actual} hashes; leaf {index} of {size} needs {expected}")]
    ProofLength { index: u32, size: u32, expected: usize, actual: usize },
    #[error("batch proof hash {position} is {len} bytes, not 32 (SHA-256)")]
    ProofHash { position: usize, len: usize },
    #[error("the nonce's batch inclusion proof does not lead to the quote's extraData: a tampered proof, or a nonce from another batch")]
    RootMismatch,
}

impl BatchError {
    /// Every batch failure is a nonce that the quote does not provably carry.
    pub fn code(&self) -> DenialCode {
        DenialCode::NonceMismatch
    }
}

/// PATH(index, D[size]) of RFC 9162 §2.1.3.1 for one nonce: the sibling nearest the leaf first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The nonce's leaf index, in arrival order.
    pub index: u32,
    /// How many nonces the batch holds.
    pub size: u32,
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// A proof from wire parts, each path element exactly 32 bytes; size and index are checked on use.
    pub fn from_parts(index: u32, size: u32, path: &[Vec<u8>]) -> Result<Self, BatchError> {
        // A valid proof for at most MAX_BATCH leaves has at most log2(MAX_BATCH) hashes; refuse a long
        // list before copying it.
        let limit = MAX_BATCH.trailing_zeros() as usize;
        if path.len() > limit {
            let expected = proof_len(index, size).unwrap_or(limit);
            return Err(BatchError::ProofLength { index, size, expected, actual: path.len() });
        }
        let path = path
            .iter()
            .enumerate()
            .map(|(position, h)| {
                Hash::try_from(h.as_slice()).map_err(|_| BatchError::ProofHash { position, len: h.len() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { index, size, path })
    }
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The leaf of `nonce`: H(0x00 ‖ "runtrust nonce batch v1" ‖ nonce) (docs/design.md §14).
pub fn leaf_hash(nonce: &[u8]) -> Hash {
    sha256(&[&[LEAF_PREFIX], LEAF_TAG, nonce])
}

/// RFC 9162 §2.1.1: H(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[NODE_PREFIX], left, right])
}

/// RFC 9162 §2.1.1's k: the largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over leaf hashes (n ≥ 1; a batch is never empty).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => sha256(&[]),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]) of RFC 9162 §2.1.3.1, appended in proof order.
fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if m < k {
        path(m, &leaves[..k], out);
        out.push(mth(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(mth(&leaves[..k]));
    }
}

/// How many hashes PATH(index, D[size]) has, or None when the index is not in the tree.
fn proof_len(index: u32, size: u32) -> Option<usize> {
    if index >= size {
        return None;
    }
    let (mut m, mut n, mut len) = (index as usize, size as usize, 0);
    while n > 1 {
        let k = split(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    Some(len)
}

/// The nonces one quote attests, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceBatch {
    leaves: Vec<Hash>,
}

impl NonceBatch {
    /// A batch of 1 to [`MAX_BATCH`] distinct nonces of 1 to [`MAX_NONCE`] bytes each.
    pub fn new<N: AsRef<[u8]>>(nonces: &[N]) -> Result<Self, BatchError> {
        if nonces.is_empty() || nonces.len() > MAX_BATCH {
            return Err(BatchError::Size(nonces.len()));
        }
        for (index, n) in nonces.iter().enumerate() {
            let len = n.as_ref().len();
            if len == 0 || len > MAX_NONCE {
                return Err(BatchError::BadNonce { index, len });
            }
            if let Some(first) = nonces[..index].iter().position(|m| m.as_ref() == n.as_ref()) {
                return Err(BatchError::DuplicateNonce { index, first });
            }
        }
        Ok(Self { leaves: nonces.iter().map(|n| leaf_hash(n.as_ref())).collect() })
    }

    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The qualifyingData for the batch's quote.
    pub fn root(&self) -> Hash {
        mth(&self.leaves)
    }

    /// The inclusion proof of nonce `index`.
    pub fn proof(&self, index: usize) -> Option<InclusionProof> {
        if index >= self.leaves.len() {
            return None;
        }
        let mut out = Vec::new();
        path(index, &self.leaves, &mut out);
        // Both fit: a batch holds at most MAX_BATCH leaves.
        Some(InclusionProof { index: index as u32, size: self.leaves.len() as u32, path: out })
    }
}

/// RFC 9162 §2.1.3.2: the root that `proof` leads to from `nonce`'s leaf.
pub fn root_from_proof(nonce: &[u8], proof: &InclusionProof) -> Result<Hash, BatchError> {
    let (index, size) = (proof.index, proof.size);
    if size == 0 || size as usize > MAX_BATCH {
        return Err(BatchError::Size(size as usize));
    }
    if nonce.is_empty() || nonce.len() > MAX_NONCE {
        return Err(BatchError::BadNonce { index: index as usize, len: nonce.len() });
    }
    let expected = proof_len(index, size).ok_or(BatchError::IndexOutOfRange { index, size })?;
    if proof.path.len() != expected {
        return Err(BatchError::ProofLength { index, size, expected, actual: proof.path.len() });
    }
    // The root comparison is the caller's, in constant time.
    root_from_path(&leaf_hash(nonce), u64::from(index), u64::from(size), &proof.path).ok_or(BatchError::RootMismatch)
}

/// RFC 9162 §2.1.3.2 steps 2–5 without the final comparison: the root that `path` (the sibling nearest the
/// leaf first) leads to from `leaf`, entry `index` of a tree of `size` leaves; None when the path does not
/// fit those sizes. Callers check step 1 (`index < size`) and the path's length first. The audit log's
/// inclusion proofs use it too.
pub fn root_from_path(leaf: &Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return None;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            // The right edge of an unbalanced tree: skip the levels where this node has no sibling.
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    (s_n == 0).then_some(r)
}

/// Checks that `proof` leads from `nonce` to `extra_data` (a quote's qualifyingData), in constant time.
pub fn verify_inclusion(nonce: &[u8], proof: &InclusionProof, extra_data: &[u8]) -> Result<(), BatchError> {
    let root = root_from_proof(nonce, proof)?;
    if crate::ct_eq(&root, extra_data) {
        Ok(())
    } else {
        Err(BatchError::RootMismatch)
    }
}

#[cfg(test)]
mod tests;
