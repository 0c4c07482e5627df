//! Issuer keys: the signing key (ring), its public half as a COSE_Key (RFC 9052 §7) and as a PEM
//! SubjectPublicKeyInfo, its kid (the RFC 9679 COSE Key Thumbprint), and the key set relying parties
//! verify with (`GET /v1/keys`, `runtrust keys export`).

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::cbor::{self, Cbor, IntMap};
use super::labels::{alg, crv, key, kty};
use super::{pem, TokenError};

/// Ed25519 public key length (RFC 8032 §5.1.5).
const ED25519_PUBLIC_LEN: usize = 32;
/// P-256 coordinate length (RFC 9053 §7.1.1: leading zeros are kept).
const P256_COORD_LEN: usize = 32;
/// SEC1 uncompressed-point marker.
const SEC1_UNCOMPRESSED: u8 = 0x04;
/// SubjectPublicKeyInfo up to the key bits for Ed25519 (RFC 8410 §4: id-Ed25519 1.3.101.112, no parameters).
const SPKI_ED25519_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// SubjectPublicKeyInfo up to the key bits for P-256 (RFC 5480 §2: id-ecPublicKey 1.2.840.10045.2.1 with
/// namedCurve secp256r1 1.2.840.10045.3.1.7; the BIT STRING holds the uncompressed point).
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// Bounds on a COSE_KeySet document and on the number of keys in it.
pub const MAX_KEYSET_BYTES: usize = 64 * 1024;
pub const MAX_KEYS: usize = 64;

/// The issuer's signature algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// EdDSA with Ed25519 (RFC 9053 §2.2), the default.
    #[default]
    #[serde(rename = "EdDSA", alias = "eddsa", alias = "ed25519", alias = "Ed25519")]
    EdDsa,
    /// ECDSA P-256 with SHA-256 (RFC 9053 §2.1); the signature is r ‖ s, 32 bytes each.
    #[serde(rename = "ES256", alias = "es256")]
    Es256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 2] = [SigningAlg::EdDsa, SigningAlg::Es256];

    /// The COSE name: `EdDSA` or `ES256`.
    pub const fn name(self) -> &'static str {
        match self {
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Es256 => "ES256",
        }
    }

    /// The COSE algorithm identifier (-8 or -7).
    pub const fn cose_alg(self) -> i64 {
        match self {
            SigningAlg::EdDsa => alg::EDDSA,
            SigningAlg::Es256 => alg::ES256,
        }
    }

    pub const fn from_cose_alg(id: i64) -> Option<Self> {
        match id {
            alg::EDDSA => Some(SigningAlg::EdDsa),
            alg::ES256 => Some(SigningAlg::Es256),
            _ => None,
        }
    }

    /// Length of a signature: 64 bytes for both (RFC 8032 §5.1.6; RFC 9053 §2.1 r ‖ s).
    const fn signature_len(self) -> usize {
        64
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "eddsa" | "ed25519" => Ok(SigningAlg::EdDsa),
            "es256" => Ok(SigningAlg::Es256),
            _ => Err(format!("unknown signing algorithm {s:?} (expected EdDSA or ES256)")),
        }
    }
}

/// An issuer public key: what relying parties verify tokens with.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    alg: SigningAlg,
    /// Ed25519: the 32-byte key; ES256: the 65-byte SEC1 uncompressed point.
    public: Vec<u8>,
    /// RFC 9679 thumbprint, computed once.
    kid: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}, kid {})", self.alg, self.kid_hex())
    }
}

