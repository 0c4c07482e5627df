//! `/v1/hosts` and `/v1/principals` (admin).

use serde::{Deserialize, Serialize};

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
}

/// `POST /v1/principals`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrincipalView {
    pub name: String,
    pub role: Role,
    pub created_at: u64,
}

/// A new principal and its bearer credential, shown once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedPrincipal {
    pub name: String,
    pub role: Role,
    pub credential: String,
}
