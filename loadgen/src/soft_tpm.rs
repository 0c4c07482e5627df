//! A software TPM: just enough of TPM 2.0 for a host to enroll and be issued tokens, so that thousands of
//! attesters fit in one process.
//!
//! - EK: ECC NIST P-256 from TCG template L-2, its private scalar held here (p256, for the static ECDH that
//!   ActivateCredential needs), certified by the load generator's test CA ([`crate::ek_ca`]).
//! - AK: ECC NIST P-256, ECDSA-SHA256, restricted signing key (ring).
//! - PCRs: the sha256 bank, 24 PCRs, starting at [`golden_pcrs`] (the same "golden image" on every host).
//! - Clock: milliseconds since a base, strictly increasing from quote to quote; never reset, always safe.
//!
//! It implements [`runtrust::tpm::Tpm`], the trait the real CLI's flows use, so that the request building in
//! `runtrust::client` works on it unchanged.

use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use runtrust::tpm::{KeyAlg, Quote, Tpm, TpmError, TpmInfo};
use runtrust_attestation::credential::{kdfa, kdfe, IDENTITY_LABEL, INTEGRITY_LABEL, STORAGE_LABEL};
use runtrust_attestation::tpm2::{ClockInfo, HashAlg, PcrSelection, PcrValues, Reader};
use runtrust_attestation::Public;

use crate::marshal;

/// PCRs in the simulated sha256 bank.
pub const PCR_COUNT: u8 = 24;
/// TPMS_ATTEST.firmwareVersion of every simulated TPM.
pub const FIRMWARE_VERSION: u64 = 0x0002_0000_0000_0001;

/// The PCR values every simulated host boots into: PCRs 0-7 hold SHA-256("runtrust-loadgen golden PCR i"),
/// the others zero (nothing measured).
pub fn golden_pcrs() -> PcrValues {
    let mut v = PcrValues::new();
    for i in 0..PCR_COUNT {
        let value = if i < 8 {
            HashAlg::Sha256.digest(format!("runtrust-loadgen golden PCR {i}").as_bytes())
        } else {
            vec![0; 32]
        };
        // Indices below 24 and 32-byte values are always accepted.
        let _ = v.insert(HashAlg::Sha256, i, value);
    }
    v
}

pub struct SoftTpm {
    ek_secret: p256::SecretKey,
    ek: Public,
    ek_x: [u8; 32],
    ek_certificate: Option<Vec<u8>>,
    ak_key: EcdsaKeyPair,
    ak: Public,
    ak_name: Vec<u8>,
    pcrs: PcrValues,
    started: Instant,
    clock_base: u64,
    last_clock: u64,
    reset_count: u32,
    rng: SystemRandom,
}

/// x and y of a SEC1 uncompressed P-256 point.
fn split_point(sec1: &[u8]) -> anyhow::Result<([u8; 32], [u8; 32])> {
    match sec1.split_first() {
        Some((0x04, xy)) if xy.len() == 64 => {
            let (x, y) = xy.split_at(32);
            Ok((x.try_into()?, y.try_into()?))
        }
        _ => bail!("not an uncompressed P-256 point"),
    }
}

