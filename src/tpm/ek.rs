//! The EK a [`TssTpm`] uses (docs/design.md §14): the one persisted at its TCG handle when that object is this
//! TPM's EK, else one created from the TCG template, once per `TssTpm`.
//!
//! The TCG TPM v2.0 Provisioning Guidance reserves persistent handle 0x81010001 for the RSA 2048 EK and
//! 0x81010002 for the ECC P-256 EK. The P-384 EK (high-range template H-4) is looked for at 0x81010016, where
//! swtpm_setup persists it (the handle mirrors its certificate's NV index, 0x01c00016). Creating an RSA EK
//! takes seconds on a discrete chip (TPM2_CreatePrimary derives the key from the endorsement seed); loading a
//! persisted one takes milliseconds.
//!
//! A persisted object is used as the EK only if it is one:
//! - with an EK certificate in NV, its key must be the certificate's key, and it must be a restricted
//!   decryption key (what TPM2_ActivateCredential needs, Part 3 §12.5);
//! - without a certificate, its public area must be the TCG template's for the configured algorithm (type,
//!   nameAlg, attributes, authPolicy, parameters), its key (`unique`) aside;
//! - either way, an object whose Name is the EK Name recorded with this state directory's AK is the EK the AK
//!   was created under, already accepted once, and needs no further check.
//!
//! Anything else is left alone, with a warning, and the EK is created from the template instead.

use tss_esapi::abstraction::{ek, DefaultKey};
use tss_esapi::handles::{KeyHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{EccPoint, Public as TssPublic, PublicKeyRsa};
use tss_esapi::traits::Marshall;

use runtrust_attestation::ek::check_certified_key;
use runtrust_attestation::tpm2::ObjectAttributes;
use runtrust_attestation::Public;

use super::state::AkBlobs;
use super::tss::{key_selection, TssTpm};
use super::{KeyAlg, TpmError};

/// Persistent handle of the RSA 2048 EK (TCG TPM v2.0 Provisioning Guidance).
pub const EK_HANDLE_RSA: u32 = 0x8101_0001;
/// Persistent handle of the ECC P-256 EK (TCG TPM v2.0 Provisioning Guidance).
pub const EK_HANDLE_ECC: u32 = 0x8101_0002;
/// Persistent handle of the ECC P-384 EK where swtpm_setup puts it.
pub const EK_HANDLE_ECC_P384: u32 = 0x8101_0016;

/// The persistent handle where the EK of `alg` is looked for.
pub fn ek_persistent_handle(alg: KeyAlg) -> u32 {
    match alg {
        KeyAlg::Rsa => EK_HANDLE_RSA,
        KeyAlg::Ecc => EK_HANDLE_ECC,
        KeyAlg::Ecc384 => EK_HANDLE_ECC_P384,
    }
}

/// The tpm2-tools name of `alg` (`tpm2_createek -G`).
fn tools_alg(alg: KeyAlg) -> &'static str {
    match alg {
        KeyAlg::Rsa => "rsa2048",
        KeyAlg::Ecc => "ecc256",
        KeyAlg::Ecc384 => "ecc384",
    }
}

/// The EK in use.
pub(super) struct Ek {
    pub handle: KeyHandle,
    pub public: Public,
    /// The persistent handle, when the EK is the persisted one (it is then closed, never flushed).
    pub persisted: Option<u32>,
}

/// What [`TssTpm::persist_ek`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistedEk {
    pub handle: u32,
    /// The EK's Name (hex).
    pub name: String,
    /// False when the EK was already persisted there.
    pub newly: bool,
}

/// `public` with its key (`unique`) emptied: the part a template fixes.
fn template_part(public: &TssPublic) -> TssPublic {
    let mut p = public.clone();
    match &mut p {
        TssPublic::Rsa { unique, .. } => *unique = PublicKeyRsa::default(),
        TssPublic::Ecc { unique, .. } => *unique = EccPoint::default(),
        TssPublic::KeyedHash { .. } | TssPublic::SymCipher { .. } => {}
    }
    p
}

