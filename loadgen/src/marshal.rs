//! The TPM 2.0 structures a software TPM produces (Part 2, big-endian): the EK and AK TPMT_PUBLIC, a quote's
//! TPMS_ATTEST and its TPMT_SIGNATURE. `runtrust-attestation` only parses these (it is the verifier); the
//! bytes written here are parsed back with its parsers, in the tests and before any is sent.

use runtrust_attestation::tpm2::{
    alg_id, ClockInfo, EccCurve, HashAlg, ObjectAttributes, PcrSelection, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
use runtrust_attestation::{ParseError, Public};

/// TCG EK Credential Profile 2.0, template L-2 (ECC NIST P-256) authPolicy: PolicySecret(TPM_RH_ENDORSEMENT).
pub const EK_AUTH_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7,
    0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
];

/// Template L-2 objectAttributes: fixedTPM, fixedParent, sensitiveDataOrigin, adminWithPolicy, restricted,
/// decrypt.
pub const EK_ATTRIBUTES: u32 = ObjectAttributes::FIXED_TPM
    | ObjectAttributes::FIXED_PARENT
    | ObjectAttributes::SENSITIVE_DATA_ORIGIN
    | ObjectAttributes::ADMIN_WITH_POLICY
    | ObjectAttributes::RESTRICTED
    | ObjectAttributes::DECRYPT;

/// What `tpm2_createak -G ecc` makes: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted,
/// sign.
pub const AK_ATTRIBUTES: u32 = ObjectAttributes::FIXED_TPM
    | ObjectAttributes::FIXED_PARENT
    | ObjectAttributes::SENSITIVE_DATA_ORIGIN
    | ObjectAttributes::USER_WITH_AUTH
    | ObjectAttributes::RESTRICTED
    | ObjectAttributes::SIGN_ENCRYPT;

/// A big-endian byte writer.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// A TPM2B: u16 size, then the bytes. Every TPM2B written here is far below 64 KiB.
    pub fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        let len = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(len).bytes(&v[..usize::from(len)])
    }
}

/// TPMT_PUBLIC of an ECC NIST P-256 EK made from template L-2 with public point (x, y).
pub fn ek_public(x: &[u8; 32], y: &[u8; 32]) -> Result<Public, ParseError> {
    let mut w = Writer::default();
    w.u16(alg_id::ECC).u16(HashAlg::Sha256.alg_id()).u32(EK_ATTRIBUTES).tpm2b(&EK_AUTH_POLICY);
    // TPMT_SYM_DEF_OBJECT: AES-128-CFB.
    w.u16(alg_id::AES).u16(128).u16(alg_id::CFB);
    // scheme NULL, curve, kdf NULL, unique.
    w.u16(alg_id::NULL).u16(EccCurve::NistP256.curve_id()).u16(alg_id::NULL).tpm2b(x).tpm2b(y);
    Public::from_tpmt(&w.0)
}

/// TPMT_PUBLIC of an ECC NIST P-256 AK with scheme ECDSA-SHA256 and public point (x, y).
pub fn ak_public(x: &[u8; 32], y: &[u8; 32]) -> Result<Public, ParseError> {
    let mut w = Writer::default();
    w.u16(alg_id::ECC).u16(HashAlg::Sha256.alg_id()).u32(AK_ATTRIBUTES).tpm2b(&[]);
    // symmetric NULL; scheme ECDSA with SHA-256; curve; kdf NULL; unique.
    w.u16(alg_id::NULL).u16(alg_id::ECDSA).u16(HashAlg::Sha256.alg_id());
    w.u16(EccCurve::NistP256.curve_id()).u16(alg_id::NULL).tpm2b(x).tpm2b(y);
    Public::from_tpmt(&w.0)
}

/// TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (Part 2 §10.12.12) with its TPMS_QUOTE_INFO (§10.12.4).
pub fn quote_attest(
    signer_name: &[u8],
    nonce: &[u8],
    clock: &ClockInfo,
    firmware_version: u64,
    selection: &PcrSelection,
    pcr_digest: &[u8],
) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(TPM_GENERATED_VALUE).u16(TPM_ST_ATTEST_QUOTE).tpm2b(signer_name).tpm2b(nonce);
    w.u64(clock.clock).u32(clock.reset_count).u32(clock.restart_count).u8(u8::from(clock.safe));
    w.u64(firmware_version).bytes(&selection.to_bytes()).tpm2b(pcr_digest);
    w.0
}

/// TPMT_SIGNATURE for ECDSA with SHA-256 (Part 2 §11.3.4): sigAlg, hash, signatureR, signatureS.
pub fn ecdsa_sha256_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u16(alg_id::ECDSA).u16(HashAlg::Sha256.alg_id()).tpm2b(r).tpm2b(s);
    w.0
}

#[cfg(test)]
mod tests {
    use runtrust_attestation::ak::check_ak;
    use runtrust_attestation::tpm2::PublicKey;
    use runtrust_attestation::{Attest, Signature};

    use super::*;

    #[test]
    fn ek_and_ak_parse_as_written() {
        let (x, y) = ([0x11u8; 32], [0x22u8; 32]);
        let ek = ek_public(&x, &y).unwrap();
        assert_eq!(ek.attributes.0, 0x0003_00B2, "template L-2 attributes");
        assert_eq!(ek.auth_policy, EK_AUTH_POLICY);
        assert!(matches!(ek.key, PublicKey::Ecc { curve: EccCurve::NistP256, .. }));
        assert!(ek.scheme.is_none());
        let ak = ak_public(&x, &y).unwrap();
        check_ak(&ak, false).unwrap();
        assert_eq!(ak.name().len(), 34);
    }

    #[test]
    fn attest_and_signature_parse_as_written() {
        let sel: PcrSelection = "sha256:0,1,2,3,4,5,6,7".parse().unwrap();
        let clock = ClockInfo { clock: 12345, reset_count: 2, restart_count: 1, safe: true };
        let bytes = quote_attest(&[0, 0x0B, 1, 2], b"nonce", &clock, 7, &sel, &[9u8; 32]);
        let a = Attest::parse_quote(&bytes).unwrap();
        assert_eq!(a.magic, TPM_GENERATED_VALUE);
        assert_eq!(a.extra_data, b"nonce");
        assert_eq!(a.clock_info, clock);
        assert_eq!(a.firmware_version, 7);
        assert!(a.quote.pcr_select.same_pcrs(&sel));
        let sig = Signature::parse(&ecdsa_sha256_signature(&[1; 32], &[2; 32])).unwrap();
        assert!(matches!(sig, Signature::Ecc { .. }));
    }
}
