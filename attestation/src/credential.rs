//! Software TPM2_MakeCredential (Part 3 §12.6; Part 1 §24 "Credential Protection").
//!
//! The service wraps a secret so that only the TPM holding the EK's private key can unwrap it, and only for
//! an object whose Name is the AK's Name: TPM2_ActivateCredential (Part 3 §12.5) returns the secret only if
//! the AK is loaded in that TPM. The steps, all with the EK's nameAlg:
//!
//! 1. seed, and encryptedSecret that carries it to the EK (Part 1 Annex B.10.4 for RSA, C.6.4 for ECC);
//! 2. symKey = KDFa(seed, "STORAGE", Name(AK), keyBits of the EK's symmetric definition) (Part 1 §24.4);
//! 3. encIdentity = AES-CFB(symKey, IV = 0) over the marshalled TPM2B_DIGEST credential (Part 1 §24.4);
//! 4. HMACkey = KDFa(seed, "INTEGRITY", digest bits), outerHMAC = HMAC(HMACkey, encIdentity ‖ Name(AK))
//!    (Part 1 §24.5);
//! 5. credentialBlob (TPMS_ID_OBJECT, Part 2 §12.4.2) = TPM2B_DIGEST(outerHMAC) ‖ encIdentity.
//!
//! Pure: randomness comes in as a parameter, nothing is read or written.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use rand_core::{CryptoRng, RngCore};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::hmac;
use ring::rand::SecureRandom;
use rsa::{BigUint, Oaep, RsaPublicKey};

use crate::denial::DenialCode;
use crate::signing::uncompressed_point;
use crate::tpm2::{alg_id, EccCurve, HashAlg, ObjectAttributes, Public, PublicKey};

/// Label of the seed's asymmetric protection (Part 1 §24.3, Annex B.10.4 and C.6.4). KDFe appends the NUL;
/// RSA-OAEP takes it as part of the label ("IDENTITY\0").
pub const IDENTITY_LABEL: &str = "IDENTITY";
/// KDFa label of the symmetric key (Part 1 §24.4).
pub const STORAGE_LABEL: &str = "STORAGE";
/// KDFa label of the HMAC key (Part 1 §24.5).
pub const INTEGRITY_LABEL: &str = "INTEGRITY";

/// Magic and version of the credential file tpm2-tools writes (`tpm2_makecredential -o`) and reads
/// (`tpm2_activatecredential -i`): tools/misc/tpm2_makecredential.c, lib/files.c `files_write_header`.
pub const TPM2_TOOLS_CREDENTIAL_MAGIC: u32 = 0xBADC_C0DE;
pub const TPM2_TOOLS_CREDENTIAL_VERSION: u32 = 1;