impl VerifyingKey {
    /// Ed25519: the 32-byte public key; ES256: the 65-byte uncompressed point 0x04 ‖ x ‖ y.
    pub fn new(alg: SigningAlg, public: &[u8]) -> Result<Self, TokenError> {
        let ok = match alg {
            SigningAlg::EdDsa => public.len() == ED25519_PUBLIC_LEN,
            SigningAlg::Es256 => public.len() == 1 + 2 * P256_COORD_LEN && public[0] == SEC1_UNCOMPRESSED,
        };
        if !ok {
            return Err(TokenError::Key(format!("{alg} public key has the wrong length or form")));
        }
        let mut k = Self { alg, public: public.to_vec(), kid: Vec::new() };
        k.kid = ring::digest::digest(&ring::digest::SHA256, &k.thumbprint_input()).as_ref().to_vec();
        Ok(k)
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id: its COSE Key Thumbprint (RFC 9679 §3), SHA-256, 32 bytes.
    pub fn kid(&self) -> &[u8] {
        &self.kid
    }

    pub fn kid_hex(&self) -> String {
        hex::encode(&self.kid)
    }

    /// Ed25519: the 32-byte key; ES256: the 65-byte uncompressed point.
    pub fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// The members RFC 9679 §4 requires for the key type: OKP {kty, crv, x}, EC2 {kty, crv, x, y}.
    fn required_members(&self) -> Vec<(i64, Cbor)> {
        match self.alg {
            SigningAlg::EdDsa => vec![
                (key::KTY, Cbor::Int(kty::OKP)),
                (key::CRV, Cbor::Int(crv::ED25519)),
                (key::X, Cbor::Bytes(self.public.clone())),
            ],
            SigningAlg::Es256 => {
                let (x, y) = self.public[1..].split_at(P256_COORD_LEN);
                vec![
                    (key::KTY, Cbor::Int(kty::EC2)),
                    (key::CRV, Cbor::Int(crv::P256)),
                    (key::X, Cbor::Bytes(x.to_vec())),
                    (key::Y, Cbor::Bytes(y.to_vec())),
                ]
            }
        }
    }

    /// RFC 9679 §3 steps 1–2: the required members, deterministically encoded; the kid is its SHA-256.
    pub fn thumbprint_input(&self) -> Vec<u8> {
        cbor::encode(&Cbor::Map(self.required_members()))
    }

    pub(crate) fn to_cose(&self) -> Cbor {
        let mut members = self.required_members();
        members.push((key::KID, Cbor::Bytes(self.kid.clone())));
        members.push((key::ALG, Cbor::Int(self.alg.cose_alg())));
        Cbor::Map(members)
    }

    /// The COSE_Key (RFC 9052 §7): the required members plus kid (2) and alg (3), deterministically encoded.
    pub fn to_cose_key(&self) -> Vec<u8> {
        cbor::encode(&self.to_cose())
    }

    /// Parses a COSE_Key for Ed25519 (OKP) or P-256 (EC2). Only kty, kid, alg, crv, x and y may appear; alg,
    /// when present, must fit the key type and curve; kid, when present, must be the key's thumbprint.
    pub fn from_cose_key(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() > MAX_KEYSET_BYTES {
            return Err(TokenError::Key(format!("COSE_Key is more than {MAX_KEYSET_BYTES} bytes")));
        }
        Self::from_cose_value(cbor::decode_any(bytes).map_err(|e| TokenError::Key(format!("COSE_Key: {e}")))?)
    }

    pub(crate) fn from_cose_value(v: coset::cbor::value::Value) -> Result<Self, TokenError> {
        let err = |m: String| TokenError::Key(format!("COSE_Key: {m}"));
        let mut m =
            IntMap::new(v, "COSE_Key", &[key::KTY, key::KID, key::ALG, key::CRV, key::X, key::Y]).map_err(err)?;
        let kty = cbor::to_i64(m.require(key::KTY, "COSE_Key").map_err(err)?, "kty").map_err(err)?;
        let crv = cbor::to_i64(m.require(key::CRV, "COSE_Key").map_err(err)?, "crv").map_err(err)?;
        let x = cbor::to_bytes(m.require(key::X, "COSE_Key").map_err(err)?, "x").map_err(err)?;
        let y = m.take(key::Y).map(|y| cbor::to_bytes(y, "y")).transpose().map_err(err)?;
        let k = match (kty, crv, y) {
            (kty::OKP, crv::ED25519, None) => Self::new(SigningAlg::EdDsa, &x)?,
            (kty::EC2, crv::P256, Some(y)) => {
                // RFC 9053 §7.1.1: coordinates keep their leading zeros, so both are exactly 32 bytes.
                if x.len() != P256_COORD_LEN || y.len() != P256_COORD_LEN {
                    return Err(err("P-256 coordinates must be 32 bytes each".into()));
                }
                Self::new(SigningAlg::Es256, &[&[SEC1_UNCOMPRESSED][..], &x, &y].concat())?
            }
            (kty, crv, _) => {
                return Err(err(format!("unsupported key (kty {kty}, crv {crv}): expected OKP Ed25519 or EC2 P-256")))
            }
        };
        if let Some(a) = m.take(key::ALG) {
            let a = cbor::to_i64(a, "alg").map_err(err)?;
            if a != k.alg.cose_alg() {
                return Err(err(format!("alg {a} does not fit a {} key", k.alg)));
            }
        }
        if let Some(kid) = m.take(key::KID) {
            let kid = cbor::to_bytes(kid, "kid").map_err(err)?;
            if kid != k.kid {
                return Err(err(format!("kid {} is not the key's thumbprint {}", hex::encode(kid), k.kid_hex())));
            }
        }
        Ok(k)
    }

    /// The DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let prefix: &[u8] = match self.alg {
            SigningAlg::EdDsa => &SPKI_ED25519_PREFIX,
            SigningAlg::Es256 => &SPKI_P256_PREFIX,
        };
        [prefix, &self.public].concat()
    }

    /// Parses an Ed25519 or P-256 (uncompressed point) SubjectPublicKeyInfo, byte-exact.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, TokenError> {
        if let Some(k) = der.strip_prefix(&SPKI_ED25519_PREFIX[..]) {
            return Self::new(SigningAlg::EdDsa, k);
        }
        if let Some(k) = der.strip_prefix(&SPKI_P256_PREFIX[..]) {
            return Self::new(SigningAlg::Es256, k);
        }
        Err(TokenError::Key("SubjectPublicKeyInfo is neither Ed25519 nor P-256 with an uncompressed point".into()))
    }

    /// `-----BEGIN PUBLIC KEY-----` (RFC 7468 §13).
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.to_spki_der())
    }

    pub fn from_pem(text: &str) -> Result<Self, TokenError> {
        Self::from_spki_der(&pem::decode_one(text, "PUBLIC KEY")?)
    }

    /// Checks `signature` over `message` (the COSE Sig_structure).
    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), TokenError> {
        let bad = || TokenError::BadSignature { kid: self.kid_hex() };
        if sig.len() != self.alg.signature_len() {
            return Err(bad());
        }
        let algorithm: &dyn signature::VerificationAlgorithm = match self.alg {
            SigningAlg::EdDsa => &signature::ED25519,
            SigningAlg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(algorithm, &self.public).verify(message, sig).map_err(|_| bad())
    }
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
}

