//! `/v1/hosts` and `/v1/principals` (admin).

use serde::{Deserialize, Serialize};

use super::RevocationView;
use crate::model::Role;

/// An enrolled host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostView {
    pub host_id: String,
    pub tags: Vec<String>,
    pub ak_name: String,
    pub ek_certificate_sha256: Option<String>,
    pub enrolled_at: u64,
    pub revoked: bool,
    /// The principal that enrolled it.
    #[serde(default)]
    pub enrolled_by: String,
    /// When its record last changed (re-enrollment, tags).
    #[serde(default)]
    pub updated_at: u64,
    /// The revocation in force, when revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationView>,
    /// The latest lift of a revocation of it (`hosts unrevoke`), if any: tokens issued before it stay revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted: Option<RevocationView>,
}

/// `POST /v1/hosts/{host_id}/tags` (admin): the host's tags from now on (docs/design.md §5).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTags {
    pub tags: Vec<String>,
}

/// `POST /v1/hosts/{host_id}/unrevoke` (admin).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnrevokeRequest {
    pub reason: String,
}

/// `POST /v1/principals`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    pub name: String,
    pub role: Role,
    /// For an attester: the tags it confers on the host it enrolls (docs/design.md §5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrincipalView {
    pub name: String,
    pub role: Role,
    pub created_at: u64,
    /// The tags an attester confers.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The admin that made it (absent for init's admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A new principal and its bearer credential, shown once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedPrincipal {
    pub name: String,
    pub role: Role,
    pub credential: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `POST /v1/join-tokens` (admin): a join token for a batch of hosts (docs/design.md §5).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJoinToken {
    /// The tags each host it enrolls gets.
    pub tags: Vec<String>,
    /// How many hosts it may enroll.
    pub uses: u32,
    /// Seconds until it expires.
    pub ttl_secs: u64,
}

/// A join token as listed (`GET /v1/join-tokens`); its secret is never shown again.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinTokenView {
    pub id: String,
    pub tags: Vec<String>,
    pub uses: u32,
    pub used: u32,
    pub expires_at: u64,
    pub created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A new join token and its secret, shown once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedJoinToken {
    #[serde(flatten)]
    pub view: JoinTokenView,
    /// The bearer string a host passes as `runtrust enroll --join-token FILE`.
    pub token: String,
}
