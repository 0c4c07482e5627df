//! `/v1/audit`: entries, proofs and checkpoints (docs/design.md §11).

use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;

/// An audit entry with its proof of inclusion (`GET /v1/audit/prove/{cti}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InclusionProof {
    pub cti: String,
    /// The entry as an export line (`audit tail --json`).
    pub line: String,
    pub index: u64,
    pub tree_size: u64,
    /// RFC 9162 §2.1.3.1 PATH, hex, nearest the leaf first.
    pub proof: Vec<String>,
    /// The signed checkpoint of `tree_size` (text).
    pub checkpoint: String,
}

/// `GET /v1/audit/consistency?from=N`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub tree_size: u64,
    /// RFC 9162 §2.1.4.1 PROOF, hex.
    pub proof: Vec<String>,
    pub checkpoint: String,
}

/// One entry of `GET /v1/audit?from=N&limit=M`: its index beside its fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexedEntry {
    pub index: u64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}