impl SoftTpm {
    /// A new TPM with fresh EK and AK (no EK certificate yet: [`SoftTpm::set_ek_certificate`]).
    pub fn new() -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let ek_secret = loop {
            let mut d = [0u8; 32];
            rng.fill(&mut d).map_err(|_| anyhow!("the random number generator failed"))?;
            // A random 256-bit string is a valid scalar except with probability ~2^-32.
            if let Ok(k) = p256::SecretKey::from_slice(&d) {
                break k;
            }
        };
        let (ek_x, ek_y) = split_point(ek_secret.public_key().to_encoded_point(false).as_bytes())?;
        let ek = marshal::ek_public(&ek_x, &ek_y).context("EK public area")?;

        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("AK key generation failed"))?;
        let ak_key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow!("AK key: {e}"))?;
        let (ak_x, ak_y) = split_point(ak_key.public_key().as_ref())?;
        let ak = marshal::ak_public(&ak_x, &ak_y).context("AK public area")?;
        let ak_name = ak.name();
        let mut seed = [0u8; 4];
        rng.fill(&mut seed).map_err(|_| anyhow!("the random number generator failed"))?;
        Ok(Self {
            ek_secret,
            ek,
            ek_x,
            ek_certificate: None,
            ak_key,
            ak,
            ak_name,
            pcrs: golden_pcrs(),
            started: Instant::now(),
            // Some hours of "uptime", different on each TPM.
            clock_base: 3_600_000 + u64::from(u32::from_be_bytes(seed) % 86_400_000),
            last_clock: 0,
            reset_count: 1,
            rng,
        })
    }

    /// The EK public point, SEC1 uncompressed (what its certificate certifies).
    pub fn ek_point(&self) -> Vec<u8> {
        self.ek_secret.public_key().to_encoded_point(false).as_bytes().to_vec()
    }

    pub fn ek(&self) -> &Public {
        &self.ek
    }

    pub fn ak(&self) -> &Public {
        &self.ak
    }

    pub fn ak_name(&self) -> &[u8] {
        &self.ak_name
    }

    pub fn set_ek_certificate(&mut self, der: Vec<u8>) {
        self.ek_certificate = Some(der);
    }

    /// TPM2_ActivateCredential (Part 3 §12.5; Part 1 §24) for an ECC EK, with the AK as the credential's
    /// object: the inverse of `runtrust_attestation::credential::make_credential`.
    ///
    /// 1. encryptedSecret is the ephemeral point Qe (TPMS_ECC_POINT); Z = x of d_EK·Qe;
    ///    seed = KDFe(SHA-256, Z, "IDENTITY", Qe.x, EK.x, 256).
    /// 2. credentialBlob = TPM2B_DIGEST(outerHMAC) ‖ encIdentity; HMACkey = KDFa(seed, "INTEGRITY", 256);
    ///    outerHMAC must equal HMAC(HMACkey, encIdentity ‖ Name(AK)) (TPM_RC_INTEGRITY otherwise).
    /// 3. symKey = KDFa(seed, "STORAGE", Name(AK), 128); encIdentity decrypts (AES-128-CFB, IV 0) to a
    ///    TPM2B_DIGEST: the credential.
    pub fn activate(&self, credential_blob: &[u8], encrypted_secret: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut r = Reader::new(encrypted_secret);
        let qe_x = r.tpm2b("TPMS_ECC_POINT.x", 32)?;
        let qe_y = r.tpm2b("TPMS_ECC_POINT.y", 32)?;
        r.finish("TPMS_ECC_POINT")?;
        let point = runtrust_attestation::signing::uncompressed_point(
            runtrust_attestation::tpm2::EccCurve::NistP256,
            qe_x,
            qe_y,
        )
        .ok_or_else(|| anyhow!("encryptedSecret: point coordinates too long"))?;
        let qe = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| anyhow!("encryptedSecret: not a P-256 point"))?;
        let shared = p256::ecdh::diffie_hellman(self.ek_secret.to_nonzero_scalar(), qe.as_affine());
        let seed = kdfe(HashAlg::Sha256, shared.raw_secret_bytes(), IDENTITY_LABEL, qe_x, &self.ek_x, 256);

        let mut r = Reader::new(credential_blob);
        let outer_hmac = r.tpm2b("TPM2B_ID_OBJECT.integrityHMAC", 32)?;
        let enc_identity = credential_blob.get(r.offset()..).unwrap_or_default();
        let hmac_key = kdfa(HashAlg::Sha256, &seed, INTEGRITY_LABEL, &[], &[], 256);
        let mut signed = enc_identity.to_vec();
        signed.extend_from_slice(&self.ak_name);
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &hmac_key), &signed, outer_hmac)
            .map_err(|_| anyhow!("TPM_RC_INTEGRITY: the credential's outer HMAC does not verify"))?;

        let sym_key = kdfa(HashAlg::Sha256, &seed, STORAGE_LABEL, &self.ak_name, &[], 128);
        let mut plain = enc_identity.to_vec();
        aes_cfb_decrypt(&sym_key, &mut plain)?;
        let mut r = Reader::new(&plain);
        let credential = r.tpm2b("TPM2B_DIGEST credential", 32)?.to_vec();
        r.finish("encIdentity")?;
        Ok(credential)
    }

    /// TPM2_Quote (Part 3 §18.4) with the AK: TPMS_ATTEST over the PCR selection and pcrDigest (SHA-256 of
    /// the selected values in selection order), extraData = nonce, signed ECDSA-P256-SHA256.
    pub fn make_quote(&mut self, nonce: &[u8], selection: &PcrSelection) -> anyhow::Result<Quote> {
        if nonce.is_empty() || nonce.len() > 64 {
            bail!("nonce is {} bytes; a TPM2B_DATA holds 1 to 64", nonce.len());
        }
        let pcrs = self
            .pcrs
            .restrict(selection)
            .ok_or_else(|| anyhow!("selection {selection} is outside the simulated sha256 bank (PCRs 0-23)"))?;
        let digest = pcrs.digest(selection, HashAlg::Sha256).unwrap_or_default();
        let clock = self.tick();
        let attest = marshal::quote_attest(&self.ak_name, nonce, &clock, FIRMWARE_VERSION, selection, &digest);
        let sig = self.ak_key.sign(&self.rng, &attest).map_err(|_| anyhow!("AK signing failed"))?;
        let (r, s) = sig.as_ref().split_at(32);
        Ok(Quote { attest, signature: marshal::ecdsa_sha256_signature(r, s), pcrs })
    }

    /// The TPM clock for the next quote: elapsed milliseconds past the base, strictly increasing.
    fn tick(&mut self) -> ClockInfo {
        let now = self.clock_base.saturating_add(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(0));
        self.last_clock = now.max(self.last_clock.saturating_add(1));
        ClockInfo { clock: self.last_clock, reset_count: self.reset_count, restart_count: 0, safe: true }
    }
}