/// The issuer's private key.
pub struct IssuerKey {
    signer: Signer,
    public: VerifyingKey,
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerKey({}, kid {})", self.public.alg, self.public.kid_hex())
    }
}

impl IssuerKey {
    /// A new key and its PKCS#8 (v2 for Ed25519) document, to be stored by the caller.
    pub fn generate(alg: SigningAlg, rng: &dyn SecureRandom) -> Result<(Self, Vec<u8>), TokenError> {
        let pkcs8 = match alg {
            SigningAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(rng),
            SigningAlg::Es256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, rng),
        }
        .map_err(|_| TokenError::Crypto("key generation"))?;
        let key = Self::from_pkcs8(alg, pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    /// Loads an unencrypted PKCS#8 private key (RFC 5958) of the given algorithm.
    pub fn from_pkcs8(alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, TokenError> {
        let bad = |_| TokenError::Key(format!("not a PKCS#8 {alg} private key"));
        let (signer, public) = match alg {
            SigningAlg::EdDsa => {
                // Accepts v1 (as `openssl genpkey` writes) and v2; a v2 public key must match the private one.
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(bad)?;
                let public = kp.public_key().as_ref().to_vec();
                (Signer::Ed25519(kp), public)
            }
            SigningAlg::Es256 => {
                let kp =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
                        .map_err(bad)?;
                let public = kp.public_key().as_ref().to_vec();
                (Signer::Es256(kp), public)
            }
        };
        Ok(Self { signer, public: VerifyingKey::new(alg, &public)? })
    }

    /// Loads a PKCS#8 key of either algorithm, whichever it is.
    pub fn from_pkcs8_any(pkcs8: &[u8]) -> Result<Self, TokenError> {
        SigningAlg::ALL
            .iter()
            .find_map(|&alg| Self::from_pkcs8(alg, pkcs8).ok())
            .ok_or_else(|| TokenError::Key("not a PKCS#8 Ed25519 or P-256 private key".into()))
    }

    /// `-----BEGIN PRIVATE KEY-----` (RFC 7468 §10) for a PKCS#8 document.
    pub fn pkcs8_to_pem(pkcs8: &[u8]) -> String {
        pem::encode("PRIVATE KEY", pkcs8)
    }

    pub fn pkcs8_from_pem(text: &str) -> Result<Vec<u8>, TokenError> {
        pem::decode_one(text, "PRIVATE KEY")
    }

    pub fn alg(&self) -> SigningAlg {
        self.public.alg
    }

    pub fn kid(&self) -> Vec<u8> {
        self.public.kid.clone()
    }

    pub fn public(&self) -> VerifyingKey {
        self.public.clone()
    }

    /// Signs the Sig_structure bytes.
    pub(crate) fn sign_raw(&self, message: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, TokenError> {
        match &self.signer {
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Signer::Es256(kp) => {
                kp.sign(rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| TokenError::Crypto("ECDSA signing"))
            }
        }
    }
}

/// The issuer keys a relying party trusts: the current one and, across a rotation, earlier ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySet(Vec<VerifyingKey>);

impl KeySet {
    /// A key set without duplicate kids.
    pub fn new(keys: Vec<VerifyingKey>) -> Result<Self, TokenError> {
        let mut set = KeySet(Vec::with_capacity(keys.len()));
        for k in keys {
            set.push(k)?;
        }
        Ok(set)
    }

    pub fn push(&mut self, key: VerifyingKey) -> Result<(), TokenError> {
        if self.find(key.kid()).is_some() {
            return Err(TokenError::Key(format!("key {} is in the set twice", key.kid_hex())));
        }
        if self.0.len() >= MAX_KEYS {
            return Err(TokenError::Key(format!("more than {MAX_KEYS} keys")));
        }
        self.0.push(key);
        Ok(())
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn find(&self, kid: &[u8]) -> Option<&VerifyingKey> {
        self.0.iter().find(|k| k.kid == kid)
    }

    /// COSE_KeySet (RFC 9052 §7): a CBOR array of COSE_Key, in the set's order.
    pub fn to_cose_keyset(&self) -> Vec<u8> {
        cbor::encode(&Cbor::Array(self.0.iter().map(VerifyingKey::to_cose).collect()))
    }

    /// Parses a COSE_KeySet: a non-empty array of COSE_Key as [`VerifyingKey::from_cose_key`] accepts them,
    /// no kid twice, nothing after the array.
    pub fn from_cose_keyset(bytes: &[u8]) -> Result<Self, TokenError> {
        let err = |m: String| TokenError::Key(format!("COSE_KeySet: {m}"));
        if bytes.len() > MAX_KEYSET_BYTES {
            return Err(err(format!("more than {MAX_KEYSET_BYTES} bytes")));
        }
        let coset::cbor::value::Value::Array(items) = cbor::decode_any(bytes).map_err(err)? else {
            return Err(err("not an array".into()));
        };
        if items.is_empty() {
            return Err(err("no keys".into()));
        }
        Self::new(items.into_iter().map(VerifyingKey::from_cose_value).collect::<Result<_, _>>()?)
    }

    /// Concatenated `PUBLIC KEY` PEM blocks.
    pub fn to_pem(&self) -> String {
        self.0.iter().map(VerifyingKey::to_pem).collect::<Vec<_>>().join("")
    }

    /// One or more `PUBLIC KEY` blocks.
    pub fn from_pem(text: &str) -> Result<Self, TokenError> {
        let blocks = pem::decode_all(text, "PUBLIC KEY")?;
        if blocks.is_empty() {
            return Err(TokenError::Key("PEM: no PUBLIC KEY block".into()));
        }
        Self::new(blocks.iter().map(|der| VerifyingKey::from_spki_der(der)).collect::<Result<_, _>>()?)
    }

    /// Either format: COSE_KeySet bytes, or PEM text (sniffed by the leading `-----`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        let text = std::str::from_utf8(bytes).ok().map(str::trim_start);
        match text {
            Some(t) if t.starts_with("-----") => Self::from_pem(t),
            _ => Self::from_cose_keyset(bytes),
        }
    }
}

impl From<VerifyingKey> for KeySet {
    fn from(key: VerifyingKey) -> Self {
        KeySet(vec![key])
    }
}
