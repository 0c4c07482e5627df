//! TPMT_PUBLIC / TPM2B_PUBLIC (Part 2 §12.2.4, §12.2.5) for RSA and ECC keys, and the object Name (Part 1 §16).

use std::fmt;

use super::alg::{alg_id, EccCurve, HashAlg};
use super::signature::SigScheme;
use super::wire::{ParseError, Reader};

/// MAX_RSA_KEY_BYTES.
const MAX_RSA_BYTES: usize = 512;
/// MAX_ECC_KEY_BYTES.
const MAX_ECC_BYTES: usize = 66;
/// sizeof(TPMU_HA).
const MAX_DIGEST: usize = 64;
/// sizeof(TPMT_PUBLIC) bound for TPM2B_PUBLIC.
const MAX_PUBLIC: usize = 1024;

/// TPMA_OBJECT (Part 2 §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectAttributes(pub u32);

impl ObjectAttributes {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const ST_CLEAR: u32 = 1 << 2;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub const NO_DA: u32 = 1 << 10;
    pub const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN_ENCRYPT: u32 = 1 << 18;
    pub const X509_SIGN: u32 = 1 << 19;
    /// Bits the specification reserves; a TPM never sets them.
    pub const RESERVED: u32 = 0xFFF0_F309;

    const NAMES: [(u32, &'static str); 12] = [
        (Self::FIXED_TPM, "fixedTPM"),
        (Self::ST_CLEAR, "stClear"),
        (Self::FIXED_PARENT, "fixedParent"),
        (Self::SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
        (Self::USER_WITH_AUTH, "userWithAuth"),
        (Self::ADMIN_WITH_POLICY, "adminWithPolicy"),
        (Self::NO_DA, "noDA"),
        (Self::ENCRYPTED_DUPLICATION, "encryptedDuplication"),
        (Self::RESTRICTED, "restricted"),
        (Self::DECRYPT, "decrypt"),
        (Self::SIGN_ENCRYPT, "sign"),
        (Self::X509_SIGN, "x509sign"),
    ];

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }

    /// The spec name of one attribute bit.
    pub fn name_of(bit: u32) -> &'static str {
        Self::NAMES.iter().find(|(b, _)| *b == bit).map_or("reserved", |(_, n)| n)
    }
}

impl fmt::Display for ObjectAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<&str> = Self::NAMES.iter().filter(|(b, _)| self.has(*b)).map(|(_, n)| *n).collect();
        write!(f, "{:#010x} ({})", self.0, set.join("|"))
    }
}

/// TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7) when not TPM_ALG_NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymDef {
    pub algorithm: u16,
    pub key_bits: u16,
    pub mode: u16,
}

/// An asymmetric or KDF scheme (TPMT_RSA_SCHEME, TPMT_ECC_SCHEME, TPMT_KDF_SCHEME) when not TPM_ALG_NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    pub alg: u16,
    /// Absent only for RSAES, whose details are empty.
    pub hash: Option<HashAlg>,
    /// TPMS_SCHEME_ECDAA.count.
    pub count: Option<u16>,
}

/// The key in TPMU_PUBLIC_ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Rsa {
        key_bits: u16,
        /// TPMS_RSA_PARMS.exponent; 0 stands for 2^16 + 1.
        exponent: u32,
        modulus: Vec<u8>,
    },
    Ecc {
        curve: EccCurve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

impl PublicKey {
    /// The RSA public exponent, with 0 resolved to 65537.
    pub fn rsa_exponent(exponent: u32) -> u32 {
        if exponent == 0 {
            65_537
        } else {
            exponent
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { key_bits, .. } => format!("RSA-{key_bits}"),
            PublicKey::Ecc { curve, .. } => curve.name().to_owned(),
        }
    }
}

/// A parsed TPMT_PUBLIC for an RSA or ECC key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    pub name_alg: HashAlg,
    pub attributes: ObjectAttributes,
    pub auth_policy: Vec<u8>,
    pub symmetric: Option<SymDef>,
    pub scheme: Option<Scheme>,
    /// TPMS_ECC_PARMS.kdf; always None for RSA.
    pub kdf: Option<Scheme>,
    pub key: PublicKey,
    /// The TPMT_PUBLIC bytes as the TPM marshalled them (the Name is computed over these).
    raw: Vec<u8>,
}