/// Whether a persisted object (`tss`, parsed as `public`) is this TPM's EK, given the EK `template` and the EK
/// certificate in NV; Err says why not.
pub(super) fn judge(
    tss: &TssPublic,
    public: &Public,
    template: &TssPublic,
    certificate: Option<&[u8]>,
) -> Result<(), String> {
    match certificate {
        Some(cert) => {
            check_certified_key(cert, public).map_err(|e| format!("it is not the EK certificate's key: {e}"))?;
            let attributes = public.attributes;
            if !attributes.has(ObjectAttributes::RESTRICTED) || !attributes.has(ObjectAttributes::DECRYPT) {
                return Err("it is not a restricted decryption key".into());
            }
            Ok(())
        }
        None if template_part(tss) == template_part(template) => Ok(()),
        None => Err(format!(
            "no EK certificate in NV, and its public area is not the TCG EK template's for {} (type, nameAlg, \
             attributes, authPolicy or parameters differ)",
            public.key.describe()
        )),
    }
}

impl TssTpm {
    /// The EK, found or created on first use and kept for the life of this `TssTpm`.
    pub(super) fn ek(&mut self) -> Result<(KeyHandle, Public), TpmError> {
        if let Some(ek) = &self.ek {
            return Ok((ek.handle, ek.public.clone()));
        }
        let ek = match self.persisted_ek()? {
            Some(ek) => ek,
            None => self.create_ek()?,
        };
        let found = (ek.handle, ek.public.clone());
        self.ek = Some(ek);
        Ok(found)
    }

    /// The persistent handle of the EK in use, if it is a persisted one. Creates nothing.
    pub(super) fn persisted_ek_handle(&mut self) -> Result<Option<u32>, TpmError> {
        if self.ek.is_none() {
            self.ek = self.persisted_ek()?;
        }
        Ok(self.ek.as_ref().and_then(|ek| ek.persisted))
    }

    fn create_ek(&mut self) -> Result<Ek, TpmError> {
        let selection = key_selection(self.opts.ek_alg);
        let handle = self.run("TPM2_CreatePrimary (EK)", |c| ek::create_ek_object_2(c, selection, DefaultKey))?;
        let public = self.read_public(handle)?;
        Ok(Ek { handle, public, persisted: None })
    }

    /// The object at the EK's persistent handle, when there is one and it is this TPM's EK.
    fn persisted_ek(&mut self) -> Result<Option<Ek>, TpmError> {
        let handle = ek_persistent_handle(self.opts.ek_alg);
        let Some((object, tss, public)) = self.load_persistent(handle)? else {
            return Ok(None);
        };
        match self.judge_persisted(&tss, &public)? {
            Ok(()) => Ok(Some(Ek { handle: KeyHandle::from(object), public, persisted: Some(handle) })),
            Err(reason) => {
                tracing::warn!(
                    "not using the object persisted at {handle:#010x} as the EK: {reason}; creating the EK from the TCG template"
                );
                self.close(object);
                Ok(None)
            }
        }
    }

