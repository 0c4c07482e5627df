//! `/v1/enroll`: enrollment and credential activation (docs/design.md §5).

use serde::{Deserialize, Serialize};

use super::QuoteEvidence;
use crate::model::b64;

/// `POST /v1/enroll`: who this TPM is (docs/design.md §5 step 1).
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
    /// A subset of the tags this principal confers (docs/design.md §5); empty: all of them. A host enrolled
    /// before keeps its recorded tags: ask for none, or exactly those.
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

/// Result of a successful enrollment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enrolled {
    pub host_id: String,
    pub ak_name: String,
    /// False when this TPM was already enrolled with this AK (re-enrollment is idempotent).
    pub new: bool,
    /// The host's tags as recorded (docs/design.md §5).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Enrolled with a join token: the host's own attester principal and its credential (shown once; the host
    /// stores it 0600 in its state directory and uses it from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
