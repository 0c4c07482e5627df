//! TPM_ALG_ID and TPM_ECC_CURVE constants (Part 2 §6.3, §6.4) and the hash algorithms runtrust accepts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// TPM_ALG_ID values (Part 2 §6.3, Table 9).
pub mod alg_id {
    pub const RSA: u16 = 0x0001;
    pub const SHA1: u16 = 0x0004;
    pub const HMAC: u16 = 0x0005;
    pub const AES: u16 = 0x0006;
    pub const MGF1: u16 = 0x0007;
    pub const KEYEDHASH: u16 = 0x0008;
    pub const XOR: u16 = 0x000A;
    pub const SHA256: u16 = 0x000B;
    pub const SHA384: u16 = 0x000C;
    pub const SHA512: u16 = 0x000D;
    pub const NULL: u16 = 0x0010;
    pub const SM3_256: u16 = 0x0012;
    pub const SM4: u16 = 0x0013;
    pub const RSASSA: u16 = 0x0014;
    pub const RSAES: u16 = 0x0015;
    pub const RSAPSS: u16 = 0x0016;
    pub const OAEP: u16 = 0x0017;
    pub const ECDSA: u16 = 0x0018;
    pub const ECDH: u16 = 0x0019;
    pub const ECDAA: u16 = 0x001A;
    pub const SM2: u16 = 0x001B;
    pub const ECSCHNORR: u16 = 0x001C;
    pub const ECMQV: u16 = 0x001D;
    pub const KDF1_SP800_56A: u16 = 0x0020;
    pub const KDF2: u16 = 0x0021;
    pub const KDF1_SP800_108: u16 = 0x0022;
    pub const ECC: u16 = 0x0023;
    pub const SYMCIPHER: u16 = 0x0025;
    pub const CAMELLIA: u16 = 0x0026;
    pub const CTR: u16 = 0x0040;
    pub const OFB: u16 = 0x0041;
    pub const CBC: u16 = 0x0042;
    pub const CFB: u16 = 0x0043;
    pub const ECB: u16 = 0x0044;
}

/// The hash algorithms runtrust appraises (TPMI_ALG_HASH minus SM3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 4] = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

    pub const fn alg_id(self) -> u16 {
        match self {
            HashAlg::Sha1 => alg_id::SHA1,
            HashAlg::Sha256 => alg_id::SHA256,
            HashAlg::Sha384 => alg_id::SHA384,
            HashAlg::Sha512 => alg_id::SHA512,
        }
    }

    pub const fn from_alg_id(id: u16) -> Option<Self> {
        match id {
            alg_id::SHA1 => Some(HashAlg::Sha1),
            alg_id::SHA256 => Some(HashAlg::Sha256),
            alg_id::SHA384 => Some(HashAlg::Sha384),
            alg_id::SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub const fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub fn ring_algorithm(self) -> &'static ring::digest::Algorithm {
        match self {
            HashAlg::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &ring::digest::SHA256,
            HashAlg::Sha384 => &ring::digest::SHA384,
            HashAlg::Sha512 => &ring::digest::SHA512,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.ring_algorithm(), data).as_ref().to_vec()
    }

    /// A streaming hash context.
    pub fn context(self) -> ring::digest::Context {
        ring::digest::Context::new(self.ring_algorithm())
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashAlg::ALL
            .into_iter()
            .find(|h| h.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown hash algorithm {s:?} (expected sha1, sha256, sha384 or sha512)"))
    }
}

/// TPM_ECC_CURVE (Part 2 §6.4) for the curves runtrust verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EccCurve {
    NistP256,
    NistP384,
}

impl EccCurve {
    pub const fn curve_id(self) -> u16 {
        match self {
            EccCurve::NistP256 => 0x0003,
            EccCurve::NistP384 => 0x0004,
        }
    }

    pub const fn from_curve_id(id: u16) -> Option<Self> {
        match id {
            0x0003 => Some(EccCurve::NistP256),
            0x0004 => Some(EccCurve::NistP384),
            _ => None,
        }
    }

    /// Size in bytes of a coordinate or scalar.
    pub const fn coordinate_len(self) -> usize {
        match self {
            EccCurve::NistP256 => 32,
            EccCurve::NistP384 => 48,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            EccCurve::NistP256 => "NIST P-256",
            EccCurve::NistP384 => "NIST P-384",
        }
    }
}
