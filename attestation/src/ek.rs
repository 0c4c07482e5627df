//! EK certificate path validation (DESIGN §5 step 2): was this EK certificate issued, through the intermediates
//! the host sent (or its TPM's NV holds), under a configured trust anchor (`--ek-ca`); is every certificate on
//! the path valid at the verification time; and does it certify exactly the EK public the host presents?
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
//! - every certificate on the path, the anchor included, must be valid at the verification time (a parameter:
//!   this crate reads no clock);
//! - issuers (intermediates and the anchor) must have basicConstraints cA=TRUE, keyCertSign if they carry a
//!   keyUsage, and a pathLenConstraint that allows the intermediates below them;
//! - a critical extension other than basicConstraints, keyUsage, subjectAltName or extendedKeyUsage is refused
//!   (RFC 5280 §4.2); TCG EK certificates mark the first three critical;
//! - the leaf's extendedKeyUsage, when present, must include tcg-kp-EKCertificate (so a Platform certificate
//!   over the same key is not taken for an EK certificate);
//! - the leaf's key must equal the EK public (RSA modulus and exponent; EC curve and point).
//!
//! Not done: revocation (CRL/OCSP), name constraints and certificate policies (critical ones are refused as
//! unknown), Subject Key / Authority Key Identifier matching (names are matched; AKI is not needed to build
//! a path).
//!
//! Every failure is [`DenialCode::EkUntrusted`], and its message names the check and the certificate.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{oid, Any, Oid, Tag};
use x509_parser::extensions::ParsedExtension;
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_HASH_SHA1, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_HASH_SHA256,
    OID_NIST_HASH_SHA384, OID_NIST_HASH_SHA512, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as SpkiKey;
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::time::ASN1Time;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::denial::DenialCode;
use crate::signing::uncompressed_point;
use crate::tpm2::{EccCurve, Public, PublicKey};

/// Most certificates on a path, leaf and anchor included.
pub const MAX_PATH_LEN: usize = 8;
/// Most intermediate certificates accepted with one EK certificate.
pub const MAX_INTERMEDIATES: usize = 16;
/// Largest certificate accepted, in bytes (TPM NV EK certificates are 1–2 KiB).
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Most signature verifications one path search may spend (bounds the work when many certificates share a
/// name).
const MAX_SIGNATURE_CHECKS: usize = 32;

/// tcg-kp-EKCertificate (TCG EK Credential Profile, "Extended Key Usage").
#[rustfmt::skip]
const TCG_KP_EK_CERTIFICATE: Oid<'static> = oid!(2.23.133.8.1);
/// id-mgf1 (RFC 8017 appendix B.2.1).
#[rustfmt::skip]
const OID_MGF1: Oid<'static> = oid!(1.2.840.113549.1.1.8);

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

/// The configured EK trust anchors (`--ek-ca`): CA certificates, each checked to be one strict DER certificate.
/// Anchors are trusted by configuration; their basic constraints and validity are checked when a path uses them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    certs: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Anchors from DER certificates. An empty list is accepted here; verification against it fails.
    pub fn from_der_certs(certs: Vec<Vec<u8>>) -> Result<Self, EkError> {
        for (i, der) in certs.iter().enumerate() {
            Cert::parse(der, format!("trust anchor {}", i + 1), false)?;
        }
        Ok(Self { certs })
    }

    /// Anchors from PEM text with one or more `CERTIFICATE` blocks; text between blocks is ignored, any other
    /// block label is refused.
    pub fn from_pem(pem: &[u8]) -> Result<Self, EkError> {
        let mut certs = Vec::new();
        for (i, block) in Pem::iter_from_buffer(pem).enumerate() {
            let block = block.map_err(|e| EkError::Pem(format!("block {}: {e}", i + 1)))?;
            if block.label != "CERTIFICATE" {
                return Err(EkError::Pem(format!("block {} is {:?}, not CERTIFICATE", i + 1, block.label)));
            }
            certs.push(block.contents);
        }
        if certs.is_empty() {
            return Err(EkError::Pem("no CERTIFICATE block".to_owned()));
        }
        Self::from_der_certs(certs)
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// The anchors' DER encodings, in configuration order.
    pub fn der_certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// The anchors' subjects, for diagnostics.
    pub fn subjects(&self) -> Vec<String> {
        self.certs
            .iter()
            .enumerate()
            .filter_map(|(i, der)| Cert::parse(der, format!("trust anchor {}", i + 1), false).ok())
            .map(|c| c.name)
            .collect()
    }
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
    if anchors.is_empty() {
        return Err(EkError::NoAnchors);
    }
    if intermediates.len() > MAX_INTERMEDIATES {
        return Err(EkError::TooManyIntermediates { count: intermediates.len(), max: MAX_INTERMEDIATES });
    }
    let leaf = Cert::parse(ek_cert_der, "EK certificate".to_owned(), true)?;
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

    // The leaf on its own: the right key, the right kind of certificate, valid now.
    check_ek_key(&leaf, ek_public)?;
    check_validity(&leaf, now)?;
    check_extensions(&leaf)?;
    check_ek_usage(&leaf)?;

    let mut search =
        PathSearch { leaf: &leaf, intermediates: &intermediates, anchors: &anchor_certs, now, signature_checks: 0 };
    let mut path = Vec::new();
    let anchor_index = search.extend(&leaf, &mut path)?;
    let anchor = anchor_certs.get(anchor_index).ok_or(EkError::NoAnchors)?;

    let mut chain_subjects = vec![leaf.name.clone()];
    chain_subjects.extend(path.iter().filter_map(|&i| intermediates.get(i)).map(|c| c.name.clone()));
    chain_subjects.push(anchor.name.clone());
    Ok(VerifiedEk {
        fingerprint_sha256: Sha256::digest(ek_cert_der).into(),
        chain_subjects,
        issuer: leaf.x509.issuer().to_string(),
        serial_hex: serial_hex(leaf.x509.raw_serial()),
        anchor_fingerprint_sha256: Sha256::digest(anchor.der).into(),
    })
}

/// A certificate parsed strictly, with the label its errors use.
struct Cert<'a> {
    der: &'a [u8],
    x509: X509Certificate<'a>,
    /// The subject, `CN=…` style.
    name: String,
    /// How messages name it: the subject, prefixed with "EK certificate" for the leaf.
    label: String,
}

