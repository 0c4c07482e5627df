//! `GET /v1/lineage/{cti}`: a token's ancestry, its descendants as a tree, and the executions under each
//! (docs/design.md §2 stage 9, §11).

use serde::{Deserialize, Serialize};

use super::ExecutionView;
use crate::model::HostId;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lineage {
    pub cti: String,
    /// Root first; without children.
    pub ancestors: Vec<LineageNode>,
    /// The token, with its descendants.
    pub token: LineageNode,
    /// More descendants than one answer shows.
    pub truncated: bool,
}

/// Where a token stands now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    /// Single use, and used.
    Spent,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn name(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Spent => "spent",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
        }
    }
}

/// What revoked a token: itself, an ancestor, a host or a policy on its chain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevokedVia {
    pub via: String,
    pub reason: String,
    pub by: String,
    pub time: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LineageNode {
    pub cti: String,
    pub host_id: HostId,
    pub scope: String,
    pub audience: String,
    pub initiator: String,
    pub policy_id: String,
    pub depth: u32,
    pub issued_at: u64,
    pub expires_at: u64,
    pub single_use: bool,
    pub status: TokenStatus,
    pub revoked: Option<RevokedVia>,
    pub audit_index: u64,
    pub executions: Vec<ExecutionView>,
    /// Present in the tree under `token`, absent for ancestors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<LineageNode>>,
}
