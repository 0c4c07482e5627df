//! The cnf claim's key (RFC 8747 §3.2): the host's AK as a COSE_Key, so that a relying party can demand
//! proof of possession — a fresh quote signed by exactly this key.
//!
//! RSA AKs become kty RSA with n and e (RFC 8230 §4); ECC AKs kty EC2 with crv, x and y (RFC 9053 §7.1.1).
//! The key's alg is the AK's signing scheme (RFC 8812 RS*, RFC 8230 PS*, RFC 9053 ES*), absent when the AK
//! has none.

use coset::cbor::value::Value;
use runtrust_attestation::tpm2::{EccCurve, HashAlg, Public, PublicKey, SigScheme};
use serde_json::json;

use super::cbor::{self, Cbor, IntMap};
use super::labels::{alg, crv, key, kty};
use super::TokenError;

/// RSA modulus sizes a TPM AK may have (TPMS_RSA_PARMS.keyBits 2048, 3072, 4096).
const RSA_MODULUS_LENS: [usize; 3] = [256, 384, 512];

/// The AK a token is bound to, normalised: RSA exponent resolved (0 means 65537), EC coordinates
/// left-padded to the curve size. Two keys are equal exactly when their COSE_Keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfirmationKey {
    key: PublicKey,
    scheme: Option<SigScheme>,
}

impl ConfirmationKey {
    /// The AK of a parsed TPM2B_PUBLIC.
    pub fn from_public(ak: &Public) -> Result<Self, TokenError> {
        Self::new(ak.key.clone(), ak.signing_scheme())
    }

    pub fn new(key: PublicKey, scheme: Option<SigScheme>) -> Result<Self, TokenError> {
        let unsupported = |m: String| Err(TokenError::AkUnsupported(m));
        let key = match key {
            PublicKey::Rsa { exponent, modulus, .. } => {
                if !RSA_MODULUS_LENS.contains(&modulus.len()) || modulus.first().is_none_or(|&b| b & 0x80 == 0) {
                    return unsupported("RSA modulus is not 2048, 3072 or 4096 bits".into());
                }
                let key_bits = (modulus.len() * 8) as u16;
                PublicKey::Rsa { key_bits, exponent: PublicKey::rsa_exponent(exponent), modulus }
            }
            PublicKey::Ecc { curve, x, y } => {
                let n = curve.coordinate_len();
                if x.len() > n || y.len() > n {
                    return unsupported(format!("{} coordinate longer than the curve", curve.name()));
                }
                PublicKey::Ecc { curve, x: left_pad(&x, n), y: left_pad(&y, n) }
            }
        };
        let k = Self { key, scheme };
        if let Some(s) = scheme {
            if k.cose_alg().is_none() {
                return unsupported(format!("scheme {} of a {} key has no COSE algorithm", s.name(), k.key.describe()));
            }
        }
        Ok(k)
    }

    /// The key, as [`runtrust_attestation::quote::verify_quote_with_key`] takes it.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The AK's signing scheme, which a fresh quote must use.
    pub fn scheme(&self) -> Option<SigScheme> {
        self.scheme
    }

    /// Whether `ak` is this key (same key material and scheme).
    pub fn matches(&self, ak: &Public) -> bool {
        Self::from_public(ak).is_ok_and(|k| k == *self)
    }

    /// The COSE algorithm of the AK's scheme, if the scheme fits the key type.
    pub fn cose_alg(&self) -> Option<i64> {
        let id = match (&self.key, self.scheme?) {
            (PublicKey::Rsa { .. }, SigScheme::RsaSsa(h)) => match h {
                HashAlg::Sha1 => alg::RS1,
                HashAlg::Sha256 => alg::RS256,
                HashAlg::Sha384 => alg::RS384,
                HashAlg::Sha512 => alg::RS512,
            },
            (PublicKey::Rsa { .. }, SigScheme::RsaPss(h)) => match h {
                HashAlg::Sha256 => alg::PS256,
                HashAlg::Sha384 => alg::PS384,
                HashAlg::Sha512 => alg::PS512,
                HashAlg::Sha1 => return None,
            },
            (PublicKey::Ecc { .. }, SigScheme::EcDsa(h)) => match h {
                HashAlg::Sha256 => alg::ES256,
                HashAlg::Sha384 => alg::ES384,
                HashAlg::Sha512 => alg::ES512,
                HashAlg::Sha1 => return None,
            },
            _ => return None,
        };
        Some(id)
    }