impl<'a> Cert<'a> {
    /// `what` names the certificate until its subject is known.
    fn parse(der: &'a [u8], what: String, is_leaf: bool) -> Result<Self, EkError> {
        if der.len() > MAX_CERT_LEN {
            return Err(EkError::TooLarge { what, len: der.len(), max: MAX_CERT_LEN });
        }
        let (rest, x509) = X509Certificate::from_der(der).map_err(|e| EkError::Malformed {
            what: what.clone(),
            reason: match e {
                x509_parser::nom::Err::Incomplete(_) => "truncated".to_owned(),
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e.to_string(),
            },
        })?;
        if !rest.is_empty() {
            return Err(EkError::TrailingBytes { what, count: rest.len() });
        }
        check_structure(der, x509.tbs_certificate.as_ref())
            .map_err(|reason| EkError::Malformed { what: what.clone(), reason: reason.to_owned() })?;
        if x509.signature_value.unused_bits != 0 {
            return Err(EkError::Malformed { what, reason: "signatureValue has unused bits".to_owned() });
        }
        let name = display_name(&x509);
        let label = if is_leaf { format!("EK certificate {name}") } else { name.clone() };
        Ok(Self { der, x509, name, label })
    }

    fn issuer_name(&self) -> String {
        let s = self.x509.issuer().to_string();
        if s.is_empty() {
            "(empty name)".to_owned()
        } else {
            s
        }
    }

    fn self_issued(&self) -> bool {
        self.x509.subject().as_raw() == self.x509.issuer().as_raw()
    }
}

fn display_name(x509: &X509Certificate<'_>) -> String {
    let s = x509.subject().to_string();
    if s.is_empty() {
        "(empty subject)".to_owned()
    } else {
        s
    }
}

/// One DER element (X.690 §8.1): its tag byte, its whole encoding and its contents.
struct Tlv<'a> {
    tag: u8,
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads one DER element (single-byte tag, definite minimal length) and returns it with what follows.
fn next_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(n)?;
        if bytes.first() == Some(&0) {
            return None;
        }
        let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return None;
        }
        rest = after;
        len
    };
    let header = input.len() - rest.len();
    let whole = input.get(..header.checked_add(len)?)?;
    let content = rest.get(..len)?;
    let after = rest.get(len..)?;
    Some((Tlv { tag, whole, content }, after))
}

fn tlvs(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = next_tlv(input)?;
        out.push(tlv);
        input = rest;
    }
    Some(out)
}

