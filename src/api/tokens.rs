//! `/v1/challenge` and `/v1/tokens`: the token request (docs/design.md §6).

use serde::{Deserialize, Serialize};

use super::QuoteEvidence;
use crate::model::b64;

/// `POST /v1/challenge` answer (docs/design.md §6): what to quote, under which nonce.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// 32 random bytes, hex; single use.
    pub nonce: String,
    pub expires_at: u64,
    /// tpm2-tools style selection the quote must cover exactly.
    pub pcr_selection: String,
    pub host_id: String,
    /// Whether the token request must carry the host's TCG event log (a policy has `[measured_boot]`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub event_log: bool,
}

/// Largest TCG event log a token request may carry (real pre-OS logs are tens of KiB).
pub const MAX_EVENT_LOG_BYTES: usize = 1 << 20;

/// `POST /v1/tokens`: the execution request with its evidence (docs/design.md §2 stage 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The challenge nonce (hex) the quote carries.
    pub nonce: String,
    pub scope: String,
    pub audience: String,
    /// Requested lifetime; the policy's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Name (hex) of the AK that made the quote: the host's runtime identity.
    pub ak_name: String,
    pub quote: QuoteEvidence,
    /// The parent token (COSE_Sign1), for delegation.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub parent: Option<Vec<u8>>,
    /// Delegate the parent to this other enrolled host (where the policy allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_host: Option<String>,
    /// The host's TCG event log (`binary_bios_measurements`), when the challenge asked for it; at most
    /// MAX_EVENT_LOG_BYTES.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub event_log: Option<Vec<u8>>,
}

/// An issued execution token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// COSE_Sign1 bytes.
    #[serde(with = "b64")]
    pub token: Vec<u8>,
    pub cti: String,
    pub expires_at: u64,
    pub policy_id: String,
    pub host_id: String,
    pub audit_index: u64,
}