impl Public {
    /// Parses a TPM2B_PUBLIC (what `tpm2_createak -u` writes and what TPM2_ReadPublic returns).
    pub fn from_tpm2b(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let inner = r.tpm2b("TPM2B_PUBLIC.size", MAX_PUBLIC)?;
        r.finish("TPM2B_PUBLIC")?;
        if inner.is_empty() {
            return Err(ParseError::Invalid { field: "TPM2B_PUBLIC.size", offset: 0, reason: "empty public area" });
        }
        Self::from_tpmt(inner)
    }

    /// Parses a TPMT_PUBLIC that fills `bytes` exactly.
    pub fn from_tpmt(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let public = Self::parse(&mut r, bytes)?;
        r.finish("TPMT_PUBLIC")?;
        Ok(public)
    }

    fn parse(r: &mut Reader<'_>, bytes: &[u8]) -> Result<Self, ParseError> {
        let type_offset = r.offset();
        let key_type = r.u16("TPMT_PUBLIC.type")?;
        if key_type != alg_id::RSA && key_type != alg_id::ECC {
            return Err(r.invalid("TPMT_PUBLIC.type", type_offset, key_type));
        }
        let name_alg = hash(r, "TPMT_PUBLIC.nameAlg")?;
        let attr_offset = r.offset();
        let attributes = r.u32("TPMT_PUBLIC.objectAttributes")?;
        if attributes & ObjectAttributes::RESERVED != 0 {
            return Err(r.invalid("TPMT_PUBLIC.objectAttributes", attr_offset, attributes));
        }
        let auth_policy = r.tpm2b("TPMT_PUBLIC.authPolicy", MAX_DIGEST)?.to_vec();
        let symmetric = sym_def_object(r)?;
        let (scheme, kdf, key) = if key_type == alg_id::RSA {
            let scheme = asym_scheme(
                r,
                "TPMS_RSA_PARMS.scheme",
                &[alg_id::RSASSA, alg_id::RSAPSS, alg_id::OAEP, alg_id::RSAES],
            )?;
            let bits_offset = r.offset();
            let key_bits = r.u16("TPMS_RSA_PARMS.keyBits")?;
            if ![2048, 3072, 4096].contains(&key_bits) {
                return Err(r.invalid("TPMS_RSA_PARMS.keyBits", bits_offset, key_bits));
            }
            let exponent = r.u32("TPMS_RSA_PARMS.exponent")?;
            let mod_offset = r.offset();
            let modulus = r.tpm2b("TPMU_PUBLIC_ID.rsa", MAX_RSA_BYTES)?.to_vec();
            if modulus.len() != usize::from(key_bits / 8) || modulus.first().is_none_or(|&b| b & 0x80 == 0) {
                return Err(ParseError::Invalid {
                    field: "TPMU_PUBLIC_ID.rsa",
                    offset: mod_offset,
                    reason: "modulus length does not match keyBits",
                });
            }
            (scheme, None, PublicKey::Rsa { key_bits, exponent, modulus })
        } else {
            let scheme = asym_scheme(
                r,
                "TPMS_ECC_PARMS.scheme",
                &[alg_id::ECDSA, alg_id::ECDH, alg_id::ECDAA, alg_id::SM2, alg_id::ECSCHNORR, alg_id::ECMQV],
            )?;
            let curve_offset = r.offset();
            let curve_id = r.u16("TPMS_ECC_PARMS.curveID")?;
            let curve = EccCurve::from_curve_id(curve_id)
                .ok_or_else(|| r.invalid("TPMS_ECC_PARMS.curveID", curve_offset, curve_id))?;
            let kdf = asym_scheme(
                r,
                "TPMS_ECC_PARMS.kdf",
                &[alg_id::MGF1, alg_id::KDF1_SP800_56A, alg_id::KDF2, alg_id::KDF1_SP800_108],
            )?;
            let x = ecc_parameter(r, "TPMS_ECC_POINT.x", curve)?;
            let y = ecc_parameter(r, "TPMS_ECC_POINT.y", curve)?;
            (scheme, kdf, PublicKey::Ecc { curve, x, y })
        };
        let end = r.offset();
        let raw = bytes.get(type_offset..end).unwrap_or_default().to_vec();
        Ok(Self { name_alg, attributes: ObjectAttributes(attributes), auth_policy, symmetric, scheme, kdf, key, raw })
    }

