//! EK certificate path validation (docs/design.md §5 step 2): was this EK certificate issued, through the
//! intermediates the host sent (or its TPM's NV holds), under a configured trust anchor (`--ek-ca`); is every
//! certificate on the path valid at the verification time; and does it certify exactly the EK public the host
//! presents?
//!
//! A deliberately small profile of RFC 5280 §6 path validation, enough for TPM vendor chains (TCG EK Credential
//! Profile for TPM Family 2.0):
//!
//! - certificates are parsed strictly: DER only, nothing after a certificate, nothing unparsed inside its
//!   Certificate or TBSCertificate SEQUENCE, signatureAlgorithm equal to tbsCertificate.signature;
//! - the path leaf → intermediates* → anchor is built by raw DER equality of issuer and subject Names, trying
//!   every candidate, anchors first; it holds at most [`MAX_PATH_LEN`] certificates and no certificate twice;
//! - signatures are verified with ring: sha256/384/512WithRSAEncryption, RSASSA-PSS (SHA-256/384/512, MGF1 with
//!   the same hash, salt length = hash length), ecdsa-with-SHA256/384 on P-256 or P-384; RSA keys of 2048 bits
//!   and more. An anchor's own signature is not verified: it is trusted by configuration;
//! - a SHA-1-signed certificate (sha1WithRSAEncryption, ecdsa-with-SHA1, RSASSA-PSS with SHA-1; MD5 and MD2
//!   alike) is refused wherever it is: EK certificate, intermediate, or trust anchor (refused when loaded,
//!   self-signed roots included), with a message that names it and says it is SHA-1-signed;
//! - every certificate on the path, the anchor included, must be valid at the verification time (a parameter:
//!   this crate reads no clock);
//! - issuers (intermediates and the anchor) must have basicConstraints cA=TRUE, keyCertSign if they carry a
//!   keyUsage, and a pathLenConstraint that allows the intermediates below them;
//! - a critical extension other than basicConstraints, keyUsage, subjectAltName, extendedKeyUsage or
//!   certificatePolicies is refused (RFC 5280 §4.2); TCG EK certificates mark the first three critical, and
//!   several vendor CAs (STMicro, Intel, Infineon) mark certificatePolicies critical;
//! - certificatePolicies (RFC 5280 §4.2.1.4), critical or not, must be well formed: a non-empty SEQUENCE OF
//!   PolicyInformation, no policy OID twice, qualifiers shaped as PolicyQualifierInfo. Any policy is accepted
//!   (anyPolicy, TCG or vendor OIDs): no explicit policy is required (RFC 5280 §6.1 with
//!   user-initial-policy-set {anyPolicy}, initial-explicit-policy FALSE), policy qualifiers are ignored, and a
//!   policyConstraints extension, which could require one, is refused;
//! - the leaf's extendedKeyUsage, when present, must include tcg-kp-EKCertificate (so a Platform certificate
//!   over the same key is not taken for an EK certificate);
//! - the leaf's key must equal the EK public (RSA modulus and exponent; EC curve and point).
//!
//! [`verify_ca_certificate`] runs the same path validation for a CA certificate (an intermediate checked
//! against the configured roots), without the EK-only checks.
//!
//! Not done: revocation (CRL/OCSP), name constraints (critical ones are refused as unknown), the policy tree
//! (policyMappings and inhibitAnyPolicy are refused when critical), Subject Key / Authority Key Identifier
//! matching (names are matched; AKI is not needed to build a path).
//!
//! Every failure is [`DenialCode::EkUntrusted`], and its message names the check and the certificate.

mod anchors;
mod cert;
mod extensions;
mod key;
mod path;
mod pem;
mod signature;

use sha2::{Digest, Sha256};
use x509_parser::time::ASN1Time;

use crate::denial::DenialCode;
use crate::tpm2::Public;

pub use anchors::{AnchorInfo, RefusedAnchor, TrustAnchors};
use cert::{serial_hex, Cert};
use extensions::{check_ek_usage, check_extensions};
use key::check_ek_key;
use path::{ca_constraints, check_validity, PathSearch};

