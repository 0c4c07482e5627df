//! Strict DER parsing of X.509 certificates (RFC 5280 §4.1, X.690 §8.1) and the helpers that name and print
//! their fields.

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Oid;
use x509_parser::objects::{oid2sn, oid_registry};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::{EkError, MAX_CERT_LEN};

/// A certificate parsed strictly, with the label its errors use.
pub(super) struct Cert<'a> {
    pub(super) der: &'a [u8],
    pub(super) x509: X509Certificate<'a>,
    /// The subject, `CN=…` style.
    pub(super) name: String,
    /// How messages name it: the subject, prefixed with "EK certificate" for the leaf.
    pub(super) label: String,
}

impl<'a> Cert<'a> {
    /// `what` names the certificate until its subject is known.
    pub(super) fn parse(der: &'a [u8], what: String, is_leaf: bool) -> Result<Self, EkError> {
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

    pub(super) fn issuer_name(&self) -> String {
        let s = self.x509.issuer().to_string();
        if s.is_empty() {
            "(empty name)".to_owned()
        } else {
            s
        }
    }

    pub(super) fn self_issued(&self) -> bool {
        self.x509.subject().as_raw() == self.x509.issuer().as_raw()
    }
}

pub(super) fn display_name(x509: &X509Certificate<'_>) -> String {
    let s = x509.subject().to_string();
    if s.is_empty() {
        "(empty subject)".to_owned()
    } else {
        s
    }
}

/// One DER element (X.690 §8.1): its tag byte, its whole encoding and its contents.
pub(super) struct Tlv<'a> {
    pub(super) tag: u8,
    pub(super) whole: &'a [u8],
    pub(super) content: &'a [u8],
}

/// Reads one DER element (single-byte tag, definite minimal length) and returns it with what follows.
pub(super) fn next_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
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

/// An OBJECT IDENTIFIER's contents are well formed (X.690 §8.19.2): subidentifiers in minimal base 128 (no
/// leading 0x80 byte), the last one complete.
pub(super) fn valid_oid(content: &[u8]) -> bool {
    content.first().is_some_and(|&b| b != 0x80)
        && content.last().is_some_and(|&b| b & 0x80 == 0)
        && content.windows(2).all(|w| matches!(w, [a, b] if a & 0x80 != 0 || *b != 0x80))
}

pub(super) fn tlvs(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
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
pub(super) fn check_structure(der: &[u8], tbs_raw: &[u8]) -> Result<(), &'static str> {
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

pub(super) fn oid_name(oid: &Oid<'_>) -> String {
    let id = oid.to_id_string();
    match oid2sn(oid, oid_registry()) {
        Ok(sn) => format!("{sn} ({id})"),
        Err(_) => id,
    }
}

pub(super) fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

pub(super) fn serial_hex(raw: &[u8]) -> String {
    let s = strip_zeros(raw);
    if s.is_empty() {
        "00".to_owned()
    } else {
        hex::encode(s)
    }
}

/// RFC 3339 UTC, e.g. `2026-11-21T22:24:11Z`.
pub(super) fn format_time(t: ASN1Time) -> String {
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

pub(super) fn bit_len(n: &[u8]) -> usize {
    let n = strip_zeros(n);
    n.first().map_or(0, |&b| n.len() * 8 - b.leading_zeros() as usize)
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
}
