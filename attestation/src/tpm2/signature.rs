//! TPMT_SIGNATURE (Part 2 §11.3.4) for the schemes a quote may carry.

use super::alg::{alg_id, HashAlg};
use super::wire::{ParseError, Reader};

/// MAX_RSA_KEY_BYTES (4096-bit keys).
const MAX_RSA_BYTES: usize = 512;
/// MAX_ECC_KEY_BYTES (P-521).
const MAX_ECC_BYTES: usize = 66;

/// A signing scheme and its hash (TPMT_SIG_SCHEME restricted to what runtrust verifies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigScheme {
    RsaSsa(HashAlg),
    RsaPss(HashAlg),
    EcDsa(HashAlg),
}

impl SigScheme {
    pub fn hash(self) -> HashAlg {
        match self {
            SigScheme::RsaSsa(h) | SigScheme::RsaPss(h) | SigScheme::EcDsa(h) => h,
        }
    }

    pub fn name(self) -> String {
        let kind = match self {
            SigScheme::RsaSsa(_) => "rsassa",
            SigScheme::RsaPss(_) => "rsapss",
            SigScheme::EcDsa(_) => "ecdsa",
        };
        format!("{kind}-{}", self.hash())
    }
}

/// A parsed TPMT_SIGNATURE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// TPMS_SIGNATURE_RSASSA / TPMS_SIGNATURE_RSAPSS: the signature as a big-endian integer.
    Rsa { scheme: SigScheme, sig: Vec<u8> },
    /// TPMS_SIGNATURE_ECDSA: r and s as TPM2B_ECC_PARAMETER.
    Ecc { scheme: SigScheme, r: Vec<u8>, s: Vec<u8> },
}

impl Signature {
    pub fn scheme(&self) -> SigScheme {
        match self {
            Signature::Rsa { scheme, .. } | Signature::Ecc { scheme, .. } => *scheme,
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let alg_offset = r.offset();
        let sig_alg = r.u16("TPMT_SIGNATURE.sigAlg")?;
        let hash_offset = r.offset();
        // TPMS_SIGNATURE_RSA / _ECC both start with TPMI_ALG_HASH hash (§11.3.1, §11.3.2).
        let hash_id = match sig_alg {
            alg_id::RSASSA | alg_id::RSAPSS | alg_id::ECDSA => r.u16("TPMS_SIGNATURE.hash")?,
            other => return Err(r.invalid("TPMT_SIGNATURE.sigAlg", alg_offset, other)),
        };
        let hash =
            HashAlg::from_alg_id(hash_id).ok_or_else(|| r.invalid("TPMS_SIGNATURE.hash", hash_offset, hash_id))?;
        let sig = match sig_alg {
            alg_id::RSASSA | alg_id::RSAPSS => {
                let scheme = if sig_alg == alg_id::RSASSA { SigScheme::RsaSsa(hash) } else { SigScheme::RsaPss(hash) };
                let sig = r.tpm2b("TPMS_SIGNATURE_RSA.sig", MAX_RSA_BYTES)?.to_vec();
                Signature::Rsa { scheme, sig }
            }
            _ => {
                let sig_r = r.tpm2b("TPMS_SIGNATURE_ECC.signatureR", MAX_ECC_BYTES)?.to_vec();
                let sig_s = r.tpm2b("TPMS_SIGNATURE_ECC.signatureS", MAX_ECC_BYTES)?.to_vec();
                Signature::Ecc { scheme: SigScheme::EcDsa(hash), r: sig_r, s: sig_s }
            }
        };
        r.finish("TPMT_SIGNATURE")?;
        Ok(sig)
    }
}