/// Most certificates on a path, leaf and anchor included.
pub const MAX_PATH_LEN: usize = 8;
/// Most intermediate certificates accepted with one EK certificate.
pub const MAX_INTERMEDIATES: usize = 16;
/// Largest certificate accepted, in bytes (TPM NV EK certificates are 1–2 KiB).
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Most trust anchors (or PEM blocks) loaded at once.
pub const MAX_ANCHORS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EkError {
    #[error("{what} is {len} bytes, more than the maximum of {max}")]
    TooLarge { what: String, len: usize, max: usize },
    #[error("{what} is not a DER X.509 certificate: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{what}: {count} trailing bytes after the certificate")]
    TrailingBytes { what: String, count: usize },
    #[error("{count} intermediate certificates, more than the maximum of {max}")]
    TooManyIntermediates { count: usize, max: usize },
    #[error("EK trust anchors (PEM): {0}")]
    Pem(String),
    #[error("{count} EK trust anchors, more than the maximum of {max}")]
    TooManyAnchors { count: usize, max: usize },
    #[error("{} of {total} EK trust anchors refused: {}", .refused.len(), list_refused(.refused))]
    AnchorsRefused { total: usize, refused: Vec<RefusedAnchor> },
    #[error("{cert} is {hash}-signed ({algorithm}): {hash} certificate signatures are refused")]
    WeakHashSigned { cert: String, algorithm: &'static str, hash: &'static str },
    #[error("{cert} is not a CA certificate: {reason}")]
    NotCaCertificate { cert: String, reason: &'static str },
    #[error("no EK trust anchors are configured")]
    NoAnchors,
    #[error("verification time {0} is not a representable date")]
    InvalidTime(i64),
    #[error("EK certificate key does not equal the EK public: {0}")]
    KeyMismatch(String),
    #[error("{cert} is not an EK certificate: its extendedKeyUsage lacks tcg-kp-EKCertificate (2.23.133.8.1)")]
    NotEkCertificate { cert: String },
    #[error("{cert} is not valid before {not_before} (verification time {now})")]
    NotYetValid { cert: String, not_before: String, now: String },
    #[error("{cert} expired at {not_after} (verification time {now})")]
    Expired { cert: String, not_after: String, now: String },
    #[error("{cert} has an unknown critical extension {oid} (RFC 5280 §4.2)")]
    UnknownCriticalExtension { cert: String, oid: String },
    #[error("{cert}: extension {oid} {reason}")]
    BadExtension { cert: String, oid: String, reason: String },
    #[error(
        "no trust anchor or intermediate certificate for issuer {issuer} of {cert}{}",
        if *.differently_encoded { " (one has that name as text, but its DER encoding differs)" } else { "" }
    )]
    NoIssuer {
        cert: String,
        issuer: String,
        /// A candidate's subject reads the same but is encoded differently (e.g. UTF8String for PrintableString);
        /// names are compared as DER.
        differently_encoded: bool,
    },
    #[error("the certificate path from {cert} would be longer than {max} certificates")]
    PathTooLong { cert: String, max: usize },
    #[error("certificate path search stopped after {0} signature checks")]
    SearchLimit(usize),
    #[error("{issuer} issued {cert} but is not a CA (basicConstraints cA is not TRUE)")]
    NotCa { issuer: String, cert: String },
    #[error("{issuer} issued {cert} but its keyUsage lacks keyCertSign")]
    NoKeyCertSign { issuer: String, cert: String },
    #[error(
        "{issuer} allows {path_len} intermediate CA certificates below it (pathLenConstraint), the path has {below}"
    )]
    PathLenExceeded { issuer: String, path_len: u32, below: usize },
    #[error("{cert}: signatureAlgorithm differs from tbsCertificate.signature (RFC 5280 §4.1.1.2)")]
    AlgorithmMismatch { cert: String },
    #[error("{cert} is signed with unsupported algorithm {algorithm}")]
    UnsupportedSignatureAlgorithm { cert: String, algorithm: String },
    #[error("{cert}: {algorithm} parameters {reason}")]
    BadAlgorithmParameters { cert: String, algorithm: String, reason: String },
    #[error("{cert}: {issuer} cannot verify its signature: {reason}")]
    IssuerKeyUnsuitable { cert: String, issuer: String, reason: String },
    #[error("{cert}: signature by {issuer} ({algorithm}) does not verify")]
    BadSignature { cert: String, issuer: String, algorithm: &'static str },
}

