//! Certificate extensions (RFC 5280 §4.2): which critical ones are understood, certificatePolicies, and the EK
//! certificate's extendedKeyUsage (TCG EK Credential Profile).

use x509_parser::der_parser::asn1_rs::{oid, Oid};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_CERTIFICATE_POLICIES, OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_KEY_USAGE, OID_X509_EXT_POLICY_CONSTRAINTS, OID_X509_EXT_SUBJECT_ALT_NAME,
};

use super::cert::{next_tlv, oid_name, tlvs, valid_oid, Cert};
use super::EkError;

/// tcg-kp-EKCertificate (TCG EK Credential Profile, "Extended Key Usage").
#[rustfmt::skip]
pub(super) const TCG_KP_EK_CERTIFICATE: Oid<'static> = oid!(2.23.133.8.1);

/// Extensions this module processes or may safely ignore when critical: basicConstraints, keyUsage,
/// extendedKeyUsage, subjectAltName (TCG puts the TPM manufacturer, model and version in a critical
/// directoryName; names are not used to build paths) and certificatePolicies (see
/// [`check_certificate_policies`]).
const UNDERSTOOD: [Oid<'static>; 5] = [
    OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_CERTIFICATE_POLICIES,
];

/// No extension twice (RFC 5280 §4.2), no unknown critical extension, the extensions this module reads, or
/// any critical one, well formed, and no policyConstraints.
///
/// policyConstraints is refused, critical or not: it can require an explicit policy (RFC 5280 §4.2.1.11,
/// §6.1.4 (i)), and policies are not evaluated. policyMappings and inhibitAnyPolicy only shape the policy tree,
/// which no outcome here depends on: ignored when not critical, refused as unknown when critical.
pub(super) fn check_extensions(cert: &Cert<'_>) -> Result<(), EkError> {
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
        if ext.oid == OID_X509_EXT_POLICY_CONSTRAINTS {
            return Err(bad("is not supported: it can require an explicit certificate policy (RFC 5280 §4.2.1.11)"));
        }
        let understood = UNDERSTOOD.contains(&ext.oid);
        if ext.critical && !understood {
            return Err(EkError::UnknownCriticalExtension { cert: cert.label.clone(), oid: oid_name(&ext.oid) });
        }
        if (ext.critical || understood) && matches!(ext.parsed_extension(), ParsedExtension::ParseError { .. }) {
            return Err(bad("is malformed"));
        }
        if ext.oid == OID_X509_EXT_CERTIFICATE_POLICIES {
            check_certificate_policies(ext.value).map_err(bad)?;
        }
    }
    Ok(())
}

/// certificatePolicies (RFC 5280 §4.2.1.4), critical or not, is accepted when well formed, whatever the
/// policies:
///
/// - extnValue is one DER SEQUENCE of one or more PolicyInformation, with nothing after it;
/// - a PolicyInformation is a policyIdentifier (a well-formed OID), optionally followed by a SEQUENCE of one or
///   more PolicyQualifierInfo (an OID and one value), and nothing else;
/// - no policy OID appears twice.
///
/// anyPolicy (2.5.29.32.0), the TCG and vendor policy OIDs EK CAs carry, and any other policy are all
/// acceptable. This is RFC 5280 §6.1 with user-initial-policy-set {anyPolicy} and initial-explicit-policy
/// FALSE: without policyConstraints (refused, see [`check_extensions`]) explicit_policy never reaches 0, so
/// path validity does not depend on the policies. No policy is required, none is mapped, and qualifiers (CPS
/// pointers, user notices) are checked for shape only: their values are not read.
fn check_certificate_policies(value: &[u8]) -> Result<(), &'static str> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let malformed = "is not a DER SEQUENCE of PolicyInformation (RFC 5280 §4.2.1.4)";
    let (policies, rest) = next_tlv(value).ok_or(malformed)?;
    if policies.tag != SEQUENCE || !rest.is_empty() {
        return Err(malformed);
    }
    let policies = tlvs(policies.content).ok_or(malformed)?;
    if policies.is_empty() {
        return Err("lists no policy (RFC 5280 §4.2.1.4: SIZE (1..MAX))");
    }
    let mut ids: Vec<&[u8]> = Vec::with_capacity(policies.len());
    for info in &policies {
        let fields = if info.tag == SEQUENCE { tlvs(info.content).ok_or(malformed)? } else { return Err(malformed) };
        let (id, qualifiers) = match fields.as_slice() {
            [id] => (id, None),
            [id, qualifiers] => (id, Some(qualifiers)),
            _ => return Err(malformed),
        };
        if id.tag != OID || !valid_oid(id.content) {
            return Err(malformed);
        }
        if let Some(qualifiers) = qualifiers {
            let list = if qualifiers.tag == SEQUENCE { tlvs(qualifiers.content).ok_or(malformed)? } else { vec![] };
            let well_formed = |q: &super::cert::Tlv<'_>| {
                q.tag == SEQUENCE
                    && matches!(tlvs(q.content).as_deref(), Some([qid, _]) if qid.tag == OID && valid_oid(qid.content))
            };
            if list.is_empty() || !list.iter().all(well_formed) {
                return Err("has a malformed policyQualifiers (RFC 5280 §4.2.1.4)");
            }
        }
        if ids.contains(&id.content) {
            return Err("lists a policy twice (RFC 5280 §4.2.1.4)");
        }
        ids.push(id.content);
    }
    Ok(())
}

