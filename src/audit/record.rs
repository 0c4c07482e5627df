//! The audit log's entry: one decision (docs/design.md §11). The store keeps it; [`super::canonical_entry`]
//! is what the Merkle tree hashes.

use serde::{Deserialize, Serialize};

/// One decision, appended to the audit log before the answer leaves.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: u64,
    /// e.g. `token.issue`, `token.deny`, `enroll.allow`, `enroll.deny`, `policy.apply`.
    pub event: String,
    pub principal: Option<String>,
    pub host_id: Option<String>,
    /// The denial code, for denials.
    pub code: Option<String>,
    pub detail: String,
    pub cti: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub diagnostics: serde_json::Value,
}

impl AuditEntry {
    /// An entry for `event` at `time` (unix seconds); the builder methods fill in the rest.
    pub fn new(time: u64, event: &str, detail: impl Into<String>) -> Self {
        AuditEntry {
            time,
            event: event.to_owned(),
            principal: None,
            host_id: None,
            code: None,
            detail: detail.into(),
            cti: None,
            diagnostics: serde_json::Value::Null,
        }
    }

    pub fn by(mut self, principal: &str) -> Self {
        self.principal = Some(principal.to_owned());
        self
    }

    pub fn host(mut self, host_id: &str) -> Self {
        self.host_id = Some(host_id.to_owned());
        self
    }

    pub fn cti(mut self, cti: &str) -> Self {
        self.cti = Some(cti.to_owned());
        self
    }

    pub fn code(mut self, code: &str) -> Self {
        self.code = Some(code.to_owned());
        self
    }

    pub fn diagnostics(mut self, diagnostics: serde_json::Value) -> Self {
        self.diagnostics = diagnostics;
        self
    }
}