impl EkError {
    pub fn code(&self) -> DenialCode {
        DenialCode::EkUntrusted
    }
}

fn list_refused(refused: &[RefusedAnchor]) -> String {
    refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// What a validated EK certificate proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEk {
    /// SHA-256 of the EK certificate's DER.
    pub fingerprint_sha256: [u8; 32],
    /// Subjects from the EK certificate to the trust anchor, both included.
    pub chain_subjects: Vec<String>,
    /// The EK certificate's issuer.
    pub issuer: String,
    /// The EK certificate's serial number, lowercase hex, big-endian, without leading zero bytes.
    pub serial_hex: String,
    /// SHA-256 of the trust anchor's DER.
    pub anchor_fingerprint_sha256: [u8; 32],
}

/// What a validated CA certificate proves: it chains to a trust anchor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCa {
    /// SHA-256 of the CA certificate's DER.
    pub fingerprint_sha256: [u8; 32],
    /// Subjects from the CA certificate to the trust anchor, both included.
    pub chain_subjects: Vec<String>,
    /// SHA-256 of the trust anchor's DER.
    pub anchor_fingerprint_sha256: [u8; 32],
}

/// Validates the EK certificate `ek_cert_der` to one of `anchors` through `intermediates` (any order, unrelated
/// ones allowed) at `now_unix` (seconds since the Unix epoch), and checks that it certifies `ek_public`.
pub fn verify_ek_certificate(
    ek_cert_der: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
    ek_public: &Public,
    now_unix: i64,
) -> Result<VerifiedEk, EkError> {
    let now = ASN1Time::from_timestamp(now_unix).map_err(|_| EkError::InvalidTime(now_unix))?;
    let leaf = Cert::parse(ek_cert_der, "EK certificate".to_owned(), true)?;
    let (chain_subjects, anchor_fingerprint_sha256) =
        validate_path(&leaf, intermediates, anchors, now, false, |leaf| {
            // The leaf on its own: the right key, the right kind of certificate, valid now.
            check_ek_key(leaf, ek_public)?;
            check_validity(leaf, now)?;
            check_extensions(leaf)?;
            check_ek_usage(leaf)
        })?;
    Ok(VerifiedEk {
        fingerprint_sha256: Sha256::digest(ek_cert_der).into(),
        chain_subjects,
        issuer: leaf.x509.issuer().to_string(),
        serial_hex: serial_hex(leaf.x509.raw_serial()),
        anchor_fingerprint_sha256,
    })
}

/// Only the key match of [`verify_ek_certificate`]: `ek_cert_der` (parsed as strictly) certifies exactly
/// `ek_public`'s key. No path, validity or extension check: this is what a host asks before it uses a key
/// persisted at an EK handle as its EK; trust in the certificate is the verifier's to establish.
pub fn check_certified_key(ek_cert_der: &[u8], ek_public: &Public) -> Result<(), EkError> {
    let cert = Cert::parse(ek_cert_der, "EK certificate".to_owned(), true)?;
    check_ek_key(&cert, ek_public)
}

