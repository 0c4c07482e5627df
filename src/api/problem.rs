//! RFC 9457 problem details carrying the docs/design.md §8 denial code.

use serde::{Deserialize, Serialize};

/// RFC 9457 problem details, with runtrust's `code` (docs/design.md §8).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub diagnostics: serde_json::Value,
}
