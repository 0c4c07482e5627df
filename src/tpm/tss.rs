//! [`Tpm`] on tss-esapi. Every transient object and session this type creates is flushed: sessions right
//! after each command, the EK and AK when the `TssTpm` is dropped — so it runs without a resource manager.
//!
//! A `TssTpm` finds or creates the EK once (ek.rs: the persisted EK when there is one) and loads the AK once,
//! then keeps both for its life. Every TPM command goes through [`TssTpm::run`], which retries the transient
//! answers (retry.rs).

use std::convert::TryFrom;
use std::path::PathBuf;
use std::str::FromStr;

use runtrust_attestation::ak::check_ak;
use runtrust_attestation::{Attest, HashAlg, PcrSelection, PcrValues, Public, Signature};
use tss_esapi::abstraction::{ak, AsymmetricAlgorithmSelection, KeyCustomization};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, Data, Digest, DigestList, DigestValues, EncryptedSecret, IdObject, PcrSelectionListBuilder,
    PcrSlot, Private, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;

use super::ek::{tpmt_bytes, Ek};
use super::nv::der_prefix;
use super::state::AkBlobs;
use super::{retry, KeyAlg, Quote, Tpm, TpmError, TpmInfo};

/// EK certificate NV indices (TCG EK Credential Profile §2.2.1.5.2).
const EK_CERT_NV_RSA_2048: u32 = 0x01c0_0002;
const EK_CERT_NV_ECC_P256: u32 = 0x01c0_000a;
const EK_CERT_NV_ECC_P384: u32 = 0x01c0_0016;
/// TCG EK Credential Profile 2.5 §B.6: the high-range EK templates' authPolicy is PolicyOR(PolicyA, PolicyC);
/// PolicyA is PolicySecret(TPM_RH_ENDORSEMENT). These are the branch digests for SHA-384.
const EK_POLICY_A_SHA384: [u8; 48] = [
    0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c, 0x4d, 0xc1, 0xd4, 0xb6, 0x4f, 0x43, 0x26,
    0x11, 0xdc, 0x38, 0x6e, 0x6f, 0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e, 0x14, 0x3e, 0x8b, 0xb1, 0x13, 0x38,
    0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53,
];
const EK_POLICY_C_SHA384: [u8; 48] = [
    0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef, 0x2b, 0x6a, 0x16,
    0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5, 0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6,
    0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
];
/// How often a quote is retried when a PCR changes between TPM2_Quote and TPM2_PCR_Read.
const QUOTE_ATTEMPTS: u32 = 5;

/// How to reach the TPM and which keys to use.
#[derive(Clone, Debug)]
pub struct TpmOptions {
    pub tcti: String,
    pub state_dir: PathBuf,
    pub ek_alg: KeyAlg,
    pub ak_alg: KeyAlg,
}

/// A TPM reached through a TCTI.
pub struct TssTpm {
    pub(super) ctx: Context,
    pub(super) opts: TpmOptions,
    pub(super) ek: Option<Ek>,
    ak: Option<(KeyHandle, Public)>,
    /// The EK certificate, once read from NV.
    ek_certificate: Option<Option<Vec<u8>>>,
}

fn cmd(command: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
    move |source| {
        if retry::is_lockout(&source) {
            TpmError::Lockout { command, source }
        } else {
            TpmError::Command { command, source }
        }
    }
}

fn unexpected(what: &'static str) -> impl FnOnce(String) -> TpmError {
    move |detail| TpmError::Unexpected { what, detail }
}

fn hashing_algorithm(h: HashAlg) -> HashingAlgorithm {
    match h {
        HashAlg::Sha1 => HashingAlgorithm::Sha1,
        HashAlg::Sha256 => HashingAlgorithm::Sha256,
        HashAlg::Sha384 => HashingAlgorithm::Sha384,
        HashAlg::Sha512 => HashingAlgorithm::Sha512,
    }
}

