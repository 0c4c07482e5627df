//! Evidence as the host sends it (docs/design.md §4).

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
}
