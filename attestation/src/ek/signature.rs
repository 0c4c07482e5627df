//! Certificate signature algorithms and their verification with ring.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::der_parser::asn1_rs::{oid, Any, Oid, Tag};
use x509_parser::oid_registry::{
    OID_HASH_SHA1, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_DSA_WITH_SHA1, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::signature_algorithm::RsaSsaPssParams;

use super::cert::{bit_len, oid_name, Cert};
use super::key::{named_curve, rsa_components};
use super::EkError;
use crate::tpm2::EccCurve;

/// id-mgf1 (RFC 8017 appendix B.2.1).
#[rustfmt::skip]
pub(super) const OID_MGF1: Oid<'static> = oid!(1.2.840.113549.1.1.8);

/// ecdsa-with-SHA1 (RFC 3279 §2.2.3).
#[rustfmt::skip]
const OID_ECDSA_WITH_SHA1: Oid<'static> = oid!(1.2.840.10045.4.1);
/// sha1WithRSASignature (OIW, the pre-PKCS #1 v2 identifier).
#[rustfmt::skip]
const OID_OIW_SHA1_WITH_RSA: Oid<'static> = oid!(1.3.14.3.2.29);
/// md2WithRSAEncryption, md5WithRSAEncryption (RFC 3279 §2.2.1).
#[rustfmt::skip]
const OID_MD2_WITH_RSA: Oid<'static> = oid!(1.2.840.113549.1.1.2);
#[rustfmt::skip]
const OID_MD5_WITH_RSA: Oid<'static> = oid!(1.2.840.113549.1.1.4);
/// id-md5, id-md2 (RFC 3279 §2.2.1).
#[rustfmt::skip]
const OID_MD5: Oid<'static> = oid!(1.2.840.113549.2.5);
#[rustfmt::skip]
const OID_MD2: Oid<'static> = oid!(1.2.840.113549.2.2);

/// The signature algorithm and hash of `cert`'s signature if the hash is SHA-1, MD5 or MD2: collisions for
/// them are practical (SHA-1: RFC 9155 §1, NIST SP 800-131A Rev. 2 §9), so such signatures are refused
/// wherever they are, trust anchors included. RSASSA-PSS counts by its hash parameter (RFC 4055 §3.1: SHA-1
/// when absent).
pub(super) fn weak_signature_hash(cert: &Cert<'_>) -> Option<(&'static str, &'static str)> {
    let alg = &cert.x509.signature_algorithm;
    let weak = [
        (OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption", "SHA-1"),
        (OID_ECDSA_WITH_SHA1, "ecdsa-with-SHA1", "SHA-1"),
        (OID_SIG_DSA_WITH_SHA1, "dsa-with-sha1", "SHA-1"),
        (OID_OIW_SHA1_WITH_RSA, "sha1WithRSASignature", "SHA-1"),
        (OID_MD5_WITH_RSA, "md5WithRSAEncryption", "MD5"),
        (OID_MD2_WITH_RSA, "md2WithRSAEncryption", "MD2"),
    ];
    if let Some((_, name, hash)) = weak.iter().find(|(o, _, _)| *o == alg.algorithm) {
        return Some((name, hash));
    }
    if alg.algorithm == OID_PKCS1_RSASSAPSS {
        let params = RsaSsaPssParams::try_from(alg.parameters.as_ref()?).ok()?;
        let hash = params.hash_algorithm_oid();
        let weak_pss = [
            (OID_HASH_SHA1, "RSASSA-PSS SHA-1", "SHA-1"),
            (OID_MD5, "RSASSA-PSS MD5", "MD5"),
            (OID_MD2, "RSASSA-PSS MD2", "MD2"),
        ];
        return weak_pss.iter().find(|(o, _, _)| o == hash).map(|&(_, name, hash)| (name, hash));
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &Oid<'_>) -> Option<Self> {
        if *oid == OID_NIST_HASH_SHA256 {
            Some(Hash::Sha256)
        } else if *oid == OID_NIST_HASH_SHA384 {
            Some(Hash::Sha384)
        } else if *oid == OID_NIST_HASH_SHA512 {
            Some(Hash::Sha512)
        } else {
            None
        }
    }

    fn len(self) -> u32 {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// A certificate signature algorithm this module verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SigAlg {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
}

impl SigAlg {
    fn name(self) -> &'static str {
        match self {
            SigAlg::RsaPkcs1(Hash::Sha256) => "sha256WithRSAEncryption",
            SigAlg::RsaPkcs1(Hash::Sha384) => "sha384WithRSAEncryption",
            SigAlg::RsaPkcs1(Hash::Sha512) => "sha512WithRSAEncryption",
            SigAlg::RsaPss(Hash::Sha256) => "RSASSA-PSS SHA-256",
            SigAlg::RsaPss(Hash::Sha384) => "RSASSA-PSS SHA-384",
            SigAlg::RsaPss(Hash::Sha512) => "RSASSA-PSS SHA-512",
            SigAlg::Ecdsa(Hash::Sha256) => "ecdsa-with-SHA256",
            SigAlg::Ecdsa(Hash::Sha384) => "ecdsa-with-SHA384",
            SigAlg::Ecdsa(Hash::Sha512) => "ecdsa-with-SHA512",
        }
    }
}

fn is_null(p: &Any<'_>) -> bool {
    p.tag() == Tag::Null && p.data.is_empty()
}

/// The algorithm `cert` is signed with, not a weak hash ([`weak_signature_hash`]), its parameters checked: NULL
/// or absent for PKCS#1 v1.5 (RFC 4055 §5), absent for ECDSA (RFC 5758 §3.2), RSASSA-PSS-params as ring
/// verifies them (RFC 4055 §3.1).
fn signature_algorithm(cert: &Cert<'_>) -> Result<SigAlg, EkError> {
    if let Some((algorithm, hash)) = weak_signature_hash(cert) {
        return Err(EkError::WeakHashSigned { cert: cert.label.clone(), algorithm, hash });
    }
    let alg = &cert.x509.signature_algorithm;
    let oid = &alg.algorithm;
    let params = alg.parameters.as_ref();
    let bad_params = |reason: &str| EkError::BadAlgorithmParameters {
        cert: cert.label.clone(),
        algorithm: oid_name(oid),
        reason: reason.to_owned(),
    };
    let pkcs1 = [
        (OID_PKCS1_SHA256WITHRSA, Hash::Sha256),
        (OID_PKCS1_SHA384WITHRSA, Hash::Sha384),
        (OID_PKCS1_SHA512WITHRSA, Hash::Sha512),
    ];
    let ecdsa = [(OID_SIG_ECDSA_WITH_SHA256, Hash::Sha256), (OID_SIG_ECDSA_WITH_SHA384, Hash::Sha384)];
    if let Some((_, hash)) = pkcs1.iter().find(|(o, _)| o == oid) {
        if params.is_some_and(|p| !is_null(p)) {
            return Err(bad_params("must be NULL or absent"));
        }
        Ok(SigAlg::RsaPkcs1(*hash))
    } else if let Some((_, hash)) = ecdsa.iter().find(|(o, _)| o == oid) {
        if params.is_some() {
            return Err(bad_params("must be absent"));
        }
        Ok(SigAlg::Ecdsa(*hash))
    } else if *oid == OID_PKCS1_RSASSAPSS {
        let params = params.ok_or_else(|| bad_params("are absent"))?;
        pss_hash(params).map(SigAlg::RsaPss).map_err(|reason| bad_params(&reason))
    } else {
        Err(EkError::UnsupportedSignatureAlgorithm { cert: cert.label.clone(), algorithm: oid_name(oid) })
    }
}

/// RSASSA-PSS-params (RFC 4055 §3.1) that ring can verify: hash SHA-256/384/512, MGF1 with the same hash,
/// salt length equal to the hash length, trailer field 1.
fn pss_hash(params: &Any<'_>) -> Result<Hash, String> {
    let p = RsaSsaPssParams::try_from(params).map_err(|e| format!("are malformed ({e})"))?;
    let hash_oid = p.hash_algorithm_oid();
    let hash = Hash::from_oid(hash_oid).ok_or_else(|| {
        if *hash_oid == OID_HASH_SHA1 {
            "select SHA-1 (the default), which is refused".to_owned()
        } else {
            format!("select hash {}, not SHA-256, SHA-384 or SHA-512", oid_name(hash_oid))
        }
    })?;
    if let Some(hash_params) = p.hash_algorithm().and_then(|h| h.parameters.as_ref()) {
        if !is_null(hash_params) {
            return Err("have hash parameters that are neither NULL nor absent".to_owned());
        }
    }
    let mgf = p.mask_gen_algorithm().map_err(|e| format!("have a malformed maskGenAlgorithm ({e})"))?;
    if mgf.mgf != OID_MGF1 {
        return Err(format!("select mask generation function {}, not MGF1", oid_name(&mgf.mgf)));
    }
    if mgf.hash != *hash_oid {
        return Err(format!(
            "select MGF1 with {}, not with the signature hash {}",
            oid_name(&mgf.hash),
            oid_name(hash_oid)
        ));
    }
    if p.salt_length() != hash.len() {
        return Err(format!(
            "select salt length {}: only salt length = hash length ({}) is supported",
            p.salt_length(),
            hash.len()
        ));
    }
    if p.trailer_field() != 1 {
        return Err(format!("select trailer field {}, not 1", p.trailer_field()));
    }
    Ok(hash)
}

/// Verifies `cert`'s signature over its TBSCertificate with `issuer`'s key.
pub(super) fn verify_signature(cert: &Cert<'_>, issuer: &Cert<'_>) -> Result<(), EkError> {
    let alg = signature_algorithm(cert)?;
    let spki = issuer.x509.public_key();
    let unsuitable = |reason: String| EkError::IssuerKeyUnsuitable {
        cert: cert.label.clone(),
        issuer: issuer.label.clone(),
        reason,
    };
    if spki.subject_public_key.unused_bits != 0 {
        return Err(unsuitable("its subjectPublicKey has unused bits".to_owned()));
    }
    let key_alg = &spki.algorithm.algorithm;
    let ring_alg: &'static dyn VerificationAlgorithm = match alg {
        SigAlg::RsaPkcs1(hash) | SigAlg::RsaPss(hash) => {
            if *key_alg != OID_PKCS1_RSAENCRYPTION {
                return Err(unsuitable(format!(
                    "{} needs an RSA key, the issuer's is {}",
                    alg.name(),
                    oid_name(key_alg)
                )));
            }
            let (n, _) = rsa_components(spki).ok_or_else(|| unsuitable("malformed RSAPublicKey".to_owned()))?;
            let bits = bit_len(n);
            if bits < 2048 {
                return Err(unsuitable(format!("RSA-{bits} is below the 2048-bit minimum")));
            }
            match (alg, hash) {
                (SigAlg::RsaPkcs1(_), Hash::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
                (SigAlg::RsaPkcs1(_), Hash::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
                (SigAlg::RsaPkcs1(_), Hash::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
                (_, Hash::Sha256) => &signature::RSA_PSS_2048_8192_SHA256,
                (_, Hash::Sha384) => &signature::RSA_PSS_2048_8192_SHA384,
                (_, Hash::Sha512) => &signature::RSA_PSS_2048_8192_SHA512,
            }
        }
        SigAlg::Ecdsa(hash) => {
            if *key_alg != OID_KEY_TYPE_EC_PUBLIC_KEY {
                return Err(unsuitable(format!(
                    "{} needs an EC key, the issuer's is {}",
                    alg.name(),
                    oid_name(key_alg)
                )));
            }
            match (named_curve(spki), hash) {
                (Some(EccCurve::NistP256), Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
                (Some(EccCurve::NistP256), Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
                (Some(EccCurve::NistP384), Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
                (Some(EccCurve::NistP384), Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
                (Some(curve), _) => {
                    return Err(unsuitable(format!("{} is not supported on {}", alg.name(), curve.name())))
                }
                (None, _) => return Err(unsuitable("its curve is not P-256 or P-384".to_owned())),
            }
        }
    };
    UnparsedPublicKey::new(ring_alg, spki.subject_public_key.data.as_ref())
        .verify(cert.x509.tbs_certificate.as_ref(), cert.x509.signature_value.data.as_ref())
        .map_err(|_| EkError::BadSignature {
            cert: cert.label.clone(),
            issuer: issuer.label.clone(),
            algorithm: alg.name(),
        })
}
