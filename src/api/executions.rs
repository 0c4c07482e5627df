//! `/v1/executions`: the gateway's online check and end report (docs/design.md §2 stage 7).

use serde::{Deserialize, Serialize};

use crate::model::{b64, ExecutionEnd, ExecutionRecord, HostId};

/// `POST /v1/executions` (gateway, attester): the online check before a command starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStartRequest {
    /// The token (COSE_Sign1).
    #[serde(with = "b64")]
    pub token: Vec<u8>,
    /// The scope the command runs under.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// SHA-256 (hex) of the argv, each argument followed by a NUL byte.
    pub argv_sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecStartResponse {
    pub execution_id: String,
    pub cti: String,
    pub audit_index: u64,
}

/// `POST /v1/executions/{cti}/{id}/end`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecEndRequest {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
}

/// An execution as the API shows it (the end answer, and under each token of a lineage).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutionView {
    pub id: String,
    pub cti: String,
    pub host_id: HostId,
    /// The principal of the gateway that ran it.
    pub gateway: String,
    pub scope: String,
    pub argv_sha256: String,
    pub started_at: u64,
    pub start_audit_index: u64,
    pub end: Option<ExecutionEndView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutionEndView {
    pub time: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub audit_index: u64,
}

impl From<ExecutionRecord> for ExecutionView {
    fn from(e: ExecutionRecord) -> Self {
        let ExecutionRecord { id, cti, host_id, gateway, scope, argv_sha256, started_at, start_audit_index, end } = e;
        let end = end.map(|ExecutionEnd { time, exit_code, signal, duration_ms, audit_index }| ExecutionEndView {
            time,
            exit_code,
            signal,
            duration_ms,
            audit_index,
        });
        ExecutionView { id, cti, host_id, gateway, scope, argv_sha256, started_at, start_audit_index, end }
    }
}