/// The outputs of TPM2_MakeCredential, without their TPM2B size prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeCredential {
    /// TPM2B_ID_OBJECT contents: TPM2B_DIGEST(outerHMAC) ‖ encIdentity.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents: the OAEP ciphertext (RSA EK) or a TPMS_ECC_POINT (ECC EK).
    pub encrypted_secret: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("EK lacks the {0} attribute (attributes {1}); a credential is bound to a restricted decryption key")]
    EkMissingAttribute(&'static str, ObjectAttributes),
    #[error("EK has the sign attribute (attributes {0}); a credential is bound to a restricted decryption key")]
    EkIsSigningKey(ObjectAttributes),
    #[error("EK nameAlg {0} is not supported for credential protection (no TCG EK template uses it)")]
    EkNameAlg(HashAlg),
    #[error("EK has asymmetric scheme {0:#06x}; a restricted decryption key's scheme is TPM_ALG_NULL")]
    EkScheme(u16),
    #[error("EK has no symmetric algorithm; a restricted decryption key must have one")]
    EkNoSymmetric,
    #[error("EK symmetric definition (algorithm {algorithm:#06x}, mode {mode:#06x}) is not AES-CFB")]
    EkSymmetric { algorithm: u16, mode: u16 },
    #[error("EK RSA public key is unusable: {0}")]
    EkRsaKey(String),
    #[error("EK public point is not a valid {0} point")]
    EkEccPoint(&'static str),
    #[error("AK Name is {0} bytes; expected a nameAlg and a digest of its size")]
    AkNameLength(usize),
    #[error("AK Name has unsupported nameAlg {0:#06x}")]
    AkNameAlg(u16),
    #[error("credential is empty")]
    EmptyCredential,
    #[error("credential is {len} bytes; at most {max} (the digest size of the EK's nameAlg) fit")]
    CredentialTooLong { len: usize, max: usize },
    #[error("{field} is {len} bytes, more than a TPM2B can hold")]
    Oversized { field: &'static str, len: usize },
    #[error("the random number generator failed")]
    Random,
    #[error("{0} failed")]
    Crypto(&'static str),
}

impl CredentialError {
    pub fn code(&self) -> DenialCode {
        match self {
            CredentialError::EkMissingAttribute(..)
            | CredentialError::EkIsSigningKey(_)
            | CredentialError::EkNameAlg(_)
            | CredentialError::EkScheme(_)
            | CredentialError::EkNoSymmetric
            | CredentialError::EkSymmetric { .. }
            | CredentialError::EkRsaKey(_)
            | CredentialError::EkEccPoint(_) => DenialCode::EkUntrusted,
            CredentialError::AkNameLength(_) | CredentialError::AkNameAlg(_) => DenialCode::AkInvalid,
            CredentialError::EmptyCredential
            | CredentialError::CredentialTooLong { .. }
            | CredentialError::Oversized { .. }
            | CredentialError::Random
            | CredentialError::Crypto(_) => DenialCode::InternalError,
        }
    }
}

/// TPM2_MakeCredential (Part 3 §12.6) in software: wraps `credential` for the TPM holding `ek`, bound to the
/// object named `ak_name` (nameAlg ‖ digest, as `tpm2_createak -n` writes it and [`Public::name`] computes).
///
/// `ek` must be a restricted decryption key with an AES-CFB symmetric definition and a SHA-256/384/512
/// nameAlg; `credential` is 1 ..= digest size of that nameAlg bytes.
pub fn make_credential(
    ek: &Public,
    ak_name: &[u8],
    credential: &[u8],
    rng: &dyn SecureRandom,
) -> Result<MadeCredential, CredentialError> {
    let key_bits = check_ek(ek)?;
    check_ak_name(ak_name)?;
    let name_alg = ek.name_alg;
    if credential.is_empty() {
        return Err(CredentialError::EmptyCredential);
    }
    // Part 3 §12.6: TPM_RC_SIZE if the credential is larger than the digest of the EK's nameAlg.
    if credential.len() > name_alg.digest_len() {
        return Err(CredentialError::CredentialTooLong { len: credential.len(), max: name_alg.digest_len() });
    }
    let (seed, encrypted_secret) = match &ek.key {
        PublicKey::Rsa { exponent, modulus, .. } => rsa_seed(name_alg, *exponent, modulus, rng)?,
        PublicKey::Ecc { curve, x, y } => ecc_seed(name_alg, *curve, x, y, rng)?,
    };
    let credential_blob = protect(name_alg, key_bits, &seed, ak_name, credential)?;
    Ok(MadeCredential { credential_blob, encrypted_secret })
}

/// The file `tpm2_activatecredential -i` reads (tpm2-tools 5.x): BE u32 magic 0xBADCC0DE, BE u32 version 1,
/// TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET.
pub fn tpm2_tools_credential_file(made: &MadeCredential) -> Result<Vec<u8>, CredentialError> {
    let mut out = Vec::with_capacity(12 + made.credential_blob.len() + made.encrypted_secret.len());
    out.extend_from_slice(&TPM2_TOOLS_CREDENTIAL_MAGIC.to_be_bytes());
    out.extend_from_slice(&TPM2_TOOLS_CREDENTIAL_VERSION.to_be_bytes());
    push_tpm2b(&mut out, "TPM2B_ID_OBJECT", &made.credential_blob)?;
    push_tpm2b(&mut out, "TPM2B_ENCRYPTED_SECRET", &made.encrypted_secret)?;
    Ok(out)
}

/// KDFa (Part 1 §11.4.10.2; SP 800-108 counter mode with HMAC_hash):
/// K(i) = HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ contextU ‖ contextV ‖ [bits]₃₂), i = 1, 2, …; the concatenation
/// truncated to `bits`. As in the reference code, the 0x00 is not added again when `label` already ends with
/// a NUL. When `bits` is not a multiple of 8 the excess high-order bits of the first byte are cleared.
pub fn kdfa(hash: HashAlg, key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let key = hmac::Key::new(hmac_algorithm(hash), key);
    let len = byte_len(bits);
    let mut out = Vec::with_capacity(len + hash.digest_len());
    let mut counter: u32 = 0;
    while out.len() < len {
        counter = counter.wrapping_add(1);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label.as_bytes());
        if needs_terminator(label) {
            ctx.update(&[0]);
        }
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
    }
    finish_stream(out, len, bits)
}

/// KDFe (Part 1 §11.4.10.3; SP 800-56A concatenation KDF):
/// K(i) = H([i]₃₂ ‖ Z ‖ label ‖ 0x00 ‖ partyUInfo ‖ partyVInfo), i = 1, 2, …; the concatenation truncated
/// to `bits` (masked as in [`kdfa`]). Unlike KDFa, `bits` is not hashed.
pub fn kdfe(hash: HashAlg, z: &[u8], label: &str, party_u: &[u8], party_v: &[u8], bits: u32) -> Vec<u8> {
    let len = byte_len(bits);
    let mut out = Vec::with_capacity(len + hash.digest_len());
    let mut counter: u32 = 0;
    while out.len() < len {
        counter = counter.wrapping_add(1);
        let mut ctx = hash.context();
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(label.as_bytes());
        if needs_terminator(label) {
            ctx.update(&[0]);
        }
        ctx.update(party_u);
        ctx.update(party_v);
        out.extend_from_slice(ctx.finish().as_ref());
    }
    finish_stream(out, len, bits)
}

/// Checks that the EK can protect a credential and returns its symmetric keyBits.
///
/// Part 3 §12.6 needs a restricted decryption key (TPM_RC_ATTRIBUTES otherwise). Such a key has a
/// TPM_ALG_NULL asymmetric scheme and a CFB symmetric definition (Part 2 §12.2.3.5 TPMS_RSA_PARMS,
/// §12.2.3.6 TPMS_ECC_PARMS, §11.1.7 TPMT_SYM_DEF_OBJECT); runtrust implements AES only.
fn check_ek(ek: &Public) -> Result<u16, CredentialError> {
    for bit in [ObjectAttributes::RESTRICTED, ObjectAttributes::DECRYPT] {
        if !ek.attributes.has(bit) {
            return Err(CredentialError::EkMissingAttribute(ObjectAttributes::name_of(bit), ek.attributes));
        }
    }
    if ek.attributes.has(ObjectAttributes::SIGN_ENCRYPT) {
        return Err(CredentialError::EkIsSigningKey(ek.attributes));
    }
    // RSA-OAEP would need SHA-1 from another crate; every TCG EK template uses SHA-256 or stronger.
    if ek.name_alg == HashAlg::Sha1 {
        return Err(CredentialError::EkNameAlg(ek.name_alg));
    }
    if let Some(scheme) = ek.scheme {
        return Err(CredentialError::EkScheme(scheme.alg));
    }
    let sym = ek.symmetric.ok_or(CredentialError::EkNoSymmetric)?;
    if sym.algorithm != alg_id::AES || sym.mode != alg_id::CFB {
        return Err(CredentialError::EkSymmetric { algorithm: sym.algorithm, mode: sym.mode });
    }
    Ok(sym.key_bits)
}

/// A TPM2B_NAME of an object (Part 1 §16): nameAlg ‖ H_nameAlg(TPMT_PUBLIC). A handle-only Name (of a
/// permanent entity) or a digest of the wrong size is refused.
fn check_ak_name(name: &[u8]) -> Result<(), CredentialError> {
    let (alg, digest) = name.split_first_chunk::<2>().ok_or(CredentialError::AkNameLength(name.len()))?;
    let alg = u16::from_be_bytes(*alg);
    let hash = HashAlg::from_alg_id(alg).ok_or(CredentialError::AkNameAlg(alg))?;
    if digest.len() != hash.digest_len() {
        return Err(CredentialError::AkNameLength(name.len()));
    }
    Ok(())
}

/// RSA EK (Part 1 Annex B.10.4): a random seed of the nameAlg's digest size, RSA-OAEP encrypted with the
/// nameAlg as OAEP and MGF1 hash and the label "IDENTITY\0": the string's terminating NUL is part of the
/// OAEP label, as TPM2_ActivateCredential expects. encryptedSecret is the ciphertext, modulus-sized.
fn rsa_seed(
    name_alg: HashAlg,
    exponent: u32,
    modulus: &[u8],
    rng: &dyn SecureRandom,
) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let mut seed = vec![0u8; name_alg.digest_len()];
    rng.fill(&mut seed).map_err(|_| CredentialError::Random)?;
    let key = RsaPublicKey::new(BigUint::from_bytes_be(modulus), BigUint::from(PublicKey::rsa_exponent(exponent)))
        .map_err(|e| CredentialError::EkRsaKey(e.to_string()))?;
    let label = format!("{IDENTITY_LABEL}\0");
    let padding = match name_alg {
        HashAlg::Sha256 => Oaep::new_with_label::<sha2::Sha256, _>(label),
        HashAlg::Sha384 => Oaep::new_with_label::<sha2::Sha384, _>(label),
        HashAlg::Sha512 => Oaep::new_with_label::<sha2::Sha512, _>(label),
        HashAlg::Sha1 => return Err(CredentialError::EkNameAlg(name_alg)),
    };
    let mut adapter = RingRng { rng, failed: false };
    let encrypted = key
        .encrypt(&mut adapter, padding, &seed)
        .map_err(|_| CredentialError::Crypto("RSA-OAEP encryption of the seed"))?;
    if adapter.failed {
        return Err(CredentialError::Random);
    }
    Ok((seed, encrypted))
}

/// ECC EK (Part 1 Annex C.6.4, One-Pass Diffie-Hellman C(1e, 1s, ECC CDH)): an ephemeral key pair Qe on the
/// EK's curve; Z = x-coordinate of de·Qs; seed = KDFe(nameAlg, Z, "IDENTITY", Qe.x, Qs.x, digest bits).
/// encryptedSecret is the TPMS_ECC_POINT Qe, coordinates at the full curve size.
fn ecc_seed(
    name_alg: HashAlg,
    curve: EccCurve,
    x: &[u8],
    y: &[u8],
    rng: &dyn SecureRandom,
) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
    let alg = match curve {
        EccCurve::NistP256 => &agreement::ECDH_P256,
        EccCurve::NistP384 => &agreement::ECDH_P384,
    };
    let peer = uncompressed_point(curve, x, y).ok_or(CredentialError::EkEccPoint(curve.name()))?;
    let ephemeral = EphemeralPrivateKey::generate(alg, rng).map_err(|_| CredentialError::Random)?;
    let public = ephemeral.compute_public_key().map_err(|_| CredentialError::Crypto("ECDH ephemeral public key"))?;
    // SEC1 uncompressed: 0x04 ‖ X ‖ Y.
    let n = curve.coordinate_len();
    let (qe_x, qe_y) = match public.as_ref().split_first() {
        Some((0x04, xy)) if xy.len() == 2 * n => xy.split_at(n),
        _ => return Err(CredentialError::Crypto("ECDH ephemeral public key")),
    };
    // ring validates the peer point (on the curve, not the identity) and returns Z.x at full size.
    let z = agreement::agree_ephemeral(ephemeral, &UnparsedPublicKey::new(alg, &peer), |z| z.to_vec())
        .map_err(|_| CredentialError::EkEccPoint(curve.name()))?;
    // partyVInfo is the EK's x exactly as in its public area, as the TPM uses it.
    let seed = kdfe(name_alg, &z, IDENTITY_LABEL, qe_x, x, digest_bits(name_alg));
    let mut point = Vec::with_capacity(4 + 2 * n);
    push_tpm2b(&mut point, "TPMS_ECC_POINT.x", qe_x)?;
    push_tpm2b(&mut point, "TPMS_ECC_POINT.y", qe_y)?;
    Ok((seed, point))
}