/// RFC 5280 §4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } with nothing
/// else, TBSCertificate with nothing after its fields, and signatureAlgorithm equal to tbsCertificate.signature
/// (§4.1.1.2). x509-parser tolerates trailing data inside SEQUENCEs; this does not.
fn check_structure(der: &[u8], tbs_raw: &[u8]) -> Result<(), &'static str> {
    const SEQUENCE: u8 = 0x30;
    let malformed = "malformed DER";
    let (cert, _) = next_tlv(der).ok_or(malformed)?;
    let parts = tlvs(cert.content).ok_or(malformed)?;
    let [tbs, alg, sig] = parts.as_slice() else {
        return Err("Certificate SEQUENCE does not hold exactly tbsCertificate, signatureAlgorithm, signatureValue");
    };
    if cert.tag != SEQUENCE || tbs.tag != SEQUENCE || alg.tag != SEQUENCE || sig.tag != 0x03 || tbs.whole != tbs_raw {
        return Err("unexpected Certificate layout");
    }
    let fields = tlvs(tbs.content).ok_or(malformed)?;
    let tags: Vec<u8> = fields.iter().map(|f| f.tag).collect();
    // [0] version (optional), serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, then
    // [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions, each optional, in that order.
    let skip = usize::from(tags.first() == Some(&0xa0));
    let required = [0x02, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE];
    let optional = tags.get(skip + required.len()..).unwrap_or_default();
    if tags.get(skip..skip + required.len()) != Some(&required[..])
        || !optional.windows(2).all(|w| matches!(w, [a, b] if a < b))
        || !optional.iter().all(|t| [0x81, 0x82, 0xa3].contains(t))
    {
        return Err("TBSCertificate has unexpected or trailing fields");
    }
    let tbs_alg = fields.get(skip + 1).ok_or(malformed)?;
    if tbs_alg.whole != alg.whole {
        return Err("signatureAlgorithm differs from tbsCertificate.signature (RFC 5280 §4.1.1.2)");
    }
    Ok(())
}

