//! The configured EK trust anchors (`--ek-ca`) and their loading from DER or PEM.

use std::fmt;

use sha2::{Digest, Sha256};

use super::cert::Cert;
use super::signature::weak_signature_hash;
use super::{pem, EkError, MAX_ANCHORS};

/// The configured EK trust anchors (`--ek-ca`): CA certificates, each checked to be one strict DER certificate
/// that is not SHA-1-signed (nor MD5- or MD2-signed).
///
/// Anchors are trusted by configuration: RFC 5280 §6.1.1 (d) takes only an anchor's name and key, so its own
/// signature is never verified. A SHA-1-signed CA certificate is refused all the same, self-signed roots
/// included: SHA-1 is refused everywhere on a path (as intermediate, EK certificate, or anchor), so that an
/// operator sees it when loading, not when the first host enrolls. Expiry is not a reason to refuse an anchor
/// at load time: validity, basic constraints, keyUsage and critical extensions are checked, at the
/// verification time, when a path uses the anchor. Duplicates are kept (harmless: the path search tries
/// anchors in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    pub(super) certs: Vec<Vec<u8>>,
}

/// What an operator sees of one anchor (`runtrust ek-ca list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchorInfo {
    pub fingerprint_sha256: [u8; 32],
    pub subject: String,
    /// notAfter (RFC 5280 §4.1.2.5), Unix seconds.
    pub not_after: i64,
}

/// A certificate the anchor loaders refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedAnchor {
    /// Its position in the input, from 1: the list index, or the PEM block.
    pub position: usize,
    /// Its subject.
    pub subject: String,
    /// Why: [`EkError::WeakHashSigned`] (SHA-1, MD5 or MD2).
    pub reason: EkError,
}

impl fmt::Display for RefusedAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trust anchor {}: {}", self.position, self.reason)
    }
}

impl TrustAnchors {
    /// Anchors from DER certificates, all or nothing: a malformed certificate, or one refused (see
    /// [`TrustAnchors::load_der_certs`]), is an error naming it. An empty list is accepted here; verification
    /// against it fails.
    pub fn from_der_certs(certs: Vec<Vec<u8>>) -> Result<Self, EkError> {
        let total = certs.len();
        let (anchors, refused) = Self::load_der_certs(certs)?;
        if refused.is_empty() {
            Ok(anchors)
        } else {
            Err(EkError::AnchorsRefused { total, refused })
        }
    }

    /// Anchors from DER certificates, keeping the acceptable ones and listing the refused ones (SHA-1-, MD5- or
    /// MD2-signed), so that the caller decides. A malformed certificate, or more than [`MAX_ANCHORS`], is still
    /// an error for the whole list.
    pub fn load_der_certs(certs: Vec<Vec<u8>>) -> Result<(Self, Vec<RefusedAnchor>), EkError> {
        if certs.len() > MAX_ANCHORS {
            return Err(EkError::TooManyAnchors { count: certs.len(), max: MAX_ANCHORS });
        }
        let mut refused = Vec::new();
        let mut accepted = Vec::with_capacity(certs.len());
        for (i, der) in certs.into_iter().enumerate() {
            let cert = Cert::parse(&der, format!("trust anchor {}", i + 1), false)?;
            match weak_signature_hash(&cert) {
                Some((algorithm, hash)) => refused.push(RefusedAnchor {
                    position: i + 1,
                    subject: cert.name.clone(),
                    reason: EkError::WeakHashSigned { cert: cert.label.clone(), algorithm, hash },
                }),
                None => accepted.push(der),
            }
        }
        Ok((Self { certs: accepted }, refused))
    }

    /// Anchors from PEM text with one or more `CERTIFICATE` blocks, all or nothing like
    /// [`TrustAnchors::from_der_certs`].
    ///
    /// Any line layout is read: a BEGIN line right after an END line (`cat` of files without a final newline),
    /// CRLF, blanks at line ends. Text between blocks is ignored; any other block label, a damaged block, a
    /// stray END line or non-canonical base64 is an error for the whole input (RFC 7468).
    pub fn from_pem(pem: &[u8]) -> Result<Self, EkError> {
        Self::from_der_certs(pem_certificates(pem)?)
    }

    /// Anchors from PEM text like [`TrustAnchors::from_pem`], keeping the acceptable certificates and listing
    /// the refused ones like [`TrustAnchors::load_der_certs`]; positions are PEM block numbers. A damaged
    /// input is still an error for the whole input.
    pub fn load_pem(pem: &[u8]) -> Result<(Self, Vec<RefusedAnchor>), EkError> {
        Self::load_der_certs(pem_certificates(pem)?)
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

    /// Each anchor's SHA-256 fingerprint, subject and notAfter (Unix seconds), in configuration order.
    pub fn describe(&self) -> Vec<AnchorInfo> {
        self.certs
            .iter()
            .enumerate()
            .filter_map(|(i, der)| Cert::parse(der, format!("trust anchor {}", i + 1), false).ok().map(|c| (der, c)))
            .map(|(der, c)| AnchorInfo {
                fingerprint_sha256: Sha256::digest(der).into(),
                subject: c.name.clone(),
                not_after: c.x509.validity().not_after.timestamp(),
            })
            .collect()
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

/// The DER of the PEM text's CERTIFICATE blocks: at least one.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, EkError> {
    let certs = pem::certificates(pem).map_err(EkError::Pem)?;
    if certs.is_empty() {
        return Err(EkError::Pem(format!("no {} block", pem::CERTIFICATE)));
    }
    Ok(certs)
}