/// Part 1 §24.4–24.5: encIdentity and outerHMAC from the seed; returns TPM2B_DIGEST(outerHMAC) ‖ encIdentity.
fn protect(
    name_alg: HashAlg,
    key_bits: u16,
    seed: &[u8],
    ak_name: &[u8],
    credential: &[u8],
) -> Result<Vec<u8>, CredentialError> {
    let sym_key = kdfa(name_alg, seed, STORAGE_LABEL, ak_name, &[], u32::from(key_bits));
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    push_tpm2b(&mut enc_identity, "credential", credential)?;
    aes_cfb_encrypt(&sym_key, &mut enc_identity)?;

    let hmac_key = kdfa(name_alg, seed, INTEGRITY_LABEL, &[], &[], digest_bits(name_alg));
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac_algorithm(name_alg), &hmac_key));
    ctx.update(&enc_identity);
    ctx.update(ak_name);
    let outer_hmac = ctx.sign();

    let mut blob = Vec::with_capacity(2 + name_alg.digest_len() + enc_identity.len());
    push_tpm2b(&mut blob, "outerHMAC", outer_hmac.as_ref())?;
    blob.extend_from_slice(&enc_identity);
    Ok(blob)
}

/// AES-CFB (full-block feedback, last block partial) with a zero IV, the key size picked by the key length.
fn aes_cfb_encrypt(key: &[u8], buf: &mut [u8]) -> Result<(), CredentialError> {
    let iv = [0u8; 16];
    let bad_key = |_| CredentialError::Crypto("AES-CFB key setup");
    match key.len() {
        16 => cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, &iv).map_err(bad_key)?.encrypt(buf),
        24 => cfb_mode::Encryptor::<aes::Aes192>::new_from_slices(key, &iv).map_err(bad_key)?.encrypt(buf),
        32 => cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, &iv).map_err(bad_key)?.encrypt(buf),
        _ => return Err(CredentialError::Crypto("AES-CFB key setup")),
    }
    Ok(())
}