fn oid_name(oid: &Oid<'_>) -> String {
    let id = oid.to_id_string();
    match oid2sn(oid, oid_registry()) {
        Ok(sn) => format!("{sn} ({id})"),
        Err(_) => id,
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

fn serial_hex(raw: &[u8]) -> String {
    let s = strip_zeros(raw);
    if s.is_empty() {
        "00".to_owned()
    } else {
        hex::encode(s)
    }
}

/// RFC 3339 UTC, e.g. `2026-11-21T22:24:11Z`.
fn format_time(t: ASN1Time) -> String {
    let dt = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// notBefore ≤ now ≤ notAfter (RFC 5280 §4.1.2.5, §6.1.3 (a)(2)).
fn check_validity(cert: &Cert<'_>, now: ASN1Time) -> Result<(), EkError> {
    let validity = cert.x509.validity();
    if validity.is_valid_at(now) {
        return Ok(());
    }
    if now < validity.not_before {
        Err(EkError::NotYetValid {
            cert: cert.label.clone(),
            not_before: format_time(validity.not_before),
            now: format_time(now),
        })
    } else {
        Err(EkError::Expired {
            cert: cert.label.clone(),
            not_after: format_time(validity.not_after),
            now: format_time(now),
        })
    }
}

/// Extensions this module processes or may safely ignore when critical: basicConstraints, keyUsage,
/// extendedKeyUsage, and subjectAltName (TCG puts the TPM manufacturer, model and version in a critical
/// directoryName; names are not used to build paths).
const UNDERSTOOD: [Oid<'static>; 4] = [
    OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
];

/// No extension twice (RFC 5280 §4.2), no unknown critical extension, and the extensions this module reads, or
/// any critical one, well formed.
fn check_extensions(cert: &Cert<'_>) -> Result<(), EkError> {
    let extensions = cert.x509.extensions();
    for (i, ext) in extensions.iter().enumerate() {
        let bad = |reason: &str| EkError::BadExtension {
            cert: cert.label.clone(),
            oid: oid_name(&ext.oid),
            reason: reason.to_owned(),
        };
        if extensions.iter().take(i).any(|other| other.oid == ext.oid) {
            return Err(bad("appears more than once (RFC 5280 §4.2)"));
        }
        let understood = UNDERSTOOD.contains(&ext.oid);
        if ext.critical && !understood {
            return Err(EkError::UnknownCriticalExtension { cert: cert.label.clone(), oid: oid_name(&ext.oid) });
        }
        if (ext.critical || understood) && matches!(ext.parsed_extension(), ParsedExtension::ParseError { .. }) {
            return Err(bad("is malformed"));
        }
    }
    Ok(())
}

/// If the leaf restricts its purposes, EK certification must be one of them (TCG EK Credential Profile,
/// "Extended Key Usage": tcg-kp-EKCertificate; a Platform certificate carries tcg-kp-PlatformCertificate).
fn check_ek_usage(cert: &Cert<'_>) -> Result<(), EkError> {
    let eku = cert.x509.extended_key_usage().map_err(|e| EkError::BadExtension {
        cert: cert.label.clone(),
        oid: oid_name(&OID_X509_EXT_EXTENDED_KEY_USAGE),
        reason: e.to_string(),
    })?;
    match eku {
        None => Ok(()),
        Some(eku) if eku.value.any || eku.value.other.contains(&TCG_KP_EK_CERTIFICATE) => Ok(()),
        Some(_) => Err(EkError::NotEkCertificate { cert: cert.label.clone() }),
    }
}

/// The EK certificate's SubjectPublicKeyInfo must hold exactly the EK's key (DESIGN §5 step 2).
fn check_ek_key(cert: &Cert<'_>, ek: &Public) -> Result<(), EkError> {
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
fn rsa_components<'s>(spki: &'s SubjectPublicKeyInfo<'_>) -> Option<(&'s [u8], &'s [u8])> {
    let (_, rest) = next_tlv(&spki.subject_public_key.data)?;
    if !rest.is_empty() {
        return None;
    }
    match spki.parsed().ok()? {
        SpkiKey::RSA(k) => Some((k.modulus, k.exponent)),
        _ => None,
    }
}

fn bit_len(n: &[u8]) -> usize {
    let n = strip_zeros(n);
    n.first().map_or(0, |&b| n.len() * 8 - b.leading_zeros() as usize)
}

/// The namedCurve of an id-ecPublicKey SPKI (RFC 5480 §2.1.1), if it is one this crate supports.
fn named_curve(spki: &SubjectPublicKeyInfo<'_>) -> Option<EccCurve> {
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?;
    if curve == OID_EC_P256 {
        Some(EccCurve::NistP256)
    } else if curve == OID_NIST_EC_P384 {
        Some(EccCurve::NistP384)
    } else {
        None
    }
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

/// The algorithm `cert` is signed with, its parameters checked: NULL or absent for PKCS#1 v1.5 (RFC 4055 §5),
/// absent for ECDSA (RFC 5758 §3.2), RSASSA-PSS-params as ring verifies them (RFC 4055 §3.1).
fn signature_algorithm(cert: &Cert<'_>) -> Result<SigAlg, EkError> {
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
fn verify_signature(cert: &Cert<'_>, issuer: &Cert<'_>) -> Result<(), EkError> {
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

/// Depth-first search for a path from the leaf to an anchor.
struct PathSearch<'s, 'a> {
    leaf: &'s Cert<'a>,
    intermediates: &'s [Cert<'a>],
    anchors: &'s [Cert<'a>],
    now: ASN1Time,
    signature_checks: usize,
}

impl PathSearch<'_, '_> {
    /// Extends `path` (indices into `intermediates`, leaf side first), which ends at `child`, to an anchor and
    /// returns the anchor's index. On failure `path` is as it was, and the error is the first candidate's
    /// failure, or [`EkError::NoIssuer`] when nothing carries the issuer's name.
    fn extend(&mut self, child: &Cert<'_>, path: &mut Vec<usize>) -> Result<usize, EkError> {
        let intermediates = self.intermediates;
        let issuer_raw = child.x509.issuer().as_raw();
        let mut first_error = None;

        // Anchors first: the shortest path to something trusted by configuration.
        for (i, anchor) in self.anchors.iter().enumerate() {
            if anchor.x509.subject().as_raw() != issuer_raw {
                continue;
            }
            let result = if path.len() + 2 > MAX_PATH_LEN {
                Err(EkError::PathTooLong { cert: self.leaf.label.clone(), max: MAX_PATH_LEN })
            } else {
                self.check_issuer(child, anchor, path)
            };
            match result {
                Ok(()) => return Ok(i),
                Err(e @ EkError::SearchLimit(_)) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }

        for (i, candidate) in intermediates.iter().enumerate() {
            if candidate.x509.subject().as_raw() != issuer_raw {
                continue;
            }
            // Loop guard: no certificate twice on a path, the leaf included.
            let on_path = candidate.der == self.leaf.der
                || path.iter().any(|&p| intermediates.get(p).is_some_and(|c| c.der == candidate.der));
            if on_path {
                continue;
            }
            // The candidate and, above it, at least an anchor.
            let result = if path.len() + 3 > MAX_PATH_LEN {
                Err(EkError::PathTooLong { cert: self.leaf.label.clone(), max: MAX_PATH_LEN })
            } else {
                self.check_issuer(child, candidate, path).and_then(|()| {
                    path.push(i);
                    let found = self.extend(candidate, path);
                    if found.is_err() {
                        path.pop();
                    }
                    found
                })
            };
            match result {
                Ok(anchor) => return Ok(anchor),
                Err(e @ EkError::SearchLimit(_)) => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }

        Err(first_error.unwrap_or_else(|| {
            let issuer = child.issuer_name();
            let differently_encoded = self.anchors.iter().chain(self.intermediates).any(|c| c.name == issuer);
            EkError::NoIssuer { cert: child.label.clone(), issuer, differently_encoded }
        }))
    }

    /// May `issuer`, with the intermediates `below` it (indices, leaf side first), have issued `child`?
    /// RFC 5280 §6.1.4 (k)–(n) and §6.1.3 (a)(1)–(2).
    fn check_issuer(&mut self, child: &Cert<'_>, issuer: &Cert<'_>, below: &[usize]) -> Result<(), EkError> {
        check_validity(issuer, self.now)?;
        check_extensions(issuer)?;
        let bad = |e: x509_parser::error::X509Error| EkError::BadExtension {
            cert: issuer.label.clone(),
            oid: oid_name(&OID_X509_EXT_BASIC_CONSTRAINTS),
            reason: e.to_string(),
        };
        let constraints = issuer.x509.basic_constraints().map_err(bad)?;
        let Some(constraints) = constraints.filter(|bc| bc.value.ca) else {
            return Err(EkError::NotCa { issuer: issuer.label.clone(), cert: child.label.clone() });
        };
        let key_usage = issuer.x509.key_usage().map_err(|e| EkError::BadExtension {
            cert: issuer.label.clone(),
            oid: oid_name(&OID_X509_EXT_KEY_USAGE),
            reason: e.to_string(),
        })?;
        if key_usage.is_some_and(|ku| !ku.value.key_cert_sign()) {
            return Err(EkError::NoKeyCertSign { issuer: issuer.label.clone(), cert: child.label.clone() });
        }
        if let Some(path_len) = constraints.value.path_len_constraint {
            // Self-issued intermediates do not count (RFC 5280 §6.1.4 (l)).
            let intermediates_below =
                below.iter().filter_map(|&i| self.intermediates.get(i)).filter(|c| !c.self_issued()).count();
            if intermediates_below > path_len as usize {
                return Err(EkError::PathLenExceeded {
                    issuer: issuer.label.clone(),
                    path_len,
                    below: intermediates_below,
                });
            }
        }
        if self.signature_checks >= MAX_SIGNATURE_CHECKS {
            return Err(EkError::SearchLimit(self.signature_checks));
        }
        self.signature_checks += 1;
        verify_signature(child, issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_lengths_are_minimal_and_bounded() {
        assert!(next_tlv(&[0x30, 0x00]).is_some());
        assert!(next_tlv(&[0x30, 0x01]).is_none());
        // Long form for a short length, leading zero length byte, indefinite length, high tag number.
        assert!(next_tlv(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_none());
        assert!(next_tlv(&[0x30, 0x82, 0x00, 0x80]).is_none());
        assert!(next_tlv(&[0x30, 0x80, 0x00, 0x00]).is_none());
        assert!(next_tlv(&[0x1f, 0x01, 0x00]).is_none());
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        long.push(0xff);
        let (tlv, rest) = next_tlv(&long).unwrap();
        assert_eq!((tlv.tag, tlv.content.len(), tlv.whole.len(), rest), (0x04, 0x80, 0x83, &[0xff][..]));
    }

    #[test]
    fn serials_and_times_print_plainly() {
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(format_time(ASN1Time::from_timestamp(1_798_761_600).unwrap()), "2027-01-01T00:00:00Z");
        assert_eq!(bit_len(&[0x00, 0x01, 0xff]), 9);
    }

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
