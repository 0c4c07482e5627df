//! The tamper-evident audit log (docs/design.md §11), its pure core: an append-only Merkle tree with RFC 9162
//! hashing over the canonical bytes of each entry, inclusion and consistency proofs and their offline
//! verification, and signed checkpoints.
//!
//! ```text
//! service: canonical_entry(entry, i) ─► leaf_hash ─► MerkleLog::push ─► Checkpoint{root, size}.sign
//! auditor: entries ─► root_from_leaves ─► verify_root against SignedCheckpoint::verify'd checkpoint,
//!          verify_consistency against a checkpoint saved earlier, verify_inclusion for one entry
//! ```
//!
//! Every verification failure maps to `signature_invalid` (see [`AuditError::code`]).

mod checkpoint;
mod entry;
mod error;
mod merkle;
mod record;
mod verify;

pub use checkpoint::{
    Checkpoint, CheckpointSignature, SignedCheckpoint, MAX_CHECKPOINT_BYTES, MAX_NAME_LEN, MAX_SIGNATURES,
};
pub use entry::{canonical_entry, export_line, parse_export_line, ENTRY_ENCODING_VERSION, MAX_EXPORT_LINE};
pub use error::AuditError;
pub use merkle::{empty_root, leaf_hash, node_hash, root_from_leaves, Hash, MerkleLog};
pub use record::AuditEntry;
pub use verify::{verify_consistency, verify_inclusion, verify_log, verify_root, LogVerification};

#[cfg(test)]
mod tests;