/// If the leaf restricts its purposes, EK certification must be one of them (TCG EK Credential Profile,
/// "Extended Key Usage": tcg-kp-EKCertificate; a Platform certificate carries tcg-kp-PlatformCertificate).
pub(super) fn check_ek_usage(cert: &Cert<'_>) -> Result<(), EkError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let content = parts.concat();
        assert!(content.len() < 0x80);
        [&[tag, content.len() as u8][..], &content].concat()
    }

    #[test]
    fn certificate_policies() {
        let any_policy = tlv(0x06, &[&[0x55, 0x1d, 0x20, 0x00]]);
        let tcg = tlv(0x06, &[&[0x67, 0x81, 0x05, 0x02, 0x01]]); // 2.23.133.2.1
        let cps = tlv(0x30, &[&tlv(0x06, &[&[0x2b, 6, 1, 5, 5, 7, 2, 1]]), &tlv(0x16, &[b"http://x"])]);
        let seq = |parts: &[&[u8]]| tlv(0x30, parts);
        let ok = [
            seq(&[&seq(&[&any_policy])]),
            seq(&[&seq(&[&tcg, &seq(&[&cps])]), &seq(&[&any_policy, &seq(&[&cps, &cps])])]),
        ];
        for value in ok {
            assert_eq!(check_certificate_policies(&value), Ok(()), "{value:02x?}");
        }
        let malformed = Err("is not a DER SEQUENCE of PolicyInformation (RFC 5280 §4.2.1.4)");
        let bad_qualifiers = Err("has a malformed policyQualifiers (RFC 5280 §4.2.1.4)");
        for (value, expect) in [
            (seq(&[]), Err("lists no policy (RFC 5280 §4.2.1.4: SIZE (1..MAX))")),
            (seq(&[&seq(&[&tcg]), &seq(&[&tcg])]), Err("lists a policy twice (RFC 5280 §4.2.1.4)")),
            ([seq(&[&seq(&[&tcg])]), vec![0x05, 0x00]].concat(), malformed),
            (tlv(0x31, &[&seq(&[&tcg])]), malformed),
            (seq(&[&seq(&[])]), malformed),
            (seq(&[&seq(&[&tlv(0x06, &[&[0x80, 0x01]])])]), malformed),
            (seq(&[&seq(&[&tlv(0x06, &[&[0x55, 0x9d]])])]), malformed),
            (seq(&[&seq(&[&tcg, &seq(&[&cps]), &seq(&[&cps])])]), malformed),
            (seq(&[&seq(&[&tcg, &seq(&[])])]), bad_qualifiers),
            (seq(&[&seq(&[&tcg, &seq(&[&seq(&[&tcg])])])]), bad_qualifiers),
            (seq(&[&seq(&[&tcg, &tlv(0x31, &[&cps])])]), bad_qualifiers),
        ] {
            assert_eq!(check_certificate_policies(&value), expect, "{value:02x?}");
        }
    }
}
