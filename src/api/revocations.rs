//! `/v1/revocations`: revoking and the signed feed (docs/design.md §11, §15).

use serde::{Deserialize, Serialize};

use crate::model::b64;
use crate::model::{Revocation, RevocationKind};

/// `POST /v1/revocations` (admin).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// `token`, `host` or `policy` (a lift is `POST /v1/hosts/{host_id}/unrevoke`).
    pub kind: RevocationKind,
    /// A token's cti (hex), a host id, or a policy id.
    pub target: String,
    #[serde(default)]
    pub reason: String,
}

/// The payload of `GET /v1/revocations?since=SEQ`, signed by the issuer key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationFeed {
    /// The service id.
    pub issuer: String,
    pub since: u64,
    /// Ask for `since=next` to continue.
    pub next: u64,
    /// When the feed was signed (a gateway refuses a stale one).
    pub time: u64,
    pub revocations: Vec<RevocationView>,
}

/// The feed as sent: the payload's exact bytes (JSON) and a detached COSE_Sign1 over them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedFeed {
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// A revocation as the API shows it (the revoke answer and each feed entry).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RevocationView {
    /// Dense, from 0.
    pub seq: u64,
    pub kind: RevocationKind,
    /// The token's cti (hex), the host id, or the policy id.
    pub target: String,
    /// For a policy: the hash (hex) of the version revoked.
    pub policy_hash: Option<String>,
    pub reason: String,
    pub time: u64,
    pub by: String,
    /// The tokens this revoked when it was made.
    pub tokens: Vec<String>,
    pub audit_index: u64,
    /// For kind `unrevoke`: the seq of the host revocation it lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifts: Option<u64>,
}

impl From<Revocation> for RevocationView {
    fn from(r: Revocation) -> Self {
        let Revocation { seq, kind, target, policy_hash, reason, time, by, tokens, audit_index, lifts } = r;
        RevocationView { seq, kind, target, policy_hash, reason, time, by, tokens, audit_index, lifts }
    }
}
