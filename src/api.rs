//! Wire types of the HTTP API (`docs/api.md`), shared by the service and the client. Byte strings are
//! base64url without padding; hashes and ids are lowercase hex.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use runtrust_attestation::PcrValues;
use serde::{Deserialize, Serialize};

/// API version prefix.
pub const V1: &str = "/v1";

/// base64url (no padding) for byte strings on the wire.
pub mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn encode(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    pub fn decode(s: &str) -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|e| format!("not base64url: {e}"))
    }

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s).map_err(serde::de::Error::custom)
    }

    pub mod opt {
        use super::*;
        pub fn serialize<S: Serializer>(b: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match b {
                Some(b) => s.serialize_some(&encode(b)),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(d)?.map(|s| decode(&s).map_err(serde::de::Error::custom)).transpose()
        }
    }

    pub mod vec {
        use super::*;
        pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|b| encode(b)))
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
            Vec::<String>::deserialize(d)?.iter().map(|s| decode(s).map_err(serde::de::Error::custom)).collect()
        }
    }
}

/// A quote as the host sends it (DESIGN §4): the TPM's bytes untouched, plus the PCR values it read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteEvidence {
    /// TPMS_ATTEST.
    #[serde(with = "b64")]
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
    pub pcrs: PcrValues,
}

/// `POST /v1/enroll`: who this TPM is (DESIGN §5 step 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The EK certificate (DER) from the TPM's NV; absent only for EKs the service trusts explicitly.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub ek_certificate: Option<Vec<u8>>,
    /// Intermediate CA certificates (DER) for the EK certificate's path.
    #[serde(default, with = "b64::vec", skip_serializing_if = "Vec::is_empty")]
    pub ek_intermediates: Vec<Vec<u8>>,
    /// The EK's TPM2B_PUBLIC.
    #[serde(with = "b64")]
    pub ek_public: Vec<u8>,
    /// The AK's TPM2B_PUBLIC.
    #[serde(with = "b64")]
    pub ak_public: Vec<u8>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The service's answer: a credential only the TPM holding both the EK and the AK can activate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollChallenge {
    pub enrollment_id: String,
    /// TPM2B_ID_OBJECT contents, for TPM2_ActivateCredential.
    #[serde(with = "b64")]
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents.
    #[serde(with = "b64")]
    pub encrypted_secret: Vec<u8>,
    /// Nonce for the first quote (hex), whose clock becomes the host's baseline.
    pub nonce: String,
    /// PCR selection to quote, tpm2-tools style (`sha256:0,1,…`).
    pub pcr_selection: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// `POST /v1/enroll/{enrollment_id}`: proof of activation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationAnswer {
    /// The secret TPM2_ActivateCredential recovered.
    #[serde(with = "b64")]
    pub secret: Vec<u8>,
    pub quote: QuoteEvidence,
}

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

/// Result of a successful enrollment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enrolled {
    pub host_id: String,
    pub ak_name: String,
    /// False when this TPM was already enrolled with this AK (re-enrollment is idempotent).
    pub new: bool,
}

/// `POST /v1/principals`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    pub name: String,
    pub role: crate::store::Role,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrincipalView {
    pub name: String,
    pub role: crate::store::Role,
    pub created_at: u64,
}

/// A new principal and its bearer credential, shown once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedPrincipal {
    pub name: String,
    pub role: crate::store::Role,
    pub credential: String,
}

/// RFC 9457 problem details, with runtrust's `code` (DESIGN §8).
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

/// A host's id (DESIGN §5): `sha256:<hex of SHA-256 over the EK's TPMT_PUBLIC>`.
pub fn host_id(ek: &runtrust_attestation::Public) -> String {
    format!("sha256:{}", hex::encode(runtrust_attestation::HashAlg::Sha256.digest(ek.tpmt_bytes())))
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `POST /v1/challenge` answer (DESIGN §6): what to quote, under which nonce.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// 32 random bytes, hex; single use.
    pub nonce: String,
    pub expires_at: u64,
    /// tpm2-tools style selection the quote must cover exactly.
    pub pcr_selection: String,
    pub host_id: String,
    /// Whether the token request must carry the host's TCG event log (a policy has `[measured_boot]`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub event_log: bool,
}

/// Largest TCG event log a token request may carry (real pre-OS logs are tens of KiB).
pub const MAX_EVENT_LOG_BYTES: usize = 1 << 20;

/// `POST /v1/tokens`: the execution request with its evidence (DESIGN §2 stage 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The challenge nonce (hex) the quote carries.
    pub nonce: String,
    pub scope: String,
    pub audience: String,
    /// Requested lifetime; the policy's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Name (hex) of the AK that made the quote: the host's runtime identity.
    pub ak_name: String,
    pub quote: QuoteEvidence,
    /// The parent token (COSE_Sign1), for delegation.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub parent: Option<Vec<u8>>,
    /// Delegate the parent to this other enrolled host (where the policy allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_host: Option<String>,
    /// The host's TCG event log (`binary_bios_measurements`), when the challenge asked for it; at most
    /// MAX_EVENT_LOG_BYTES.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub event_log: Option<Vec<u8>>,
}

/// An issued execution token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    /// COSE_Sign1 bytes.
    #[serde(with = "b64")]
    pub token: Vec<u8>,
    pub cti: String,
    pub expires_at: u64,
    pub policy_id: String,
    pub host_id: String,
    pub audit_index: u64,
}

/// `POST /v1/policies`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyPolicy {
    /// The policy file's exact bytes (its hash is their SHA-256).
    #[serde(with = "b64")]
    pub policy: Vec<u8>,
    /// Detached COSE_Sign1 by a policy authority over those bytes.
    #[serde(default, with = "b64::opt", skip_serializing_if = "Option::is_none")]
    pub signature: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyView {
    pub id: String,
    pub hash: String,
    pub signed_by: Option<String>,
    pub applied_at: u64,
    pub applied_by: String,
}

/// `POST /v1/revocations` (admin).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub kind: crate::store::RevocationKind,
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
    pub revocations: Vec<crate::store::Revocation>,
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

/// An audit entry with its proof of inclusion (`GET /v1/audit/prove/{cti}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InclusionProof {
    pub cti: String,
    /// The entry as an export line (`audit tail --json`).
    pub line: String,
    pub index: u64,
    pub tree_size: u64,
    /// RFC 9162 §2.1.3.1 PATH, hex, nearest the leaf first.
    pub proof: Vec<String>,
    /// The signed checkpoint of `tree_size` (text).
    pub checkpoint: String,
}

/// `GET /v1/audit/consistency?from=N`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub tree_size: u64,
    /// RFC 9162 §2.1.4.1 PROOF, hex.
    pub proof: Vec<String>,
    pub checkpoint: String,
}
