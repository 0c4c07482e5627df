//! Host-side TPM access: the attester's half of docs/design.md §4–§5.
//!
//! Everything goes through the [`Tpm`] trait so that callers can be tested with a mock; [`TssTpm`] is the
//! real implementation on tss-esapi (any TCTI: `/dev/tpmrm0`, swtpm, mssim, tabrmd).

mod ek;
mod error;
mod nv;
mod retry;
mod state;
mod tcti;
mod tss;

use runtrust_attestation::batch::InclusionProof;
use runtrust_attestation::{HashAlg, PcrSelection, PcrValues, Public};

pub use ek::{ek_persistent_handle, PersistedEk, EK_HANDLE_ECC, EK_HANDLE_ECC_P384, EK_HANDLE_RSA};
pub use error::TpmError;
pub use nv::{EK_CHAIN_NV_FIRST, EK_CHAIN_NV_LAST};
pub use state::{default_state_dir, AkBlobs};
pub use tcti::{resolve_tcti, DEFAULT_TCTI};
pub use tss::{TpmOptions, TssTpm};

/// How transient TPM answers are retried (TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING).
pub mod retry_policy {
    pub use super::retry::{ATTEMPTS, FIRST_DELAY, MAX_DELAY};
}

/// Key algorithm for the EK and the AK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlg {
    /// RSA-2048 (EK: TCG template L-1; AK: RSASSA-SHA256).
    #[default]
    Rsa,
    /// ECC NIST P-256 (EK: TCG template L-2; AK: ECDSA-SHA256).
    Ecc,
    /// ECC NIST P-384 (EK: TCG template H-4, the ECC EK swtpm certifies; AK: ECDSA-SHA384).
    Ecc384,
}

impl KeyAlg {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Rsa => "rsa",
            KeyAlg::Ecc => "ecc",
            KeyAlg::Ecc384 => "ecc384",
        }
    }
}

/// A quote exactly as the TPM produced it, with the PCR values that match its pcrDigest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// TPMS_ATTEST bytes.
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE bytes.
    pub signature: Vec<u8>,
    /// Values of the quoted PCRs, read after the quote and checked against its pcrDigest.
    pub pcrs: PcrValues,
}

/// A quote for one requester's nonce (docs/design.md §14): `batch` is that nonce's inclusion proof when the
/// quote's extraData is the root of a nonce batch (the host agent's), None when extraData is the nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceQuote {
    pub quote: Quote,
    pub batch: Option<InclusionProof>,
}

/// What `runtrust tpm info` reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TpmInfo {
    pub tcti: String,
    pub manufacturer: String,
    pub vendor: String,
    pub firmware_version: String,
    pub spec_revision: String,
    /// Banks with at least one PCR allocated.
    pub pcr_banks: Vec<HashAlg>,
    pub ek_algorithm: KeyAlg,
    /// Whether the EK certificate NV index for `ek_algorithm` holds a certificate.
    pub ek_certificate_present: bool,
    /// The persistent handle of the EK (e.g. "0x81010001") when this TPM's EK is persisted there and used;
    /// None when the EK is created from the TCG template.
    pub ek_persistent_handle: Option<String>,
    /// Hex of the AK's Name, when an AK exists in the state directory.
    pub ak_name: Option<String>,
}

/// The TPM operations runtrust needs on a host.
#[cfg_attr(test, mockall::automock)]
pub trait Tpm {
    /// Manufacturer, firmware, banks and key status.
    fn info(&mut self) -> Result<TpmInfo, TpmError>;
    /// Reads the selected PCRs.
    fn pcr_read(&mut self, selection: &PcrSelection) -> Result<PcrValues, TpmError>;
    /// Extends `index` in `bank` with `digest` (TPM2_PCR_Extend, Part 3 §22.2).
    fn pcr_extend(&mut self, bank: HashAlg, index: u8, digest: &[u8]) -> Result<(), TpmError>;
    /// The EK public area (TPMT_PUBLIC): the EK persisted at its TCG handle when that is this TPM's EK, else
    /// the one created from the TCG default template.
    fn ek_public(&mut self) -> Result<Public, TpmError>;
    /// The EK certificate (DER, NV padding removed), if the TPM's NV holds one.
    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError>;
    /// CA certificates of the EK certificate's chain that the TPM keeps in NV (DER, in NV index order, each
    /// once): Intel PTT keeps its EK intermediates in 0x01c00100–0x01c001ff. Empty when it keeps none.
    fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError>;
    /// The AK public area; the AK is created under the EK on first use and reloaded afterwards.
    fn ak_public(&mut self) -> Result<Public, TpmError>;
    /// Quotes `selection` under `nonce` with the AK and reads the matching PCR values.
    fn quote(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<Quote, TpmError>;
    /// A quote that attests `nonce`, possibly shared with other requesters (docs/design.md §14). A TPM of
    /// one's own quotes the nonce itself; the host agent may answer with a batch quote and its proof.
    fn quote_nonce(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<NonceQuote, TpmError> {
        Ok(NonceQuote { quote: self.quote(nonce, selection)?, batch: None })
    }
    /// TPM2_ActivateCredential (Part 3 §12.5) with the AK as the credential's object and the EK as the
    /// key that decrypts the seed: returns the secret only if both live in this TPM.
    fn activate_credential(&mut self, credential_blob: &[u8], encrypted_secret: &[u8]) -> Result<Vec<u8>, TpmError>;
}