fn aes_cfb_decrypt(key: &[u8], buf: &mut [u8]) -> anyhow::Result<()> {
    use aes::cipher::{AsyncStreamCipher as _, KeyIvInit as _};
    cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(key, &[0u8; 16])
        .map_err(|_| anyhow!("AES-128-CFB key setup"))?
        .decrypt(buf);
    Ok(())
}

fn unexpected(what: &'static str, e: anyhow::Error) -> TpmError {
    TpmError::Unexpected { what, detail: format!("{e:#}") }
}

impl Tpm for SoftTpm {
    fn info(&mut self) -> Result<TpmInfo, TpmError> {
        Ok(TpmInfo {
            tcti: "runtrust-loadgen software TPM".into(),
            manufacturer: "SIM ".into(),
            vendor: "runtrust-loadgen".into(),
            firmware_version: format!("{FIRMWARE_VERSION:#x}"),
            spec_revision: "1.59".into(),
            pcr_banks: vec![HashAlg::Sha256],
            ek_algorithm: KeyAlg::Ecc,
            ek_certificate_present: self.ek_certificate.is_some(),
            ek_persistent_handle: None,
            ak_name: Some(hex::encode(&self.ak_name)),
        })
    }

    fn pcr_read(&mut self, selection: &PcrSelection) -> Result<PcrValues, TpmError> {
        self.pcrs.restrict(selection).ok_or_else(|| TpmError::Unexpected {
            what: "PCR selection",
            detail: format!("{selection} is outside the simulated sha256 bank"),
        })
    }

    fn pcr_extend(&mut self, bank: HashAlg, index: u8, digest: &[u8]) -> Result<(), TpmError> {
        let old = self.pcrs.get(bank, index).ok_or(TpmError::BankNotActive { bank, active: "sha256".into() })?;
        let mut data = old.to_vec();
        data.extend_from_slice(digest);
        self.pcrs
            .insert(bank, index, bank.digest(&data))
            .map_err(|e| TpmError::Unexpected { what: "PCR value", detail: e.to_string() })
    }

    fn ek_public(&mut self) -> Result<Public, TpmError> {
        Ok(self.ek.clone())
    }

    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
        Ok(self.ek_certificate.clone())
    }

    fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
        Ok(Vec::new())
    }

    fn ak_public(&mut self) -> Result<Public, TpmError> {
        Ok(self.ak.clone())
    }

    fn quote(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<Quote, TpmError> {
        self.make_quote(nonce, selection).map_err(|e| unexpected("quote", e))
    }

    fn activate_credential(&mut self, credential_blob: &[u8], encrypted_secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        self.activate(credential_blob, encrypted_secret).map_err(|e| unexpected("credential", e))
    }
}

