//! Verifying a TPMT_SIGNATURE with a TPM public key, via ring.
//!
//! RSASSA-PKCS1-v1_5 and RSASSA-PSS (salt length = digest length, as ring implements it) for RSA 2048–4096;
//! ECDSA P-256/SHA-256 and P-384/SHA-384. SHA-1 only when the caller allows it.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};

use crate::denial::DenialCode;
use crate::tpm2::{EccCurve, HashAlg, PublicKey, SigScheme, Signature};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature scheme {signature} does not match the key's scheme {key}")]
    SchemeMismatch { signature: String, key: String },
    #[error("signature scheme {scheme} cannot be used with a {key} key")]
    UnsupportedScheme { scheme: String, key: String },
    #[error("SHA-1 signature refused (allow it explicitly to accept legacy evidence)")]
    Sha1NotAllowed,
    #[error("ECDSA signature component is longer than the {0} curve")]
    EcdsaComponentTooLong(&'static str),
    #[error("signature does not verify with the {0} key")]
    Invalid(String),
}

impl SignatureError {
    pub fn code(&self) -> DenialCode {
        DenialCode::SignatureInvalid
    }
}

/// Checks that `sig` uses a scheme the key allows: the key's own scheme when it has one, else one that fits
/// its type. SHA-1 is refused unless `allow_sha1`.
pub fn check_scheme(
    key: &PublicKey,
    key_scheme: Option<SigScheme>,
    sig: &Signature,
    allow_sha1: bool,
) -> Result<(), SignatureError> {
    let scheme = sig.scheme();
    if let Some(fixed) = key_scheme {
        if fixed != scheme {
            return Err(SignatureError::SchemeMismatch { signature: scheme.name(), key: fixed.name() });
        }
    }
    let fits = matches!(
        (key, sig),
        (PublicKey::Rsa { .. }, Signature::Rsa { .. }) | (PublicKey::Ecc { .. }, Signature::Ecc { .. })
    );
    if !fits {
        return Err(SignatureError::UnsupportedScheme { scheme: scheme.name(), key: key.describe() });
    }
    if scheme.hash() == HashAlg::Sha1 && !allow_sha1 {
        return Err(SignatureError::Sha1NotAllowed);
    }
    Ok(())
}

/// Verifies `sig` over `message` with `key`. Call [`check_scheme`] first.
pub fn verify_signature(key: &PublicKey, sig: &Signature, message: &[u8]) -> Result<(), SignatureError> {
    let unsupported = || SignatureError::UnsupportedScheme { scheme: sig.scheme().name(), key: key.describe() };
    let invalid = || SignatureError::Invalid(key.describe());
    match (key, sig) {
        (PublicKey::Rsa { exponent, modulus, .. }, Signature::Rsa { scheme, sig }) => {
            let params: &signature::RsaParameters = match scheme {
                SigScheme::RsaSsa(HashAlg::Sha1) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                SigScheme::RsaSsa(HashAlg::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
                SigScheme::RsaSsa(HashAlg::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
                SigScheme::RsaSsa(HashAlg::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
                SigScheme::RsaPss(HashAlg::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
                SigScheme::RsaPss(HashAlg::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
                SigScheme::RsaPss(HashAlg::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Err(unsupported()),
            };
            let e = PublicKey::rsa_exponent(*exponent).to_be_bytes();
            let first = e.iter().position(|&b| b != 0).unwrap_or(e.len() - 1);
            RsaPublicKeyComponents { n: modulus.as_slice(), e: &e[first..] }
                .verify(params, message, sig)
                .map_err(|_| invalid())
        }
        (PublicKey::Ecc { curve, x, y }, Signature::Ecc { scheme, r, s }) => {
            let alg = match (curve, scheme) {
                (EccCurve::NistP256, SigScheme::EcDsa(HashAlg::Sha256)) => &signature::ECDSA_P256_SHA256_FIXED,
                (EccCurve::NistP384, SigScheme::EcDsa(HashAlg::Sha384)) => &signature::ECDSA_P384_SHA384_FIXED,
                _ => return Err(unsupported()),
            };
            let n = curve.coordinate_len();
            let point = uncompressed_point(*curve, x, y).ok_or_else(invalid)?;
            let mut fixed = vec![0u8; 2 * n];
            let (fr, fs) = fixed.split_at_mut(n);
            for (dst, src) in [(fr, r), (fs, s)] {
                if src.len() > n {
                    return Err(SignatureError::EcdsaComponentTooLong(curve.name()));
                }
                dst[n - src.len()..].copy_from_slice(src);
            }
            UnparsedPublicKey::new(alg, point).verify(message, &fixed).map_err(|_| invalid())
        }
        _ => Err(unsupported()),
    }
}

/// SEC1 uncompressed point 0x04 ‖ X ‖ Y, coordinates left-padded to the curve size.
pub fn uncompressed_point(curve: EccCurve, x: &[u8], y: &[u8]) -> Option<Vec<u8>> {
    let n = curve.coordinate_len();
    if x.len() > n || y.len() > n {
        return None;
    }
    let mut out = vec![0u8; 1 + 2 * n];
    out[0] = 0x04;
    out[1 + n - x.len()..1 + n].copy_from_slice(x);
    out[1 + 2 * n - y.len()..].copy_from_slice(y);
    Some(out)
}
