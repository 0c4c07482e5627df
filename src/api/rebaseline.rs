//! `POST /v1/hosts/{host_id}/rebaseline` (admin): forget a host's last accepted TPM clock (docs/design.md §4).

use serde::{Deserialize, Serialize};

/// Longest reason kept (it is stored in the audit entry).
pub const MAX_REASON_BYTES: usize = 512;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebaselineRequest {
    /// Why (audited): e.g. "TPM cleared by the owner, ticket 1234".
    pub reason: String,
}

/// The clock that was forgotten; the host's next accepted quote becomes its baseline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rebaselined {
    pub host_id: String,
    pub previous_clock: u64,
    pub previous_reset_count: u32,
    pub previous_restart_count: u32,
}