#[cfg(test)]
mod tests {
    use runtrust_attestation::ak::check_ak;
    use runtrust_attestation::credential::make_credential;
    use runtrust_attestation::{verify_quote, QuoteEvidence, QuoteOptions};

    use super::*;

    #[test]
    fn activation_recovers_what_make_credential_wrapped() {
        let tpm = SoftTpm::new().unwrap();
        let rng = SystemRandom::new();
        for secret in [vec![0x5a; 32], b"short".to_vec(), vec![1]] {
            let made = make_credential(tpm.ek(), tpm.ak_name(), &secret, &rng).unwrap();
            assert_eq!(tpm.activate(&made.credential_blob, &made.encrypted_secret).unwrap(), secret);
        }
    }

    #[test]
    fn activation_refuses_another_tpm_or_ak() {
        let (a, b) = (SoftTpm::new().unwrap(), SoftTpm::new().unwrap());
        let rng = SystemRandom::new();
        // Wrapped for b's EK: a cannot recover the seed, so the HMAC fails.
        let made = make_credential(b.ek(), a.ak_name(), &[7; 32], &rng).unwrap();
        assert!(a.activate(&made.credential_blob, &made.encrypted_secret).is_err());
        // Wrapped for a's EK but bound to b's AK: a's AK Name does not match.
        let made = make_credential(a.ek(), b.ak_name(), &[7; 32], &rng).unwrap();
        assert!(a.activate(&made.credential_blob, &made.encrypted_secret).is_err());
        // A tampered blob fails the integrity check.
        let mut made = make_credential(a.ek(), a.ak_name(), &[7; 32], &rng).unwrap();
        if let Some(last) = made.credential_blob.last_mut() {
            *last ^= 1;
        }
        assert!(a.activate(&made.credential_blob, &made.encrypted_secret).is_err());
    }

    #[test]
    fn quotes_verify_with_verify_quote_and_clocks_increase() {
        let mut tpm = SoftTpm::new().unwrap();
        check_ak(tpm.ak(), false).unwrap();
        let sel: PcrSelection = "sha256:0,1,2,3,4,5,6,7".parse().unwrap();
        let mut previous: Option<ClockInfo> = None;
        for n in 0..3u8 {
            let nonce = [n; 32];
            let q = tpm.make_quote(&nonce, &sel).unwrap();
            let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
            let options = QuoteOptions {
                expected_selection: Some(&sel),
                previous_clock: previous.as_ref(),
                ..Default::default()
            };
            let verified = verify_quote(tpm.ak(), &evidence, &nonce, &options).unwrap();
            assert_eq!(verified.pcrs, golden_pcrs().restrict(&sel).unwrap());
            assert_eq!(verified.attest.qualified_signer, tpm.ak_name());
            if let Some(p) = previous {
                assert!(verified.attest.clock_info.clock > p.clock);
            }
            previous = Some(verified.attest.clock_info);
            // Another nonce is refused.
            assert!(verify_quote(tpm.ak(), &evidence, &[0xff; 32], &QuoteOptions::default()).is_err());
        }
        // Quoting after an extend reports the new value, and the digest still matches.
        tpm.pcr_extend(HashAlg::Sha256, 3, &[0xab; 32]).unwrap();
        let q = tpm.make_quote(b"n", &sel).unwrap();
        assert_ne!(q.pcrs.get(HashAlg::Sha256, 3), golden_pcrs().get(HashAlg::Sha256, 3));
        let evidence = QuoteEvidence { attest: &q.attest, signature: &q.signature, pcrs: &q.pcrs };
        verify_quote(tpm.ak(), &evidence, b"n", &QuoteOptions::default()).unwrap();
    }

    #[test]
    fn the_trait_quote_is_what_the_client_sends() {
        let mut tpm = SoftTpm::new().unwrap();
        let evidence = runtrust::client::quote_challenge(&mut tpm, &"ab".repeat(32), "sha256:0,1,2,3,4,5,6,7").unwrap();
        let ak = tpm.ak().clone();
        let e = QuoteEvidence { attest: &evidence.attest, signature: &evidence.signature, pcrs: &evidence.pcrs };
        verify_quote(&ak, &e, &[0xab; 32], &QuoteOptions::default()).unwrap();
        // Outside the simulated bank: an error, not a panic.
        assert!(runtrust::client::quote_challenge(&mut tpm, "ab", "sha1:0").is_err());
    }
}