    /// The AK scheme a COSE algorithm stands for, given the key type.
    fn scheme_of(kty: i64, id: i64) -> Option<SigScheme> {
        let s = match (kty, id) {
            (kty::RSA, alg::RS1) => SigScheme::RsaSsa(HashAlg::Sha1),
            (kty::RSA, alg::RS256) => SigScheme::RsaSsa(HashAlg::Sha256),
            (kty::RSA, alg::RS384) => SigScheme::RsaSsa(HashAlg::Sha384),
            (kty::RSA, alg::RS512) => SigScheme::RsaSsa(HashAlg::Sha512),
            (kty::RSA, alg::PS256) => SigScheme::RsaPss(HashAlg::Sha256),
            (kty::RSA, alg::PS384) => SigScheme::RsaPss(HashAlg::Sha384),
            (kty::RSA, alg::PS512) => SigScheme::RsaPss(HashAlg::Sha512),
            (kty::EC2, alg::ES256) => SigScheme::EcDsa(HashAlg::Sha256),
            (kty::EC2, alg::ES384) => SigScheme::EcDsa(HashAlg::Sha384),
            (kty::EC2, alg::ES512) => SigScheme::EcDsa(HashAlg::Sha512),
            _ => return None,
        };
        Some(s)
    }

    /// The COSE name of [`Self::cose_alg`].
    pub fn cose_alg_name(&self) -> Option<&'static str> {
        Some(match self.cose_alg()? {
            alg::RS1 => "RS1",
            alg::RS256 => "RS256",
            alg::RS384 => "RS384",
            alg::RS512 => "RS512",
            alg::PS256 => "PS256",
            alg::PS384 => "PS384",
            alg::PS512 => "PS512",
            alg::ES256 => "ES256",
            alg::ES384 => "ES384",
            alg::ES512 => "ES512",
            _ => return None,
        })
    }

    /// RFC 9679 §4 required members: RSA {kty, n, e}; EC2 {kty, crv, x, y}.
    fn required_members(&self) -> Vec<(i64, Cbor)> {
        match &self.key {
            PublicKey::Rsa { exponent, modulus, .. } => vec![
                (key::KTY, Cbor::Int(kty::RSA)),
                (key::RSA_N, Cbor::Bytes(modulus.clone())),
                (key::RSA_E, Cbor::Bytes(exponent_bytes(*exponent))),
            ],
            PublicKey::Ecc { curve, x, y } => vec![
                (key::KTY, Cbor::Int(kty::EC2)),
                (key::CRV, Cbor::Int(curve_id(*curve))),
                (key::X, Cbor::Bytes(x.clone())),
                (key::Y, Cbor::Bytes(y.clone())),
            ],
        }
    }

    pub(crate) fn to_cose(&self) -> Cbor {
        let mut members = self.required_members();
        if let Some(a) = self.cose_alg() {
            members.push((key::ALG, Cbor::Int(a)));
        }
        Cbor::Map(members)
    }

    /// The COSE_Key, deterministically encoded.
    pub fn to_cose_key(&self) -> Vec<u8> {
        cbor::encode(&self.to_cose())
    }

    /// The AK's COSE Key Thumbprint (RFC 9679, SHA-256): a stable id for the bound key.
    pub fn thumbprint(&self) -> Vec<u8> {
        let input = cbor::encode(&Cbor::Map(self.required_members()));
        ring::digest::digest(&ring::digest::SHA256, &input).as_ref().to_vec()
    }

    /// Parses the COSE_Key inside cnf. Only kty, alg and the key-type parameters may appear.
    pub(crate) fn from_cose_value(v: Value) -> Result<Self, String> {
        let mut m = IntMap::new(v, "COSE_Key", &[key::KTY, key::ALG, key::CRV, key::X, key::Y])?;
        let kty = cbor::to_i64(m.require(key::KTY, "COSE_Key")?, "kty")?;
        let alg = m.take(key::ALG).map(|a| cbor::to_i64(a, "alg")).transpose()?;
        let scheme = match alg {
            Some(id) => Some(Self::scheme_of(kty, id).ok_or_else(|| format!("alg {id} does not fit kty {kty}"))?),
            None => None,
        };
        let key = match kty {
            kty::RSA => {
                let n = cbor::to_bytes(m.require(key::RSA_N, "RSA COSE_Key")?, "n")?;
                let e = cbor::to_bytes(m.require(key::RSA_E, "RSA COSE_Key")?, "e")?;
                if m.take(key::Y).is_some() {
                    return Err("RSA COSE_Key has an EC2 parameter".into());
                }
                // RFC 8230 §4: unsigned big-endian, no leading zero; a TPM exponent is a UINT32.
                if e.is_empty() || e.len() > 4 || e[0] == 0 {
                    return Err("e is not a minimal unsigned integer of at most 32 bits".into());
                }
                let exponent = e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
                PublicKey::Rsa { key_bits: 0, exponent, modulus: n }
            }
            kty::EC2 => {
                let crv = cbor::to_i64(m.require(key::CRV, "EC2 COSE_Key")?, "crv")?;
                let curve = match crv {
                    crv::P256 => EccCurve::NistP256,
                    crv::P384 => EccCurve::NistP384,
                    other => return Err(format!("unsupported curve {other}")),
                };
                let x = cbor::to_bytes(m.require(key::X, "EC2 COSE_Key")?, "x")?;
                let y = cbor::to_bytes(m.require(key::Y, "EC2 COSE_Key")?, "y")?;
                // RFC 9053 §7.1.1: leading zeros are kept, so coordinates have the curve's exact size.
                let n = curve.coordinate_len();
                if x.len() != n || y.len() != n {
                    return Err(format!("{} coordinates must be {n} bytes", curve.name()));
                }
                PublicKey::Ecc { curve, x, y }
            }
            other => return Err(format!("unsupported kty {other} (expected RSA or EC2)")),
        };
        // `new` refuses moduli of other sizes or with the top bit clear.
        Self::new(key, scheme).map_err(|e| e.to_string())
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut v = match &self.key {
            PublicKey::Rsa { key_bits, exponent, modulus } => json!({
                "kty": "RSA",
                "bits": key_bits,
                "n": hex::encode(modulus),
                "e": hex::encode(exponent_bytes(*exponent)),
            }),
            PublicKey::Ecc { curve, x, y } => json!({
                "kty": "EC2",
                "crv": match curve { EccCurve::NistP256 => "P-256", EccCurve::NistP384 => "P-384" },
                "x": hex::encode(x),
                "y": hex::encode(y),
            }),
        };
        if let Some(obj) = v.as_object_mut() {
            obj.insert("alg".into(), self.cose_alg_name().map_or(serde_json::Value::Null, |a| json!(a)));
            obj.insert("thumbprint".into(), json!(hex::encode(self.thumbprint())));
        }
        v
    }
}

