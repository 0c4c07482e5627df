//! `/v1/policies` (docs/design.md §10).

use serde::{Deserialize, Serialize};

use crate::model::b64;

/// `POST /v1/policies`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyPolicy {
    /// The policy file's exact bytes (its hash is their SHA-256).
    #[serde(with = "b64")]
    pub policy: Vec<u8>,
    /// Detached COSE_Sign1 by a policy authority over those bytes.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub signature: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyView {
    pub id: String,
    pub hash: String,
    pub signed_by: Option<String>,
    pub applied_at: u64,
    pub applied_by: String,
}