    /// The object persisted at `handle` with its public area, or None if the handle is empty.
    fn load_persistent(&mut self, handle: u32) -> Result<Option<(ObjectHandle, TssPublic, Public)>, TpmError> {
        if !self.handles_in(handle, handle)?.contains(&handle) {
            return Ok(None);
        }
        let object = self.run("TPM2_ReadPublic (persisted EK)", |c| {
            let tpm_handle = PersistentTpmHandle::new(handle)?;
            c.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(tpm_handle)))
        })?;
        match self.read_public_tss(KeyHandle::from(object)) {
            Ok((tss, public)) => Ok(Some((object, tss, public))),
            Err(e) => {
                self.close(object);
                Err(e)
            }
        }
    }

    fn judge_persisted(&mut self, tss: &TssPublic, public: &Public) -> Result<Result<(), String>, TpmError> {
        let (dir, ek_alg, ak_alg) = (self.opts.state_dir.clone(), self.opts.ek_alg, self.opts.ak_alg);
        // Only a shortcut: a state dir whose AK cannot be read just takes the full check (and ak_handle then
        // reports the AK's problem).
        let ak_ek_name = AkBlobs::load(&dir, ek_alg, ak_alg).ok().flatten().map(|b| b.ek_name);
        if ak_ek_name.as_deref() == Some(public.name().as_slice()) {
            return Ok(Ok(()));
        }
        let template = ek::create_ek_public_from_default_template_2(key_selection(ek_alg), DefaultKey)
            .map_err(|e| TpmError::Unexpected { what: "EK template", detail: e.to_string() })?;
        let certificate = self.ek_certificate_cached()?;
        Ok(judge(tss, public, &template, certificate.as_deref()))
    }

    /// Makes the EK persistent at its TCG handle (TPM2_EvictControl, Part 3 §28.5, with the owner hierarchy's
    /// empty authorization), so that later runs load it instead of creating it. Does nothing if this TPM's EK
    /// is already there; refuses if another object holds the handle, or if an EK certificate in NV certifies
    /// another key than the one the template gives.
    pub fn persist_ek(&mut self) -> Result<PersistedEk, TpmError> {
        let alg = self.opts.ek_alg;
        let handle = ek_persistent_handle(alg);
        if let Some((object, tss, public)) = self.load_persistent(handle)? {
            let verdict = self.judge_persisted(&tss, &public);
            self.close(object);
            return match verdict? {
                Ok(()) => Ok(PersistedEk { handle, name: hex::encode(public.name()), newly: false }),
                Err(reason) => Err(TpmError::EkHandleTaken { handle, reason }),
            };
        }
        let (transient, public) = self.ek()?;
        if let Some(cert) = self.ek_certificate_cached()? {
            check_certified_key(&cert, &public).map_err(|e| TpmError::EkNotCertified { reason: e.to_string() })?;
        }
        let persistent = self.run("TPM2_EvictControl", |c| {
            let target = Persistent::Persistent(PersistentTpmHandle::new(handle)?);
            c.execute_with_session(Some(AuthSession::Password), |c| {
                c.evict_control(Provision::Owner, ObjectHandle::from(transient), target)
            })
        });
        let persistent = persistent.map_err(|e| match e {
            TpmError::Command { source, .. } => TpmError::PersistEk { handle, alg: tools_alg(alg), source },
            e => e,
        })?;
        // From now on the persisted EK; the transient copy is flushed.
        if let Some(old) = self.ek.take() {
            self.release_ek(old);
        }
        self.ek = Some(Ek { handle: KeyHandle::from(persistent), public: public.clone(), persisted: Some(handle) });
        Ok(PersistedEk { handle, name: hex::encode(public.name()), newly: true })
    }

    /// Flushes a transient EK, closes the ESYS handle of a persisted one.
    pub(super) fn release_ek(&mut self, ek: Ek) {
        if ek.persisted.is_some() {
            self.close(ObjectHandle::from(ek.handle));
        } else if let Err(e) = self.ctx.flush_context(ObjectHandle::from(ek.handle)) {
            tracing::warn!("flushing the transient EK failed: {e}");
        }
    }
}