fn push_tpm2b(out: &mut Vec<u8>, field: &'static str, bytes: &[u8]) -> Result<(), CredentialError> {
    let len = u16::try_from(bytes.len()).map_err(|_| CredentialError::Oversized { field, len: bytes.len() })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn hmac_algorithm(hash: HashAlg) -> hmac::Algorithm {
    match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
    }
}

const fn digest_bits(hash: HashAlg) -> u32 {
    match hash {
        HashAlg::Sha1 => 160,
        HashAlg::Sha256 => 256,
        HashAlg::Sha384 => 384,
        HashAlg::Sha512 => 512,
    }
}

fn byte_len(bits: u32) -> usize {
    // u32 → usize is lossless on every target ring supports (32- and 64-bit).
    bits.div_ceil(8) as usize
}

/// The reference implementation appends the label's NUL terminator only when the label does not end in one.
fn needs_terminator(label: &str) -> bool {
    !label.ends_with('\0')
}

/// Truncates the key stream to `len` bytes and clears the excess high-order bits of the first byte.
fn finish_stream(mut out: Vec<u8>, len: usize, bits: u32) -> Vec<u8> {
    out.truncate(len);
    if bits % 8 != 0 {
        if let Some(first) = out.first_mut() {
            *first &= 0xFF >> (8 - bits % 8);
        }
    }
    out
}