fn curve_id(curve: EccCurve) -> i64 {
    match curve {
        EccCurve::NistP256 => crv::P256,
        EccCurve::NistP384 => crv::P384,
    }
}

/// The exponent as a minimal big-endian byte string (RFC 8230 §4).
fn exponent_bytes(e: u32) -> Vec<u8> {
    let b = e.to_be_bytes();
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len() - 1);
    b[first..].to_vec()
}

fn left_pad(v: &[u8], n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n.saturating_sub(v.len())];
    out.extend_from_slice(v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ak(name: &str) -> Public {
        let path = format!("{}/attestation/tests/vectors/{name}/ak.pub", env!("CARGO_MANIFEST_DIR"));
        Public::from_tpm2b(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn rsa_ak_as_cose_key() {
        let public = ak("rsa");
        let k = ConfirmationKey::from_public(&public).unwrap();
        assert_eq!(k.cose_alg(), Some(alg::RS256));
        let bytes = k.to_cose_key();
        // {1: 3, 3: -257, -1: n (256 bytes), -2: h'010001'}
        assert!(hex::encode(&bytes).starts_with("a401030339010020590100"), "{}", hex::encode(&bytes));
        assert!(hex::encode(&bytes).ends_with("2143010001"));
        let back = ConfirmationKey::from_cose_value(cbor::decode(&bytes).unwrap()).unwrap();
        assert_eq!(back, k);
        assert!(back.matches(&public));
        assert!(!back.matches(&ak("ecc")));
    }

    #[test]
    fn ecc_aks_as_cose_keys() {
        for (name, alg_id, crv_id) in [("ecc", alg::ES256, crv::P256), ("ecc384", alg::ES384, crv::P384)] {
            let k = ConfirmationKey::from_public(&ak(name)).unwrap();
            assert_eq!(k.cose_alg(), Some(alg_id), "{name}");
            let v = cbor::decode(&k.to_cose_key()).unwrap();
            let mut m = IntMap::new(v.clone(), "k", &[1, 3, -1, -2, -3]).unwrap();
            assert_eq!(cbor::as_i64(&m.take(key::CRV).unwrap()), Some(crv_id));
            assert_eq!(ConfirmationKey::from_cose_value(v).unwrap(), k);
        }
    }

    #[test]
    fn rsapss_ak() {
        let k = ConfirmationKey::from_public(&ak("rsapss")).unwrap();
        assert_eq!(k.cose_alg_name(), Some("PS256"));
    }

    #[test]
    fn strict_parsing() {
        let k = ConfirmationKey::from_public(&ak("ecc")).unwrap();
        let Cbor::Map(members) = k.to_cose() else { unreachable!() };
        let with = |extra: (i64, Cbor)| {
            let mut m = members.clone();
            m.retain(|(l, _)| *l != extra.0);
            m.push(extra);
            ConfirmationKey::from_cose_value(cbor::decode(&cbor::encode(&Cbor::Map(m))).unwrap())
        };
        assert!(with((key::KID, Cbor::Bytes(vec![1]))).is_err(), "unknown label");
        assert!(with((key::ALG, Cbor::Int(alg::RS256))).is_err(), "RSA alg on an EC2 key");
        assert!(with((key::X, Cbor::Bytes(vec![1; 31]))).is_err(), "short coordinate");
        assert!(with((key::CRV, Cbor::Int(crv::ED25519))).is_err(), "unsupported curve");
        assert!(with((key::KTY, Cbor::Int(kty::OKP))).is_err(), "OKP is not an AK");
        let rsa = ConfirmationKey::from_public(&ak("rsa")).unwrap();
        let Cbor::Map(members) = rsa.to_cose() else { unreachable!() };
        let with_rsa = |extra: (i64, Cbor)| {
            let mut m = members.clone();
            m.retain(|(l, _)| *l != extra.0);
            m.push(extra);
            ConfirmationKey::from_cose_value(cbor::decode(&cbor::encode(&Cbor::Map(m))).unwrap())
        };
        assert!(with_rsa((key::RSA_E, Cbor::Bytes(vec![0, 1, 0, 1]))).is_err(), "leading zero in e");
        assert!(with_rsa((key::RSA_N, Cbor::Bytes(vec![0x80; 255]))).is_err(), "odd modulus size");
        assert!(with_rsa((key::RSA_N, Cbor::Bytes(vec![0x7f; 256]))).is_err(), "modulus top bit clear");
    }

    #[test]
    fn thumbprint_is_over_required_members_only() {
        let k = ConfirmationKey::from_public(&ak("ecc")).unwrap();
        let no_alg = ConfirmationKey::new(k.public_key().clone(), None).unwrap();
        assert_eq!(no_alg.cose_alg(), None);
        assert_eq!(k.thumbprint(), no_alg.thumbprint());
        assert_ne!(k, no_alg);
    }

    #[test]
    fn padding_and_exponent_normalisation() {
        let k = ConfirmationKey::new(
            PublicKey::Ecc { curve: EccCurve::NistP256, x: vec![1; 31], y: vec![2; 32] },
            Some(SigScheme::EcDsa(HashAlg::Sha256)),
        )
        .unwrap();
        let PublicKey::Ecc { x, .. } = k.public_key() else { unreachable!() };
        assert_eq!(x.len(), 32);
        assert_eq!(x[0], 0);
        assert_eq!(exponent_bytes(65537), vec![1, 0, 1]);
        assert_eq!(exponent_bytes(3), vec![3]);
        assert!(ConfirmationKey::new(
            PublicKey::Ecc { curve: EccCurve::NistP256, x: vec![1; 32], y: vec![2; 32] },
            Some(SigScheme::EcDsa(HashAlg::Sha1)),
        )
        .is_err());
    }
}