/// The TPMT_PUBLIC bytes of a tss-esapi public area.
pub(super) fn tpmt_bytes(public: &TssPublic) -> Result<Vec<u8>, TpmError> {
    public.marshall().map_err(|e| TpmError::Unexpected { what: "TPMT_PUBLIC", detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use tss_esapi::traits::UnMarshall;

    use super::*;

    const EK_RSA_PUB: &[u8] = include_bytes!("../../attestation/tests/vectors/ekcerts/ek-rsa.pub");
    const EK_RSA_CERT: &[u8] = include_bytes!("../../attestation/tests/vectors/ekcerts/ek-rsa.der");
    const EK_ECC_PUB: &[u8] = include_bytes!("../../attestation/tests/vectors/ekcerts/ek-ecc.pub");
    const EK_ECC_CERT: &[u8] = include_bytes!("../../attestation/tests/vectors/ekcerts/ek-ecc.der");

    /// A captured EK (tpm2_createek -u: TPM2B_PUBLIC) with `edit` applied to its TPMT_PUBLIC bytes.
    fn ek(tpm2b: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> (TssPublic, Public) {
        let mut tpmt = tpm2b[2..].to_vec();
        edit(&mut tpmt);
        (TssPublic::unmarshall(&tpmt).unwrap(), Public::from_tpmt(&tpmt).unwrap())
    }

    fn template(alg: KeyAlg) -> TssPublic {
        ek::create_ek_public_from_default_template_2(key_selection(alg), DefaultKey).unwrap()
    }

    /// Sets or clears an objectAttributes bit (TPMT_PUBLIC: type u16, nameAlg u16, objectAttributes u32).
    fn flip(bit: u32) -> impl FnOnce(&mut Vec<u8>) {
        move |t| {
            let a = u32::from_be_bytes([t[4], t[5], t[6], t[7]]) ^ bit;
            t[4..8].copy_from_slice(&a.to_be_bytes());
        }
    }

    #[test]
    fn persisted_ek_with_certificate_must_be_the_certified_key() {
        let (tss, public) = ek(EK_RSA_PUB, |_| {});
        assert_eq!(judge(&tss, &public, &template(KeyAlg::Rsa), Some(EK_RSA_CERT)), Ok(()));
        let other = judge(&tss, &public, &template(KeyAlg::Rsa), Some(EK_ECC_CERT)).unwrap_err();
        assert!(other.contains("not the EK certificate's key"), "{other}");
        let (tss, public) = ek(EK_RSA_PUB, flip(ObjectAttributes::RESTRICTED));
        let unrestricted = judge(&tss, &public, &template(KeyAlg::Rsa), Some(EK_RSA_CERT)).unwrap_err();
        assert!(unrestricted.contains("not a restricted decryption key"), "{unrestricted}");
    }

    #[test]
    fn persisted_ek_without_certificate_must_have_the_template() {
        // tpm2_createek's EKs are made from the same TCG templates (L-1 RSA 2048, H-4 P-384).
        let (tss, public) = ek(EK_RSA_PUB, |_| {});
        assert_eq!(judge(&tss, &public, &template(KeyAlg::Rsa), None), Ok(()));
        let (tss384, public384) = ek(EK_ECC_PUB, |_| {});
        assert_eq!(judge(&tss384, &public384, &template(KeyAlg::Ecc384), None), Ok(()));
        // Another key type or curve, or one attribute more, is not the EK.
        assert!(judge(&tss384, &public384, &template(KeyAlg::Rsa), None).is_err());
        assert!(judge(&tss384, &public384, &template(KeyAlg::Ecc), None).is_err());
        assert!(judge(&tss, &public, &template(KeyAlg::Ecc384), None).is_err());
        let (tss, public) = ek(EK_RSA_PUB, flip(ObjectAttributes::USER_WITH_AUTH));
        let why = judge(&tss, &public, &template(KeyAlg::Rsa), None).unwrap_err();
        assert!(why.contains("not the TCG EK template's for RSA-2048"), "{why}");
    }

    #[test]
    fn handles() {
        assert_eq!(ek_persistent_handle(KeyAlg::Rsa), 0x8101_0001);
        assert_eq!(ek_persistent_handle(KeyAlg::Ecc), 0x8101_0002);
        assert_eq!(ek_persistent_handle(KeyAlg::Ecc384), 0x8101_0016);
    }
}
