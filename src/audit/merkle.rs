//! The Merkle Tree Hash of RFC 9162 §2.1.1 over SHA-256, and an in-memory append-only tree that answers
//! roots of every past size, inclusion proofs (§2.1.3.1) and consistency proofs (§2.1.4.1).
//!
//! Storage: `levels[k][i]` is the hash of the full subtree of 2^k leaves starting at leaf `i·2^k`
//! (`levels[0]` are the leaf hashes). That is under 2n hashes in all (64 MiB for 10^6 leaves), never
//! recomputed: `push` is amortized O(1) (O(log n) worst case), the hash of any subtree `D[a:b]` the
//! proofs need is at most one cached node per level, so `root_at` is O(log n) and a proof O(log² n).

use ring::digest::{digest, SHA256};

use super::AuditError;

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// RFC 9162 §2.1.1: the hash of a leaf is domain-separated from an interior node by this first byte.
const LEAF_PREFIX: u8 = 0x00;
/// RFC 9162 §2.1.1: the first byte of an interior node's hash input.
const NODE_PREFIX: u8 = 0x01;

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = ring::digest::Context::new(&SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 ‖ d(0)).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256(&[&[LEAF_PREFIX], entry])
}

/// RFC 9162 §2.1.1: SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[NODE_PREFIX], left, right])
}

/// RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string.
pub fn empty_root() -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, b"").as_ref());
    out
}

/// The largest power of two smaller than `n` (RFC 9162 §2.1.1's k); callers pass `n` ≥ 2 (1 for less).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n.max(2) - 1).leading_zeros())
}

/// The MTH of a list of leaf hashes, in O(n) time and O(log n) space (the tree's right frontier).
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    // Full subtrees not yet merged, as (height, hash); heights strictly decrease from bottom to top.
    let mut frontier: Vec<(u32, Hash)> = Vec::with_capacity(64);
    for leaf in leaves {
        let mut cur = (0u32, *leaf);
        while let Some(&(h, left)) = frontier.last() {
            if h != cur.0 {
                break;
            }
            frontier.pop();
            cur = (h + 1, node_hash(&left, &cur.1));
        }
        frontier.push(cur);
    }
    fold_frontier(frontier.iter().map(|(_, h)| h))
}

/// Combines the full subtrees of a tree, left (largest) to right, into its root: for n = 2^a + … + 2^z the
/// root is node(T_a, node(…, T_z)), which is RFC 9162's recursive split.
fn fold_frontier<'a>(subtrees: impl DoubleEndedIterator<Item = &'a Hash>) -> Hash {
    let mut iter = subtrees.rev();
    let Some(last) = iter.next() else { return empty_root() };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// An append-only Merkle tree over leaf hashes (see the module comment for costs).
#[derive(Clone, Debug, Default)]
pub struct MerkleLog {
    levels: Vec<Vec<Hash>>,
}

impl MerkleLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over these leaf hashes, in order.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut log = Self::new();
        for leaf in leaves {
            log.push(*leaf);
        }
        log
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let mut cur = leaf;
        let mut k = 0;
        loop {
            let level = &mut self.levels[k];
            level.push(cur);
            let len = level.len();
            if len % 2 != 0 {
                break;
            }
            // A new full subtree of 2^(k+1) leaves is complete.
            cur = node_hash(&level[len - 2], &level[len - 1]);
            k += 1;
            if self.levels.len() == k {
                self.levels.push(Vec::new());
            }
        }
        self.size() - 1
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.subtree(0, self.size())
    }

    /// The root the tree had when it held `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, AuditError> {
        self.check_size(size)?;
        Ok(self.subtree(0, size))
    }

    /// RFC 9162 §2.1.3.1: PATH(index, D[0:size]), the sibling nearest the leaf first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        if index >= size {
            return Err(AuditError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::with_capacity(inclusion_proof_len(index, size));
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// RFC 9162 §2.1.4.1: PROOF(old, D[0:new]). Empty when `old` is 0 or equals `new` (nothing to prove).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(new)?;
        if old > new {
            return Err(AuditError::SizeOutOfRange { size: old, limit: new });
        }
        let mut proof = Vec::with_capacity(consistency_proof_len(old, new));
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), AuditError> {
        let limit = self.size();
        if size > limit {
            return Err(AuditError::SizeOutOfRange { size, limit });
        }
        Ok(())
    }

    /// MTH(D[start:end]) for `end` ≤ size: cached when it is a full aligned subtree, split per §2.1.1
    /// otherwise.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && start % n == 0 {
            let k = n.trailing_zeros() as usize;
            if let Some(h) = self.levels.get(k).and_then(|l| l.get((start >> k) as usize)) {
                return *h;
            }
        }
        if n == 1 {
            // Unreachable for start < size: every leaf is cached at level 0.
            return empty_root();
        }
        let k = split(n);
        node_hash(&self.subtree(start, start + k), &self.subtree(start + k, end))
    }

    /// PATH(m, D[start:end]) of §2.1.3.1, appended in proof order.
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// SUBPROOF(m, D[start:end], b) of §2.1.4.1, appended in proof order.
    fn subproof(&self, m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !b {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, b, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

/// How many hashes PATH(index, D[size]) has (mirrors `MerkleLog::path`); `index` < `size`.
pub(crate) fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut m, mut n, mut len) = (index, size, 0);
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
    len
}

/// How many hashes PROOF(old, D[new]) has (mirrors `MerkleLog::subproof`); 0 when old is 0 or new.
pub(crate) fn consistency_proof_len(old: u64, new: u64) -> usize {
    if old == 0 || old >= new {
        return 0;
    }
    let (mut m, mut n, mut b, mut len) = (old, new, true, 0);
    while m != n {
        let k = split(n);
        if m > k {
            m -= k;
            n -= k;
            b = false;
        } else {
            n = k;
        }
        len += 1;
    }
    len + usize::from(!b)
}
