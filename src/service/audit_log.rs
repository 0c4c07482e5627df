//! The Merkle view of the audit log (docs/design.md §11). The store holds the entries, each durable before its
//! answer leaves; this keeps the RFC 9162 tree over their canonical bytes, caught up from the store (in
//! index order) before every checkpoint or proof, and signs checkpoints only over entries already flushed.

use std::sync::{Mutex, MutexGuard};

use crate::audit::{canonical_entry, leaf_hash, Checkpoint, Hash, MerkleLog, SignedCheckpoint};
use crate::store::{Store, StoreError};

use super::{AppState, Fault};

/// Entries read from the store per step while catching up.
const SYNC_BATCH: usize = 10_000;

#[derive(Default)]
pub struct AuditTree {
    log: Mutex<MerkleLog>,
}

/// A consistent view: the tree's size, its root, and the proof asked for, all at that size.
pub struct TreeView<T> {
    pub size: u64,
    pub root: Hash,
    pub proof: T,
}

impl AuditTree {
    /// Catches up with the store: pushes every entry appended since the last call, in index order. Every
    /// entry it covers is durable (flushed) before this returns.
    fn sync(&self, store: &dyn Store) -> Result<MutexGuard<'_, MerkleLog>, StoreError> {
        let mut log = self.log.lock().map_err(|_| StoreError::Backend("audit tree lock poisoned".into()))?;
        // Length first, then flush: every entry below `end` is then on disk (an entry committed after the
        // length was read is left for the next sync).
        let end = store.audit_len()?;
        store.flush()?;
        while log.size() < end {
            let batch = store.audit(log.size(), SYNC_BATCH)?;
            if batch.is_empty() {
                break;
            }
            for (index, entry) in batch {
                if index >= end {
                    break;
                }
                if index != log.size() {
                    return Err(StoreError::Corrupt {
                        key: format!("audit/{index}"),
                        detail: format!("the log has no entry {}", log.size()),
                    });
                }
                log.push(leaf_hash(&canonical_entry(&entry, index)));
            }
        }
        Ok(log)
    }

    /// The current size and root, and `f` of the tree at that size.
    pub fn view<T>(
        &self,
        store: &dyn Store,
        f: impl FnOnce(&MerkleLog, u64) -> Result<T, StoreError>,
    ) -> Result<TreeView<T>, StoreError> {
        let log = self.sync(store)?;
        let size = log.size();
        let proof = f(&log, size)?;
        Ok(TreeView { size, root: log.root(), proof })
    }
}

/// Signs a checkpoint over (size, root) with the newest issuer key; origin is the service id.
pub fn sign_checkpoint(state: &AppState, size: u64, root: Hash) -> Result<SignedCheckpoint, Fault> {
    let time = state.clock.now_unix();
    let checkpoint = Checkpoint { origin: state.config.service_id.clone(), tree_size: size, root, time };
    let keys = state.issuer.read().map_err(|_| Fault::Poisoned("issuer keys"))?;
    let (_, key) = keys.last().ok_or(Fault::NoIssuerKey)?;
    checkpoint.sign(key, &state.rng).map_err(|e| Fault::Signing(format!("checkpoint: {e}")))
}
