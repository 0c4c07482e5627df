//! Key match: the EK certificate must certify exactly the EK public the host presents.

use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION};
use x509_parser::public_key::PublicKey as SpkiKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::cert::{bit_len, next_tlv, oid_name, strip_zeros, Cert};
use super::EkError;
use crate::signing::uncompressed_point;
use crate::tpm2::{EccCurve, Public, PublicKey};

/// The EK certificate's SubjectPublicKeyInfo must hold exactly the EK's key (docs/design.md §5 step 2).
pub(super) fn check_ek_key(cert: &Cert<'_>, ek: &Public) -> Result<(), EkError> {
    let spki = cert.x509.public_key();
    let mismatch = |reason: String| EkError::KeyMismatch(reason);
    if spki.subject_public_key.unused_bits != 0 {
        return Err(mismatch("subjectPublicKey has unused bits".to_owned()));
    }
    let alg = &spki.algorithm.algorithm;
    match &ek.key {
        PublicKey::Rsa { exponent, modulus, .. } => {
            if *alg != OID_PKCS1_RSAENCRYPTION {
                return Err(mismatch(format!(
                    "the certificate's key is {}, the EK is {}",
                    oid_name(alg),
                    ek.key.describe()
                )));
            }
            let (n, e) = rsa_components(spki).ok_or_else(|| mismatch("malformed RSAPublicKey".to_owned()))?;
            if strip_zeros(n) != strip_zeros(modulus) {
                return Err(mismatch(format!(
                    "RSA modulus differs (certificate {} bits, EK {})",
                    bit_len(n),
                    ek.key.describe()
                )));
            }
            let ek_e = PublicKey::rsa_exponent(*exponent).to_be_bytes();
            if strip_zeros(e) != strip_zeros(&ek_e) {
                return Err(mismatch(format!(
                    "RSA exponent differs (certificate 0x{}, EK 0x{})",
                    hex::encode(strip_zeros(e)),
                    hex::encode(strip_zeros(&ek_e))
                )));
            }
            Ok(())
        }
        PublicKey::Ecc { curve, x, y } => {
            if *alg != OID_KEY_TYPE_EC_PUBLIC_KEY {
                return Err(mismatch(format!(
                    "the certificate's key is {}, the EK is {}",
                    oid_name(alg),
                    ek.key.describe()
                )));
            }
            match named_curve(spki) {
                Some(c) if c == *curve => {}
                Some(c) => {
                    return Err(mismatch(format!(
                        "the certificate's curve is {}, the EK's is {}",
                        c.name(),
                        curve.name()
                    )))
                }
                None => {
                    return Err(mismatch(format!(
                        "the certificate's curve is not a supported named curve, the EK's is {}",
                        curve.name()
                    )))
                }
            }
            let point = uncompressed_point(*curve, x, y)
                .ok_or_else(|| mismatch("EK point does not fit its curve".to_owned()))?;
            if spki.subject_public_key.data.as_ref() != point.as_slice() {
                return Err(mismatch(format!("{} point differs", curve.name())));
            }
            Ok(())
        }
    }
}

/// Modulus and exponent of an rsaEncryption key, the RSAPublicKey filling the BIT STRING exactly.
pub(super) fn rsa_components<'s>(spki: &'s SubjectPublicKeyInfo<'_>) -> Option<(&'s [u8], &'s [u8])> {
    let (_, rest) = next_tlv(&spki.subject_public_key.data)?;
    if !rest.is_empty() {
        return None;
    }
    match spki.parsed().ok()? {
        SpkiKey::RSA(k) => Some((k.modulus, k.exponent)),
        _ => None,
    }
}

/// The namedCurve of an id-ecPublicKey SPKI (RFC 5480 §2.1.1), if it is one this crate supports.
pub(super) fn named_curve(spki: &SubjectPublicKeyInfo<'_>) -> Option<EccCurve> {
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
    if curve == OID_EC_P256 {
        Some(EccCurve::NistP256)
    } else if curve == OID_NIST_EC_P384 {
        Some(EccCurve::NistP384)
    } else {
        None
    }
}
