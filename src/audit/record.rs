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

/// Bound on an entry's detail, in bytes: longer ones are cut (docs/design.md §16, bounded storage).
pub const MAX_DETAIL_BYTES: usize = 4096;
/// Bound on an entry's diagnostics as JSON, in bytes: larger ones are replaced by a note of their size.
pub const MAX_DIAGNOSTICS_BYTES: usize = 64 * 1024;

/// `s` cut to at most `max` bytes (on a character boundary), saying how long it was.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes, cut)", &s[..end], s.len())
}

impl AuditEntry {
    /// An entry for `event` at `time` (unix seconds); the builder methods fill in the rest. Whatever a
    /// request put into the detail, what is stored is at most [`MAX_DETAIL_BYTES`] of it.
    pub fn new(time: u64, event: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        AuditEntry {
            time,
            event: event.to_owned(),
            principal: None,
            host_id: None,
            code: None,
            detail: if detail.len() > MAX_DETAIL_BYTES { clip(&detail, MAX_DETAIL_BYTES) } else { detail },
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

    /// Diagnostics over [`MAX_DIAGNOSTICS_BYTES`] (as JSON) are stored as `{"truncated": true, "bytes": N}`.
    pub fn diagnostics(mut self, diagnostics: serde_json::Value) -> Self {
        let size = serde_json::to_vec(&diagnostics).map_or(usize::MAX, |v| v.len());
        self.diagnostics = if size > MAX_DIAGNOSTICS_BYTES {
            serde_json::json!({ "truncated": true, "bytes": size })
        } else {
            diagnostics
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11 finding 7: attacker strings copied into an entry are bounded.
    #[test]
    fn detail_and_diagnostics_are_bounded() {
        let scope = "é".repeat(250_000); // 500 KB, two bytes per character
        let e = AuditEntry::new(1, "token.deny", format!("scope {scope}"))
            .diagnostics(serde_json::json!({ "scope": scope }));
        assert!(e.detail.len() <= MAX_DETAIL_BYTES + 40, "{}", e.detail.len());
        assert!(e.detail.starts_with("scope éé") && e.detail.ends_with("(500006 bytes, cut)"), "{}", &e.detail[4000..]);
        assert_eq!(e.diagnostics, serde_json::json!({ "truncated": true, "bytes": 500_012 }));
        let small = AuditEntry::new(1, "x", "short").diagnostics(serde_json::json!({ "a": 1 }));
        assert_eq!((small.detail.as_str(), small.diagnostics["a"].as_u64()), ("short", Some(1)), "untouched");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("aéb", 2), "a… (4 bytes, cut)", "cut on a character boundary");
        let line = crate::audit::export_line(&e, 0);
        assert!(line.len() < crate::audit::MAX_EXPORT_LINE, "an entry always exports within the line bound");
    }
}
