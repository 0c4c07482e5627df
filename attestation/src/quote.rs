//! Quote appraisal (Part 3 §18.4 TPM2_Quote): is this TPMS_ATTEST a genuine quote, by this AK, under this
//! nonce, over exactly these PCR values?

use crate::batch::{verify_inclusion, BatchError, InclusionProof};
use crate::clock::{check_clock, ClockError};
use crate::denial::DenialCode;
use crate::signing::{check_scheme, verify_signature, SignatureError};
use crate::tpm2::{
    Attest, ClockInfo, HashAlg, ParseError, PcrSelection, PcrValues, Public, PublicKey, SigScheme, Signature,
    TPM_GENERATED_VALUE,
};

/// A quote as the host sends it: the TPM's bytes, untouched, and the PCR values it read.
#[derive(Clone, Copy, Debug)]
pub struct QuoteEvidence<'a> {
    /// TPMS_ATTEST as the TPM produced it.
    pub attest: &'a [u8],
    /// TPMT_SIGNATURE as the TPM produced it.
    pub signature: &'a [u8],
    /// The values the host claims for the quoted PCRs.
    pub pcrs: &'a PcrValues,
}

#[derive(Clone, Debug, Default)]
pub struct QuoteOptions<'a> {
    /// Accept SHA-1 signatures and PCR digests (legacy TPMs only).
    pub allow_sha1: bool,
    /// The selection the verifier asked for; the signed one must equal it.
    pub expected_selection: Option<&'a PcrSelection>,
    /// The clock of the last quote accepted from this TPM.
    pub previous_clock: Option<&'a ClockInfo>,
    /// docs/design.md §14: the quote attests a batch of nonces; extraData is the batch root that this
    /// inclusion proof must lead to from the nonce. None: extraData must be the nonce itself.
    pub nonce_batch: Option<&'a InclusionProof>,
}

/// What a verified quote proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    pub attest: Attest,
    /// The signing hash, which is also the pcrDigest hash.
    pub scheme: SigScheme,
    /// Exactly the PCR values covered by the signed selection.
    pub pcrs: PcrValues,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("TPMS_ATTEST is malformed: {0}")]
    AttestMalformed(ParseError),
    #[error("TPMT_SIGNATURE is malformed: {0}")]
    SignatureMalformed(ParseError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("TPMS_ATTEST.magic is {0:#010x}, not TPM_GENERATED_VALUE: the TPM did not generate this structure")]
    NotTpmGenerated(u32),
    #[error("TPMS_ATTEST.extraData does not equal the expected nonce")]
    NonceMismatch,
    #[error("nonce batch: {0}")]
    Batch(BatchError),
    #[error("the signed PCR selection {signed} is not the requested selection {expected}")]
    SelectionNotRequested { signed: String, expected: String },
    #[error("the claimed PCR values do not cover exactly the signed selection {signed}: missing {missing:?}, not signed {unsigned:?}")]
    PcrSelectionMismatch { signed: String, missing: Vec<String>, unsigned: Vec<String> },
    #[error("pcrDigest {quoted} does not equal {hash}(claimed PCR values) {computed}")]
    PcrDigestMismatch { hash: HashAlg, quoted: String, computed: String },
    #[error("the signed PCR selection is empty")]
    EmptySelection,
    #[error(transparent)]
    Clock(#[from] ClockError),
}

impl QuoteError {
    pub fn code(&self) -> DenialCode {
        match self {
            QuoteError::AttestMalformed(_)
            | QuoteError::SignatureMalformed(_)
            | QuoteError::NotTpmGenerated(_)
            | QuoteError::EmptySelection => DenialCode::QuoteMalformed,
            QuoteError::Signature(e) => e.code(),
            QuoteError::NonceMismatch => DenialCode::NonceMismatch,
            QuoteError::Batch(e) => e.code(),
            QuoteError::SelectionNotRequested { .. }
            | QuoteError::PcrSelectionMismatch { .. }
            | QuoteError::PcrDigestMismatch { .. } => DenialCode::PcrMismatch,
            QuoteError::Clock(e) => e.code(),
        }
    }

