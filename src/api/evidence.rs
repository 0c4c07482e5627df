//! Evidence as the host sends it (docs/design.md §4, §14).

use runtrust_attestation::batch::{BatchError, InclusionProof};
use runtrust_attestation::PcrValues;
use serde::{Deserialize, Serialize};

use crate::model::b64;

/// A quote as the host sends it (docs/design.md §4): the TPM's bytes untouched, plus the PCR values it read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteEvidence {
    /// TPMS_ATTEST.
    #[serde(with = "b64")]
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    pub pcrs: PcrValues,
    /// docs/design.md §14: present when the quote attests a batch of nonces (the host agent's), absent for a
    /// single-nonce quote (extraData == nonce). Omitted when absent, so older services still parse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchProof>,
}

/// The inclusion proof of the request's nonce in the batch whose root is the quote's extraData (RFC 9162
/// §2.1.3.1 PATH, the sibling nearest the leaf first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchProof {
    /// The nonce's leaf index (arrival order).
    pub index: u32,
    /// How many nonces the batch holds (at most 64).
    pub size: u32,
    /// SHA-256 hashes, base64url.
    #[serde(with = "b64::vec")]
    pub path: Vec<Vec<u8>>,
}

impl BatchProof {
    /// The proof to verify (each hash 32 bytes, at most six of them).
    pub fn to_proof(&self) -> Result<InclusionProof, BatchError> {
        InclusionProof::from_parts(self.index, self.size, &self.path)
    }
}

impl From<&InclusionProof> for BatchProof {
    fn from(p: &InclusionProof) -> Self {
        Self { index: p.index, size: p.size, path: p.path.iter().map(|h| h.to_vec()).collect() }
    }
}
