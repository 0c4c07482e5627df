//! Attestation Key appraisal: a restricted signing key that lives in, and cannot leave, a genuine TPM
//! (Part 1 §25.2 "Restricted signing keys"; TCG EK Credential Profile §2.1).

use crate::denial::DenialCode;
use crate::tpm2::{HashAlg, ObjectAttributes, Public, PublicKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AkError {
    #[error("AK public area is malformed: {0}")]
    Malformed(#[from] crate::tpm2::ParseError),
    #[error("AK lacks the {0} attribute (attributes {1})")]
    MissingAttribute(&'static str, ObjectAttributes),
    #[error("AK has the {0} attribute (attributes {1}); an AK must be a signing-only key")]
    ForbiddenAttribute(&'static str, ObjectAttributes),
    #[error("AK nameAlg SHA-1 refused (allow SHA-1 explicitly to accept it)")]
    Sha1NameAlg,
    #[error("AK has no signing scheme usable for quotes ({0})")]
    NoSigningScheme(String),
}

impl AkError {
    pub fn code(&self) -> DenialCode {
        DenialCode::AkInvalid
    }
}

const REQUIRED: [u32; 5] = [
    ObjectAttributes::RESTRICTED,
    ObjectAttributes::SIGN_ENCRYPT,
    ObjectAttributes::FIXED_TPM,
    ObjectAttributes::FIXED_PARENT,
    ObjectAttributes::SENSITIVE_DATA_ORIGIN,
];

/// restricted, sign, fixedTPM, fixedParent, sensitiveDataOrigin set; decrypt clear; a signing scheme set
/// that fits the key (a restricted key signs only TPM-generated data with its own scheme).
pub fn check_ak(ak: &Public, allow_sha1: bool) -> Result<(), AkError> {
    for bit in REQUIRED {
        if !ak.attributes.has(bit) {
            return Err(AkError::MissingAttribute(ObjectAttributes::name_of(bit), ak.attributes));
        }
    }
    if ak.attributes.has(ObjectAttributes::DECRYPT) {
        return Err(AkError::ForbiddenAttribute("decrypt", ak.attributes));
    }
    if ak.name_alg == HashAlg::Sha1 && !allow_sha1 {
        return Err(AkError::Sha1NameAlg);
    }
    let scheme = ak.signing_scheme().ok_or_else(|| AkError::NoSigningScheme(ak.key.describe()))?;
    let fits = matches!(
        (&ak.key, scheme),
        (PublicKey::Rsa { .. }, crate::tpm2::SigScheme::RsaSsa(_) | crate::tpm2::SigScheme::RsaPss(_))
            | (PublicKey::Ecc { .. }, crate::tpm2::SigScheme::EcDsa(_))
    );
    if !fits || (scheme.hash() == HashAlg::Sha1 && !allow_sha1) {
        return Err(AkError::NoSigningScheme(format!("{} with {}", ak.key.describe(), scheme.name())));
    }
    Ok(())
}