    /// What to do about it, where there is more to say than the message (the clock cases).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            QuoteError::Clock(e) => Some(e.hint()),
            _ => None,
        }
    }
}

/// Verifies a quote made by the AK `ak` (a TPMT_PUBLIC whose attributes the caller has appraised).
pub fn verify_quote(
    ak: &Public,
    evidence: &QuoteEvidence<'_>,
    nonce: &[u8],
    options: &QuoteOptions<'_>,
) -> Result<VerifiedQuote, QuoteError> {
    verify_quote_with_key(&ak.key, ak.signing_scheme(), evidence, nonce, options)
}

/// As [`verify_quote`], for an AK known only by its public key (e.g. a PEM file): the scheme is then
/// constrained by `key_scheme` when given, else only by the key type.
pub fn verify_quote_with_key(
    key: &PublicKey,
    key_scheme: Option<SigScheme>,
    evidence: &QuoteEvidence<'_>,
    nonce: &[u8],
    options: &QuoteOptions<'_>,
) -> Result<VerifiedQuote, QuoteError> {
    let attest = Attest::parse_quote(evidence.attest).map_err(QuoteError::AttestMalformed)?;
    let signature = Signature::parse(evidence.signature).map_err(QuoteError::SignatureMalformed)?;

    // Authenticity first: nothing below is worth reading unless the AK signed it.
    check_scheme(key, key_scheme, &signature, options.allow_sha1)?;
    verify_signature(key, &signature, evidence.attest)?;
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(QuoteError::NotTpmGenerated(attest.magic));
    }
    match options.nonce_batch {
        // docs/design.md §14: the root recomputed from the nonce and its proof, compared in constant time.
        Some(proof) => verify_inclusion(nonce, proof, &attest.extra_data).map_err(QuoteError::Batch)?,
        None if !crate::ct_eq(&attest.extra_data, nonce) => return Err(QuoteError::NonceMismatch),
        None => {}
    }

    let signed = &attest.quote.pcr_select;
    if signed.is_empty() {
        return Err(QuoteError::EmptySelection);
    }
    if let Some(expected) = options.expected_selection {
        if !signed.same_pcrs(expected) {
            return Err(QuoteError::SelectionNotRequested {
                signed: signed.to_string(),
                expected: expected.to_string(),
            });
        }
    }
    let pcrs = covered_values(signed, evidence.pcrs)?;

    // pcrDigest uses the signing scheme's hash (Part 3 §18.4.1).
    let scheme = signature.scheme();
    let hash = scheme.hash();
    let computed = pcrs.digest(signed, hash).unwrap_or_default();
    if computed != attest.quote.pcr_digest {
        return Err(QuoteError::PcrDigestMismatch {
            hash,
            quoted: hex::encode(&attest.quote.pcr_digest),
            computed: hex::encode(&computed),
        });
    }

    check_clock(&attest.clock_info, options.previous_clock)?;
    Ok(VerifiedQuote { attest, scheme, pcrs })
}

/// The claimed values must name exactly the signed (bank, index) pairs: a list relabelled to other
/// indices, or padded with unsigned extras, is refused rather than silently re-mapped.
fn covered_values(signed: &PcrSelection, claimed: &PcrValues) -> Result<PcrValues, QuoteError> {
    let missing: Vec<String> =
        signed.iter().filter(|&(b, i)| claimed.get(b, i).is_none()).map(|(b, i)| format!("{b}:{i}")).collect();
    let unsigned: Vec<String> = claimed
        .iter()
        .filter(|&(b, i, _)| !signed.iter().any(|s| s == (b, i)))
        .map(|(b, i, _)| format!("{b}:{i}"))
        .collect();
    if !missing.is_empty() || !unsigned.is_empty() {
        return Err(QuoteError::PcrSelectionMismatch { signed: signed.to_string(), missing, unsigned });
    }
    claimed.restrict(signed).ok_or_else(|| QuoteError::PcrSelectionMismatch {
        signed: signed.to_string(),
        missing: Vec::new(),
        unsigned: Vec::new(),
    })
}