/// Lends a ring `SecureRandom` to the `rsa` crate, whose `fill_bytes` cannot fail: a failure is recorded and
/// the caller discards the output.
struct RingRng<'a> {
    rng: &'a dyn SecureRandom,
    failed: bool,
}

impl RngCore for RingRng<'_> {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.rng.fill(dest).is_err() {
            self.failed = true;
            dest.fill(0);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.rng.fill(dest).map_err(|_| {
            self.failed = true;
            rand_core::Error::new(std::io::Error::other("ring SecureRandom failed"))
        })
    }
}

impl CryptoRng for RingRng<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_terminator_is_added_once() {
        let a = kdfa(HashAlg::Sha256, b"k", "STORAGE", b"u", b"v", 256);
        assert_eq!(a, kdfa(HashAlg::Sha256, b"k", "STORAGE\0", b"u", b"v", 256));
        let e = kdfe(HashAlg::Sha256, b"z", "IDENTITY", b"u", b"v", 256);
        assert_eq!(e, kdfe(HashAlg::Sha256, b"z", "IDENTITY\0", b"u", b"v", 256));
    }

    #[test]
    fn odd_bit_lengths_mask_the_first_byte() {
        let full = kdfa(HashAlg::Sha256, b"k", "L", b"", b"", 12);
        assert_eq!(full.len(), 2);
        assert_eq!(full[0] & 0xF0, 0);
        assert!(kdfe(HashAlg::Sha256, b"z", "L", b"", b"", 0).is_empty());
    }

    #[test]
    fn ak_name_shapes() {
        let mut name = vec![0x00, 0x0B];
        name.extend([0u8; 32]);
        assert!(check_ak_name(&name).is_ok());
        assert_eq!(check_ak_name(&[0x40]), Err(CredentialError::AkNameLength(1)));
        // A permanent handle's Name is the 4-byte handle.
        assert_eq!(check_ak_name(&[0x40, 0x00, 0x00, 0x0B]), Err(CredentialError::AkNameAlg(0x4000)));
    }
}