/// Validates the CA certificate `ca_cert_der` (an intermediate, or a root checked against itself) to one of
/// `anchors` through `intermediates` at `now_unix`, with the same checks as [`verify_ek_certificate`] except
/// the EK-only ones (key match, extendedKeyUsage). The certificate must itself be a CA (basicConstraints
/// cA=TRUE, keyCertSign if it has a keyUsage), and it counts against its issuers' pathLenConstraint.
pub fn verify_ca_certificate(
    ca_cert_der: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
    now_unix: i64,
) -> Result<VerifiedCa, EkError> {
    let now = ASN1Time::from_timestamp(now_unix).map_err(|_| EkError::InvalidTime(now_unix))?;
    let ca = Cert::parse(ca_cert_der, "CA certificate".to_owned(), false)?;
    let (chain_subjects, anchor_fingerprint_sha256) = validate_path(&ca, intermediates, anchors, now, true, |ca| {
        check_validity(ca, now)?;
        check_extensions(ca)?;
        let constraints = ca_constraints(ca)?;
        let not_ca = |reason| Err(EkError::NotCaCertificate { cert: ca.label.clone(), reason });
        if !constraints.is_ca {
            return not_ca("basicConstraints cA is not TRUE");
        }
        if !constraints.key_cert_sign {
            return not_ca("its keyUsage lacks keyCertSign");
        }
        Ok(())
    })?;
    Ok(VerifiedCa { fingerprint_sha256: Sha256::digest(ca_cert_der).into(), chain_subjects, anchor_fingerprint_sha256 })
}

/// Checks the limits, parses the other certificates, runs `check_leaf`, and searches a path from `leaf` (a CA
/// certificate if `leaf_is_ca`) to an anchor. Returns the path's subjects (leaf to anchor) and the anchor's SHA-256.
fn validate_path(
    leaf: &Cert<'_>,
    intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
    now: ASN1Time,
    leaf_is_ca: bool,
    check_leaf: impl FnOnce(&Cert<'_>) -> Result<(), EkError>,
) -> Result<(Vec<String>, [u8; 32]), EkError> {
    if anchors.is_empty() {
        return Err(EkError::NoAnchors);
    }
    if intermediates.len() > MAX_INTERMEDIATES {
        return Err(EkError::TooManyIntermediates { count: intermediates.len(), max: MAX_INTERMEDIATES });
    }
    let intermediates = intermediates
        .iter()
        .enumerate()
        .map(|(i, der)| Cert::parse(der, format!("intermediate certificate {}", i + 1), false))
        .collect::<Result<Vec<_>, _>>()?;
    let anchor_certs = anchors
        .certs
        .iter()
        .enumerate()
        .map(|(i, der)| Cert::parse(der, format!("trust anchor {}", i + 1), false))
        .collect::<Result<Vec<_>, _>>()?;
    check_leaf(leaf)?;

    let mut search = PathSearch {
        leaf,
        intermediates: &intermediates,
        anchors: &anchor_certs,
        now,
        signature_checks: 0,
        leaf_is_ca,
    };
    let mut path = Vec::new();
    let anchor_index = search.extend(leaf, &mut path)?;
    let anchor = anchor_certs.get(anchor_index).ok_or(EkError::NoAnchors)?;

    let mut chain_subjects = vec![leaf.name.clone()];
    chain_subjects.extend(path.iter().filter_map(|&i| intermediates.get(i)).map(|c| c.name.clone()));
    chain_subjects.push(anchor.name.clone());
    Ok((chain_subjects, Sha256::digest(anchor.der).into()))
}

#[cfg(test)]
mod tests {
    use super::extensions::TCG_KP_EK_CERTIFICATE;
    use super::signature::OID_MGF1;
    use super::*;

    #[test]
    fn oids() {
        assert_eq!(TCG_KP_EK_CERTIFICATE.to_id_string(), "2.23.133.8.1");
        assert_eq!(OID_MGF1.to_id_string(), "1.2.840.113549.1.1.8");
    }

    #[test]
    fn errors_are_ek_untrusted() {
        assert_eq!(EkError::NoAnchors.code(), DenialCode::EkUntrusted);
        assert_eq!(EkError::KeyMismatch(String::new()).code(), DenialCode::EkUntrusted);
    }
}