fn hash_alg(h: HashingAlgorithm) -> Option<HashAlg> {
    match h {
        HashingAlgorithm::Sha1 => Some(HashAlg::Sha1),
        HashingAlgorithm::Sha256 => Some(HashAlg::Sha256),
        HashingAlgorithm::Sha384 => Some(HashAlg::Sha384),
        HashingAlgorithm::Sha512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

pub(super) fn key_selection(alg: KeyAlg) -> AsymmetricAlgorithmSelection {
    match alg {
        KeyAlg::Rsa => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        KeyAlg::Ecc => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
        KeyAlg::Ecc384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
    }
}

fn ek_cert_nv_index(alg: KeyAlg) -> u32 {
    match alg {
        KeyAlg::Rsa => EK_CERT_NV_RSA_2048,
        KeyAlg::Ecc => EK_CERT_NV_ECC_P256,
        KeyAlg::Ecc384 => EK_CERT_NV_ECC_P384,
    }
}

fn tss_selection(banks: &[(HashAlg, Vec<u8>)]) -> Result<tss_esapi::structures::PcrSelectionList, TpmError> {
    let mut builder = PcrSelectionListBuilder::new();
    for (bank, pcrs) in banks {
        let slots = pcrs
            .iter()
            .map(|&i| PcrSlot::try_from(1u32 << i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TpmError::Unexpected { what: "PCR index", detail: e.to_string() })?;
        builder = builder.with_selection(hashing_algorithm(*bank), &slots);
    }
    builder.build().map_err(|e| TpmError::Unexpected { what: "PCR selection", detail: e.to_string() })
}

/// The AK template: tss-esapi's (restricted signing key under the EK) with noDA (Part 2 §8.3.3.1,
/// TPMA_OBJECT). The AK's authValue is empty, so dictionary-attack protection guards nothing; with it, every
/// power loss after a quote counts as a failed authorization, and after maxTries of them (3 on swtpm) the
/// TPM refuses TPM2_Quote until lockoutRecovery has passed.
struct AkTemplate;

impl KeyCustomization for AkTemplate {
    fn attributes(&self, attributes: ObjectAttributesBuilder) -> ObjectAttributesBuilder {
        attributes.with_no_da(true)
    }
}

impl TssTpm {
    /// Connects to the TPM. Nothing is created until an operation needs it.
    pub fn open(opts: TpmOptions) -> Result<Self, TpmError> {
        let conf = TctiNameConf::from_str(&opts.tcti)
            .map_err(|e| TpmError::BadTcti { tcti: opts.tcti.clone(), reason: e.to_string() })?;
        let ctx = Context::new(conf).map_err(|source| {
            let hint = if opts.tcti.starts_with("device") {
                "is there a TPM (ls -l /dev/tpmrm0) and may this user open it (group tss)? For a simulated TPM: scripts/swtpm.sh start"
            } else {
                "is the simulator running and listening there? scripts/swtpm.sh start prints a working TCTI"
            };
            TpmError::Unreachable { tcti: opts.tcti.clone(), hint: hint.to_owned(), source }
        })?;
        Ok(Self { ctx, opts, ek: None, ak: None, ek_certificate: None })
    }

    /// Runs one TPM command (or a sequence that is safe to repeat whole), retrying the transient answers
    /// TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING with bounded backoff (retry.rs).
    pub(super) fn run<T>(
        &mut self,
        command: &'static str,
        mut f: impl FnMut(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T, TpmError> {
        let ctx = &mut self.ctx;
        retry::with_retry(command, || f(ctx), std::thread::sleep)
    }

    pub(super) fn read_public_tss(
        &mut self,
        handle: KeyHandle,
    ) -> Result<(tss_esapi::structures::Public, Public), TpmError> {
        let (public, _, _) = self.run("TPM2_ReadPublic", |c| c.read_public(handle))?;
        let parsed = Public::from_tpmt(&tpmt_bytes(&public)?)
            .map_err(|e| TpmError::Unexpected { what: "TPMT_PUBLIC", detail: e.to_string() })?;
        Ok((public, parsed))
    }

    pub(super) fn read_public(&mut self, handle: KeyHandle) -> Result<Public, TpmError> {
        Ok(self.read_public_tss(handle)?.1)
    }

    /// The EK certificate from NV (DER, padding removed), read once.
    pub(super) fn ek_certificate_cached(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
        if let Some(c) = &self.ek_certificate {
            return Ok(c.clone());
        }
        let index = ek_cert_nv_index(self.opts.ek_alg);
        let cert = if self.nv_index_defined(index)? {
            let nv = self.nv_read_all(index, "TPM2_NV_Read (EK certificate)")?;
            let der = der_prefix(&nv).ok_or_else(|| TpmError::Unexpected {
                what: "EK certificate",
                detail: format!("NV index {index:#010x} does not start with a DER certificate"),
            })?;
            Some(der.to_vec())
        } else {
            None
        };
        self.ek_certificate = Some(cert.clone());
        Ok(cert)
    }

    /// Loads the AK from the state dir, creating and storing it on first use.
    fn ak_handle(&mut self) -> Result<KeyHandle, TpmError> {
        if let Some((h, _)) = &self.ak {
            return Ok(*h);
        }
        let (ek, ek_public) = self.ek()?;
        let ek_name = ek_public.name();
        let (dir, ek_alg, ak_alg) = (self.opts.state_dir.clone(), self.opts.ek_alg, self.opts.ak_alg);
        let blobs = match AkBlobs::load(&dir, ek_alg, ak_alg)? {
            Some(b) if b.ek_name != ek_name => return Err(TpmError::ForeignAk { dir }),
            Some(b) => b,
            None => {
                let (sign, hash) = match ak_alg {
                    KeyAlg::Rsa => (SignatureSchemeAlgorithm::RsaSsa, HashingAlgorithm::Sha256),
                    KeyAlg::Ecc => (SignatureSchemeAlgorithm::EcDsa, HashingAlgorithm::Sha256),
                    KeyAlg::Ecc384 => (SignatureSchemeAlgorithm::EcDsa, HashingAlgorithm::Sha384),
                };
                let created = self.run("TPM2_Create (AK)", |c| {
                    ak::create_ak_2(c, ek, hash, key_selection(ak_alg), sign, None, AkTemplate)
                })?;
                let tpmt = created
                    .out_public
                    .marshall()
                    .map_err(|e| TpmError::Unexpected { what: "AK TPMT_PUBLIC", detail: e.to_string() })?;
                let private = created.out_private.value();
                let mut tpm2b_private = (private.len() as u16).to_be_bytes().to_vec();
                tpm2b_private.extend_from_slice(private);
                let mut tpm2b_public = (tpmt.len() as u16).to_be_bytes().to_vec();
                tpm2b_public.extend_from_slice(&tpmt);
                let blobs = AkBlobs { public: tpm2b_public, private: tpm2b_private, ek_name };
                blobs.store(&dir, ek_alg, ak_alg)?;
                blobs
            }
        };
        let corrupt = |detail: String| TpmError::CorruptAk { path: dir.clone(), detail };
        let ak_public = Public::from_tpm2b(&blobs.public).map_err(|e| corrupt(e.to_string()))?;
        // Fail closed on an AK that could not attest (e.g. a tampered blob): the same check the verifier makes.
        check_ak(&ak_public, false).map_err(|e| corrupt(e.to_string()))?;
        let tss_public =
            tss_esapi::structures::Public::unmarshall(ak_public.tpmt_bytes()).map_err(|e| corrupt(e.to_string()))?;
        let private = blobs
            .private
            .get(2..)
            .filter(|p| {
                blobs.private.len() >= 2 && u16::from_be_bytes([blobs.private[0], blobs.private[1]]) as usize == p.len()
            })
            .ok_or_else(|| corrupt("TPM2B_PRIVATE size does not match the file".into()))
            .and_then(|p| Private::try_from(p.to_vec()).map_err(|e| corrupt(e.to_string())))?;
        let h = self.run("TPM2_Load (AK)", |c| ak::load_ak(c, ek, None, private.clone(), tss_public.clone()))?;
        self.ak = Some((h, ak_public));
        Ok(h)
    }

    fn active_banks(&mut self) -> Result<Vec<HashAlg>, TpmError> {
        let (data, _) = self.run("TPM2_GetCapability (PCRs)", |c| {
            c.execute_without_session(|c| c.get_capability(CapabilityType::AssignedPcr, 0, 16))
        })?;
        let CapabilityData::AssignedPcr(list) = data else {
            return Err(TpmError::Unexpected { what: "TPM2_GetCapability", detail: "not a PCR list".into() });
        };
        Ok(list
            .get_selections()
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| hash_alg(s.hashing_algorithm()))
            .collect())
    }

    /// A policy session that satisfies the EK's authPolicy: PolicySecret(endorsement), then PolicyOR for
    /// the high-range (SHA-384) templates.
    fn ek_policy_session(&mut self, ek: KeyHandle) -> Result<AuthSession, TpmError> {
        let ek_public = self.read_public(ek)?;
        let aes_bits = match ek_public.symmetric {
            Some(s) if s.key_bits == 256 => SymmetricDefinition::AES_256_CFB,
            _ => SymmetricDefinition::AES_128_CFB,
        };
        let name_alg = hashing_algorithm(ek_public.name_alg);
        let session = self
            .run("TPM2_StartAuthSession", |c| {
                c.start_auth_session(None, None, None, SessionType::Policy, aes_bits, name_alg)
            })?
            .ok_or_else(|| unexpected("TPM2_StartAuthSession")("no session".into()))?;
        let policy = PolicySession::try_from(session).map_err(cmd("TPM2_StartAuthSession"))?;
        let result = self
            .run("TPM2_PolicySecret", |c| {
                c.execute_with_nullauth_session(|c| {
                    c.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
            })
            .and_then(|_| {
                if ek_public.name_alg != HashAlg::Sha384 {
                    return Ok(());
                }
                let mut branches = DigestList::new();
                for d in [&EK_POLICY_A_SHA384[..], &EK_POLICY_C_SHA384[..]] {
                    let d = Digest::try_from(d).map_err(cmd("TPM2_PolicyOR"))?;
                    branches.add(d).map_err(cmd("TPM2_PolicyOR"))?;
                }
                self.run("TPM2_PolicyOR", |c| c.policy_or(policy, branches.clone()))
            });
        if let Err(e) = result {
            let _ = self.ctx.flush_context(SessionHandle::from(session).into());
            return Err(e);
        }
        Ok(session)
    }

    fn property_string(&mut self, tag: PropertyTag) -> Result<String, TpmError> {
        let v = self.run("TPM2_GetCapability (properties)", |c| c.get_tpm_property(tag))?.unwrap_or(0);
        Ok(v.to_be_bytes().iter().filter(|b| b.is_ascii_graphic()).map(|&b| char::from(b)).collect())
    }
}

impl Drop for TssTpm {
    fn drop(&mut self) {
        if let Some((h, _)) = self.ak.take() {
            if let Err(e) = self.ctx.flush_context(ObjectHandle::from(h)) {
                tracing::warn!("flushing the AK failed: {e}");
            }
        }
        if let Some(ek) = self.ek.take() {
            self.release_ek(ek);
        }
    }
}

impl Tpm for TssTpm {
    fn info(&mut self) -> Result<TpmInfo, TpmError> {
        let manufacturer = self.property_string(PropertyTag::Manufacturer)?;
        let vendor = self.run("TPM2_GetCapability (vendor)", tss_esapi::utils::get_tpm_vendor)?;
        let fw1 = self.run("TPM2_GetCapability", |c| c.get_tpm_property(PropertyTag::FirmwareVersion1))?;
        let fw2 = self.run("TPM2_GetCapability", |c| c.get_tpm_property(PropertyTag::FirmwareVersion2))?;
        let firmware_version = match (fw1, fw2) {
            (Some(a), Some(b)) => format!("{}.{}.{}.{}", a >> 16, a & 0xffff, b >> 16, b & 0xffff),
            _ => "unknown".into(),
        };
        let rev = self.run("TPM2_GetCapability", |c| c.get_tpm_property(PropertyTag::Revision))?.unwrap_or(0);
        let pcr_banks = self.active_banks()?;
        let ek_certificate_present = self.nv_index_defined(ek_cert_nv_index(self.opts.ek_alg))?;
        let ek_persistent_handle = self.persisted_ek_handle()?.map(|h| format!("{h:#010x}"));
        let ak_name = AkBlobs::load(&self.opts.state_dir, self.opts.ek_alg, self.opts.ak_alg)?
            .and_then(|b| Public::from_tpm2b(&b.public).ok())
            .map(|p| hex::encode(p.name()));
        Ok(TpmInfo {
            tcti: self.opts.tcti.clone(),
            manufacturer,
            vendor,
            firmware_version,
            spec_revision: format!("{}.{:02}", rev / 100, rev % 100),
            pcr_banks,
            ek_algorithm: self.opts.ek_alg,
            ek_certificate_present,
            ek_persistent_handle,
            ak_name,
        })
    }

    fn pcr_read(&mut self, selection: &PcrSelection) -> Result<PcrValues, TpmError> {
        let mut remaining: Vec<(HashAlg, Vec<u8>)> =
            selection.banks().iter().filter(|b| !b.pcrs().is_empty()).map(|b| (b.hash, b.pcrs().to_vec())).collect();
        let mut values = PcrValues::new();
        // TPM2_PCR_Read returns at most 8 digests per call (Part 3 §22.4); repeat until all are read.
        while !remaining.is_empty() {
            let tss_sel = tss_selection(&remaining)?;
            let (_, read, digests) =
                self.run("TPM2_PCR_Read", |c| c.execute_without_session(|c| c.pcr_read(tss_sel.clone())))?;
            let mut digests = digests.value().iter();
            let mut progress = false;
            for sel in read.get_selections() {
                let Some(bank) = hash_alg(sel.hashing_algorithm()) else {
                    continue;
                };
                let mut slots: Vec<u8> =
                    sel.selected().into_iter().map(|s| u32::from(s).trailing_zeros() as u8).collect();
                slots.sort_unstable();
                for index in slots {
                    let d = digests.next().ok_or_else(|| TpmError::Unexpected {
                        what: "TPM2_PCR_Read",
                        detail: "fewer digests than PCRs".into(),
                    })?;
                    values
                        .insert(bank, index, d.value().to_vec())
                        .map_err(|e| TpmError::Unexpected { what: "TPM2_PCR_Read", detail: e.to_string() })?;
                    if let Some((_, pcrs)) = remaining.iter_mut().find(|(b, _)| *b == bank) {
                        pcrs.retain(|&i| i != index);
                    }
                    progress = true;
                }
            }
            remaining.retain(|(_, pcrs)| !pcrs.is_empty());
            if !progress {
                if let Some((bank, _)) = remaining.first() {
                    let active = self.active_banks()?.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
                    return Err(TpmError::BankNotActive { bank: *bank, active });
                }
            }
        }
        Ok(values)
    }

    fn pcr_extend(&mut self, bank: HashAlg, index: u8, digest: &[u8]) -> Result<(), TpmError> {
        let handle = PcrHandle::try_from(u32::from(index)).map_err(cmd("TPM2_PCR_Extend"))?;
        let digest = Digest::try_from(digest.to_vec()).map_err(cmd("TPM2_PCR_Extend"))?;
        let mut values = DigestValues::new();
        values.set(hashing_algorithm(bank), digest);
        self.run("TPM2_PCR_Extend", |c| c.execute_with_nullauth_session(|c| c.pcr_extend(handle, values.clone())))
    }

    fn ek_public(&mut self) -> Result<Public, TpmError> {
        Ok(self.ek()?.1)
    }

    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, TpmError> {
        self.ek_certificate_cached()
    }

    fn ek_intermediates(&mut self) -> Result<Vec<Vec<u8>>, TpmError> {
        self.read_ek_chain()
    }

    fn ak_public(&mut self) -> Result<Public, TpmError> {
        self.ak_handle()?;
        match &self.ak {
            Some((_, p)) => Ok(p.clone()),
            None => Err(TpmError::Unexpected { what: "AK", detail: "not loaded".into() }),
        }
    }

    fn quote(&mut self, nonce: &[u8], selection: &PcrSelection) -> Result<Quote, TpmError> {
        if nonce.is_empty() || nonce.len() > 64 {
            return Err(TpmError::BadNonce { len: nonce.len() });
        }
        let ak = self.ak_handle()?;
        let banks: Vec<(HashAlg, Vec<u8>)> = selection.banks().iter().map(|b| (b.hash, b.pcrs().to_vec())).collect();
        let tss_sel = tss_selection(&banks)?;
        let data = Data::try_from(nonce.to_vec()).map_err(cmd("TPM2_Quote"))?;
        for _ in 0..QUOTE_ATTEMPTS {
            // The AK's authValue is empty: a password session, as tpm2_quote uses. An unsalted, unbound HMAC
            // session would add TPM2_StartAuthSession and TPM2_FlushContext round trips and host-side session
            // crypto (~10 ms here) and protect nothing more: the signature covers what the quote attests.
            let (attest, signature) = self.run("TPM2_Quote", |c| {
                c.execute_with_session(Some(AuthSession::Password), |c| {
                    c.quote(ak, data.clone(), SignatureScheme::Null, tss_sel.clone())
                })
            })?;
            let attest = attest.marshall().map_err(|e| unexpected("TPMS_ATTEST")(e.to_string()))?;
            let signature = signature.marshall().map_err(|e| unexpected("TPMT_SIGNATURE")(e.to_string()))?;
            let parsed = Attest::parse_quote(&attest).map_err(|e| unexpected("TPMS_ATTEST")(e.to_string()))?;
            let hash =
                Signature::parse(&signature).map_err(|e| unexpected("TPMT_SIGNATURE")(e.to_string()))?.scheme().hash();
            let signed = &parsed.quote.pcr_select;
            if !signed.same_pcrs(selection) {
                // The TPM drops PCRs of banks it has not allocated (Part 3 §18.4).
                let missing = selection
                    .banks()
                    .iter()
                    .find(|b| !signed.banks().iter().any(|s| s.hash == b.hash && s.pcrs() == b.pcrs()));
                let bank = missing.map_or(HashAlg::Sha256, |b| b.hash);
                let active = self.active_banks()?.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ");
                return Err(TpmError::BankNotActive { bank, active });
            }
            let pcrs = self.pcr_read(signed)?;
            if pcrs.digest(signed, hash).as_deref() == Some(parsed.quote.pcr_digest.as_slice()) {
                return Ok(Quote { attest, signature, pcrs });
            }
            tracing::debug!("PCRs changed between TPM2_Quote and TPM2_PCR_Read; quoting again");
        }
        Err(TpmError::PcrsUnstable { attempts: QUOTE_ATTEMPTS })
    }

    fn activate_credential(&mut self, credential_blob: &[u8], encrypted_secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        let blob = IdObject::try_from(credential_blob.to_vec()).map_err(cmd("TPM2_ActivateCredential"))?;
        let secret = EncryptedSecret::try_from(encrypted_secret.to_vec()).map_err(cmd("TPM2_ActivateCredential"))?;
        let ak = self.ak_handle()?;
        let (ek, _) = self.ek()?;
        let session = self.ek_policy_session(ek)?;
        // Session 1 authorizes the AK (empty password), session 2 the EK (its policy). A transient answer leaves
        // the policy session as it was (the command did not run), so retrying it is safe.
        let result = self.run("TPM2_ActivateCredential", |c| {
            c.execute_with_sessions((Some(AuthSession::Password), Some(session), None), |c| {
                c.activate_credential(ak, ek, blob.clone(), secret.clone())
            })
        });
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        Ok(result?.value().to_vec())
    }
}
