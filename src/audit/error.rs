//! Why an audit log, a proof or a checkpoint does not verify, and the docs/design.md §8 code each reason maps to.

use runtrust_attestation::DenialCode;

use crate::token::TokenError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// RFC 9162 §2.1.3.2: the audit path does not lead from the leaf to the root.
    #[error("inclusion proof for entry {index} does not lead to the root of the tree of size {size}")]
    InclusionMismatch { index: u64, size: u64 },
    /// RFC 9162 §2.1.4.2: the proof does not reproduce both roots.
    #[error("consistency proof from size {old_size} to size {new_size} does not reproduce both roots")]
    ConsistencyMismatch { old_size: u64, new_size: u64 },
    /// A proof with more or fewer hashes than its sizes call for.
    #[error("proof has {actual} hashes, {expected} expected")]
    BadProofLength { expected: usize, actual: usize },
    #[error("entry index {index} is not within a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A tree size beyond the log (or an old size beyond the new one).
    #[error("tree size {size} is beyond {limit}")]
    SizeOutOfRange { size: u64, limit: u64 },
    /// The entries do not hash to the root a checkpoint commits to.
    #[error("the {size} entries do not hash to the checkpoint's root")]
    RootMismatch { size: u64 },
    /// An exported entry line that is not exactly what `audit tail --json` writes.
    #[error("export: {0}")]
    ExportFormat(String),
    /// Exported entries out of order, missing or repeated.
    #[error("export: expected entry {expected}, found entry {found}")]
    ExportOrder { expected: u64, found: u64 },
    /// Entries beyond what the checkpoint commits to: nothing signed vouches for them.
    #[error(
        "{entries} entries, but the checkpoint covers {size}: export with `audit tail --all --json --checkpoint FILE`"
    )]
    NotCovered { entries: u64, size: u64 },
    #[error("checkpoint is not well formed: {0}")]
    CheckpointFormat(String),
    /// No signature line is by a key of the key set, or one by a known key does not verify.
    #[error("checkpoint signature: {0}")]
    BadSignature(String),
    /// The issuer key could not sign (the service's own fault).
    #[error("cannot sign checkpoint: {0}")]
    Signing(TokenError),
}

impl AuditError {
    /// A log that does not verify is as good as a bad signature: a checkpoint is a signed commitment to
    /// every entry, so a proof, size, root or entry that contradicts it is a forged or altered statement by
    /// the issuer, exactly like a token whose signature fails (`TokenError::Malformed` maps the same way).
    /// Only a failure to sign is the service's own fault. (`runtrust audit verify` exits 3 on all of them.)
    pub fn code(&self) -> DenialCode {
        match self {
            AuditError::InclusionMismatch { .. }
            | AuditError::ConsistencyMismatch { .. }
            | AuditError::BadProofLength { .. }
            | AuditError::IndexOutOfRange { .. }
            | AuditError::SizeOutOfRange { .. }
            | AuditError::RootMismatch { .. }
            | AuditError::ExportFormat(_)
            | AuditError::ExportOrder { .. }
            | AuditError::NotCovered { .. }
            | AuditError::CheckpointFormat(_)
            | AuditError::BadSignature(_) => DenialCode::SignatureInvalid,
            AuditError::Signing(_) => DenialCode::InternalError,
        }
    }
}
