//! The agent's socket protocol (docs/design.md §14): one JSON object per line, each way. A client sends a
//! request line and reads its answer line, as often as it likes on one connection. Lines are bounded
//! ([`MAX_REQUEST_LINE`], [`MAX_ANSWER_LINE`]); unknown fields and operations are refused.

use runtrust_attestation::PcrValues;
use serde::{Deserialize, Serialize};

use crate::api::{b64, BatchProof};

/// The longest request line the agent reads (a credential activation is the largest, ~1 KiB).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// The longest answer line a client reads (a quote with 24 PCRs of two banks and an EK certificate fit
/// many times over).
pub const MAX_ANSWER_LINE: usize = 1024 * 1024;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Operations without arguments are empty struct variants: serde checks their fields (a unit variant of an
// internally tagged enum would ignore unknown ones).
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// A quote over `selection` (tpm2-tools form) that attests `nonce` (hex, 1 to 64 bytes), possibly
    /// shared with other requests of the same batch window.
    Quote { nonce: String, selection: String },
    /// The AK's TPM2B_PUBLIC.
    AkPublic {},
    /// The EK's TPMT_PUBLIC.
    EkPublic {},
    /// The EK certificate (DER) from NV, if any.
    EkCertificate {},
    /// CA certificates of the EK's chain kept in NV (DER, NV index order); enrollment sends them.
    EkIntermediates {},
    /// TPM2_ActivateCredential with the agent's AK and EK (enrollment, docs/design.md §5).
    ActivateCredential {
        #[serde(with = "b64")]
        credential_blob: Vec<u8>,
        #[serde(with = "b64")]
        encrypted_secret: Vec<u8>,
    },
    /// Counters (`runtrust agent status`).
    Status {},
}

/// A quote for one request: the TPM's bytes, the PCR values, the AK, and the nonce's batch proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteAnswer {
    #[serde(with = "b64")]
    pub attest: Vec<u8>,
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    pub pcrs: PcrValues,
    /// The AK's TPM2B_PUBLIC.
    #[serde(with = "b64")]
    pub ak_public: Vec<u8>,
    /// Present when the quote attests a batch (extraData is its root); absent when extraData is the nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchProof>,
}

/// What `runtrust agent status` reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// TPM2_Quote commands made.
    pub quotes: u64,
    /// Requests served (quotes, keys, credential activations; status queries not counted).
    pub requests: u64,
    /// Of those, quote requests (nonces quoted).
    pub quote_requests: u64,
    /// Requests answered with an error (refused peers included).
    pub errors: u64,
    /// The most nonces one quote attested.
    pub largest_batch: u64,
    /// Milliseconds of the last TPM quote (TPM2_Quote and the PCR read that matches it).
    pub quote_latency_ms_last: f64,
    /// Mean and maximum over every quote so far.
    pub quote_latency_ms_mean: f64,
    pub quote_latency_ms_max: f64,
    /// Configuration, for the operator.
    pub batch_window_ms: u64,
    pub max_quotes_per_second: Option<u32>,
    pub uptime_secs: u64,
}

/// Why a request was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The peer's uid/gid is not allowed.
    Refused,
    /// Malformed or out-of-bounds request.
    BadRequest,
    /// The nonce is already waiting in a batch (docs/design.md §14: a batch never holds a nonce twice).
    DuplicateNonce,
    /// The TPM failed the command.
    Tpm,
    /// The agent cannot reach the TPM.
    TpmUnavailable,
    /// Too many clients at once.
    Busy,
    /// The agent is stopping.
    ShuttingDown,
}

/// An error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(deny_unknown_fields)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// The agent's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    Quote(Box<QuoteAnswer>),
    /// A TPM2B_PUBLIC (AK) or TPMT_PUBLIC (EK).
    Public(#[serde(with = "b64")] Vec<u8>),
    Certificate(#[serde(with = "b64::opt")] Option<Vec<u8>>),
    /// Certificates (DER), possibly none.
    Certificates(#[serde(with = "b64::vec")] Vec<Vec<u8>>),
    Secret(#[serde(with = "b64")] Vec<u8>),
    Status(Status),
    Error(Failure),
}

/// Whether `line` (without its newline) is one request or answer, within `limit` bytes.
pub fn parse_line<T: serde::de::DeserializeOwned>(line: &[u8], limit: usize) -> Result<T, String> {
    if line.len() > limit {
        return Err(format!("line longer than {limit} bytes"));
    }
    serde_json::from_slice(line).map_err(|e| format!("not a valid message: {e}"))
}

/// One message as a line.
pub fn to_line<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec(msg).unwrap_or_else(|e| {
        // Serializing these types cannot fail; answer something well-formed regardless.
        format!("{{\"error\":{{\"kind\":\"bad_request\",\"message\":\"encoding: {e}\"}}}}").into_bytes()
    });
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_strict() {
        let q: Request = parse_line(br#"{"op":"quote","nonce":"00ff","selection":"sha256:0"}"#, 100).unwrap();
        assert_eq!(q, Request::Quote { nonce: "00ff".into(), selection: "sha256:0".into() });
        assert_eq!(parse_line::<Request>(br#"{"op":"status"}"#, 100).unwrap(), Request::Status {});
        assert!(parse_line::<Request>(br#"{"op":"status","x":1}"#, 100).is_err(), "unknown field");
        assert!(parse_line::<Request>(br#"{"op":"pcr_extend"}"#, 100).is_err(), "unknown operation");
        assert!(parse_line::<Request>(br#"{"op":"status"}"#, 5).unwrap_err().contains("longer than 5"));
        assert!(parse_line::<Request>(b"{\"op\":\"status\"}\n{", 100).is_err(), "one object per line");
    }

    #[test]
    fn answers_round_trip_as_one_line() {
        let a = Answer::Error(Failure::new(FailureKind::DuplicateNonce, "twice"));
        let line = to_line(&a);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(parse_line::<Answer>(&line[..line.len() - 1], 1000).unwrap(), a);
        let s = Answer::Status(Status { quotes: 2, requests: 33, ..Default::default() });
        let line = to_line(&s);
        assert_eq!(parse_line::<Answer>(&line[..line.len() - 1], 1000).unwrap(), s);
    }
}
