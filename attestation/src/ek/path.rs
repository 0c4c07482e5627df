//! Path building and validation (RFC 5280 §6.1, the small profile described in the module documentation).

use x509_parser::der_parser::asn1_rs::Oid;
use x509_parser::oid_registry::{OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE};
use x509_parser::time::ASN1Time;

use super::cert::{format_time, oid_name, Cert};
use super::extensions::check_extensions;
use super::signature::verify_signature;
use super::{EkError, MAX_PATH_LEN};

/// Most signature verifications one path search may spend (bounds the work when many certificates share a
/// name).
const MAX_SIGNATURE_CHECKS: usize = 32;

/// notBefore ≤ now ≤ notAfter (RFC 5280 §4.1.2.5, §6.1.3 (a)(2)).
pub(super) fn check_validity(cert: &Cert<'_>, now: ASN1Time) -> Result<(), EkError> {
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

/// Depth-first search for a path from the leaf to an anchor.
pub(super) struct PathSearch<'s, 'a> {
    pub(super) leaf: &'s Cert<'a>,
    pub(super) intermediates: &'s [Cert<'a>],
    pub(super) anchors: &'s [Cert<'a>],
    pub(super) now: ASN1Time,
    pub(super) signature_checks: usize,
    /// The leaf is a CA certificate ([`super::verify_ca_certificate`]): it counts against its issuers'
    /// pathLenConstraint like an intermediate.
    pub(super) leaf_is_ca: bool,
}

impl PathSearch<'_, '_> {
    /// Extends `path` (indices into `intermediates`, leaf side first), which ends at `child`, to an anchor and
    /// returns the anchor's index. On failure `path` is as it was, and the error is the first candidate's
    /// failure, or [`EkError::NoIssuer`] when nothing carries the issuer's name.
    pub(super) fn extend(&mut self, child: &Cert<'_>, path: &mut Vec<usize>) -> Result<usize, EkError> {
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
        let constraints = ca_constraints(issuer)?;
        if !constraints.is_ca {
            return Err(EkError::NotCa { issuer: issuer.label.clone(), cert: child.label.clone() });
        }
        if !constraints.key_cert_sign {
            return Err(EkError::NoKeyCertSign { issuer: issuer.label.clone(), cert: child.label.clone() });
        }
        if let Some(path_len) = constraints.path_len {
            // Self-issued intermediates do not count (RFC 5280 §6.1.4 (l)).
            let leaf = usize::from(self.leaf_is_ca && !self.leaf.self_issued());
            let intermediates_below =
                below.iter().filter_map(|&i| self.intermediates.get(i)).filter(|c| !c.self_issued()).count() + leaf;
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

/// What a certificate's basicConstraints and keyUsage allow (RFC 5280 §4.2.1.9, §4.2.1.3).
pub(super) struct CaConstraints {
    /// basicConstraints cA is TRUE.
    pub(super) is_ca: bool,
    /// keyUsage is absent or has keyCertSign.
    pub(super) key_cert_sign: bool,
    /// pathLenConstraint, if any.
    pub(super) path_len: Option<u32>,
}

pub(super) fn ca_constraints(cert: &Cert<'_>) -> Result<CaConstraints, EkError> {
    let bad = |oid: &Oid<'_>, e: x509_parser::error::X509Error| EkError::BadExtension {
        cert: cert.label.clone(),
        oid: oid_name(oid),
        reason: e.to_string(),
    };
    let basic = cert.x509.basic_constraints().map_err(|e| bad(&OID_X509_EXT_BASIC_CONSTRAINTS, e))?;
    let key_usage = cert.x509.key_usage().map_err(|e| bad(&OID_X509_EXT_KEY_USAGE, e))?;
    let basic = basic.map(|bc| bc.value).filter(|bc| bc.ca);
    Ok(CaConstraints {
        is_ca: basic.is_some(),
        key_cert_sign: key_usage.is_none_or(|ku| ku.value.key_cert_sign()),
        path_len: basic.and_then(|bc| bc.path_len_constraint),
    })
}