    /// The TPMT_PUBLIC bytes.
    pub fn tpmt_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The TPM2B_PUBLIC encoding.
    pub fn to_tpm2b(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + 2);
        out.extend_from_slice(&(self.raw.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.raw);
        out
    }

    /// The object's Name (Part 1 §16): nameAlg ‖ H_nameAlg(TPMT_PUBLIC).
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.alg_id().to_be_bytes().to_vec();
        name.extend_from_slice(&self.name_alg.digest(&self.raw));
        name
    }

    /// The signing scheme fixed in the key, if any.
    pub fn signing_scheme(&self) -> Option<SigScheme> {
        let s = self.scheme?;
        let hash = s.hash?;
        match s.alg {
            alg_id::RSASSA => Some(SigScheme::RsaSsa(hash)),
            alg_id::RSAPSS => Some(SigScheme::RsaPss(hash)),
            alg_id::ECDSA => Some(SigScheme::EcDsa(hash)),
            _ => None,
        }
    }
}

fn hash(r: &mut Reader<'_>, field: &'static str) -> Result<HashAlg, ParseError> {
    let offset = r.offset();
    let id = r.u16(field)?;
    HashAlg::from_alg_id(id).ok_or_else(|| r.invalid(field, offset, id))
}

/// TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7): AES, SM4 or Camellia with keyBits and mode, or NULL.
fn sym_def_object(r: &mut Reader<'_>) -> Result<Option<SymDef>, ParseError> {
    let offset = r.offset();
    let algorithm = r.u16("TPMT_SYM_DEF_OBJECT.algorithm")?;
    match algorithm {
        alg_id::NULL => Ok(None),
        alg_id::AES | alg_id::SM4 | alg_id::CAMELLIA => {
            let bits_offset = r.offset();
            let key_bits = r.u16("TPMT_SYM_DEF_OBJECT.keyBits")?;
            if ![128, 192, 256].contains(&key_bits) {
                return Err(r.invalid("TPMT_SYM_DEF_OBJECT.keyBits", bits_offset, key_bits));
            }
            let mode_offset = r.offset();
            let mode = r.u16("TPMT_SYM_DEF_OBJECT.mode")?;
            if ![alg_id::CTR, alg_id::OFB, alg_id::CBC, alg_id::CFB, alg_id::ECB, alg_id::NULL].contains(&mode) {
                return Err(r.invalid("TPMT_SYM_DEF_OBJECT.mode", mode_offset, mode));
            }
            Ok(Some(SymDef { algorithm, key_bits, mode }))
        }
        other => Err(r.invalid("TPMT_SYM_DEF_OBJECT.algorithm", offset, other)),
    }
}

/// A TPMT_*_SCHEME: the scheme id, then its details (a hash, plus a count for ECDAA; nothing for RSAES).
fn asym_scheme(r: &mut Reader<'_>, field: &'static str, allowed: &[u16]) -> Result<Option<Scheme>, ParseError> {
    let offset = r.offset();
    let alg = r.u16(field)?;
    if alg == alg_id::NULL {
        return Ok(None);
    }
    if !allowed.contains(&alg) {
        return Err(r.invalid(field, offset, alg));
    }
    if alg == alg_id::RSAES {
        return Ok(Some(Scheme { alg, hash: None, count: None }));
    }
    let hash = hash(r, field)?;
    let count = if alg == alg_id::ECDAA { Some(r.u16("TPMS_SCHEME_ECDAA.count")?) } else { None };
    Ok(Some(Scheme { alg, hash: Some(hash), count }))
}

fn ecc_parameter(r: &mut Reader<'_>, field: &'static str, curve: EccCurve) -> Result<Vec<u8>, ParseError> {
    let offset = r.offset();
    let v = r.tpm2b(field, MAX_ECC_BYTES)?;
    if v.is_empty() || v.len() > curve.coordinate_len() {
        return Err(ParseError::Invalid { field, offset, reason: "coordinate length does not match the curve" });
    }
    Ok(v.to_vec())
}
